/**
 * POSIX sh scripts: `sh -n` (the shell's own parser) and `shellcheck -s sh` at every severity, so bashisms and
 * quoting mistakes fail the test before a script reaches keepalived's hot path.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { run, type CheckResult } from "./run";

export function checkShellScript(content: string): CheckResult {
  const dir = mkdtempSync(join(tmpdir(), "ep-sh-"));
  try {
    const path = join(dir, "script.sh");
    writeFileSync(path, content);
    const parse = run("sh", ["-n", path]);
    if (parse.status !== 0) return { ok: false, output: `sh -n: ${parse.output}` };
    const lint = run("shellcheck", ["-s", "sh", "-S", "style", path]);
    return { ok: lint.status === 0, output: lint.output };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
