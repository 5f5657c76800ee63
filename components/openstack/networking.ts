/**
 * OpenStack networking for the pair (DESIGN.md "NAT floating IPs"): the private network (existing or created),
 * security groups, two ports per LB with fixed IPs, one VIP port per VIP, floating IPs on the public VIP ports and
 * the anti-affinity server group.
 *
 * A VIP is a fixed IP of its own unbound port: Neutron reserves the address (DHCP and other ports never get it),
 * both LB ports may use it through allowed-address-pairs, and VRRP decides which LB answers for it. The floating IP
 * is associated once, with the VIP port, so a failover needs no API call: the address behind it moves.
 *
 * Service pools (spec.serviceLoadBalancers) are allowed on both LB ports of their side as CIDRs (Neutron takes a
 * CIDR in an address pair; a first-last range becomes the fewest CIDRs that cover it): the agent hands their
 * addresses to Services at run time, and the LB holding one answers for it as for a VIP. Their traffic is admitted by
 * the services-public / services-private security groups (security-groups.ts), on these ports and the VIP ports.
 *
 * Public Service addresses are fixed IPs of the public network (the spec requires the pools inside
 * platform.publicNetwork.cidr): reachable as they are where that network is routed (a provider network), and through
 * floating IPs where it sits behind a Neutron router. Pulumi creates no floating IP per pool address: which address
 * a Service gets is decided in the cluster, after `pulumi up`, so associating one then would be the agent's job, and
 * the agent would need Neutron credentials on the VMs, which face the outside. An operator who needs floating IPs
 * picks pool addresses, pins Services to them (`edgepair.io/load-balancer-ips`), and creates for each a port with
 * that fixed IP (which also reserves it in the subnet) and a floating IP associated with it, as this component does
 * for the VIPs.
 *
 * Two limits stay with the cloud. The public subnet, and an existing private one, keep their own allocation pools,
 * so Neutron may give a pool address to another port unless the pools are kept out of them (a created private
 * subnet keeps them out: allocationPools()). Each pool CIDR is one address pair against the cloud's
 * max_allowed_address_pair quota (10 per port by default, shared with the VIPs and, on the private side, the
 * forwarding pair): CIDR-aligned pools cost one each.
 */
import * as pulumi from "@pulumi/pulumi";
import * as openstack from "@pulumi/openstack";
import ipaddr from "ipaddr.js";
import { broadcastAddress, parseCidr } from "../../spec/address";
import { poolCidrs } from "../../spec/pools";
import type { ResolvedSpec, Role, VirtualAddress } from "../../spec/types";
import { OpenStackSecurityGroups, type GroupPurpose } from "./security-groups";

export type OpenStackPrivateNetwork =
  | { existing: { networkId: pulumi.Input<string>; subnetId: pulumi.Input<string> } }
  | { create: { dnsNameservers?: string[] } };

export interface OpenStackNetworkingArgs {
  spec: ResolvedSpec;
  privateNetwork: OpenStackPrivateNetwork;
  /** The existing network whose subnet is spec.platform.publicNetwork.cidr, routed to externalNetworkName. */
  publicNetwork: { networkId: pulumi.Input<string>; subnetId: pulumi.Input<string> };
  /** The external network the floating IPs come from (Neutron's floating IP pool). */
  externalNetworkName: pulumi.Input<string>;
  /** "soft" lets Nova co-locate the pair when it must (e.g. one compute host left); default "hard". */
  antiAffinity?: "hard" | "soft";
}

export interface OpenStackLbPorts {
  publicPortId: pulumi.Output<string>;
  privatePortId: pulumi.Output<string>;
  publicMac: pulumi.Output<string>;
  privateMac: pulumi.Output<string>;
}

export interface FloatingIpBinding {
  vip: string;
  floatingIp: string;
}

/**
 * Any source: the private port forwards NAT replies from the outside into the cluster and hands mid-stream packets
 * of public clients to the peer (render/handoff.ts); both keep their original source address, which Neutron's
 * anti-spoofing drops unless the port may send from it. The security groups still decide what may come in.
 */
export const FORWARDING_ADDRESS_PAIR = "0.0.0.0/0";

export class OpenStackNetworking extends pulumi.ComponentResource {
  public readonly privateNetworkId: pulumi.Output<string>;
  public readonly privateSubnetId: pulumi.Output<string>;
  public readonly lbPorts: Record<Role, OpenStackLbPorts>;
  public readonly serverGroupId: pulumi.Output<string>;
  public readonly floatingIps: pulumi.Output<FloatingIpBinding[]>;
  public readonly securityGroupIds: Partial<Record<GroupPurpose, pulumi.Output<string>>>;

