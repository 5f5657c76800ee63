export { BootcImage, type BootcImageArgs } from "./bootc-image";
export { ClusterAccess, type ClusterAccessArgs } from "./cluster-access";
export { EdgePair, type EdgePairArgs, type LbSummary, viewFiles } from "./edgepair";
export { LibvirtLbVm, type LibvirtLbVmArgs } from "./libvirt/lb-vm";
export { LibvirtNetworks, type LibvirtNetworksArgs } from "./libvirt/networks";
export { TokenDelivery, deliveryScript } from "./token-delivery";
