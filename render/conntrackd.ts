/**
 * /etc/conntrackd/conntrackd.conf: FT-FW (reliable: acknowledged, resent on loss) state sync over UDP unicast from
 * this LB's address to the peer's, on the private NIC or on the sync link (peer-link.ts). The notify script drives it on every VRRP transition
 * (commit, flush, resync, bulk send on MASTER; purge and resync request otherwise).
 *
 * Only forwarded flows are worth syncing (egress NAT, and anything routed through the gateway VIP): flows that
 * end on the LB itself (HAProxy's client and server sides, SSH, VRRP, the sync channel) cannot move to the peer.
 * conntrackd ignores a flow when its original source or its reply source is an ignored address, so every address
 * of the pair is listed; the same list also keeps those local flows out of the purge `conntrackd -t` schedules.
 */
import { compareAddresses, parseIp } from "../spec/address";
import type { HostFacts, ResolvedSpec } from "../spec/types";
import { file, header, lines, reload } from "./common";
import { peerLink } from "./peer-link";
import type { Renderer } from "./types";

export const CONNTRACKD_CONFIG_PATH = "/etc/conntrackd/conntrackd.conf";
export const CONNTRACKD_LOCK_FILE = "/var/lock/conntrackd.lock";
/** The control socket the notify script's `conntrackd -c/-f/-R/-B/-t/-n` calls talk to. */
export const CONNTRACKD_SOCKET = "/var/run/conntrackd.ctl";

export const renderConntrackd: Renderer = ({ spec, host }) => [
  // A restart (not a reload: conntrackd has none) rebuilds the internal cache from the kernel table and, with
  // StartupResync, asks the peer for its flows, so a restart on either LB loses nothing that is still open.
  file(
    CONNTRACKD_CONFIG_PATH,
    conntrackdConf(spec, host),
    reload("conntrackd", ["systemctl", "restart", "conntrackd.service"]),
  ),
];

/** Every address that belongs to the pair itself, sorted: flows from or to them are local, never synced. */
export function localAddresses(spec: ResolvedSpec): string[] {
  const pub = spec.platform.publicNetwork;
  const all = [
    "127.0.0.1",
    "::1",
    spec.network.gateway,
    ...spec.network.lbAddresses,
    ...(spec.syncNetwork?.lbAddresses ?? []),
    ...pub.lbAddresses,
    ...(pub.nextHop === undefined ? [] : [pub.nextHop]),
    ...spec.derived.privateVips.map((v) => v.address),
    ...spec.derived.publicVips.map((v) => v.address),
  ];
  return [...new Set(all)].sort(compareAddresses);
}

function conntrackdConf(spec: ResolvedSpec, host: HostFacts): string {
  const { own, peer, interface: iface } = peerLink(spec, host);
  const fam = isV6(own) ? "IPv6" : "IPv4";
  return lines(
    header("#").trimEnd(),
    "",
    "Sync {",
    "    Mode FTFW {",
    // Sample values of conntrack-tools' FT-FW example: room to resend after a burst of loss.
    "        ResendQueueSize 131072",
    "        ACKWindowSize 300",
    // Seconds after `conntrackd -t` (BACKUP/FAULT) before stale forwarded flows leave the kernel table.
    "        PurgeTimeout 60",
    // A restarted LB asks the peer for its flows at once, instead of missing those opened while it was down.
    "        StartupResync on",
    "        DisableExternalCache off",
    "    }",
    "    UDP Default {",
    `        ${fam}_address ${own}`,
    `        ${fam}_Destination_Address ${peer}`,
    `        Port ${spec.conntrack.port}`,
    `        Interface ${iface}`,
    "        SndSocketBuffer 1249280",
    "        RcvSocketBuffer 1249280",
    "        Checksum on",
    "    }",
    "}",
    "",
    "General {",
    // Runtime notification and watchdog under systemd; without NOTIFY_SOCKET (the netns lab) it is a no-op.
    "    Systemd on",
    "    HashSize 32768",
    // Twice the kernel's default nf_conntrack_max of the LB VM, as conntrack-tools asks (dead entries stay cached for
    // retransmission): the kernel's default is its bucket count, 65,536 on any VM of 1-4 GiB (the 2 GiB default).
    "    HashLimit 131072",
    "    LogFile off",
    "    Syslog on",
    `    LockFile ${CONNTRACKD_LOCK_FILE}`,
    "    UNIX {",
    `        Path ${CONNTRACKD_SOCKET}`,
    "    }",
    // The default socket buffer (~200 KiB) drops events under a connection burst; it may grow to 8 MiB.
    "    NetlinkBufferSize 2097152",
    "    NetlinkBufferSizeMaxGrowth 8388608",
    "    NetlinkOverrunResync on",
    "    Filter From Userspace {",
    // Egress NAT carries any protocol a cluster node sends out; ICMP entries keep ping and path-MTU errors flowing.
    "        Protocol Accept {",
    "            TCP",
    "            UDP",
    "            ICMP",
    "            IPv6-ICMP",
    "        }",
    "        Address Ignore {",
    ...localAddresses(spec).map((a) => `            ${isV6(a) ? "IPv6" : "IPv4"}_address ${a}`),
    "        }",
    "    }",
    "}",
  );
}

function isV6(address: string): boolean {
  return parseIp(address)?.kind() === "ipv6";
}
