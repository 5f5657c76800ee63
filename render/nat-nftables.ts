/**
 * Egress SNAT of everything (TCP, UDP, ICMP) the cluster sends out of the public NIC, to the NAT VIP. firewalld can
 * only masquerade to the NIC's primary address, which differs per LB and would break every flow on a failover;
 * the NAT VIP moves with VRRP and conntrackd carries the NAT bindings over.
 *
 * Our own table, not firewalld's: firewalld 1.x deletes and rebuilds only its own `inet firewalld` table on start
 * and on `firewall-cmd --reload`, so this table survives both. Its postrouting chain runs at srcnat (100), before
 * firewalld's nat chains (srcnat + 10); a translated flow is not translated again.
 */
import type { ResolvedSpec } from "../spec/types";
import { file, header, lines, reload } from "./common";
import type { Renderer } from "./types";

export const NAT_NFT_PATH = "/etc/edgepair/nat.nft";
export const NAT_TABLE = "edgepair_nat";

export const renderNatNftables: Renderer = ({ spec, host }) => {
  const content = lines(
    header("#"),
    "# Applied with `nft -f` as one transaction: the empty declaration makes the delete valid when the table does",
    "# not exist yet (nftables 1.0.6 has no `destroy`), and the new table replaces the old one atomically.",
    `table ip ${NAT_TABLE}`,
    `delete table ip ${NAT_TABLE}`,
    spec.virtualAddresses.nat
      ? snatTable(spec, host.publicInterface.name)
      : "# No virtualAddresses.nat in the spec: no egress NAT, the table stays removed.",
  );
  return [file(NAT_NFT_PATH, content, reload("nftables", ["nft", "-f", NAT_NFT_PATH]))];
};

function snatTable(spec: ResolvedSpec, publicInterface: string): string[] {
  const nat = spec.virtualAddresses.nat;
  // The spec admits only an IPv4 NAT address (the cluster network is IPv4); refuse anything else rather than
  // render a table that translates nothing.
  if (!nat || nat.family !== 4)
    throw new Error("virtualAddresses.nat.address: must be IPv4: the cluster network is IPv4");
  return [
    `table ip ${NAT_TABLE} {`,
    "\tchain postrouting {",
    "\t\ttype nat hook postrouting priority srcnat; policy accept;",
    `\t\toifname ${JSON.stringify(publicInterface)} ip saddr ${spec.network.cidr} snat to ${nat.address}`,
    "\t}",
    "}",
  ];
}
