/**
 * The image's SELinux module, built here exactly as the Containerfile builds it: `checkmodule -M -m` (the policy
 * language compiler; a refpolicy m4 macro or an unknown class is a syntax error) and `semodule_package` with the
 * file contexts. The file contexts are also compiled by libselinux's `sefcontext_compile` (each line's regular
 * expression) and asked with `selabel_lookup`, so a test can assert which label a path gets. Types are only
 * resolved when the module is linked into Fedora's policy (`semodule -i` in the image build), not here.
 */
import { copyFileSync, existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { run, type CheckResult } from "./run";

function inTemp<T>(body: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), "ep-selinux-"));
  try {
    return body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** checkmodule names the module after its output file: NAME.te builds NAME.mod, packaged as NAME.pp with NAME.fc. */
export function buildModule(te: string, fc: string): CheckResult & { ppBytes?: number } {
  return inTemp((dir) => {
    const name = basename(te, ".te");
    const mod = join(dir, `${name}.mod`);
    const pp = join(dir, `${name}.pp`);
    const compiled = run("checkmodule", ["-M", "-m", "-o", mod, te]);
    if (compiled.status !== 0) return { ok: false, output: `checkmodule: ${compiled.output}` };
    const packaged = run("semodule_package", ["-o", pp, "-m", mod, "-f", fc]);
    if (packaged.status !== 0 || !existsSync(pp)) return { ok: false, output: `semodule_package: ${packaged.output}` };
    return { ok: true, output: `${compiled.output}${packaged.output}`, ppBytes: statSync(pp).size };
  });
}

export function compileFileContexts(fc: string): CheckResult {
  return inTemp((dir) => {
    const copy = join(dir, "file_contexts");
    copyFileSync(fc, copy);
    const r = run("sefcontext_compile", ["-o", join(dir, "file_contexts.bin"), copy]);
    return { ok: r.status === 0, output: r.output };
  });
}

/** The context the file contexts give `path` as a regular file, or undefined when no line matches. */
export function labelOf(fc: string, path: string): string | undefined {
  const r = run("selabel_lookup", ["-b", "file", "-k", path, "-f", fc]);
  const m = /Default context: (\S+)/.exec(r.stdout);
  return r.status === 0 && m ? m[1] : undefined;
}
