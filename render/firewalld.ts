/**
 * firewalld zones and the egress policy. The NICs are bound to their zones twice, to the same zone: by their
 * NetworkManager profiles (connection.zone) and by <interface> here. The second keeps the binding through a
 * `firewall-cmd --reload` even where no NetworkManager re-asserts it (the netns lab; measured: runtime-only bindings
 * are gone after a reload). HAProxy's ports are opened as ports taken from haproxy.ts (not as catalogue
 * services), so the firewall always opens exactly what HAProxy binds.
 * The files replace firewalld's built-in external/internal zones (same name under /etc wins), which drops the
 * built-in masquerade of the external zone: egress is translated by our own nftables table (nat-nftables.ts).
 */
import {
  FLOATING_IP_INTERFACE,
  type HostFacts,
  type IpFamily,
  type ResolvedSpec,
  type VirtualAddress,
} from "../spec/types";
import { file, header, lines, reload, ownAndPeer } from "./common";
import { API_PORT, INGRESS_HTTP_PORT, INGRESS_HTTPS_PORT, MACHINE_CONFIG_PORT } from "./haproxy";
import { ZONE_EXTERNAL, ZONE_INTERNAL, ZONE_SYNC } from "./networkmanager";
import { peerLink } from "./peer-link";
import type { RenderedFile, Renderer } from "./types";

export const FIREWALLD_DIR = "/etc/firewalld";
export const EGRESS_POLICY = "edgepair-egress";

const FIREWALLD_RELOAD = reload("firewalld", ["firewall-cmd", "--reload"]);
/** Rich rules with a negative priority run before the zone's service accepts. */
const BEFORE_SERVICES = -100;

export const renderFirewalld: Renderer = ({ spec, host }) => [
  xmlFile(`zones/${ZONE_EXTERNAL}.xml`, externalZone(spec, host)),
  xmlFile(`zones/${ZONE_INTERNAL}.xml`, internalZone(spec, host)),
  ...(spec.syncNetwork ? [xmlFile(`zones/${ZONE_SYNC}.xml`, syncZone(spec, host))] : []),
  xmlFile(`policies/${EGRESS_POLICY}.xml`, egressPolicy(spec)),
];

/** Public NIC and the floating-IP dummy link. */
function externalZone(spec: ResolvedSpec, host: HostFacts): string[] {
  const net = spec.platform.publicNetwork;
  const { own } = ownAndPeer(net.lbAddresses, host);
  // Addresses that move between the LBs: SSH there would reach whichever LB holds them. 22623 and metrics are
  // not opened here at all (the zone's default target rejects them).
  const shared = spec.derived.publicVips.map((v) => ({ address: v.address, family: v.family }));
  if (net.nextHop) shared.push({ address: net.nextHop, family: familyOf(net.nextHop) });
  const { api, ingress } = spec.derived.frontends;
  const ports = [
    ...(hasPublic(api) ? [API_PORT] : []),
    ...(hasPublic(ingress) ? [INGRESS_HTTP_PORT, INGRESS_HTTPS_PORT] : []),
  ];
  return [
    `<zone target="default">`,
    `  <short>edgepair external</short>`,
    `  <description>Public side of the edgepair LB ${esc(spec.clusterName)}: API and ingress; SSH on this LB's own address only.</description>`,
    ...interfaces([host.publicInterface.name, ...(spec.platform.type === "libvirt" ? [FLOATING_IP_INTERFACE] : [])]),
    ...tcpPorts(ports),
    `  <!-- SSH only to this LB's own public address, never to a VIP, the next hop or a private address. -->`,
    ...richRule(familyOf(own), [`<destination address="${esc(own)}"/>`, `<service name="ssh"/>`, `<accept/>`]),
    ...shared.flatMap((s) =>
      richRule(
        s.family,
        [`<destination address="${esc(s.address)}"/>`, `<service name="ssh"/>`, `<reject/>`],
        BEFORE_SERVICES,
      ),
    ),
    `</zone>`,
  ];
}

