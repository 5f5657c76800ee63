/**
 * The Pulumi type tokens the policies judge: what the edgepair components register (components/, providers/)
 * and the provider resources they create. Policies compare type strings instead of importing the provider
 * packages: loading @pulumi/openstack or @pulumi/kubernetes would only slow the pack down.
 */
export const TYPES = {
  stack: "pulumi:pulumi:Stack",
  edgePair: "edgepair:index:EdgePair",
  bootcImage: "edgepair:index:BootcImage",
  libvirtLbVm: "edgepair:index:LbVm",
  openstackLbServer: "edgepair:index:OpenStackLbServer",
  renderedView: "pulumi-nodejs:dynamic/edgepair:RenderedView",
  readyGate: "pulumi-nodejs:dynamic/edgepair:ReadyGate",
  libvirtDomain: "pulumi-nodejs:dynamic/libvirt:Domain",
  libvirtCloudInitDisk: "pulumi-nodejs:dynamic/libvirt:CloudInitDisk",
  instance: "openstack:compute/instance:Instance",
  serverGroup: "openstack:compute/serverGroup:ServerGroup",
  secGroupRule: "openstack:networking/secGroupRule:SecGroupRule",
  port: "openstack:networking/port:Port",
  floatingIp: "openstack:networking/floatingIp:FloatingIp",
  floatingIpAssociate: "openstack:networking/floatingIpAssociate:FloatingIpAssociate",
  role: "kubernetes:rbac.authorization.k8s.io/v1:Role",
  clusterRole: "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole",
  roleBinding: "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding",
  clusterRoleBinding: "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding",
  loadBalancerCr: "kubernetes:edgepair.io/v1alpha1:LoadBalancer",
} as const;

/** Rendered files (RenderedView `files`) the policies read. */
export const VIEW_FILES = {
  keepalived: "/etc/keepalived/keepalived.conf",
  nmDir: "/etc/NetworkManager/system-connections/",
  firewalldZones: "/etc/firewalld/zones/",
  /** Service frontends forwarded by the kernel (render/service-lb.ts) */
  services: "/etc/edgepair/services.nft",
} as const;

/** SSH and the OpenShift machine config server: never reachable from the outside (DESIGN.md). */
export const SSH_PORT = 22;
export const MACHINE_CONFIG_PORT = 22623;
