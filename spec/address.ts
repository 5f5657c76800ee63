/**
 * IP/CIDR helpers over ipaddr.js. Strict on input forms: "192.168.1" or "0xc0.0.0.1" are not addresses a human
 * means, so only dotted-quad IPv4 and RFC 4291 IPv6 text are accepted.
 */
import ipaddr from "ipaddr.js";
import type { IpFamily } from "./types";

export type Ip = ipaddr.IPv4 | ipaddr.IPv6;

export function parseIp(text: string): Ip | undefined {
  if (ipaddr.IPv4.isValidFourPartDecimal(text)) return ipaddr.IPv4.parse(text);
  if (!text.includes(":") || !ipaddr.IPv6.isValid(text)) return undefined;
  const v6 = ipaddr.IPv6.parse(text);
  // An IPv4-mapped form would silently change family; treat it as not an address.
  return v6.isIPv4MappedAddress() ? undefined : v6;
}

export function familyOf(ip: Ip): IpFamily {
  return ip.kind() === "ipv4" ? 4 : 6;
}

export function canonical(ip: Ip): string {
  return ip.kind() === "ipv6" ? (ip as ipaddr.IPv6).toRFC5952String() : ip.toString();
}

export function maxPrefix(ip: Ip): number {
  return ip.kind() === "ipv4" ? 32 : 128;
}

/** "a.b.c.d", "a.b.c.d/32" or "v6/128": the address; a wider prefix is reported as a range. */
export type HostAddressParse = { ok: true; ip: Ip } | { ok: false; rule: string };

export function parseHostAddress(text: string): HostAddressParse {
  if (text.includes("%"))
    return { ok: false, rule: "must not carry an interface zone (%...): HAProxy and NetworkManager take none" };
  const [addr, prefix, ...rest] = text.split("/");
  const ip = parseIp(addr ?? "");
  if (!ip || rest.length > 0) return { ok: false, rule: "must be an IPv4 or IPv6 address" };
  if (prefix === undefined) return { ok: true, ip };
  if (!/^\d{1,3}$/.test(prefix) || Number(prefix) > maxPrefix(ip))
    return { ok: false, rule: "has an invalid prefix length" };
  if (Number(prefix) !== maxPrefix(ip)) {
    return { ok: false, rule: `must be a single address (/${maxPrefix(ip)}), not the range /${prefix}` };
  }
  return { ok: true, ip };
}

/**
 * Ranges no frontend, backend, gateway or network of the pair can be in: unspecified (0.0.0.0, ::), loopback,
 * multicast (224.0.0.18 is VRRP's own), the IPv4 limited broadcast and link-local (fe80::/10 needs a zone;
 * 169.254.0.0/16 is the cloud's metadata range).
 */
const NOT_A_HOST: Record<string, string> = {
  unspecified: "the unspecified address",
  loopback: "loopback",
  multicast: "multicast",
  broadcast: "the broadcast address",
  linkLocal: "link-local",
};

/** Why `ip` cannot be a host's or a network's address on the pair, or undefined when it can. */
export function notUnicast(ip: Ip): string | undefined {
  return NOT_A_HOST[ip.range()];
}

export interface Cidr {
  network: Ip;
  prefixLength: number;
}

export type CidrParse = { ok: true; cidr: Cidr } | { ok: false; rule: string };

export function parseCidr(text: string): CidrParse {
  const [addr, prefix, ...rest] = text.split("/");
  const ip = parseIp(addr ?? "");
  if (!ip || prefix === undefined || rest.length > 0 || !/^\d{1,3}$/.test(prefix) || Number(prefix) > maxPrefix(ip)) {
    return { ok: false, rule: "must be a CIDR such as 192.168.100.0/24" };
  }
  const prefixLength = Number(prefix);
  const network = networkAddress(ip, prefixLength);
  if (canonical(network) !== canonical(ip)) {
    return { ok: false, rule: `must be a network address: ${canonical(network)}/${prefixLength}, not ${text}` };
  }
  return { ok: true, cidr: { network, prefixLength } };
}

export function networkAddress(ip: Ip, prefixLength: number): Ip {
  const bytes = ip.toByteArray();
  const masked = bytes.map((b, i) => {
    const bitsLeft = prefixLength - i * 8;
    if (bitsLeft >= 8) return b;
    if (bitsLeft <= 0) return 0;
    return b & (0xff << (8 - bitsLeft)) & 0xff;
  });
  return ipaddr.fromByteArray(masked);
}

export function broadcastAddress(c: Cidr): Ip {
  const bytes = c.network.toByteArray().map((b, i) => {
    const bitsLeft = c.prefixLength - i * 8;
    if (bitsLeft >= 8) return b;
    if (bitsLeft <= 0) return 0xff;
    return b | (0xff >> bitsLeft);
  });
  return ipaddr.fromByteArray(bytes);
}

export function contains(c: Cidr, ip: Ip): boolean {
  return ip.kind() === c.network.kind() && ip.match(c.network, c.prefixLength);
}

/** The n-th address of a network (n = 1 is the first host). */
export function nthAddress(c: Cidr, n: number): Ip {
  const bytes = c.network.toByteArray();
  let carry = n;
  for (let i = bytes.length - 1; i >= 0 && carry > 0; i--) {
    const sum = (bytes[i] ?? 0) + carry;
    bytes[i] = sum & 0xff;
    carry = Math.floor(sum / 256);
  }
  return ipaddr.fromByteArray(bytes);
}

export function cidrText(c: Cidr): string {
  return `${canonical(c.network)}/${c.prefixLength}`;
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  if (a.network.kind() !== b.network.kind()) return false;
  const shorter = Math.min(a.prefixLength, b.prefixLength);
  return a.network.match(b.network, shorter);
}

/** Numeric order: IPv4 before IPv6, then by bytes. Stable output order for every renderer. */
export function compareAddresses(a: string, b: string): number {
  const x = parseIp(a);
  const y = parseIp(b);
  if (!x || !y) return a.localeCompare(b);
  const bx = x.toByteArray();
  const by = y.toByteArray();
  if (bx.length !== by.length) return bx.length - by.length;
  for (let i = 0; i < bx.length; i++) if (bx[i] !== by[i]) return (bx[i] ?? 0) - (by[i] ?? 0);
  return 0;
}