  constructor(name: string, args: OpenStackNetworkingArgs, opts?: pulumi.ComponentResourceOptions) {
    super("edgepair:index:OpenStackNetworking", name, {}, opts);
    const { spec } = args;
    if (spec.platform.type !== "openstack")
      throw new Error(`platform.type: must be openstack for OpenStackNetworking, got ${spec.platform.type}`);
    const pub = spec.platform.publicNetwork;

    const priv = this.privateNetwork(name, args);
    this.privateNetworkId = priv.networkId;
    this.privateSubnetId = priv.subnetId;

    const groups = new OpenStackSecurityGroups(`${name}-sg`, { spec }, { parent: this });
    this.securityGroupIds = groups.ids;

    const publicVips = spec.derived.publicVips;
    const privateVips = spec.derived.privateVips;
    const publicPairs = [...publicVips.map((v) => v.address), ...poolCidrs(spec, "public")];
    // The forwarding pair already lets the port send from any address; the pools are named anyway, so the pairs say
    // which addresses this port answers for, whatever becomes of the forwarding pair.
    const privatePairs = [...privateVips.map((v) => v.address), ...poolCidrs(spec, "private"), FORWARDING_ADDRESS_PAIR];

    const lbPortsOf = (role: Role, i: 0 | 1): OpenStackLbPorts => {
      const publicPort = new openstack.networking.Port(
        `${name}-${role}-public`,
        {
          name: `${name}-${role}-public`,
          networkId: args.publicNetwork.networkId,
          fixedIps: [{ subnetId: args.publicNetwork.subnetId, ipAddress: pub.lbAddresses[i] }],
          portSecurityEnabled: true,
          securityGroupIds: groups.for("public", role),
          allowedAddressPairs: publicPairs.map((ipAddress) => ({ ipAddress })),
        },
        { parent: this },
      );
      const privatePort = new openstack.networking.Port(
        `${name}-${role}-private`,
        {
          name: `${name}-${role}-private`,
          networkId: priv.networkId,
          fixedIps: [{ subnetId: priv.subnetId, ipAddress: spec.network.lbAddresses[i] }],
          portSecurityEnabled: true,
          securityGroupIds: groups.for("private", role),
          allowedAddressPairs: privatePairs.map((ipAddress) => ({ ipAddress })),
        },
        { parent: this },
      );
      return {
        publicPortId: publicPort.id,
        privatePortId: privatePort.id,
        publicMac: publicPort.macAddress,
        privateMac: privatePort.macAddress,
      };
    };
    this.lbPorts = { primary: lbPortsOf("primary", 0), secondary: lbPortsOf("secondary", 1) };

    const vipPort = (
      vip: VirtualAddress,
      side: "public" | "private",
      networkId: pulumi.Input<string>,
      subnetId: pulumi.Input<string>,
    ) =>
      new openstack.networking.Port(
        `${name}-vip-${slug(vip.address)}`,
        {
          name: `${name}-vip-${slug(vip.address)}`,
          description: `edgepair ${spec.clusterName}: ${side} VIP ${vip.address}, held by the VRRP MASTER`,
          networkId,
          fixedIps: [{ subnetId, ipAddress: vip.address }],
          portSecurityEnabled: true,
          // the LB ports' groups for this network (as Octavia does for its VIP ports): however a backend treats an
          // unbound port that others hold through address pairs, it never opens more than the LBs themselves
          securityGroupIds: groups.for(side),
        },
        { parent: this },
      );
    privateVips.forEach((v) => vipPort(v, "private", priv.networkId, priv.subnetId));

    // Floating IPs are IPv4 only in Neutron; an IPv6 public VIP is routed to its VIP port as it is.
    const bindings = publicVips
      .map((v) => {
        const port = vipPort(v, "public", args.publicNetwork.networkId, args.publicNetwork.subnetId);
        if (v.family !== 4) return undefined;
        // Allocation and association are separate resources: the address (what DNS points at) survives a
        // replacement of the VIP port, which only re-associates it.
        const fip = new openstack.networking.FloatingIp(
          `${name}-fip-${slug(v.address)}`,
          {
            pool: args.externalNetworkName,
            description: `edgepair ${spec.clusterName}: floating IP of ${v.address}`,
          },
          { parent: this },
        );
        new openstack.networking.FloatingIpAssociate(
          `${name}-fip-${slug(v.address)}-association`,
          {
            floatingIp: fip.address,
            portId: port.id,
            fixedIp: v.address,
          },
          { parent: this },
        );
        return fip.address.apply((floatingIp): FloatingIpBinding => ({ vip: v.address, floatingIp }));
      })
      .filter((b): b is pulumi.Output<FloatingIpBinding> => b !== undefined);
    this.floatingIps = pulumi.all(bindings);

    const group = new openstack.compute.ServerGroup(
      `${name}-group`,
      {
        name: `${name}-group`,
        policies: [args.antiAffinity === "soft" ? "soft-anti-affinity" : "anti-affinity"],
      },
      { parent: this },
    );
    this.serverGroupId = group.id;

    this.registerOutputs({
      privateNetworkId: this.privateNetworkId,
      privateSubnetId: this.privateSubnetId,
      lbPorts: this.lbPorts,
      serverGroupId: this.serverGroupId,
      floatingIps: this.floatingIps,
      securityGroupIds: this.securityGroupIds,
    });
  }

