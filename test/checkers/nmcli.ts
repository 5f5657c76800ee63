/**
 * NetworkManager keyfiles, checked by nmcli itself without a daemon: `nmcli --offline connection modify` reads the
 * keyfile on stdin, validates and normalizes every setting, and prints the keyfile NM would store.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import type { RenderedFile } from "../../render/types";
import { withNetns } from "./netns";
import { run, type RunResult, type CheckResult } from "./run";

/** Validates one keyfile; on success `output` is nmcli's normalized keyfile (keys NM dropped are missing there). */
export function checkNmKeyfile(content: string): CheckResult {
  const id = /^id=(.*)$/m.exec(content)?.[1];
  if (!id) return { ok: false, output: "no connection id= in the keyfile" };
  const r = run("nmcli", ["--offline", "connection", "modify", "connection.id", id], { input: content });
  return { ok: r.status === 0, output: r.output };
}

/** Every *.nmconnection among the rendered files; fails on the first rejected one, naming it. */
export function checkNmFiles(files: readonly RenderedFile[]): CheckResult {
  const keyfiles = files.filter((f) => f.path.endsWith(".nmconnection"));
  if (keyfiles.length === 0) return { ok: false, output: "no .nmconnection among the rendered files" };
  const outputs: string[] = [];
  for (const f of keyfiles) {
    const r = checkNmKeyfile(f.content);
    if (!r.ok) return { ok: false, output: `${f.path}: ${r.output}` };
    outputs.push(`# ${f.path}\n${r.output}`);
  }
  return { ok: true, output: outputs.join("\n") };
}

export interface NmInterface {
  name: string;
  mac: string;
}

/**
 * Runs a real NetworkManager (1.42) in a throwaway network namespace with its own mount namespace, D-Bus and
 * /etc/NetworkManager holding `keyfiles`, then runs `script` (sh) next to it and returns what it printed.
 * /sys is remounted read-only for the namespace, so NM takes its links without udev; each interface is
 * a veth end given the wanted MAC so MAC-matched profiles apply. NM and D-Bus are stopped by PID at the end and
 * withNetns kills anything left in the namespace.
 */
export function runWithNetworkManager(
  keyfiles: readonly RenderedFile[],
  interfaces: readonly NmInterface[],
  script: string,
): RunResult {
  const dir = mkdtempSync(join(tmpdir(), "ep-nm-"));
  try {
    const etc = join(dir, "etc");
    mkdirSync(join(etc, "system-connections"), { recursive: true });
    mkdirSync(join(dir, "varlib"));
    writeFileSync(join(etc, "NetworkManager.conf"), "[main]\nplugins=keyfile\nno-auto-default=*\n");
    for (const f of keyfiles)
      writeFileSync(join(etc, "system-connections", basename(f.path)), f.content, { mode: f.mode });
    const inner = join(dir, "inner.sh");
    writeFileSync(
      inner,
      [
        "set -u",
        "mount -t tmpfs tmpfs /run && mkdir -p /run/dbus /run/lock /run/NetworkManager",
        "umount -l /sys && mount -t sysfs -o ro sysfs /sys",
        `mount --bind ${etc} /etc/NetworkManager && mount --bind ${join(dir, "varlib")} /var/lib/NetworkManager`,
        "dbus_pid=$(dbus-daemon --system --fork --print-pid)",
        `NetworkManager --no-daemon --debug > ${join(dir, "nm.log")} 2>&1 & nm_pid=$!`,
        "i=0; until nmcli -t general status >/dev/null 2>&1 || [ $i -ge 50 ]; do sleep 0.2; i=$((i+1)); done",
        ...interfaces.map((i) => `nmcli device set ${i.name} managed yes`),
        `sh ${join(dir, "script.sh")}; rc=$?`,
        "kill $nm_pid; sleep 0.5; kill $dbus_pid",
        "exit $rc",
      ].join("\n"),
    );
    writeFileSync(join(dir, "script.sh"), script);
    return withNetns(
      interfaces.map((i) => ({ name: i.name })),
      (ns) => {
        for (const i of interfaces) {
          run("ip", ["-n", ns, "link", "set", i.name, "down"]);
          run("ip", ["-n", ns, "link", "set", i.name, "address", i.mac]);
        }
        return run("ip", ["netns", "exec", ns, "unshare", "-m", "--propagation", "private", "sh", inner], {
          timeoutMs: 60_000,
        });
      },
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A command line for sh, each argument single-quoted. */
export function shellLine(argv: readonly string[]): string {
  return argv.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(" ");
}
