/**
 * MAC addresses derived from names, so they are known at preview time (host facts and the NetworkManager keyfiles
 * that match on them can be rendered before any VM exists) and stay the same across re-runs and VM replacement.
 * Hashing is deterministic; it is not randomness.
 */
import { createHash } from "node:crypto";
import { SpecError } from "./errors";

/**
 * QEMU/KVM's customary prefix: 0x52 has the multicast bit clear (unicast) and the locally administered bit set,
 * so it never collides with a vendor-assigned address.
 */
export const MAC_PREFIX = "52:54:00";

export function deriveMac(stack: string, vm: string, nic: string): string {
  const empty = Object.entries({ stack, vm, nic }).filter(([, v]) => v.length === 0);
  if (empty.length > 0) throw new SpecError(empty.map(([k]) => ({ path: k, rule: "must not be empty" })));
  // JSON keeps the three names apart: ("a-b", "c") and ("a", "b-c") must not hash alike.
  const digest = createHash("sha256")
    .update(JSON.stringify([stack, vm, nic]), "utf8")
    .digest();
  const tail = [...digest.subarray(0, 3)].map((b) => b.toString(16).padStart(2, "0"));
  return [MAC_PREFIX, ...tail].join(":");
}
