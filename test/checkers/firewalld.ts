/**
 * firewalld configuration, checked by firewalld's own offline tool: the rendered /etc/firewalld files are copied
 * into a temporary directory used as --system-config (built-in zones and services still come from
 * /usr/lib/firewalld), then `--check-config` parses and cross-checks everything. No D-Bus, no daemon.
 */
import { execFile } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import type { RenderedFile } from "../../render/types";
import { run, type CheckResult } from "./run";

const ETC = "/etc/firewalld";
/** We render no firewalld.conf (the image's stays); without one the tool logs an error and falls back to defaults. */
const HOST_CONF = "/etc/firewalld/firewalld.conf";

function writeConfigDir(files: readonly RenderedFile[]): string {
  const dir = mkdtempSync(join(tmpdir(), "ep-firewalld-"));
  if (existsSync(HOST_CONF)) copyFileSync(HOST_CONF, join(dir, "firewalld.conf"));
  for (const f of files.filter((x) => x.path.startsWith(`${ETC}/`))) {
    const target = join(dir, relative(ETC, f.path));
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, f.content);
  }
  return dir;
}

function withConfigDir<T>(files: readonly RenderedFile[], body: (dir: string) => T): T {
  const dir = writeConfigDir(files);
  try {
    return body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function offline(dir: string, args: string[]): CheckResult {
  const r = run("firewall-offline-cmd", ["--system-config", dir, ...args]);
  return { ok: r.status === 0, output: r.output };
}

export function checkFirewalld(files: readonly RenderedFile[]): CheckResult {
  if (!files.some((f) => f.path.startsWith(`${ETC}/`)))
    return { ok: false, output: `no ${ETC} file among the rendered files` };
  return withConfigDir(files, (dir) => offline(dir, ["--check-config"]));
}

/** What firewalld would apply for a zone (`--zone=Z --list-all`) or, with kind "policy", a policy. */
export function listAll(files: readonly RenderedFile[], name: string, kind: "zone" | "policy" = "zone"): CheckResult {
  return withConfigDir(files, (dir) => offline(dir, [`--${kind}=${name}`, "--list-all"]));
}

export interface Listing {
  name: string;
  kind: "zone" | "policy";
}

/**
 * Several `--list-all` at once, in parallel processes (each one is a Python start-up of ~0.35 s): the listings in
 * the order asked. Throws with the tool's output when one fails.
 */
export async function listAllParallel(files: readonly RenderedFile[], listings: readonly Listing[]): Promise<string[]> {
  const dir = writeConfigDir(files);
  try {
    return await Promise.all(
      listings.map(
        (l) =>
          new Promise<string>((resolve, reject) => {
            const args = ["--system-config", dir, `--${l.kind}=${l.name}`, "--list-all"];
            execFile("firewall-offline-cmd", args, { timeout: 20_000, encoding: "utf8" }, (err, stdout, stderr) => {
              if (err) reject(new Error(`firewall-offline-cmd ${args.join(" ")}: ${err.message}\n${stdout}${stderr}`));
              else resolve(`${stdout}${stderr}`);
            });
          }),
      ),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
