/**
 * A spec validated once per program run and passed down in both forms: as written (what the LoadBalancer resource and
 * the user-data carry, defaults implicit, so the agent resolves them with its own version) and resolved (what the
 * renderers and the components read).
 */
import { resolveSpec } from "./resolve";
import type { LoadBalancerSpecInput } from "./schema";
import type { ResolvedSpec } from "./types";

export interface CheckedSpec {
  readonly written: LoadBalancerSpecInput;
  readonly resolved: ResolvedSpec;
}

/** Throws SpecError naming every problem. `written` is copied as JSON data (the spec is JSON). */
export function checkSpec(written: LoadBalancerSpecInput): CheckedSpec {
  const resolved = resolveSpec(written);
  return { written: JSON.parse(JSON.stringify(written)) as LoadBalancerSpecInput, resolved };
}

export function isCheckedSpec(v: unknown): v is CheckedSpec {
  return typeof v === "object" && v !== null && "written" in v && "resolved" in v;
}
