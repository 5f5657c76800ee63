/**
 * The spec and host facts from files, validated: the values, or a SpecError naming the field (or the flag that named
 * the file) and the rule. The command line, the lab and the benches read their inputs through here.
 */
import { readFileSync } from "node:fs";
import { SpecError, type SpecProblem } from "./errors";
import { loadYaml, unwrapSpec } from "./load";
import { validateHostFacts, validateSpec } from "./resolve";
import type { HostFacts, ResolvedSpec } from "./types";

function readText(path: string, flag: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    throw new SpecError([
      { path: flag, rule: `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}` },
    ]);
  }
}

function fail(problems: SpecProblem[]): never {
  throw new SpecError(problems);
}

/** `flag`: how the caller named the file, for the error (`--spec`). */
export function readSpec(path: string, flag = "--spec"): ResolvedSpec {
  const loaded = loadYaml(readText(path, flag), "spec");
  if (!loaded.ok) fail(loaded.problems);
  const r = validateSpec(unwrapSpec(loaded.value));
  if (!r.ok) fail(r.problems);
  return r.value;
}

export function readHost(path: string, flag = "--host"): HostFacts {
  const loaded = loadYaml(readText(path, flag), "host");
  if (!loaded.ok) fail(loaded.problems);
  const r = validateHostFacts(loaded.value);
  if (!r.ok) fail(r.problems.map((p) => ({ ...p, path: `host.${p.path}` })));
  return r.value;
}
