/**
 * /etc/edgepair/services.nft: Service frontends (extraServices) forwarded by the kernel to NodePorts, TCP and UDP,
 * without terminating a connection on the LB. The pair is the cluster's gateway, so a Service connection's NAT
 * binding sits in conntrack, which conntrackd already syncs to the peer for the egress flows: an established TCP
 * connection or UDP flow survives an unclean failover, which a proxy (HAProxy) cannot give.
 *
 * - prerouting (dstnat): one verdict map from address . protocol . port to the Service's chain; that chain refuses
 *   sources outside its ranges (they are not translated, so the firewall's zone rejects them as for any closed
 *   port) and translates the destination to one backend NodePort, chosen at random per new flow from a slot map.
 *   Exactly the frontends listed are translated; firewalld forwards translated flows (`ct status dnat accept` in
 *   its forward chain), so no zone opens anything for them.
 * - postrouting (srcnat): a client on the cluster network would get its answer straight from the backend, from an
 *   address it never asked; so would every client when nodes do not route through the pair (no NAT gateway). Their
 *   source becomes `derived.serviceSourceAddress`, a VIP that moves with VRRP, so the translation survives a
 *   failover. Otherwise the backend sees the client's own address.
 * - The slot map has one slot per backend; health (agent) points a failed backend's slots at healthy ones, so the
 *   modulus, the rule and every established flow stay as they are.
 *
 * Applied with `nft -f` as one transaction that replaces the table: translations of established flows live in
 * conntrack, not in the table, so they are untouched. IPv4 only (spec/pools.ts: no NAT64).
 */
import { compareAddresses } from "../spec/address";
import { poolHolds } from "../spec/pools";
import type { Backend, ExtraService, HostFacts, ResolvedSpec } from "../spec/types";
import { file, header, lines, reload } from "./common";
import type { Renderer } from "./types";

export const SERVICES_NFT_PATH = "/etc/edgepair/services.nft";
export const SERVICES_TABLE = "edgepair_services";
/**
 * Service addresses on the cluster network (private pools) are on the private NIC of both LBs, like every frontend VIP
 * is local on both; only the MASTER may answer ARP for them. This arp-family table drops every ARP packet with such a
 * sender address unless the NIC is in `holder`, which the notify script fills on MASTER and flushes otherwise (as
 * the handoff's set). So a failover moves all of them with one set change and one burst of gratuitous ARP
 * (edgepair-garp), never with per-address keepalived entries, and a new Service never touches keepalived.
 */
export const SERVICE_ARP_TABLE = "edgepair_service_arp";
export const SERVICE_ARP_HOLDER = "holder";
export const SERVICE_ARP_ADDRESSES = "addresses";
export const GARP_TOOL = "/usr/libexec/edgepair/edgepair-garp";

/**
 * The chain of one frontend; its slot map is `<chain>/backends`. nft identifiers take `/` and `-`, and neither a DNS
 * label nor a Kubernetes name holds a `/`, so every name maps to its own chain: `extra/<name>` for an extra service,
 * `svc/<namespace>/<name>/<protocol>/<port>` for one port of a Service of type LoadBalancer.
 */
export function extraServiceChain(name: string): string {
  return `extra/${name}`;
}

export function slotMap(chain: string): string {
  return `${chain}/backends`;
}

/** A frontend as the table sees it: address, protocol and port, and the NodePort backends it forwards to. */
export interface KernelService {
  /** nft chain name, unique per frontend (extraServiceChain, or the Service controller's) */
  chain: string;
  /** what the comments and views call it */
  name: string;
  protocol: "TCP" | "UDP";
  address: string;
  port: number;
  sourceRanges: string[];
  backends: { address: string; port: number }[];
  /** how the agent checks each backend (agent/service-lb/health.ts); the table itself does not read it */
  check: BackendCheck;
}

