/**
 * The lab's topology, derived from a resolved spec (pure: no I/O). Every name carries the run's prefix, so a lab
 * and its leftovers are found by that prefix alone.
 *
 *   outside 203.0.113.0/24 (brout) ── router ── public network (brpub) ── lb1 eth0 / lb2 eth0
 *     internet host, client             routes the floating IPs to the public next hop the active LB holds
 *   cluster network (brpriv) ── lb1 eth1 / lb2 eth1, API servers, ingress workers, a cluster node
 *   sync link (brsync, only with spec.syncNetwork) ── lb1 eth2 / lb2 eth2
 *
 * The bridges live in one switch namespace; each host namespace gets one end of a veth pair per segment, the
 * other end sits in the switch namespace (nothing is ever created in the initial namespace).
 */
import { randomBytes } from "node:crypto";
import { canonical, nthAddress, parseCidr } from "../spec/address";
import { EXCLUDE_FROM_LB_LABEL, selectBackends, type NodeView } from "../agent/kube/backends";
import { poolCidrs } from "../spec/pools";
import type { BackendSets, ResolvedSpec } from "../spec/types";

/** Where the lab keeps the state of every run: one directory per prefix. */
export const STATE_ROOT = "/run/edgepair-lab";
/** Prefixes look like `epl` + 4 base-36 characters: short enough for any derived name, unlike other tools' names. */
export const PREFIX_PATTERN = /^epl[0-9a-z]{4}$/;
export const NETNS_PATTERN = /^(epl[0-9a-z]{4})-[a-z0-9]+$/;

export const OUTSIDE = {
  cidr: "203.0.113.0/24",
  prefixLength: 24,
  gateway: "203.0.113.1",
  internet: "203.0.113.10",
  client: "203.0.113.50",
};
/**
 * The bare path (on demand, the load bench): the cluster node to the internet host over a plain routed path of the
 * same shape as the pair's (node -> bridge -> a router namespace -> bridge -> the lab's router -> outside bridge ->
 * internet host) but with nothing in it: no nftables, no conntrack, no conntrackd, no NAT. Addresses from the
 * benchmarking range (RFC 2544), so no spec address can collide with them.
 */
export const BARE_PATH = {
  ns: "bare",
  bridges: { node: "brbnode", router: "brbrt" },
  nodeSide: { cidr: "198.18.1.0/24", bare: "198.18.1.1", node: "198.18.1.2" },
  routerSide: { cidr: "198.18.2.0/24", router: "198.18.2.1", bare: "198.18.2.2" },
  /** the internet host's second address, reached only over the bare path */
  internet: "198.18.3.10",
};

/** Ports of the lab's stand-in servers. */
export const PORTS = { whoami: 8080, echo: 7, ssh: 22 };

export type SegmentName = "pub" | "priv" | "out" | "sync";
/** `sync`: the LBs' own link (spec.syncNetwork), on which no other host is. */
export const BRIDGES: Record<SegmentName, string> = { pub: "brpub", priv: "brpriv", out: "brout", sync: "brsync" };

export type HostRole = "router" | "api" | "ingress" | "node" | "internet" | "client" | "rogue";

export interface LinkPlan {
  /** name inside the host namespace */
  name: string;
  segment: SegmentName;
  /** the peer's name inside the switch namespace (<= 15 characters) */
  switchPort: string;
  /** with prefix length; empty for the LBs, whose addresses come from their rendered keyfiles */
  addresses: string[];
}

export interface HostPlan {
  key: string;
  ns: string;
  role: HostRole;
  /** the name the host answers with (`/who`): its server name in the rendered HAProxy config (api and ingress hosts) */
  serverName?: string;
  address: string;
  links: LinkPlan[];
  defaultRoute: string;
}

export interface LabLb {
  key: "lb1" | "lb2";
  ns: string;
  role: "primary" | "secondary";
  hostname: string;
  publicLink: LinkPlan;
  privateLink: LinkPlan;
  /** present when the spec has a syncNetwork */
  syncLink?: LinkPlan;
  publicAddress: string;
  privateAddress: string;
}

