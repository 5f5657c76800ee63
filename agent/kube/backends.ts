/**
 * Pure: the LoadBalancer's spec and the cluster's Nodes -> the backends HAProxy serves, and why.
 *
 * Rules (decided here, one place; DESIGN.md "static backends"):
 * - The spec's static addresses are servers of their pool for as long as the spec lists them, whatever the Nodes
 *   say. During an install they are the only servers that answer (the OpenShift bootstrap node; masters before they
 *   are Nodes, or while their Nodes are NotReady); dropping them when the first Node registers empties the pool in
 *   the middle of the install. Nodes add servers, they never remove the spec's: the spec removes them (after
 *   bootstrap-complete, a day-2 change).
 * - A Node belongs to a pool when its labels match the pool's nodeSelector (matchLabels AND every matchExpression;
 *   an empty selector matches every Node, as in Kubernetes). It adds one server at one address: its first
 *   InternalIP inside network.cidr that is not one of the pair's own. Addresses outside the cluster network are not
 *   reachable through the private NIC, and one of the pair's own addresses (gateway, LB addresses, private VIPs) would
 *   make HAProxy forward to itself: such a Node adds nothing, and the view says why.
 * - A Node whose address is a static address is that server (same name, no change in HAProxy when it registers).
 *   Two Nodes at one address: the first by name is the server.
 * - API pool: every matching Node stays, Ready or not, cordoned or not. Node readiness is not API readiness
 *   (kubeadm, Talos and OpenShift masters serve the API while NotReady until the CNI runs); HAProxy's own check
 *   (/readyz on the API port, the MCS's /healthz on 22623, which follows this pool) is the judge. kubeadm puts the
 *   exclude label on every control-plane Node, and a cordoned control-plane Node still serves the API.
 * - Ingress pool: cordoned Nodes (spec.unschedulable) and Nodes labelled
 *   node.kubernetes.io/exclude-from-external-load-balancers leave, so a drain takes the Node out before its router
 *   goes; NotReady Nodes leave while at least one matching Node is Ready (a NotReady kubelet's router is not
 *   managed), and all stay when none is (HAProxy's checks decide; an empty pool would help nobody).
 * - Extra services (extraServices, NodePorts forwarded by the kernel): as the ingress pool, which is what cloud load
 *   balancers do for a NodePort (cordoned, excluded and NotReady Nodes leave); one without a nodeSelector keeps its
 *   static addresses only.
 * - Servers sorted by address (HAProxy's server order, so the view reads like haproxy.cfg).
 */
import { z } from "zod";
import { canonical, compareAddresses, contains, parseCidr, parseIp } from "../../spec/address";
import { selectorMatches } from "../../spec/selector";
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

/** Where a server comes from: the spec's static addresses, or a Node matching the pool's selector. */
export type ServerSource = "spec" | "node";

export interface PoolServer extends Backend {
  from: ServerSource;
  /** The Node at this address, when one matches the pool (also for a static address). */
  node?: string;
}

/** A matching Node that adds no server, and why. */
export interface LeftOutNode {
  node: string;
  reason: string;
}

export interface PoolView {
  servers: PoolServer[];
  leftOut: LeftOutNode[];
}

export interface BackendSelection {
  backends: BackendSets;
  /** Per pool, each server's source and the Nodes left out with their reasons; no ingress key without ingressBackend. */
  pools: { api: PoolView; ingress?: PoolView; extra?: Record<string, PoolView>; services?: PoolView };
}

