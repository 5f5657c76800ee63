/**
 * The desired-state model every carrier consumes: the spec as written (LoadBalancerSpecInput, see schema.ts),
 * and the ResolvedSpec that renderers read — defaults applied, addresses normalised, derived sets computed once.
 */

export type Distribution = "openshift" | "talos" | "generic";
export type AddressType = "private" | "public";
export type PlatformType = "libvirt" | "openstack";
export type Role = "primary" | "secondary";
export type IpFamily = 4 | 6;

/** One virtual address, normalised: no prefix length, canonical text form. */
export interface VirtualAddress {
  address: string;
  family: IpFamily;
  type: AddressType;
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: "In" | "NotIn" | "Exists" | "DoesNotExist"; values?: string[] }[];
}

/** A backend server: the Node name when known (stable HAProxy server names across reloads), and its address. */
export interface Backend {
  name: string;
  address: string;
}

export interface BackendSets {
  api: Backend[];
  ingress: Backend[];
  /** per extra service name; a name absent here has its spec's static addresses (bootstrap, CLI) */
  extra?: Readonly<Record<string, Backend[]>>;
  /** the Nodes whose NodePorts back Services of type LoadBalancer (with serviceLoadBalancers) */
  serviceNodes?: Backend[];
}

export interface ResolvedNetwork {
  cidr: string; // canonical network address + prefix, e.g. 192.168.100.0/24
  prefixLength: number;
  gateway: string;
  lbAddresses: [primary: string, secondary: string];
}

export interface ResolvedPublicNetwork extends ResolvedNetwork {
  /**
   * libvirt (routed floating IPs): the public-side VRRP address the platform routes the floating IPs to.
   * Absent on openstack, where the public VIPs themselves move between the LBs.
   */
  nextHop?: string;
}

/** A link only the two LBs share (no gateway): VRRP adverts and conntrackd's sync run there instead. */
export interface ResolvedSyncNetwork {
  cidr: string;
  prefixLength: number;
  lbAddresses: [primary: string, secondary: string];
}

export type L4Protocol = "TCP" | "UDP";

/** A pool of Service addresses (serviceLoadBalancers.pools): IPv4 ranges as 32-bit numbers (spec/pools.ts). */
export interface ServicePool {
  name: string;
  type: AddressType;
  ranges: { first: number; last: number }[];
}

export interface ServiceLoadBalancers {
  loadBalancerClass: string;
  defaultClass: boolean;
  pools: ServicePool[];
}

/** Static pass-through (extraServices): one IPv4 frontend forwarded by the kernel to NodePorts. */
export interface ExtraService {
  name: string;
  protocol: L4Protocol;
  frontend: { address: string; port: number; type: AddressType };
  backend: { nodePort: number; nodeSelector?: LabelSelector; addresses: string[] };
  /** canonical IPv4 CIDRs; empty: from anywhere */
  sourceRanges: string[];
}

export interface HealthCheck {
  intervalMs: number;
  rise: number;
  fall: number;
}

export interface ResolvedSpec {
  clusterName: string;
  distribution: Distribution;
  network: ResolvedNetwork;
  virtualAddresses: {
    api: VirtualAddress[];
    ingress: VirtualAddress[]; // empty when the spec has no ingress
    nat?: VirtualAddress;
  };
  apiBackend: { nodeSelector: LabelSelector; addresses: string[]; port: number };
  ingressBackend?: {
    nodeSelector: LabelSelector;
    addresses: string[];
    httpPort: number;
    httpsPort: number;
    /** Port and path of the router's plain-HTTP health endpoint; path empty means a TCP check on that port. */
    healthPort: number;
    healthPath: string;
    proxyProtocol: boolean;
  };
  vrrp: {
    routerId: number;
    advertIntervalSeconds: number;
    priority: { primary: number; secondary: number };
  };
  conntrack: { port: number };
  syncNetwork?: ResolvedSyncNetwork;
  serviceLoadBalancers?: ServiceLoadBalancers;
  /** empty when the spec has none */
  extraServices: ExtraService[];
  healthCheck: HealthCheck;
  metrics: { port: number };
  /** The digest-pinned appliance image the pair should run (absent: the one the agent settings name). */
  image?: string;
  platform: { type: PlatformType; publicNetwork: ResolvedPublicNetwork };
  derived: DerivedAddressing;
}

/** Address sets computed once from the spec, so no renderer re-derives them differently. */
export interface DerivedAddressing {
  /** VRRP VIPs on the private NIC: private api/ingress/nat addresses plus the gateway when nat is set. Sorted, unique. */
  privateVips: VirtualAddress[];
  /** Every public address (api, ingress, nat). Sorted, unique. */
  publicVips: VirtualAddress[];
  /**
   * The private address a Service connection's source is translated to when its backend could not answer the client
   * through the pair (a client on the cluster network; every client when nodes do not route through the pair): a VIP
   * that moves with VRRP, so the translation survives a failover. The gateway VIP with NAT, else the first private
   * IPv4 VIP.
   */
  serviceSourceAddress: string;
  frontends: {
    api: VirtualAddress[]; // 6443, every api address
    machineConfig: VirtualAddress[]; // 22623, private api addresses, openshift only
    ingress: VirtualAddress[]; // 80/443
  };
}

export interface InterfaceFacts {
  name: string;
  mac: string;
}

/** Facts about the machine the files are rendered for; never part of the spec. */
export interface HostFacts {
  hostname: string;
  role: Role;
  publicInterface: InterfaceFacts;
  privateInterface: InterfaceFacts;
  /** Present when the spec has a syncNetwork: the NIC on that link. */
  syncInterface?: InterfaceFacts;
}

/** Where routed floating IPs sit on both LBs (a dummy link on the VM). */
export const FLOATING_IP_INTERFACE = "edgepair-fip";
