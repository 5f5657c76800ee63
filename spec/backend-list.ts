/**
 * Backend sets before the cluster answers: the spec's static addresses, or an explicit list (`edgepair render
 * --api-backends IP,IP`). What the Pulumi program shows reviewers, what bootstrap renders, and what the CLI renders.
 */
import { canonical, compareAddresses, parseHostAddress } from "./address";
import { SpecError, type SpecProblem } from "./errors";
import type { Backend, BackendSets, ResolvedSpec } from "./types";

/** `IP,IP,...` from a flag; absent means "use the spec's static addresses". */
export function parseBackendList(flag: string, text: string | undefined, fallback: string[]): Backend[] {
  const items =
    text === undefined
      ? fallback
      : text
          .split(",")
          .map((s) => s.trim())
          .filter((s) => s.length > 0);
  const problems: SpecProblem[] = [];
  const addresses = new Set<string>();
  items.forEach((item, i) => {
    const r = parseHostAddress(item);
    if (!r.ok) problems.push({ path: `${flag}[${i}]`, rule: r.rule });
    else addresses.add(canonical(r.ip));
  });
  if (problems.length > 0) throw new SpecError(problems);
  return [...addresses].sort(compareAddresses).map((address) => ({ name: address, address }));
}

/** Backends from the flags, or the spec's static addresses when a flag is absent (bootstrap before the API answers). */
export function resolveBackends(
  spec: ResolvedSpec,
  flags: { apiBackends?: string; ingressBackends?: string } = {},
): BackendSets {
  return {
    api: parseBackendList("--api-backends", flags.apiBackends, spec.apiBackend.addresses),
    ingress: parseBackendList("--ingress-backends", flags.ingressBackends, spec.ingressBackend?.addresses ?? []),
  };
}
