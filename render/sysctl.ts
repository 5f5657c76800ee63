/**
 * Kernel settings of a VRRP pair that is also the cluster's NAT gateway. systemd-sysctl applies the file at boot
 * and, through udev, again for each NIC as it appears, so the per-interface keys hold from the first packet.
 */
import type { HostFacts, ResolvedSpec } from "../spec/types";
import { file, header, lines, reload } from "./common";
import { peerLink } from "./peer-link";
import type { Renderer } from "./types";

export const SYSCTL_PATH = "/etc/sysctl.d/50-edgepair.conf";

export const renderSysctl: Renderer = ({ spec, host }) => {
  const pub = host.publicInterface.name;
  const priv = host.privateInterface.name;
  const content = lines(
    header("#"),
    "# Egress NAT gateway for the cluster network (the cluster network is IPv4; IPv6 is never forwarded).",
    setting("net.ipv4.ip_forward", 1),
    "# HAProxy binds every VIP on both LBs, also those the peer holds right now.",
    setting("net.ipv4.ip_nonlocal_bind", 1),
    setting("net.ipv6.ip_nonlocal_bind", 1),
    "# A new MASTER must not adopt mid-stream TCP packets as fresh connections (with guessed state and no NAT",
    "# binding) before conntrackd has committed the synced entries; until then they are INVALID and retransmitted.",
    setting("net.netfilter.nf_conntrack_tcp_loose", 0),
    "# NetworkManager leaves IPv6 on the public NIC to the kernel (networkmanager.ts); keep taking router",
    "# advertisements even though the host forwards.",
    setting(iface("ipv6", pub, "accept_ra"), 2),
    "# A public IPv6 VIP added on becoming MASTER is announced at once (unsolicited neighbour advertisement) and",
    "# usable at once: duplicate address detection would hold it tentative while the peer's copy is being removed.",
    setting(iface("ipv6", pub, "ndisc_notify"), 1),
    setting(iface("ipv6", pub, "accept_dad"), 0),
    "# Answer ARP only for addresses on the NIC asked (never for floating IPs on the dummy link or the other NIC's",
    "# addresses) and source ARP requests from the NIC's own subnet, never from a VIP the peer may take over.",
    setting(iface("ipv4", pub, "arp_ignore"), 1),
    setting(iface("ipv4", pub, "arp_announce"), 2),
    setting(iface("ipv4", priv, "arp_ignore"), 1),
    setting(iface("ipv4", priv, "arp_announce"), 2),
    "# Handed-off connections (handoff.ts) arrive from the peer on the private NIC with a client's source address",
    "# that routes out of the public NIC: loose reverse-path filtering accepts them (effective value: max of all and",
    "# interface).",
    setting(iface("ipv4", priv, "rp_filter"), 2),
    "# A redirect would name this LB's own address instead of the gateway VIP and pin nodes to one LB across a",
    "# failover. The effective value is all OR interface, so both are off.",
    setting("net.ipv4.conf.all.send_redirects", 0),
    setting(iface("ipv4", priv, "send_redirects"), 0),
    ...syncLink(spec, host),
  );
  return [file(SYSCTL_PATH, content, reload("sysctl", ["sysctl", "-p", SYSCTL_PATH]))];
};

/** The sync link carries only the pair's own traffic, from the peer's on-link address: strict filtering fits it. */
function syncLink(spec: ResolvedSpec, host: HostFacts): string[] {
  if (!spec.syncNetwork) return [];
  const sync = peerLink(spec, host).interface;
  return [
    "# The sync link (VRRP and conntrackd between the two LBs only): strict reverse-path filtering, ARP as above.",
    setting(iface("ipv4", sync, "rp_filter"), 1),
    setting(iface("ipv4", sync, "arp_ignore"), 1),
    setting(iface("ipv4", sync, "arp_announce"), 2),
  ];
}

function setting(key: string, value: number): string {
  return `${key} = ${value}`;
}

/**
 * Per-interface key. An interface name with a dot (a VLAN such as eth0.100) cannot sit in a dotted key, so such a
 * key is written with slashes, which sysctl(8) and systemd-sysctl both read as the separator.
 */
export function iface(family: "ipv4" | "ipv6", name: HostFacts["publicInterface"]["name"], key: string): string {
  return name.includes(".") ? `net/${family}/conf/${name}/${key}` : `net.${family}.conf.${name}.${key}`;
}