export function selectBackends(spec: ResolvedSpec, nodes: readonly NodeView[]): BackendSelection {
  const cidr = parseCidr(spec.network.cidr);
  const own = new Set([
    spec.network.gateway,
    ...spec.network.lbAddresses,
    ...spec.derived.privateVips.map((v) => v.address),
  ]);
  const sorted = [...nodes].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const addressOf = (n: NodeView): { address: string } | { reason: string } => {
    const inside = n.internalIPs
      .map((t) => parseIp(t))
      .flatMap((ip) =>
        ip !== undefined && cidr.ok && ip.kind() === cidr.cidr.network.kind() && contains(cidr.cidr, ip)
          ? [canonical(ip)]
          : [],
      );
    if (inside.length === 0)
      return {
        reason: n.internalIPs.length === 0 ? "no InternalIP" : `no InternalIP inside network.cidr ${spec.network.cidr}`,
      };
    const address = inside.find((a) => !own.has(a));
    return address ? { address } : { reason: `its InternalIP ${inside[0]} is one of the pair's own addresses` };
  };
  const pool = (
    /** absent: no Node belongs, only the static addresses */
    selector: LabelSelector | undefined,
    staticAddresses: readonly string[],
    leaves: (n: NodeView, anyReady: boolean) => string | undefined,
  ): PoolView => {
    const servers = new Map<string, PoolServer>(
      staticAddresses.map((a) => [a, { name: a, address: a, from: "spec" as const }]),
    );
    const leftOut: LeftOutNode[] = [];
    const matching = sorted
      .filter((n) => selector !== undefined && selectorMatches(selector, n.labels))
      .map((n) => ({ n, a: addressOf(n) }));
    // "another Ready Node" must be one that can serve: a Ready Node without a usable address does not count
    const anyReady = matching.some(({ n, a }) => n.ready && leaves(n, false) === undefined && "address" in a);
    for (const { n, a } of matching) {
      const why = "reason" in a ? a.reason : leaves(n, anyReady);
      const kept = "address" in a ? servers.get(a.address) : undefined;
      if (kept?.from === "spec" && kept.node === undefined) {
        // the spec keeps this server whatever the Node says; the view names the Node and what would have left it
        servers.set(kept.address, { ...kept, node: n.name });
        continue;
      }
      if (why !== undefined) leftOut.push({ node: n.name, reason: why });
      else if (kept) leftOut.push({ node: n.name, reason: `same InternalIP as ${kept.node ?? kept.name}` });
      else if ("address" in a) servers.set(a.address, { name: n.name, address: a.address, from: "node", node: n.name });
    }
    return { servers: [...servers.values()].sort((x, y) => compareAddresses(x.address, y.address)), leftOut };
  };
  const api = pool(spec.apiBackend.nodeSelector, spec.apiBackend.addresses, () => undefined);
  const ib = spec.ingressBackend;
  const servesTraffic = (n: NodeView, anyReady: boolean) =>
    n.unschedulable
      ? "cordoned"
      : Object.prototype.hasOwnProperty.call(n.labels, EXCLUDE_FROM_LB_LABEL)
        ? `labelled ${EXCLUDE_FROM_LB_LABEL}`
        : anyReady && !n.ready
          ? "NotReady while other Nodes of the pool are Ready"
          : undefined;
  const ingress = ib ? pool(ib.nodeSelector, ib.addresses, servesTraffic) : undefined;
  const extraPools = spec.extraServices.map(
    (e) => [e.name, pool(e.backend.nodeSelector, e.backend.addresses, servesTraffic)] as const,
  );
  // Services of type LoadBalancer: every Node's NodePorts, as for an extra service (kube-proxy listens on all)
  const services = spec.serviceLoadBalancers ? pool({}, [], servesTraffic) : undefined;
  const plain = (v: PoolView | undefined): Backend[] =>
    v ? v.servers.map((s) => ({ name: s.name, address: s.address })) : [];
  return {
    backends: {
      api: plain(api),
      ingress: plain(ingress),
      ...(extraPools.length > 0 ? { extra: Object.fromEntries(extraPools.map(([n, v]) => [n, plain(v)])) } : {}),
      ...(services ? { serviceNodes: plain(services) } : {}),
    },
    pools: {
      api,
      ...(ingress ? { ingress } : {}),
      ...(extraPools.length > 0 ? { extra: Object.fromEntries(extraPools) } : {}),
      ...(services ? { services } : {}),
    },
  };
}
