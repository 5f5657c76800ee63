/**
 * Networks on libvirt: the cluster's private network (isolated: the LBs are its only way out) and the public
 * network, a NAT network whose host side is the public gateway and which routes every floating IP, and every public
 * Service pool, to the public next hop the active LB holds (DESIGN.md "Routed floating IPs": no API call on a
 * failover).
 */
import * as pulumi from "@pulumi/pulumi";
import { Network } from "../../providers/libvirt";
import { poolCidrs } from "../../spec/pools";
import { syncHostAddress } from "../../spec/sync-network";
import type { ResolvedSpec } from "../../spec/types";

export interface LibvirtNetworksArgs {
  spec: ResolvedSpec;
  uri?: pulumi.Input<string>;
  /** DHCP on the private network for cluster nodes (router option = the gateway VIP). Default: none. */
  privateDhcp?: { start: string; end: string };
}

export class LibvirtNetworks extends pulumi.ComponentResource {
  public readonly privateNetwork: Network;
  public readonly publicNetwork: Network;
  /** With spec.syncNetwork: the LBs' own link (isolated; no DHCP, no DNS), VRRP and conntrackd's sync only. */
  public readonly syncNetwork?: Network;

  constructor(name: string, args: LibvirtNetworksArgs, opts?: pulumi.ComponentResourceOptions) {
    super("edgepair:index:LibvirtNetworks", name, {}, opts);
    const { spec } = args;
    const pub = spec.platform.publicNetwork;
    const nextHop = pub.nextHop;
    if (!nextHop) throw new Error("platform.publicNetwork.nextHop: required on platform libvirt (routed floating IPs)");
    this.privateNetwork = new Network(
      `${name}-private`,
      {
        ...(args.uri ? { uri: args.uri } : {}),
        mode: "isolated",
        cidr: spec.network.cidr,
        dns: false,
        ...(args.privateDhcp ? { dhcp: { ...args.privateDhcp, router: spec.network.gateway } } : {}),
      },
      { parent: this },
    );
    this.publicNetwork = new Network(
      `${name}-public`,
      {
        ...(args.uri ? { uri: args.uri } : {}),
        mode: "nat",
        cidr: pub.cidr,
        hostAddress: pub.gateway,
        // public Service pools are routed exactly like the floating IPs: the next hop moves, the routes never do
        routes: [
          ...spec.derived.publicVips.filter((v) => v.family === 4).map((v) => `${v.address}/32`),
          ...poolCidrs(spec, "public"),
        ].map((cidr) => ({ cidr, gateway: nextHop })),
      },
      { parent: this },
    );
    if (spec.syncNetwork) {
      this.syncNetwork = new Network(
        `${name}-sync`,
        {
          ...(args.uri ? { uri: args.uri } : {}),
          mode: "isolated",
          cidr: spec.syncNetwork.cidr,
          // libvirt gives the host's bridge an address; the spec rules keep one free beside the two LBs'
          hostAddress: syncHostAddress(spec.syncNetwork),
          dns: false,
        },
        { parent: this },
      );
    }
    this.registerOutputs({
      privateNetwork: this.privateNetwork.name,
      publicNetwork: this.publicNetwork.name,
      ...(this.syncNetwork ? { syncNetwork: this.syncNetwork.name } : {}),
    });
  }
}
