/**
 * FloatingIps: the one place that records how the pair's public addresses reach it (DESIGN.md "Public addresses").
 *
 * - routed (libvirt lab, clouds that route an address to a VM): the public network routes each public IPv4 VIP to
 *   the next hop the active LB holds. Nothing is created here: the route belongs to the network
 *   (LibvirtNetworks), and a failover moves only the next hop, never calls an API.
 * - nat (OpenStack Neutron): each public IPv4 VIP is the fixed IP of a VIP port whose floating IP
 *   OpenStackNetworking associated once. The VM never sees the floating IP; VRRP moves the VIP behind it.
 *
 * Public IPv6 VIPs have no floating IP on either platform: they are reached as they are.
 */
import * as pulumi from "@pulumi/pulumi";
import type { ResolvedSpec } from "../spec/types";
import type { FloatingIpBinding } from "./openstack";

export interface RoutedFloatingIp {
  /** The public VIP, the address clients use. */
  address: string;
  /** The public-side VRRP address the platform routes it to. */
  routedTo: string;
}

export type PublicAddress = RoutedFloatingIp | FloatingIpBinding;

export type FloatingIpsArgs =
  | { routed: { spec: ResolvedSpec }; nat?: never }
  | { nat: { bindings: pulumi.Input<FloatingIpBinding[]> }; routed?: never };

/** Each public IPv4 VIP with the next hop it is routed to. Pure. */
export function routedFloatingIps(spec: ResolvedSpec): RoutedFloatingIp[] {
  const nextHop = spec.platform.publicNetwork.nextHop;
  if (!nextHop)
    throw new Error(
      `platform.publicNetwork.nextHop: required for routed floating IPs (platform ${spec.platform.type} has none)`,
    );
  return spec.derived.publicVips.filter((v) => v.family === 4).map((v) => ({ address: v.address, routedTo: nextHop }));
}

export class FloatingIps extends pulumi.ComponentResource {
  public readonly kind: "routed" | "nat";
  /** routed: {address, routedTo} per public IPv4 VIP; nat: {vip, floatingIp} per public IPv4 VIP. */
  public readonly addresses: pulumi.Output<PublicAddress[]>;

  constructor(name: string, args: FloatingIpsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("edgepair:index:FloatingIps", name, {}, opts);
    if (args.routed) {
      this.kind = "routed";
      this.addresses = pulumi.output(routedFloatingIps(args.routed.spec));
    } else if (args.nat) {
      this.kind = "nat";
      this.addresses = pulumi.output(args.nat.bindings);
    } else {
      throw new Error("FloatingIps: needs exactly one of routed, nat");
    }
    this.registerOutputs({ kind: this.kind, addresses: this.addresses });
  }
}
