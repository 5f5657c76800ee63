/**
 * conntrackd.conf checks. conntrackd has no config-test flag, so the file is run: in a throwaway netns whose
 * interface carries the sync address, inside a private mount namespace with a tmpfs on /run (so the lock file
 * /var/lock -> /run/lock and the control socket /var/run -> /run never touch the host or a parallel test).
 * - checkConntrackd: a daemon still running after 1 s (timeout's rc 124) accepted the file; a parse error exits
 *   at once with "parsing config file" (the daemon is up within ~10 ms here).
 * - runConntrackdClient: the daemon runs with the file at /etc/conntrackd/conntrackd.conf (an overlay on /etc),
 *   and the given client commands run against it exactly as the notify script calls them (no -C).
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { withNetns, type WantedInterface } from "./netns";
import { run } from "./run";
import type { CheckResult } from "./run";

/** The sync interface and this LB's sync address, read from the UDP block, with a /24 (or /64) around it. */
export function conntrackdInterfaces(content: string): WantedInterface[] {
  const name = /^\s*Interface\s+(\S+)/m.exec(content)?.[1];
  const address = /^\s*IPv([46])_address\s+(\S+)/m.exec(content);
  if (!name) return [];
  const prefix = address?.[1] === "6" ? 64 : 24;
  return [{ name, addresses: address?.[2] ? [`${address[2]}/${prefix}`] : [] }];
}

const PRIVATE_RUN = "mount -t tmpfs tmpfs /run && mkdir -p /run/lock";

export function checkConntrackd(content: string): CheckResult {
  const dir = mkdtempSync(join(tmpdir(), "ep-conntrackd-"));
  try {
    const cfg = join(dir, "conntrackd.conf");
    writeFileSync(cfg, content);
    return withNetns(conntrackdInterfaces(content), (ns) => {
      const script = `${PRIVATE_RUN} && exec timeout 1 conntrackd -C ${cfg}`;
      const r = run("ip", ["netns", "exec", ns, "unshare", "-m", "--propagation", "private", "sh", "-c", script]);
      return { ok: r.status === 124 && !r.output.includes("ERROR"), output: `rc ${r.status}\n${r.output}` };
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Starts conntrackd with `content` as /etc/conntrackd/conntrackd.conf and runs `conntrackd <flags>` for each entry. */
export function runConntrackdClient(
  content: string,
  clientCalls: readonly (readonly string[])[],
): { ok: boolean; output: string } {
  const dir = mkdtempSync(join(tmpdir(), "ep-conntrackd-run-"));
  try {
    const upper = join(dir, "upper");
    const work = join(dir, "work");
    mkdirSync(join(upper, "conntrackd"), { recursive: true });
    mkdirSync(work);
    chmodSync(upper, 0o755);
    writeFileSync(join(upper, "conntrackd", "conntrackd.conf"), content);
    const calls = clientCalls.map(
      (args) => `echo "+ conntrackd ${args.join(" ")}"; conntrackd ${args.join(" ")} || failed=1`,
    );
    const script = [
      PRIVATE_RUN,
      `mount -t overlay overlay -o lowerdir=/etc,upperdir=${upper},workdir=${work} /etc`,
      "conntrackd & daemon=$!",
      // wait for the control socket
      "i=0; while [ ! -S /run/conntrackd.ctl ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done",
      "failed=0",
      ...calls,
      "kill $daemon; wait $daemon",
      "exit $failed",
    ].join("\n");
    return withNetns(conntrackdInterfaces(content), (ns) => {
      const r = run("ip", ["netns", "exec", ns, "unshare", "-m", "--propagation", "private", "sh", "-c", script], {
        timeoutMs: 30_000,
      });
      return { ok: r.status === 0, output: `rc ${r.status}\n${r.output}` };
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
