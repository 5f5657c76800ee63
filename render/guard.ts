/**
 * /etc/edgepair/guard.nft: what this LB refuses before its firewall or any daemon sees it.
 *
 * With a sync link (peer-link.ts), the sync network's addresses are only ever on that link: one arriving on another
 * NIC is forged, and is dropped before conntrack. Without this, a packet forged with the peer's sync address would
 * match, as its reply, the conntrack entry of this LB's own adverts to the peer and pass the firewall as established
 * (seen in the lab: firewalld's `ct state established,related accept`).
 *
 * The cloud's metadata service, from the LB itself, for root only. It answers whoever asks on its link with this VM's
 * user-data, and the user-data carries the cluster token and the generated secrets. Who needs it runs as root:
 * cloud-init (every stage) and the agent; HAProxy (user haproxy), a login without sudo and anything else unprivileged
 * is refused. A uid, not a cgroup, because nft resolves a cgroup path once when the rule loads, so a rule naming a
 * unit that had not started yet would match nothing. Forwarded traffic to link-local is refused in the egress policy
 * (firewalld.ts). Rendered on every platform: where no metadata service exists the rule never matches.
 */
import type { HostFacts, ResolvedSpec } from "../spec/types";
import { file, header, lines, reload } from "./common";
import { peerLink } from "./peer-link";
import type { Renderer } from "./types";

export const GUARD_NFT_PATH = "/etc/edgepair/guard.nft";
export const GUARD_TABLE = "edgepair_guard";
/** OpenStack, EC2 and most clouds; OpenStack's IPv6 metadata address is fe80::a9fe:a9fe. */
export const METADATA_V4 = "169.254.169.254";
export const METADATA_V6 = "fe80::a9fe:a9fe";

export const renderGuard: Renderer = ({ spec, host }) => {
  const content = lines(
    header("#"),
    "# Applied with `nft -f` as one transaction (nat-nftables.ts: the empty declaration makes the delete valid).",
    `table inet ${GUARD_TABLE}`,
    `delete table inet ${GUARD_TABLE}`,
    `table inet ${GUARD_TABLE} {`,
    ...syncSpoofing(spec, host),
    "\tchain output {",
    "\t\ttype filter hook output priority filter; policy accept;",
    `\t\tip daddr ${METADATA_V4} meta skuid != 0 counter reject with icmpx admin-prohibited`,
    `\t\tip6 daddr ${METADATA_V6} meta skuid != 0 counter reject with icmpx admin-prohibited`,
    "\t}",
    "}",
  );
  return [file(GUARD_NFT_PATH, content, reload("nftables", ["nft", "-f", GUARD_NFT_PATH]))];
};

function syncSpoofing(spec: ResolvedSpec, host: HostFacts): string[] {
  if (!spec.syncNetwork) return [];
  const link = peerLink(spec, host).interface;
  return [
    "\tchain prerouting {",
    "\t\ttype filter hook prerouting priority raw; policy accept;",
    `\t\tiifname != ${JSON.stringify(link)} ip saddr ${spec.syncNetwork.cidr} counter drop`,
    "\t}",
  ];
}
