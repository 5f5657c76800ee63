/**
 * Pure: the LoadBalancer's spec and the cluster's Nodes -> the backends HAProxy serves.
 *
 * Rules (decided here, one place):
 * - A Node belongs to a pool when its labels match the pool's nodeSelector (matchLabels AND every matchExpression;
 *   an empty selector matches every Node, as in Kubernetes) and it has an InternalIP (the one inside
 *   network.cidr first, then IPv4, then any).
 * - Ready=True Nodes only — unless none of the matching Nodes is Ready: then all of them stay, and HAProxy's health
 *   checks decide. Emptying the API backend because every Node went NotReady would deadlock the cluster: kubelets
 *   reach the API through this VIP to report Ready again.
 * - Ingress only: cordoned Nodes (spec.unschedulable) and Nodes labelled
 *   node.kubernetes.io/exclude-from-external-load-balancers leave the pool, so a drain takes the Node out before its
 *   router goes. The API pool ignores both: a cordoned control-plane Node still serves the API, and kubeadm puts
 *   that label on every control-plane Node.
 * - No Node matches the selector at all (bootstrap, before Nodes exist or carry their labels): the spec's static
 *   addresses, and the result says so.
 * - Sorted by Node name (HAProxy server names stay stable across renders).
 */
import { z } from "zod";
import { canonical, contains, familyOf, parseCidr, parseIp } from "../../spec/address";
import type { SpecProblem } from "../../spec/errors";
import { validateSpec, type Validation } from "../../spec/resolve";
import type { Backend, BackendSets, LabelSelector, ResolvedSpec } from "../../spec/types";

export const EXCLUDE_FROM_LB_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers";

/** What the agent keeps of a Node. */
export interface NodeView {
  name: string;
  labels: Record<string, string>;
  ready: boolean;
  unschedulable: boolean;
  /** InternalIP addresses, canonical text, in the Node's order. */
  internalIPs: string[];
}

// loose on purpose: a Node carries many more fields, and one odd Node must not stop the others
const wireNode = z.object({
  metadata: z.object({ name: z.string().min(1), labels: z.record(z.string(), z.string()).nullish() }),
  spec: z.object({ unschedulable: z.boolean().nullish() }).nullish(),
  status: z
    .object({
      conditions: z.array(z.object({ type: z.string(), status: z.string() })).nullish(),
      addresses: z.array(z.object({ type: z.string(), address: z.string() })).nullish(),
    })
    .nullish(),
});

/** A Node object as the API sends it -> NodeView; undefined when it is not shaped like a Node. */
export function nodeView(obj: unknown): NodeView | undefined {
  const r = wireNode.safeParse(obj);
  if (!r.success) return undefined;
  const n = r.data;
  const internalIPs: string[] = [];
  for (const a of n.status?.addresses ?? []) {
    const ip = a.type === "InternalIP" ? parseIp(a.address) : undefined;
    if (ip) internalIPs.push(canonical(ip));
  }
  return {
    name: n.metadata.name,
    labels: { ...(n.metadata.labels ?? {}) },
    ready: (n.status?.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True"),
    unschedulable: n.spec?.unschedulable === true,
    internalIPs,
  };
}

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

/** Kubernetes' own rules for a selector's expressions, which the spec schema does not state. */
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
  return out;
}

/**
 * The LoadBalancer's spec (as stored in the custom resource) validated and resolved by the same code as every
 * other carrier: field errors, never an exception.
 */
export function specFromResource(raw: unknown): Validation<ResolvedSpec> {
  const r = validateSpec(raw);
  if (!r.ok) return r;
  const problems = [
    ...selectorProblems(r.value.apiBackend.nodeSelector, "apiBackend.nodeSelector"),
    ...(r.value.ingressBackend ? selectorProblems(r.value.ingressBackend.nodeSelector, "ingressBackend.nodeSelector") : []),
  ];
  return problems.length > 0 ? { ok: false, problems } : r;
}

/** nodes: from matching Nodes; static: the spec's addresses (no Node matches yet); none: the pool is not configured. */
export type BackendSource = "nodes" | "static" | "none";

export interface BackendSelection {
  backends: BackendSets;
  sources: { api: BackendSource; ingress: BackendSource };
}

export function selectBackends(spec: ResolvedSpec, nodes: readonly NodeView[]): BackendSelection {
  const cidr = parseCidr(spec.network.cidr);
  const addressOf = (n: NodeView): string | undefined => {
    const ips = n.internalIPs.map((t) => parseIp(t)).filter((ip) => ip !== undefined);
    const inside = cidr.ok ? ips.find((ip) => ip.kind() === cidr.cidr.network.kind() && contains(cidr.cidr, ip)) : undefined;
    const chosen = inside ?? ips.find((ip) => familyOf(ip) === 4) ?? ips[0];
    return chosen ? canonical(chosen) : undefined;
  };
  const pool = (selector: LabelSelector, staticAddresses: string[], excluded: (n: NodeView) => boolean): { backends: Backend[]; source: BackendSource } => {
    const matching = nodes.filter((n) => selectorMatches(selector, n.labels) && addressOf(n) !== undefined);
    if (matching.length === 0) {
      return { backends: staticAddresses.map((address) => ({ name: address, address })), source: "static" };
    }
    const eligible = matching.filter((n) => !excluded(n));
    const ready = eligible.filter((n) => n.ready);
    const chosen = ready.length > 0 ? ready : eligible;
    const backends = chosen.map((n) => ({ name: n.name, address: addressOf(n) as string }));
    backends.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return { backends, source: "nodes" };
  };
  const api = pool(spec.apiBackend.nodeSelector, spec.apiBackend.addresses, () => false);
  const ib = spec.ingressBackend;
  const ingress = ib
    ? pool(ib.nodeSelector, ib.addresses, (n) => n.unschedulable || Object.prototype.hasOwnProperty.call(n.labels, EXCLUDE_FROM_LB_LABEL))
    : { backends: [], source: "none" as const };
  return { backends: { api: api.backends, ingress: ingress.backends }, sources: { api: api.source, ingress: ingress.source } };
}
