/**
 * Pure: this pair's Services -> one address each from the spec's pools, or a refusal naming why. The writer (one LB,
 * lease.ts) runs it and records the result in each Service's status; both LBs then render from those statuses, so
 * the status is the allocation's only record: it survives restarts and failovers, and a new writer starts from it.
 *
 * Rules (decided here, one place):
 * - An address a Service already holds (its status) stays its own while it is still valid (in an allowed pool, the
 *   one it asked for, shareable with the others there). Services are taken oldest first, so of two that claim one
 *   address (two writers for a moment) the older keeps it and the younger is allocated again.
 * - A Service being deleted keeps its address until its finalizer is gone: its frontend may still be in a kernel.
 * - A requested address (`edgepair.io/load-balancer-ips`, else spec.loadBalancerIP) must lie in a pool (the one
 *   `edgepair.io/address-pool` names, if any); it is taken if free or shareable, else refused, never replaced.
 * - Otherwise the first free address of the allowed pools in list order; with a sharing key
 *   (`edgepair.io/allow-shared-ip`), first an address whose holders all have that key and none of its ports.
 * - Refused: other protocols than TCP and UDP, ports without a NodePort (allocateLoadBalancerNodePorts false), an
 *   IPv6-only Service, source ranges without an IPv4 network, bad annotations, port 22 or 22623 where only public
 *   pools would do, and an exhausted pool. One Service's refusal never changes another's address.
 */
import { canonical, parseIp } from "../../spec/address";
import { ipv4Number, ipv4Text, poolHolds } from "../../spec/pools";
import type { ExtraService, ServiceLoadBalancers, ServicePool } from "../../spec/types";
import { ANNOTATION_IPS, ANNOTATION_POOL, ANNOTATION_SHARED, ipv4SourceRanges, type ServiceView } from "./view";

export type RefusalReason =
  | "PoolExhausted"
  | "AddressInUse"
  | "AddressNotInPool"
  | "PortConflict"
  | "BadAnnotation"
  | "NoNodePorts"
  | "UnsupportedProtocol"
  | "UnsupportedFamily"
  | "BadSourceRanges"
  | "PortNotAllowed";

export interface Refusal {
  reason: RefusalReason;
  message: string;
}

export type Assignment = { address: string; pool: string } | { refused: Refusal };

interface Holding {
  sharingKey?: string;
  ports: Set<string>;
  services: string[];
}

interface Wants {
  view: ServiceView;
  pools: ServicePool[];
  requested?: string;
  sharingKey?: string;
  ports: string[];
}

const portKey = (p: { protocol: string; port: number }) => `${p.protocol}/${p.port}`;

/** What a Service asks for, or why it cannot be served at all. */
function wants(view: ServiceView, slb: ServiceLoadBalancers): Wants | Refusal {
  const odd = view.ports.find((p) => p.protocol !== "TCP" && p.protocol !== "UDP");
  if (odd)
    return {
      reason: "UnsupportedProtocol",
      message: `port ${odd.port}/${odd.protocol}: the pair forwards TCP and UDP only`,
    };
  const noNodePort = view.ports.find((p) => p.nodePort === undefined);
  if (noNodePort)
    return {
      reason: "NoNodePorts",
      message: `port ${noNodePort.port}/${noNodePort.protocol} has no NodePort${view.allocateLoadBalancerNodePorts ? "" : " (allocateLoadBalancerNodePorts is false)"}: the pair forwards to NodePorts`,
    };
  if (view.loadBalancerSourceRanges.length > 0 && ipv4SourceRanges(view).length === 0)
    return {
      reason: "BadSourceRanges",
      message: "loadBalancerSourceRanges holds no IPv4 network: served, the Service would be open to every client",
    };
  if (view.ipFamilies.length > 0 && !view.ipFamilies.includes("IPv4"))
    return { reason: "UnsupportedFamily", message: "the Service is IPv6 only: the pair's Service addresses are IPv4" };
  const poolName = view.annotations[ANNOTATION_POOL];
  let pools = slb.pools;
  if (poolName !== undefined) {
    const pool = slb.pools.find((p) => p.name === poolName.trim());
    if (!pool)
      return {
        reason: "BadAnnotation",
        message: `${ANNOTATION_POOL}: no pool ${JSON.stringify(poolName.slice(0, 64))} (pools: ${slb.pools.map((p) => p.name).join(", ")})`,
      };
    pools = [pool];
  }
  let requested: string | undefined;
  const ipsText = view.annotations[ANNOTATION_IPS];
  if (ipsText !== undefined) {
    const items = ipsText
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s.length > 0);
    const ips = items.map((s) => parseIp(s));
    const bad = items.find((_, i) => ips[i] === undefined);
    if (bad !== undefined || items.length === 0)
      return {
        reason: "BadAnnotation",
        message: `${ANNOTATION_IPS}: ${JSON.stringify((bad ?? ipsText).slice(0, 64))} is not an address`,
      };
    const v4 = ips.filter((ip) => ip?.kind() === "ipv4");
    if (v4.length !== 1)
      return {
        reason: "BadAnnotation",
        message: `${ANNOTATION_IPS}: needs exactly one IPv4 address (the pair's Service addresses are IPv4)`,
      };
    requested = canonical(v4[0]!);
  } else if (view.loadBalancerIP !== undefined) {
    const ip = parseIp(view.loadBalancerIP);
    if (!ip || ip.kind() !== "ipv4")
      return { reason: "BadAnnotation", message: `spec.loadBalancerIP: ${view.loadBalancerIP} is not an IPv4 address` };
    requested = canonical(ip);
  }
  // SSH and the machine-config server are never reachable from outside (DESIGN.md): such a Service may only have a
  // private address
  const sensitive = view.ports.find((p) => p.port === 22 || p.port === 22623);
  if (sensitive) {
    pools = pools.filter((p) => p.type === "private");
    if (pools.length === 0 || (requested !== undefined && !pools.some((p) => poolHolds(p, requested!))))
      return {
        reason: "PortNotAllowed",
        message: `port ${sensitive.port} is never exposed on a public address, and no private pool${requested ? ` holds ${requested}` : " is allowed"}`,
      };
  }
  if (requested !== undefined && !pools.some((p) => poolHolds(p, requested!)))
    return {
      reason: "AddressNotInPool",
      message: `${requested} is in no pool${poolName !== undefined ? ` named ${poolName}` : ""} of serviceLoadBalancers`,
    };
  const sharingKey = view.annotations[ANNOTATION_SHARED]?.trim();
  return {
    view,
    pools,
    ...(requested !== undefined ? { requested } : {}),
    ...(sharingKey ? { sharingKey } : {}),
    ports: view.ports.map(portKey),
  };
}

