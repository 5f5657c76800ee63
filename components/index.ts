export { BootcImage, type BootcImageArgs } from "./bootc-image";
export { ClusterAccess, type ClusterAccessArgs, type ClusterAccessMonitoring } from "./cluster-access";
export {
  EdgePair,
  type ClusterAccessSettings,
  type EdgePairArgs,
  type EdgePairPlatformArgs,
  type LbSummary,
  type LibvirtPlatformArgs,
  type OpenStackPlatformArgs,
  viewFiles,
} from "./edgepair";
export {
  FloatingIps,
  routedFloatingIps,
  type FloatingIpsArgs,
  type PublicAddress,
  type RoutedFloatingIp,
} from "./floating-ips";
export { LibvirtLbVm, type LibvirtLbVmArgs } from "./libvirt/lb-vm";
export { LibvirtNetworks, type LibvirtNetworksArgs } from "./libvirt/networks";
export { SecretDelivery, deliveryCommand, deliveryScript, secretsStdin, SECRET_USERS } from "./secret-delivery";