export interface LabPlan {
  prefix: string;
  switchNs: string;
  lbs: [LabLb, LabLb];
  router: HostPlan & { routes: { to: string; via: string }[] };
  hosts: HostPlan[];
  /** on demand only (tests): a host on the cluster network that is not the peer */
  rogue: HostPlan;
  /** the lab's backend hosts as the cluster's Nodes (api: control plane, ingress: workers), all Ready */
  nodes: NodeView[];
  /** what the agent would select from the spec and those Nodes (agent/kube/backends.ts), as the LBs are rendered */
  backends: BackendSets;
  /** the addresses the smoke check and the bench talk to */
  targets: {
    apiVipPublic: string;
    apiVipPrivate?: string;
    ingressVip?: string;
    natAddress?: string;
    nextHop: string;
    gatewayVip: string;
    clusterNode: string;
    internet: string;
    client: string;
  };
}

export function newPrefix(): string {
  const n = randomBytes(4).readUInt32BE(0) % 36 ** 4;
  return `epl${n.toString(36).padStart(4, "0")}`;
}

function nth(cidr: string, n: number): string {
  const c = parseCidr(cidr);
  if (!c.ok) throw new Error(`lab: bad cidr ${cidr}`);
  return canonical(nthAddress(c.cidr, n));
}