function byAge(a: ServiceView, b: ServiceView): number {
  if (a.creationTimestamp !== b.creationTimestamp) return a.creationTimestamp < b.creationTimestamp ? -1 : 1;
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

/**
 * `services`: this pair's Services (isOurs), deleting ones included. Returns an assignment for every Service that is
 * not being deleted. An extra service's frontend in a pool keeps its address to itself.
 */
export function allocate(
  slb: ServiceLoadBalancers,
  services: readonly ServiceView[],
  extraServices: readonly ExtraService[] = [],
): Map<string, Assignment> {
  const holdings = new Map<string, Holding>();
  const result = new Map<string, Assignment>();
  const hold = (address: string, w: { key: string; sharingKey?: string; ports: string[] }) => {
    const h = holdings.get(address) ?? { ports: new Set<string>(), services: [] };
    if (w.sharingKey !== undefined) h.sharingKey = w.sharingKey;
    for (const p of w.ports) h.ports.add(p);
    h.services.push(w.key);
    holdings.set(address, h);
  };
  const joins = (address: string, w: Wants): Refusal | undefined => {
    const h = holdings.get(address);
    if (!h || h.services.length === 0) return undefined;
    if (!w.sharingKey || h.sharingKey !== w.sharingKey)
      return {
        reason: "AddressInUse",
        message: `${address} is used by ${h.services.join(", ")}${w.sharingKey ? " with another sharing key" : ` (share it with ${ANNOTATION_SHARED})`}`,
      };
    const clash = w.ports.find((p) => h.ports.has(p));
    if (clash)
      return { reason: "PortConflict", message: `${address}: port ${clash} is used by ${h.services.join(", ")}` };
    return undefined;
  };
  const assign = (w: Wants, address: string) => {
    hold(address, { key: w.view.key, ports: w.ports, ...(w.sharingKey ? { sharingKey: w.sharingKey } : {}) });
    result.set(w.view.key, { address, pool: w.pools.find((p) => poolHolds(p, address))!.name });
  };

  for (const e of extraServices)
    hold(e.frontend.address, { key: `extraServices/${e.name}`, ports: [portKey({ ...e, port: e.frontend.port })] });
  const sorted = [...services].sort(byAge);
  // a Service being deleted holds its address until its finalizer is gone
  for (const s of sorted.filter((x) => x.deleting))
    for (const ip of s.ingressIps) hold(ip, { key: s.key, ports: s.ports.map(portKey) });

  const pending: Wants[] = [];
  for (const s of sorted.filter((x) => !x.deleting)) {
    const w = wants(s, slb);
    if ("reason" in w) {
      result.set(s.key, { refused: w });
      continue;
    }
    const held = s.ingressIps[0];
    const keep =
      held !== undefined &&
      w.pools.some((p) => poolHolds(p, held)) &&
      (w.requested === undefined || w.requested === held) &&
      joins(held, w) === undefined;
    if (keep) assign(w, held);
    else pending.push(w);
  }

  for (const w of pending) {
    if (w.requested !== undefined) {
      const refusal = joins(w.requested, w);
      if (refusal) result.set(w.view.key, { refused: refusal });
      else assign(w, w.requested);
      continue;
    }
    const address = (w.sharingKey ? sharedAddress(w, holdings, joins) : undefined) ?? freeAddress(w.pools, holdings);
    if (address === undefined)
      result.set(w.view.key, {
        refused: {
          reason: "PoolExhausted",
          message: `no free address in ${w.pools.length === 1 ? `pool ${w.pools[0]!.name}` : `pools ${w.pools.map((p) => p.name).join(", ")}`}`,
        },
      });
    else assign(w, address);
  }
  return result;
}

function sharedAddress(
  w: Wants,
  holdings: ReadonlyMap<string, Holding>,
  joins: (address: string, w: Wants) => Refusal | undefined,
): string | undefined {
  const candidates = [...holdings.entries()]
    .filter(([a, h]) => h.sharingKey === w.sharingKey && w.pools.some((p) => poolHolds(p, a)) && !joins(a, w))
    .map(([a]) => a);
  return candidates.sort((a, b) => ipv4Number(parseIp(a)!) - ipv4Number(parseIp(b)!))[0];
}

function freeAddress(pools: readonly ServicePool[], holdings: ReadonlyMap<string, Holding>): string | undefined {
  for (const p of pools)
    for (const r of p.ranges)
      for (let n = r.first; n <= r.last; n++) {
        const a = ipv4Text(n);
        if (!holdings.has(a)) return a;
      }
  return undefined;
}