/** Private NIC: the cluster network. */
function internalZone(spec: ResolvedSpec, host: HostFacts): string[] {
  const link = peerLink(spec, host);
  const { own } = ownAndPeer(spec.network.lbAddresses, host);
  const machineConfig = spec.derived.frontends.machineConfig.length > 0;
  return [
    `<zone target="default">`,
    `  <short>edgepair internal</short>`,
    `  <description>Cluster side of the edgepair LB ${esc(spec.clusterName)}: API, ingress, metrics from the cluster network${link.dedicated ? "" : ", VRRP and conntrack sync from the peer LB"}.</description>`,
    ...interfaces([host.privateInterface.name]),
    // every VIP, public ones included, is a local address of both LBs (edgepair-fip): from the cluster network an
    // open ssh service would answer on all of them
    `  <!-- SSH only to this LB's own private address, never to a VIP. -->`,
    ...richRule(familyOf(own), [`<destination address="${esc(own)}"/>`, `<service name="ssh"/>`, `<accept/>`]),
    ...tcpPorts([API_PORT, ...(machineConfig ? [MACHINE_CONFIG_PORT] : []), ...ingressPorts(spec)]),
    ...richRule(4, [
      `<source address="${esc(spec.network.cidr)}"/>`,
      `<port port="${spec.metrics.port}" protocol="tcp"/>`,
      `<accept/>`,
    ]),
    // with a sync link, neither is accepted here at all: a cluster host forging the peer's address gets nowhere
    ...(link.dedicated ? [] : peerRules(spec, link.peer)),
    `  <forward/>`,
    `</zone>`,
  ];
}

/** The sync link: nothing but VRRP and conntrackd's sync, and those only from the peer's address on it. */
function syncZone(spec: ResolvedSpec, host: HostFacts): string[] {
  const link = peerLink(spec, host);
  return [
    `<zone target="default">`,
    `  <short>edgepair sync</short>`,
    `  <description>Link between the two LBs of ${esc(spec.clusterName)}: VRRP and conntrack sync from the peer LB only.</description>`,
    ...interfaces([link.interface]),
    ...peerRules(spec, link.peer),
    `</zone>`,
  ];
}

function peerRules(spec: ResolvedSpec, peer: string): string[] {
  return [
    `  <!-- VRRP adverts and conntrackd state only from the peer: anyone else could take the VIPs or inject state. -->`,
    ...richRule(4, [`<source address="${esc(peer)}"/>`, `<protocol value="vrrp"/>`, `<accept/>`]),
    ...richRule(4, [
      `<source address="${esc(peer)}"/>`,
      `<port port="${spec.conntrack.port}" protocol="udp"/>`,
      `<accept/>`,
    ]),
  ];
}

/**
 * Forwarding from the cluster to the outside, only for sources in the cluster network and only when the spec has a
 * NAT address. Rendered also without NAT (rejecting everything) so that removing nat from the spec closes the
 * path again. Replies come back through conntrack (firewalld accepts established flows before any policy), so
 * nothing from external to internal is accepted.
 *
 * Link-local destinations are never forwarded: a cloud's metadata service (169.254.169.254) answers whoever asks on
 * its link, and through the NAT that would be the LB, with its user-data (the cluster token among it).
 */
export const LINK_LOCAL_V4 = "169.254.0.0/16";

function egressPolicy(spec: ResolvedSpec): string[] {
  return [
    `<policy target="REJECT" priority="${BEFORE_SERVICES}">`,
    `  <short>edgepair egress</short>`,
    `  <description>Cluster network to the outside through the NAT address (SNAT in /etc/edgepair/nat.nft).</description>`,
    `  <ingress-zone name="${ZONE_INTERNAL}"/>`,
    `  <egress-zone name="${ZONE_EXTERNAL}"/>`,
    ...(spec.virtualAddresses.nat
      ? [
          `  <!-- never to link-local: a cloud's metadata service would answer the LB's own. -->`,
          ...richRule(4, [`<destination address="${LINK_LOCAL_V4}"/>`, `<reject/>`], BEFORE_SERVICES),
          ...richRule(4, [`<source address="${esc(spec.network.cidr)}"/>`, `<accept/>`]),
        ]
      : []),
    `</policy>`,
  ];
}

function ingressPorts(spec: ResolvedSpec): number[] {
  return spec.derived.frontends.ingress.length > 0 ? [INGRESS_HTTP_PORT, INGRESS_HTTPS_PORT] : [];
}

function hasPublic(vips: readonly VirtualAddress[]): boolean {
  return vips.some((v) => v.type === "public");
}

function interfaces(names: string[]): string[] {
  return names.map((n) => `  <interface name="${esc(n)}"/>`);
}

function tcpPorts(ports: number[]): string[] {
  return ports.map((p) => `  <port port="${p}" protocol="tcp"/>`);
}

function richRule(family: IpFamily, body: string[], priority?: number): string[] {
  const prio = priority === undefined ? "" : ` priority="${priority}"`;
  return [`  <rule family="ipv${family}"${prio}>`, ...body.map((b) => `    ${b}`), `  </rule>`];
}

function xmlFile(relative: string, body: string[]): RenderedFile {
  // The header is an XML comment: no XML declaration, which would have to come first (UTF-8 is the default).
  return file(`${FIREWALLD_DIR}/${relative}`, lines(`${header("<!--")}-->`, body), FIREWALLD_RELOAD);
}

function familyOf(address: string): IpFamily {
  return address.includes(":") ? 6 : 4;
}

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}
