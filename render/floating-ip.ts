/**
 * The floating-IP handler: what must change on the public side of an LB when its VRRP state changes.
 * Pure: a handler returns argv commands and runs nothing. keepalived's notify script runs onTransition() inline
 * on the hot path (no Node.js start-up); the agent runs reassert() periodically to repair drift.
 *
 * Every command is idempotent and exits 0 when the wanted state already holds (`ip addr replace`, and
 * `ip addr flush ... to ADDR/hostprefix` instead of `ip addr del`, which fails when the address is absent),
 * so a non-zero exit always means a real problem.
 */
import { parseIp } from "../spec/address";
import { GARP_TOOL } from "./service-lb";
import type { HostFacts, IpFamily, PlatformType, ResolvedSpec } from "../spec/types";
import type { KeepalivedState } from "./vrrp-state";

/** One program invocation, argv style: never passed through a shell. */
export type Command = readonly string[];

export interface FloatingIpHandler {
  readonly platform: PlatformType;
  /** Commands for the moment keepalived enters `state`, in order: address changes first, then announcements. */
  onTransition(state: KeepalivedState): Command[];
  /** Commands that (re)establish what `state` requires, safe to repeat at any time. */
  reassert(state: KeepalivedState): Command[];
}

/** An address this LB holds only while MASTER, with the prefix length it is configured with. */
interface MovingAddress {
  address: string;
  prefixLength: number;
  family: IpFamily;
}

/**
 * True for commands that only announce an address that is already configured (gratuitous ARP). They wait between
 * packets (`arping -c 2` takes about 2 s), so the notify script runs them in the background.
 */
export function isAnnouncement(command: Command): boolean {
  return command[0] === "arping" || command[0] === GARP_TOOL;
}

export function floatingIpHandler(spec: ResolvedSpec, host: HostFacts): FloatingIpHandler {
  const dev = host.publicInterface.name;
  const platform = spec.platform.type;
  const moving = movingAddresses(spec);
  const onTransition = (state: KeepalivedState): Command[] =>
    state === "MASTER" ? holdCommands(moving, dev) : releaseCommands(moving, dev);
  // Both platforms re-assert by re-applying the transition: every command is idempotent, and a repeated GARP
  // refreshes caches that may have aged out. A cloud whose API must re-point addresses would differ here.
  return { platform, onTransition, reassert: onTransition };
}

/**
 * libvirt (routed floating IPs): the floating IPs stay on both LBs (FLOATING_IP_INTERFACE); the platform routes
 * them to publicNetwork.nextHop, so only that next hop moves, with the public network's prefix length.
 * openstack (NAT floating IPs): each public VIP is a fixed IP of a VIP port, so every public VIP moves, as a
 * host address.
 */
function movingAddresses(spec: ResolvedSpec): MovingAddress[] {
  const pub = spec.platform.publicNetwork;
  switch (spec.platform.type) {
    case "libvirt": {
      if (pub.nextHop === undefined)
        throw new Error("platform.publicNetwork.nextHop: required on platform libvirt (routed floating IPs)");
      return [{ address: pub.nextHop, prefixLength: pub.prefixLength, family: familyOfText(pub.nextHop) }];
    }
    case "openstack":
      return spec.derived.publicVips.map((v) => ({
        address: v.address,
        prefixLength: v.family === 4 ? 32 : 128,
        family: v.family,
      }));
  }
}

function familyOfText(address: string): IpFamily {
  const ip = parseIp(address);
  if (!ip) throw new Error(`not an IP address: ${address}`);
  return ip.kind() === "ipv4" ? 4 : 6;
}

function holdCommands(moving: MovingAddress[], dev: string): Command[] {
  const add = moving.map((m) => [
    "ip",
    `-${m.family}`,
    "addr",
    "replace",
    `${m.address}/${m.prefixLength}`,
    "dev",
    dev,
    // A deprecated IPv6 address still receives traffic but is never picked as a source (keepalived does the same
    // for /128 VIPs). No `nodad`: with accept_dad=0 and ndisc_notify=1 on the interface (sysctl) the kernel sends
    // the unsolicited neighbour advertisement itself, which it skips for `nodad` addresses.
    ...(m.family === 6 ? ["preferred_lft", "0"] : []),
  ]);
  // arping -U binds to the announced address, so it must come after the address is configured.
  const announce = moving.filter((m) => m.family === 4).map((m) => ["arping", "-U", "-c", "2", "-I", dev, m.address]);
  return [...add, ...announce];
}

function releaseCommands(moving: MovingAddress[], dev: string): Command[] {
  return moving.map((m) => [
    "ip",
    `-${m.family}`,
    "addr",
    "flush",
    "dev",
    dev,
    "to",
    `${m.address}/${m.family === 4 ? 32 : 128}`,
  ]);
}
