/**
 * `haproxy -c -f FILE`: parses and resolves the whole configuration (backends named by default_backend, timeouts,
 * ACLs, server options) without binding anything, so VIPs this machine does not hold are fine.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RenderedFile } from "../../render/types";
import { run, type CheckResult } from "./run";

export function checkHaproxy(content: string): CheckResult {
  const dir = mkdtempSync(join(tmpdir(), "ep-haproxy-"));
  try {
    const cfg = join(dir, "haproxy.cfg");
    writeFileSync(cfg, content);
    const r = run("haproxy", ["-c", "-f", cfg]);
    return { ok: r.status === 0, output: r.output };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The haproxy.cfg among rendered files, checked; fails when there is none. */
export function checkHaproxyFiles(files: readonly RenderedFile[]): CheckResult {
  const cfg = files.find((f) => f.path === "/etc/haproxy/haproxy.cfg");
  if (!cfg) return { ok: false, output: "no /etc/haproxy/haproxy.cfg among the rendered files" };
  return checkHaproxy(cfg.content);
}
