/** Reading the CLI's input files and flags into validated values, or BadInput naming the field and the rule. */
import { readFileSync } from "node:fs";
import { canonical, compareAddresses, parseHostAddress } from "../spec/address";
import { formatProblem, SpecProblem } from "../spec/errors";
import { loadYaml, unwrapSpec } from "../spec/load";
import { validateHostFacts, validateSpec } from "../spec/resolve";
import type { Backend, BackendSets, HostFacts, ResolvedSpec } from "../spec/types";
import { BadInput } from "./exit";

function readText(path: string, flag: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    throw new BadInput([`${flag}: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`]);
  }
}

function fail(problems: SpecProblem[]): never {
  throw new BadInput(problems.map(formatProblem));
}

export function readSpec(path: string): ResolvedSpec {
  const loaded = loadYaml(readText(path, "--spec"), "spec");
  if (!loaded.ok) fail(loaded.problems);
  const r = validateSpec(unwrapSpec(loaded.value));
  if (!r.ok) fail(r.problems);
  return r.value;
}

export function readHost(path: string): HostFacts {
  const loaded = loadYaml(readText(path, "--host"), "host");
  if (!loaded.ok) fail(loaded.problems);
  const r = validateHostFacts(loaded.value);
  if (!r.ok) fail(r.problems.map((p) => ({ ...p, path: `host.${p.path}` })));
  return r.value;
}

/** `IP,IP,...` from a flag; absent means "use the spec's static addresses". */
export function parseBackendList(flag: string, text: string | undefined, fallback: string[]): Backend[] {
  const items = text === undefined ? fallback : text.split(",").map((s) => s.trim()).filter((s) => s.length > 0);
  const problems: SpecProblem[] = [];
  const addresses = new Set<string>();
  items.forEach((item, i) => {
    const r = parseHostAddress(item);
    if (!r.ok) problems.push({ path: `${flag}[${i}]`, rule: r.rule });
    else addresses.add(canonical(r.ip));
  });
  if (problems.length > 0) fail(problems);
  return [...addresses].sort(compareAddresses).map((address) => ({ name: address, address }));
}

/** Backends from the flags, or the spec's static addresses when a flag is absent (bootstrap before the API answers). */
export function resolveBackends(spec: ResolvedSpec, flags: { apiBackends?: string; ingressBackends?: string }): BackendSets {
  return {
    api: parseBackendList("--api-backends", flags.apiBackends, spec.apiBackend.addresses),
    ingress: parseBackendList("--ingress-backends", flags.ingressBackends, spec.ingressBackend?.addresses ?? []),
  };
}