export function planLab(spec: ResolvedSpec, prefix: string): LabPlan {
  if (!PREFIX_PATTERN.test(prefix)) throw new Error(`lab: prefix ${prefix} does not match ${PREFIX_PATTERN}`);
  const pub = spec.platform.publicNetwork;
  if (spec.platform.type !== "libvirt" || pub.nextHop === undefined) {
    throw new Error(
      "lab: needs platform.type libvirt with a public next hop (routed floating IPs), as in Pulumi.dev.yaml",
    );
  }
  if (spec.network.cidr.includes(":")) throw new Error("lab: the cluster network must be IPv4");
  const ns = (key: string) => `${prefix}-${key}`;
  const privLen = spec.network.prefixLength;
  const gw = spec.network.gateway;

  const lb = (key: "lb1" | "lb2", i: 0 | 1): LabLb => ({
    key,
    ns: ns(key),
    role: i === 0 ? "primary" : "secondary",
    hostname: `${spec.clusterName}-lb-${i + 1}`,
    publicLink: { name: "eth0", segment: "pub", switchPort: `${key}-pub`, addresses: [] },
    privateLink: { name: "eth1", segment: "priv", switchPort: `${key}-priv`, addresses: [] },
    ...(spec.syncNetwork
      ? { syncLink: { name: "eth2", segment: "sync" as const, switchPort: `${key}-sync`, addresses: [] } }
      : {}),
    publicAddress: pub.lbAddresses[i],
    privateAddress: spec.network.lbAddresses[i],
  });

  const privateHost = (key: string, role: HostRole, address: string): HostPlan => ({
    key,
    ns: ns(key),
    role,
    address,
    links: [{ name: "eth0", segment: "priv", switchPort: key, addresses: [`${address}/${privLen}`] }],
    defaultRoute: gw,
  });
  const outsideHost = (key: string, role: HostRole, address: string): HostPlan => ({
    key,
    ns: ns(key),
    role,
    address,
    links: [{ name: "eth0", segment: "out", switchPort: key, addresses: [`${address}/${OUTSIDE.prefixLength}`] }],
    defaultRoute: OUTSIDE.gateway,
  });

  const apiHosts = spec.apiBackend.addresses.map((a, i) => privateHost(`cp${i + 1}`, "api", a));
  const ingressAddresses = spec.ingressBackend
    ? spec.ingressBackend.addresses.length > 0
      ? spec.ingressBackend.addresses
      : [nth(spec.network.cidr, 20), nth(spec.network.cidr, 21)]
    : [];
  const ingressHosts = ingressAddresses.map((a, i) => privateHost(`wk${i + 1}`, "ingress", a));
  const node = privateHost("node", "node", nth(spec.network.cidr, 30));
  const rogue = privateHost("rogue", "rogue", nth(spec.network.cidr, 66));

  const taken = new Set<string>([gw, ...spec.network.lbAddresses, ...spec.derived.privateVips.map((v) => v.address)]);
  for (const h of [...apiHosts, ...ingressHosts, node, rogue]) {
    if (taken.has(h.address)) throw new Error(`lab: ${h.key} address ${h.address} collides with an LB address or VIP`);
    taken.add(h.address);
  }

  const router = {
    key: "rt",
    ns: ns("rt"),
    role: "router" as const,
    address: pub.gateway,
    links: [
      {
        name: "eth0",
        segment: "pub" as const,
        switchPort: "rt-pub",
        addresses: [`${pub.gateway}/${pub.prefixLength}`],
      },
      {
        name: "eth1",
        segment: "out" as const,
        switchPort: "rt-out",
        addresses: [`${OUTSIDE.gateway}/${OUTSIDE.prefixLength}`],
      },
    ],
    defaultRoute: "",
    // The cloud's part: every public VIP is routed to the next hop only the active LB holds.
    routes: [
      ...spec.derived.publicVips.filter((v) => v.family === 4).map((v) => `${v.address}/32`),
      // public Service pools are routed like the floating IPs
      ...poolCidrs(spec, "public"),
    ].map((to) => ({ to, via: pub.nextHop as string })),
  };

  const publicOf = (xs: { address: string; type: string }[]) =>
    xs.find((v) => v.type === "public" && !v.address.includes(":"))?.address;
  const apiVipPublic = publicOf(spec.virtualAddresses.api);
  if (!apiVipPublic) throw new Error("lab: needs a public IPv4 api address");
  const apiVipPrivate = spec.virtualAddresses.api.find((v) => v.type === "private")?.address;
  const ingressVip = publicOf(spec.virtualAddresses.ingress);

  const asNode = (
    name: string,
    h: HostPlan,
    selector: ResolvedSpec["apiBackend"]["nodeSelector"],
    extra: Record<string, string> = {},
  ): NodeView => ({
    name,
    labels: { ...(selector.matchLabels ?? {}), ...extra },
    ready: true,
    unschedulable: false,
    internalIPs: [h.address],
  });
  const nodes = [
    // as kubeadm labels them: no Service's NodePort traffic goes to a control-plane Node (the lab's stand-ins for
    // them run no NodePorts either)
    ...apiHosts.map((h, i) => asNode(`cp-${i}`, h, spec.apiBackend.nodeSelector, { [EXCLUDE_FROM_LB_LABEL]: "" })),
    ...(spec.ingressBackend
      ? ingressHosts.map((h, i) =>
          asNode(`worker-${i}`, h, (spec.ingressBackend as NonNullable<ResolvedSpec["ingressBackend"]>).nodeSelector),
        )
      : []),
  ];
  const backends = selectBackends(spec, nodes).backends;
  // each host answers with the name HAProxy knows it by, so a response tells which server took the request
  for (const h of [...apiHosts, ...ingressHosts]) {
    const server = [...backends.api, ...backends.ingress].find((b) => b.address === h.address);
    if (server) h.serverName = server.name;
  }

  return {
    prefix,
    switchNs: ns("sw"),
    lbs: [lb("lb1", 0), lb("lb2", 1)],
    router,
    hosts: [
      ...apiHosts,
      ...ingressHosts,
      node,
      outsideHost("inet", "internet", OUTSIDE.internet),
      outsideHost("cli", "client", OUTSIDE.client),
    ],
    rogue,
    nodes,
    backends,
    targets: {
      apiVipPublic,
      ...(apiVipPrivate ? { apiVipPrivate } : {}),
      ...(ingressVip ? { ingressVip } : {}),
      ...(spec.virtualAddresses.nat ? { natAddress: spec.virtualAddresses.nat.address } : {}),
      nextHop: pub.nextHop,
      gatewayVip: gw,
      clusterNode: node.address,
      internet: OUTSIDE.internet,
      client: OUTSIDE.client,
    },
  };
}

/** Every namespace of a plan, switch first (its deletion takes every veth peer with it). */
/** An LB's links, the sync link too when it has one: what an unclean cut takes down. */
export function lbLinks(lb: LabLb): LinkPlan[] {
  return [lb.publicLink, lb.privateLink, ...(lb.syncLink ? [lb.syncLink] : [])];
}

/**
 * The order an unclean cut takes an LB's links down in: the links VRRP can speak on first (sync, private), the
 * public one last. Public first, keepalived saw its tracked interface go, entered FAULT and sent its priority-0
 * advert on the private link in the microseconds before that went too: the peer took over at once (a clean
 * failover in disguise; half the load bench's cuts took ~180 ms instead of three adverts).
 */
export function cutOrder(lb: LabLb): LinkPlan[] {
  return [...(lb.syncLink ? [lb.syncLink] : []), lb.privateLink, lb.publicLink];
}

export function allNamespaces(plan: LabPlan, withRogue = false): string[] {
  return [
    plan.switchNs,
    plan.router.ns,
    ...plan.lbs.map((l) => l.ns),
    ...plan.hosts.map((h) => h.ns),
    ...(withRogue ? [plan.rogue.ns] : []),
  ];
}