  private privateNetwork(
    name: string,
    args: OpenStackNetworkingArgs,
  ): { networkId: pulumi.Output<string>; subnetId: pulumi.Output<string> } {
    const choice = args.privateNetwork;
    if ("existing" in choice) {
      return { networkId: pulumi.output(choice.existing.networkId), subnetId: pulumi.output(choice.existing.subnetId) };
    }
    const { spec } = args;
    const network = new openstack.networking.Network(
      `${name}-private`,
      {
        name: `${name}-private`,
        portSecurityEnabled: true,
      },
      { parent: this },
    );
    const subnet = new openstack.networking.Subnet(
      `${name}-private`,
      {
        name: `${name}-private`,
        networkId: network.id,
        ipVersion: 4,
        cidr: spec.network.cidr,
        // DHCP hands the gateway VIP to the cluster nodes as their router: egress through the active LB.
        gatewayIp: spec.network.gateway,
        enableDhcp: true,
        allocationPools: allocationPools(spec),
        ...(choice.create.dnsNameservers ? { dnsNameservers: choice.create.dnsNameservers } : {}),
      },
      { parent: this },
    );
    return { networkId: network.id, subnetId: subnet.id };
  }
}

/**
 * DHCP ranges of the cluster network: every host address except the gateway, the LB addresses, every private VIP and
 * every private Service pool, so DHCP never hands out an address a port of ours is about to claim or the agent is
 * about to give a Service. Pure.
 */
export function allocationPools(spec: ResolvedSpec): { start: string; end: string }[] {
  const parsed = parseCidr(spec.network.cidr);
  if (!parsed.ok || parsed.cidr.network.kind() !== "ipv4")
    throw new Error(`network.cidr: must be an IPv4 network, got ${spec.network.cidr}`);
  const first = toNumber(parsed.cidr.network.toString()) + 1;
  const last = toNumber(broadcastAddress(parsed.cidr).toString()) - 1;
  const reserved: { first: number; last: number }[] = [
    ...[spec.network.gateway, ...spec.network.lbAddresses, ...spec.derived.privateVips.map((v) => v.address)]
      .map(toNumber)
      .map((n) => ({ first: n, last: n })),
    ...(spec.serviceLoadBalancers?.pools ?? []).filter((p) => p.type === "private").flatMap((p) => p.ranges),
  ]
    .map((r) => ({ first: Math.max(r.first, first), last: Math.min(r.last, last) }))
    .filter((r) => r.first <= r.last)
    .sort((a, b) => a.first - b.first);
  const pools: { start: string; end: string }[] = [];
  let next = first;
  for (const taken of [...reserved, { first: last + 1, last: last + 1 }]) {
    if (taken.first > next) pools.push({ start: fromNumber(next), end: fromNumber(taken.first - 1) });
    next = Math.max(next, taken.last + 1);
  }
  return pools;
}

function toNumber(v4: string): number {
  return ipaddr.IPv4.parse(v4)
    .toByteArray()
    .reduce((n, b) => n * 256 + b, 0);
}

function fromNumber(n: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join(".");
}

/** An address as a resource-name part: 203.0.113.100 -> 203-0-113-100, 2001:db8::1 -> 2001-db8--1. */
function slug(address: string): string {
  return address.replace(/[.:]/g, "-");
}
