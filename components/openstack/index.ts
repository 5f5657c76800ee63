export {
  allocationPools,
  FORWARDING_ADDRESS_PAIR,
  OpenStackNetworking,
  type FloatingIpBinding,
  type OpenStackLbPorts,
  type OpenStackNetworkingArgs,
  type OpenStackPrivateNetwork,
} from "./networking";
export { CREATE_ONLY_INPUTS, OpenStackLbServer, type OpenStackImage, type OpenStackLbServerArgs } from "./server";
export {
  groupsFor,
  OpenStackSecurityGroups,
  securityGroupRules,
  VRRP_PROTOCOL,
  type GroupPurpose,
  type OpenStackSecurityGroupsArgs,
  type RuleSpec,
} from "./security-groups";
