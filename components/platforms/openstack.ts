/**
 * The pair on OpenStack: OpenStackNetworking (ports, VIP ports, floating IPs, security groups, server group) and
 * a Nova server per LB. Neutron chooses the ports' MACs, so the host facts, the user-data and the rendered views
 * wait for the ports (unknown in the very first preview, known in every later one). Nova's config drive carries
 * its own meta-data, whose instance-id (the server's UUID) changes only when the server is replaced.
 */
import * as pulumi from "@pulumi/pulumi";
import type { HostFacts } from "../../spec/types";
import { FloatingIps } from "../floating-ips";
import {
  OpenStackLbServer,
  OpenStackNetworking,
  type OpenStackImage,
  type OpenStackPrivateNetwork,
} from "../openstack";
import type { ReadyGate } from "../../providers/edgepair/ready-gate";
import { hostFacts, readyGateAfter, type PlatformContext, type PlatformPair } from "./types";

export type OpenStackPlatformArgs = OpenStackImage & {
  /** The cluster's network: an existing network and subnet (spec.network.cidr), or one created for it. */
  privateNetwork: OpenStackPrivateNetwork;
  /** The existing network whose subnet is spec.platform.publicNetwork.cidr. */
  publicNetwork: { networkId: pulumi.Input<string>; subnetId: pulumi.Input<string> };
  /** The external network the floating IPs are allocated from. */
  externalNetworkName: pulumi.Input<string>;
  flavorName: pulumi.Input<string>;
  keyPair?: pulumi.Input<string>;
  availabilityZone?: pulumi.Input<string>;
  /** Default "hard": Nova refuses to place both LBs on one compute host. */
  antiAffinity?: "hard" | "soft";
};

export function deployOpenStack(ctx: PlatformContext, os: OpenStackPlatformArgs): PlatformPair {
  const { name, spec, parent } = ctx;
  if (spec.syncNetwork) {
    // Neutron's port security already drops a port's packets from an address that is not its own, so a cluster VM
    // cannot forge the peer's; the link of the LBs' own is built on libvirt, where the bridge lets anything through.
    throw new pulumi.ResourceError(
      "syncNetwork: not available on platform openstack yet (port security already stops a cluster VM from forging the peer's address); remove it",
      parent,
    );
  }
  const net = new OpenStackNetworking(
    `${name}-net`,
    {
      spec,
      privateNetwork: os.privateNetwork,
      publicNetwork: os.publicNetwork,
      externalNetworkName: os.externalNetworkName,
      ...(os.antiAffinity ? { antiAffinity: os.antiAffinity } : {}),
    },
    { parent },
  );
  const image: OpenStackImage = os.imageId !== undefined ? { imageId: os.imageId } : { imageName: os.imageName };
  const hosts = ctx.lbs.map((lb): pulumi.Output<HostFacts> => {
    const ports = net.lbPorts[lb.role];
    // host facts require lowercase MACs; Neutron reports them so, but the keyfiles must match whatever it says
    return pulumi
      .all([ports.publicMac, ports.privateMac])
      .apply(([pub, priv]) =>
        hostFacts(lb, ctx.interfaceNames, { public: pub.toLowerCase(), private: priv.toLowerCase() }),
      );
  });
  const vms: OpenStackLbServer[] = [];
  const gates: ReadyGate[] = [];
  ctx.lbs.forEach((lb, i) => {
    const ports = net.lbPorts[lb.role];
    const previous = gates[i - 1];
    vms.push(
      new OpenStackLbServer(
        lb.vm,
        {
          ...image,
          flavorName: os.flavorName,
          userData: ctx.userData(hosts[i]!),
          // public first, private second: the order the host facts and the image's NIC names assume
          ports: { public: ports.publicPortId, private: ports.privatePortId },
          serverGroupId: net.serverGroupId,
          ...(os.availabilityZone !== undefined ? { availabilityZone: os.availabilityZone } : {}),
          ...(os.keyPair !== undefined ? { keyPair: os.keyPair } : {}),
          // Never both at once: the second LB's changes (a replacement included) wait until the first serves again.
        },
        { parent, ...(previous ? { dependsOn: [previous] } : {}) },
      ),
    );
    const vm = vms[i]!;
    gates.push(readyGateAfter(ctx, i, vm, vm.id));
  });
  const floatingIps = new FloatingIps(`${name}-floating-ips`, { nat: { bindings: net.floatingIps } }, { parent });
  // The public security group opens no SSH at all (it cannot tell an LB's own address from a VIP, and SSH must never
  // reach a VIP); the private one opens it to the cluster network, where the stack's runner must be to deliver tokens.
  return { hosts, vms, floatingIps, sshAddresses: [...spec.network.lbAddresses] };
}
