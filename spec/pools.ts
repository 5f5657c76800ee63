/**
 * Address pools of `serviceLoadBalancers` as IPv4 ranges: an entry is a CIDR (`198.51.100.128/27`) or a
 * `first-last` range. IPv4 only: the cluster network is IPv4, and the kernel forwards a Service's packets to its
 * NodePorts without translating between address families (nftables has no NAT64).
 */
import ipaddr from "ipaddr.js";
import { broadcastAddress, parseCidr, parseIp, type Cidr, type Ip } from "./address";
import type { AddressType, ResolvedSpec } from "./types";

/** An inclusive range of IPv4 addresses as 32-bit numbers. */
export interface Ipv4Range {
  first: number;
  last: number;
}

export type PoolEntryParse = { ok: true; range: Ipv4Range } | { ok: false; rule: string };

export function ipv4Number(ip: Ip): number {
  const b = ip.toByteArray();
  return (((b[0] ?? 0) << 24) >>> 0) + ((b[1] ?? 0) << 16) + ((b[2] ?? 0) << 8) + (b[3] ?? 0);
}

export function ipv4Text(n: number): string {
  return ipaddr.fromByteArray([(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]).toString();
}

const IPV4_ONLY = "must be IPv4: the cluster network is IPv4, and the kernel does not translate between families";

export function parsePoolEntry(text: string): PoolEntryParse {
  if (text.includes("/")) {
    const c = parseCidr(text);
    if (!c.ok) return c;
    if (c.cidr.network.kind() !== "ipv4") return { ok: false, rule: IPV4_ONLY };
    if (c.cidr.prefixLength < 16)
      return { ok: false, rule: `must be /16 or narrower (65536 addresses), not /${c.cidr.prefixLength}` };
    return { ok: true, range: cidrRange(c.cidr) };
  }
  const parts = text.split("-");
  if (parts.length !== 2)
    return {
      ok: false,
      rule: "must be a CIDR (198.51.100.128/27) or a range first-last (192.168.100.200-192.168.100.239)",
    };
  const [a, b] = parts.map((p) => parseIp(p.trim()));
  if (!a || !b) return { ok: false, rule: "must be a range of two addresses first-last" };
  if (a.kind() !== "ipv4" || b.kind() !== "ipv4") return { ok: false, rule: IPV4_ONLY };
  const range = { first: ipv4Number(a), last: ipv4Number(b) };
  if (range.first > range.last)
    return { ok: false, rule: `is reversed: ${parts[0]?.trim()} comes after ${parts[1]?.trim()}` };
  if (range.last - range.first >= 65536) return { ok: false, rule: "must hold at most 65536 addresses" };
  return { ok: true, range };
}

/** The addresses of an IPv4 CIDR, network and broadcast address included. */
export function cidrRange(c: Cidr): Ipv4Range {
  return { first: ipv4Number(c.network), last: ipv4Number(broadcastAddress(c)) };
}

export function rangesOverlap(a: Ipv4Range, b: Ipv4Range): boolean {
  return a.first <= b.last && b.first <= a.last;
}

export function inRange(r: Ipv4Range, ip: Ip): boolean {
  if (ip.kind() !== "ipv4") return false;
  const n = ipv4Number(ip);
  return n >= r.first && n <= r.last;
}

export function rangeText(r: Ipv4Range): string {
  return r.first === r.last ? ipv4Text(r.first) : `${ipv4Text(r.first)}-${ipv4Text(r.last)}`;
}

/** The fewest CIDRs that cover a range exactly (a route per CIDR: routed public pools). */
export function rangeCidrs(r: Ipv4Range): string[] {
  const out: string[] = [];
  let first = r.first;
  while (first <= r.last) {
    // the largest aligned block starting at `first` that ends within the range
    let size = first === 0 ? 2 ** 32 : 2 ** Math.min(32, countTrailingZeros(first));
    while (first + size - 1 > r.last) size /= 2;
    out.push(`${ipv4Text(first)}/${32 - Math.log2(size)}`);
    first += size;
  }
  return out;
}

function countTrailingZeros(n: number): number {
  let z = 0;
  while (z < 32 && n % 2 ** (z + 1) === 0) z++;
  return z;
}

/**
 * The CIDRs of every Service pool of one type, in pool order: what a platform routes to the pair (libvirt: a route
 * each) or lets its ports answer for (OpenStack: an allowed-address-pair each).
 */
export function poolCidrs(spec: ResolvedSpec, type: AddressType): string[] {
  return (spec.serviceLoadBalancers?.pools ?? [])
    .filter((p) => p.type === type)
    .flatMap((p) => p.ranges.flatMap(rangeCidrs));
}

/** Whether a pool of serviceLoadBalancers holds `address` (text; anything that is not an IPv4 address: no). */
export function poolHolds(pool: { ranges: readonly Ipv4Range[] }, address: string): boolean {
  const ip = parseIp(address);
  return !!ip && pool.ranges.some((r) => inRange(r, ip));
}
