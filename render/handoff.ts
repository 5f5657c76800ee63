/**
 * Connection handoff between the two LBs: /etc/edgepair/handoff.nft, our own nftables table.
 *
 * HAProxy terminates TCP, so a connection lives in the HAProxy that accepted it; conntrackd cannot carry it over.
 * When the VIPs move while the old LB's HAProxy still runs (planned failover, fail-back, an image switch's resign),
 * the platform re-points traffic at once, and the rest of every connection still open on the old LB reaches the new
 * MASTER, which never saw its SYN. Without this table those packets are INVALID there (nf_conntrack_tcp_loose=0)
 * and dropped until the client times out. With it:
 * - the MASTER hands them back: a mid-stream TCP packet to one of our frontends that conntrack does not know is
 *   duplicated to the peer's private address (`dup`, the original is dropped). It is only on while MASTER (the
 *   notify script fills the `handoff_on` set), so two BACKUPs never bounce a packet between them.
 * - every frontend VIP is a local address on both LBs (the dummy link FLOATING_IP_INTERFACE, like routed floating
 *   IPs; ARP is answered only for addresses on the NIC asked, sysctl.ts), so the old LB accepts the handed-off
 *   packets and its sockets can still answer from the VIP after keepalived took the VIP off its NIC (a socket whose
 *   source address is no longer local cannot route its replies).
 * A SYN is never handed off: new connections go to the MASTER's own HAProxy. When the peer is gone (unclean fault)
 * handed-off packets are lost exactly as they would have been dropped here.
 *
 * The cluster network is IPv4 only, so the peer is reachable by IPv4 only: IPv6 frontends are not handed off (and
 * `dup` exists in the ip and ip6 families only, so the table is `ip`).
 *
 * Applied with `nft -f` as one transaction that keeps the `handoff_on` set (the VRRP state, not configuration)
 * across reloads: the declaration adds what is missing, then the frontends and the rules are flushed and redefined.
 */
import { uniqueSorted } from "../spec/resolve";
import type { HostFacts, ResolvedSpec, VirtualAddress } from "../spec/types";
import { file, header, lines, reload, ownAndPeer } from "./common";
import type { Renderer } from "./types";

export const HANDOFF_NFT_PATH = "/etc/edgepair/handoff.nft";
export const HANDOFF_TABLE = "edgepair_handoff";
/** The set the notify script fills with the NIC names on MASTER and flushes on every other state. */
export const HANDOFF_SET = "handoff_on";

const FRONTENDS = "frontends4";

/** Every IPv4 VIP:port HAProxy serves (api, machine config, ingress), sorted and unique. */
export function handoffFrontends(spec: ResolvedSpec): string[] {
  const pairs = (vips: VirtualAddress[], ports: number[]) =>
    vips.filter((v) => v.family === 4).flatMap((v) => ports.map((p) => `${v.address} . ${p}`));
  const { api, machineConfig, ingress } = spec.derived.frontends;
  const all = [...pairs(api, [6443]), ...pairs(machineConfig, [22623]), ...pairs(ingress, [80, 443])];
  return [...new Set(all)].sort();
}

/**
 * The addresses on FLOATING_IP_INTERFACE of both LBs: every address HAProxy serves (its frontends, public and
 * private) and, with routed floating IPs, every public address (the NAT address too: the platform routes it here).
 * On openstack the NAT address is a VIP port's fixed IP that only the MASTER may use as a source, so it stays off.
 */
export function sharedLocalAddresses(spec: ResolvedSpec): VirtualAddress[] {
  const { api, machineConfig, ingress } = spec.derived.frontends;
  const routed = spec.platform.type === "libvirt" ? spec.derived.publicVips : [];
  return uniqueSorted([...routed, ...api, ...machineConfig, ...ingress]);
}

/** The other LB's private address: where handed-off packets go. */
export function peerPrivateAddress(spec: ResolvedSpec, host: HostFacts): string {
  return ownAndPeer(spec.network.lbAddresses, host).peer;
}

export const renderHandoff: Renderer = ({ spec, host }) => {
  const frontends = handoffFrontends(spec);
  const priv = JSON.stringify(host.privateInterface.name);
  const t = `ip ${HANDOFF_TABLE}`;
  const elements = frontends.length > 0 ? [`\t\telements = { ${frontends.join(", ")} }`] : [];
  const content = lines(
    header("#"),
    `table ${t} {`,
    `\tset ${HANDOFF_SET} {`,
    "\t\ttype ifname",
    "\t}",
    `\tset ${FRONTENDS} {`,
    "\t\ttype ipv4_addr . inet_service",
    "\t}",
    "\tchain prerouting {",
    "\t\ttype filter hook prerouting priority mangle; policy accept;",
    "\t}",
    "}",
    `flush set ${t} ${FRONTENDS}`,
    `flush chain ${t} prerouting`,
    `table ${t} {`,
    `\tset ${FRONTENDS} {`,
    "\t\ttype ipv4_addr . inet_service",
    ...elements,
    "\t}",
    "\tchain prerouting {",
    "\t\t# after conntrack (-200): ct state is known",
    "\t\ttype filter hook prerouting priority mangle; policy accept;",
    "\t\t# MASTER only: the rest of a connection the peer's HAProxy accepted goes back to the peer",
    "\t\t# counted: the packets handed off (`nft list table ip edgepair_handoff`; the load bench reads it)",
    `\t\tiifname @${HANDOFF_SET} ct state invalid tcp flags & syn == 0 ip daddr . tcp dport @${FRONTENDS} counter dup to ${peerPrivateAddress(spec, host)} device ${priv} drop`,
    "\t}",
    "}",
  );
  return [file(HANDOFF_NFT_PATH, content, reload("nftables", ["nft", "-f", HANDOFF_NFT_PATH]))];
};

/** The notify script's commands: MASTER turns the handoff on for both NICs, every other state turns it off. */
export function handoffCommands(host: HostFacts, on: boolean): string[][] {
  const t = ["ip", HANDOFF_TABLE, HANDOFF_SET];
  return on
    ? [["nft", "add", "element", ...t, `{ ${host.publicInterface.name}, ${host.privateInterface.name} }`]]
    : [["nft", "flush", "set", ...t]];
}
