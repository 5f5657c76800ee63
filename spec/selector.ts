/**
 * Kubernetes label selectors as the spec's backend pools use them: matching (Kubernetes' semantics) and the rules a
 * selector must meet, which the spec schema cannot state. One place, read by every carrier: `edgepair validate`,
 * `pulumi preview` and the agent's check of the LoadBalancer it reads.
 */
import type { SpecProblem } from "./errors";
import type { LabelSelector } from "./types";

export function selectorMatches(selector: LabelSelector, labels: Readonly<Record<string, string>>): boolean {
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(labels, e.key);
    const values = e.values ?? [];
    switch (e.operator) {
      case "In":
        if (!has || !values.includes(labels[e.key] as string)) return false;
        break;
      case "NotIn":
        if (has && values.includes(labels[e.key] as string)) return false;
        break;
      case "Exists":
        if (!has) return false;
        break;
      case "DoesNotExist":
        if (has) return false;
        break;
    }
  }
  return true;
}

/**
 * Kubernetes' own rules for a selector's expressions, and one of ours: a selector no Node can match (its terms on one
 * key contradict each other) is a mistake that would silently leave the pool to its static addresses, or empty.
 */
export function selectorProblems(selector: LabelSelector, path: string): SpecProblem[] {
  const out: SpecProblem[] = [];
  (selector.matchExpressions ?? []).forEach((e, i) => {
    const n = e.values?.length ?? 0;
    if ((e.operator === "In" || e.operator === "NotIn") && n === 0) {
      out.push({ path: `${path}.matchExpressions[${i}].values`, rule: `must not be empty for ${e.operator}` });
    }
    if ((e.operator === "Exists" || e.operator === "DoesNotExist") && n > 0) {
      out.push({ path: `${path}.matchExpressions[${i}].values`, rule: `must be empty for ${e.operator}` });
    }
  });
  if (out.length > 0) return out;
  const key = contradictedKey(selector);
  if (key !== undefined)
    out.push({ path, rule: `can match no Node: its terms on label "${key}" contradict each other` });
  return out;
}

/** The first label key whose terms no label value can satisfy together, or undefined. */
function contradictedKey(selector: LabelSelector): string | undefined {
  interface Terms {
    present?: boolean;
    /** values allowed (intersection of every In and matchLabels value); undefined: any */
    allowed?: Set<string>;
    excluded: Set<string>;
  }
  const byKey = new Map<string, Terms>();
  const terms = (k: string): Terms => {
    let t = byKey.get(k);
    if (!t) byKey.set(k, (t = { excluded: new Set() }));
    return t;
  };
  const restrict = (t: Terms, values: readonly string[]) => {
    t.allowed = new Set(values.filter((v) => t.allowed === undefined || t.allowed.has(v)));
  };
  const require = (t: Terms, present: boolean): boolean => {
    if (t.present !== undefined && t.present !== present) return false;
    t.present = present;
    return true;
  };
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) {
    const t = terms(k);
    if (!require(t, true)) return k;
    restrict(t, [v]);
  }
  for (const e of selector.matchExpressions ?? []) {
    const t = terms(e.key);
    const ok =
      e.operator === "In"
        ? (restrict(t, e.values ?? []), require(t, true))
        : e.operator === "Exists"
          ? require(t, true)
          : e.operator === "DoesNotExist"
            ? require(t, false)
            : ((e.values ?? []).forEach((v) => t.excluded.add(v)), true);
    if (!ok) return e.key;
  }
  for (const [k, t] of byKey) {
    if (t.allowed && [...t.allowed].every((v) => t.excluded.has(v))) return k;
  }
  return undefined;
}
