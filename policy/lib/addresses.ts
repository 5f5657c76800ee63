/**
 * "Inside" versus "outside" for the exposure policies. A source or destination is inside when the whole prefix
 * lies in one of the internal ranges: RFC 1918, shared address space (RFC 6598), loopback, IPv6 unique local and
 * link-local by default, plus whatever the policy's `internalCidrs` config adds (a corporate range that is routed
 * but not public). Everything else, 0.0.0.0/0 and ::/0 first, is outside.
 */
import { type Cidr, contains, networkAddress, parseCidr, parseIp, maxPrefix } from "../../spec/address";

export const DEFAULT_INTERNAL_CIDRS = [
  "10.0.0.0/8",
  "172.16.0.0/12",
  "192.168.0.0/16",
  "100.64.0.0/10",
  "127.0.0.0/8",
  "fc00::/7",
  "fe80::/10",
  "::1/128",
];

/** "a.b.c.d", "a.b.c.d/n" (host bits allowed, as Neutron and firewalld accept them) or IPv6 forms; else undefined. */
export function prefixOf(text: string): Cidr | undefined {
  const [addr, len, ...rest] = text.trim().split("/");
  const ip = parseIp(addr ?? "");
  if (!ip || rest.length > 0) return undefined;
  const prefixLength = len === undefined ? maxPrefix(ip) : Number(len);
  if (!Number.isInteger(prefixLength) || prefixLength < 0 || prefixLength > maxPrefix(ip)) return undefined;
  return { network: networkAddress(ip, prefixLength), prefixLength };
}

export function internalRanges(extra: readonly string[] = []): Cidr[] {
  return [...DEFAULT_INTERNAL_CIDRS, ...extra].flatMap((t) => {
    const r = parseCidr(t);
    return r.ok ? [r.cidr] : [];
  });
}

/** True when every address of `text` is inside one internal range; an unparsable text is not inside. */
export function isInside(text: string, ranges: readonly Cidr[]): boolean {
  const p = prefixOf(text);
  if (!p) return false;
  return ranges.some((r) => r.prefixLength <= p.prefixLength && contains(r, p.network));
}

/** The address part of "a.b.c.d/24" (NetworkManager's address1=, keepalived's VIP lines). */
export function addressPart(text: string): string {
  return (text.trim().split(/[\s/]/)[0] ?? "").toLowerCase();
}