export type BackendCheck =
  /** connect to the backend's NodePort */
  | { kind: "tcp" }
  /** GET the path on this port of the backend's address (a Service's healthCheckNodePort: 200 where it has endpoints) */
  | { kind: "http"; port: number; path: string }
  /** a UDP NodePort answers no probe: every backend stays */
  | { kind: "none" };

/** The spec's extra services, then the cluster's Services (the agent's, already allocated), in one list. */
export function kernelServices(
  spec: ResolvedSpec,
  extra: Readonly<Record<string, Backend[]>> | undefined,
  services: readonly KernelService[] = [],
): KernelService[] {
  return [...extraServices(spec, extra), ...services];
}

function extraServices(spec: ResolvedSpec, extra: Readonly<Record<string, Backend[]>> | undefined): KernelService[] {
  return spec.extraServices.map((e: ExtraService) => ({
    chain: extraServiceChain(e.name),
    name: e.name,
    protocol: e.protocol,
    address: e.frontend.address,
    port: e.frontend.port,
    sourceRanges: e.sourceRanges,
    backends: (extra?.[e.name] ?? e.backend.addresses.map((address) => ({ name: address, address }))).map((b) => ({
      address: b.address,
      port: e.backend.nodePort,
    })),
    check: e.protocol === "TCP" ? { kind: "tcp" as const } : { kind: "none" as const },
  }));
}

/**
 * Slot i -> the backend serving it: its own while healthy, else the healthy ones in turn. None healthy: every
 * backend keeps its slot (a pool of failed checks is still better than none, as HAProxy does).
 */
export function slotTargets<T extends { address: string }>(backends: readonly T[], healthy?: (b: T) => boolean): T[] {
  const up = healthy ? backends.filter(healthy) : [...backends];
  if (up.length === 0 || up.length === backends.length) return [...backends];
  let next = 0;
  return backends.map((b) => (up.includes(b) ? b : (up[next++ % up.length] as T)));
}

export function slotElements(backends: readonly { address: string; port: number }[]): string {
  return backends.map((b, i) => `${i} : ${b.address} . ${b.port}`).join(", ");
}

/** Whether this spec can ever have Service addresses on the cluster network (a private pool or extra service). */
export function hasPrivateServiceAddresses(spec: ResolvedSpec): boolean {
  return (
    (spec.serviceLoadBalancers?.pools ?? []).some((p) => p.type === "private") ||
    spec.extraServices.some((e) => e.frontend.type === "private" && !isVip(spec, e.frontend.address))
  );
}

/** The frontends' addresses inside private pools, sorted: on the private NIC of both LBs (agent/service-lb/addresses.ts). */
export function privateServiceAddresses(spec: ResolvedSpec, services: readonly KernelService[]): string[] {
  const pools = (spec.serviceLoadBalancers?.pools ?? []).filter((p) => p.type === "private");
  const inPool = (a: string) => pools.some((p) => poolHolds(p, a));
  return [...new Set(services.map((s) => s.address).filter(inPool))].sort(compareAddresses);
}

function isVip(spec: ResolvedSpec, address: string): boolean {
  return [...spec.derived.privateVips, ...spec.derived.publicVips].some((v) => v.address === address);
}

export const renderServiceLb: Renderer = ({ spec, host, backends, services: cluster }) => {
  const services = kernelServices(spec, backends.extra, cluster);
  const content = lines(
    header("#"),
    "# Applied with `nft -f` as one transaction (nat-nftables.ts: the empty declaration makes the delete valid).",
    `table ip ${SERVICES_TABLE}`,
    `delete table ip ${SERVICES_TABLE}`,
    services.length === 0
      ? "# No extraServices in the spec and no Service of type LoadBalancer: nothing is forwarded, the table stays removed."
      : table(spec, host, services),
    arpTable(spec, privateServiceAddresses(spec, services)),
  );
  return [file(SERVICES_NFT_PATH, content, reload("serviceLb", ["nft", "-f", SERVICES_NFT_PATH]))];
};

