/**
 * Prometheus' own checker, promtool (Debian's prometheus package): `check rules` parses every expression with
 * Prometheus' PromQL parser and validates the rule file's structure; `test rules` evaluates the rules over given
 * series and compares the alerts that fire, labels and rendered annotations included; `check config` loads a whole
 * prometheus.yml as the server would.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { run, type CheckResult } from "./run";

/** Writes `files` (name -> content) into a throwaway directory, runs promtool with args relative to it. */
function inDir(files: Record<string, string>, args: (dir: string) => string[]): CheckResult {
  const dir = mkdtempSync(join(tmpdir(), "ep-promtool-"));
  try {
    for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
    const r = run("promtool", args(dir), { cwd: dir, timeoutMs: 60_000 });
    return { ok: r.status === 0, output: r.output };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function checkRules(rules: string): CheckResult {
  return inDir({ "rules.yaml": rules }, (d) => ["check", "rules", join(d, "rules.yaml")]);
}

/** `tests` names the rules as `rules.yaml` in its rule_files. */
export function testRules(rules: string, tests: string): CheckResult {
  return inDir({ "rules.yaml": rules, "tests.yaml": tests }, (d) => ["test", "rules", join(d, "tests.yaml")]);
}

/** A test file in place: its rule_files are found relative to it. */
export function testRulesFile(path: string): CheckResult {
  const r = run("promtool", ["test", "rules", path], { timeoutMs: 60_000 });
  return { ok: r.status === 0, output: r.output };
}

/** A prometheus.yml with `extra` files beside it (a password_file, a rule file), named as the config names them. */
export function checkConfig(config: string, extra: Record<string, string> = {}): CheckResult {
  return inDir({ ...extra, "prometheus.yml": config }, (d) => ["check", "config", join(d, "prometheus.yml")]);
}
