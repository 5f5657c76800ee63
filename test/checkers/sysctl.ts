/**
 * sysctl.d files, applied for real by sysctl(8) inside a throwaway network namespace that has the named
 * interfaces: per-interface and net.* keys are per namespace, so the host is never touched. nf_conntrack is built
 * into this kernel; where it is a module, the checker loads it through an nft ct rule first.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RenderedFile } from "../../render/types";
import { withNetns } from "./netns";
import { run, type CheckResult } from "./run";

export function checkSysctl(content: string, interfaces: readonly string[]): CheckResult {
  const dir = mkdtempSync(join(tmpdir(), "ep-sysctl-"));
  try {
    const path = join(dir, "sysctl.conf");
    writeFileSync(path, content);
    return withNetns(
      interfaces.map((name) => ({ name })),
      (ns) => {
        // Creates nf_conntrack's sysctls in the namespace when the module is not loaded yet (auto-loaded by ct).
        run("ip", [
          "netns",
          "exec",
          ns,
          "nft",
          "add table ip ep_ct; add chain ip ep_ct c { type filter hook input priority 0; ct state established accept; }",
        ]);
        const r = run("ip", ["netns", "exec", ns, "sysctl", "-p", path]);
        return { ok: r.status === 0, output: r.output };
      },
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function checkSysctlFiles(files: readonly RenderedFile[], interfaces: readonly string[]): CheckResult {
  const f = files.find((x) => x.path.startsWith("/etc/sysctl.d/"));
  if (!f) return { ok: false, output: "no /etc/sysctl.d file among the rendered files" };
  return checkSysctl(f.content, interfaces);
}