/** The ARP guard of the private Service addresses; its holder set (VRRP state) survives every reload. */
function arpTable(spec: ResolvedSpec, addresses: string[]): string[] {
  const t = `arp ${SERVICE_ARP_TABLE}`;
  if (!hasPrivateServiceAddresses(spec))
    return ["# No private pool and no private extra service: no ARP guard.", `table ${t}`, `delete table ${t}`];
  return [
    "# Only the MASTER answers ARP for the Service addresses on the cluster network (holder: filled by the notify script).",
    `table ${t} {`,
    `	set ${SERVICE_ARP_HOLDER} { type ifname; }`,
    `	set ${SERVICE_ARP_ADDRESSES} { type ipv4_addr; }`,
    "	chain output { type filter hook output priority filter; policy accept; }",
    "}",
    `flush set ${t} ${SERVICE_ARP_ADDRESSES}`,
    `flush chain ${t} output`,
    ...(addresses.length > 0 ? [`add element ${t} ${SERVICE_ARP_ADDRESSES} { ${addresses.join(", ")} }`] : []),
    `add rule ${t} output arp saddr ip @${SERVICE_ARP_ADDRESSES} meta oifname != @${SERVICE_ARP_HOLDER} counter drop`,
  ];
}

/** The notify script's part: answer (MASTER) or stop answering (any other state) for the private Service addresses. */
export function serviceArpCommands(spec: ResolvedSpec, host: HostFacts, on: boolean): string[][] {
  if (!hasPrivateServiceAddresses(spec)) return [];
  const set = ["arp", SERVICE_ARP_TABLE, SERVICE_ARP_HOLDER];
  return on
    ? [
        ["nft", "add", "element", ...set, `{ ${host.privateInterface.name} }`],
        [GARP_TOOL, host.privateInterface.name],
      ]
    : [["nft", "flush", "set", ...set]];
}

function table(spec: ResolvedSpec, host: HostFacts, services: KernelService[]): string[] {
  const served = services.filter((s) => s.backends.length > 0);
  const proto = (s: KernelService) => s.protocol.toLowerCase();
  const priv = JSON.stringify(host.privateInterface.name);
  const snat = spec.derived.serviceSourceAddress;
  return [
    `table ip ${SERVICES_TABLE} {`,
    ...served.flatMap((s) => [
      `\tmap ${slotMap(s.chain)} {`,
      `\t\ttypeof numgen random mod ${s.backends.length} : ip daddr . ${proto(s)} dport`,
      `\t\telements = { ${slotElements(s.backends)} }`,
      "\t}",
    ]),
    "\tchain prerouting {",
    "\t\ttype nat hook prerouting priority dstnat; policy accept;",
    ...services
      .filter((s) => s.backends.length === 0)
      .map((s) => `\t\t# ${s.name}: no backend yet, so ${s.protocol} ${s.address}:${s.port} stays closed`),
    ...(served.length > 0
      ? [
          `\t\tip daddr . meta l4proto . th dport vmap { ${served
            .map((s) => `${s.address} . ${proto(s)} . ${s.port} : goto ${s.chain}`)
            .join(", ")} }`,
        ]
      : []),
    "\t}",
    ...served.flatMap((s) => [
      `\tchain ${s.chain} {`,
      `\t\t# ${s.name}: ${s.protocol} ${s.address}:${s.port} -> ${s.backends.length} NodePort backend(s)`,
      ...(s.sourceRanges.length > 0 ? [`\t\tip saddr != { ${s.sourceRanges.join(", ")} } return`] : []),
      `\t\tmeta l4proto ${proto(s)} dnat ip to numgen random mod ${s.backends.length} map @${slotMap(s.chain)}`,
      "\t}",
    ]),
    "\tchain postrouting {",
    "\t\ttype nat hook postrouting priority srcnat; policy accept;",
    spec.virtualAddresses.nat
      ? `\t\tct status dnat oifname ${priv} ip saddr ${spec.network.cidr} snat ip to ${snat}`
      : `\t\tct status dnat oifname ${priv} snat ip to ${snat}`,
    "\t}",
    "}",
  ];
}
