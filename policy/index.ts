/**
 * The edgepair CrossGuard policy pack: `pulumi preview --policy-pack policy` (from the repo root, after `npm ci`).
 * The policies and their default enforcement levels are listed in policies.ts.
 */
import { PolicyPack } from "@pulumi/policy";
import { edgepairPolicies, PACK_NAME } from "./policies";

new PolicyPack(PACK_NAME, {
  description:
    "edgepair: operational rules for the HA load-balancer pair (spread, pinned image, fast VRRPv3, no outside SSH/22623, one network, least-privilege agent)",
  policies: edgepairPolicies,
});
