/**
 * Every policy of the pack, mandatory ones first. Kept apart from index.ts because constructing a PolicyPack
 * starts its gRPC server: tests import this list and call the validate functions directly.
 *
 * Enforcement per policy: the level here is the default; `pulumi preview --policy-pack policy
 * --policy-pack-config FILE` overrides it (and the policy's options), e.g.
 *   { "lb-vm-sizing": "mandatory", "vrrp-v3-fast-advert": { "enforcementLevel": "advisory", "maxAdvertIntervalSeconds": 2 } }
 */
import type { Policies } from "@pulumi/policy";
import { agentRbacLeastPrivilege } from "./agent-rbac";
import { firstBootInputsCreateOnly, hardAntiAffinity, lbVmSizing, readyGateEnabled } from "./advisory";
import { firewallKeepsSshOffVips, floatingIpsReachNoSsh, securityGroupsKeepSshInside } from "./exposure";
import { imagePinnedByDigest } from "./image-pinned";
import { lbVmsSpread } from "./lb-spread";
import { lbsShareOnePrivateNetwork } from "./private-network";
import { servicePoolsDistinct, servicesNoPublicSshOrMcs } from "./services";
import { vrrpV3FastAdvert } from "./vrrp";

export const PACK_NAME = "edgepair";

export const edgepairPolicies: Policies = [
  lbVmsSpread,
  imagePinnedByDigest,
  vrrpV3FastAdvert,
  securityGroupsKeepSshInside,
  floatingIpsReachNoSsh,
  firewallKeepsSshOffVips,
  lbsShareOnePrivateNetwork,
  agentRbacLeastPrivilege,
  servicePoolsDistinct,
  servicesNoPublicSshOrMcs,
  hardAntiAffinity,
  readyGateEnabled,
  lbVmSizing,
  firstBootInputsCreateOnly,
];
