/**
 * The libvirt host's own address on the sync link: libvirt puts one on the bridge of every network it defines. The
 * last host address that is not an LB's; the spec rules (semantics.ts) make sure one exists on libvirt.
 */
import { canonical, nthAddress, parseCidr } from "./address";
import type { ResolvedSyncNetwork } from "./types";

export function syncHostAddress(sync: Pick<ResolvedSyncNetwork, "cidr" | "lbAddresses">): string {
  const r = parseCidr(sync.cidr);
  if (!r.ok) throw new Error(`unreachable: validated cidr ${sync.cidr}`);
  const count = 2 ** (32 - r.cidr.prefixLength) - 2;
  for (let n = count; n >= 1; n--) {
    const a = canonical(nthAddress(r.cidr, n));
    if (!sync.lbAddresses.includes(a)) return a;
  }
  throw new Error(`syncNetwork.cidr: ${sync.cidr} has no host address left beside the LBs'`);
}
