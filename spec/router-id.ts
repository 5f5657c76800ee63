/**
 * VRRP router ID derived from clusterName, the same in the Pulumi program and the agent, so pairs of different
 * clusters on one L2 pick different IDs without configuration (the top OpenShift on-prem complaint is a fixed ID).
 * FNV-1a is enough: we need spread, not secrecy. Range 1..255.
 */
export function deriveRouterId(clusterName: string): number {
  let h = 0x811c9dc5;
  for (const byte of Buffer.from(clusterName, "utf8")) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return (h % 255) + 1;
}
