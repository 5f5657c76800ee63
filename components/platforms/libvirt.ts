/**
 * The pair on libvirt: the provider's networks (the public one routes the floating IPs; with spec.syncNetwork an
 * isolated link of the two LBs), a disk, a NoCloud seed and a domain per LB. MACs derive from the stack and VM names, so host facts, user-data and rendered views are
 * all known at preview.
 */
import * as pulumi from "@pulumi/pulumi";
import { renderMetaData } from "../../cloud-init";
import { deriveMac } from "../../spec/mac";
import { FloatingIps } from "../floating-ips";
import { LibvirtLbVm } from "../libvirt/lb-vm";
import { LibvirtNetworks } from "../libvirt/networks";
import type { ReadyGate } from "../../providers/edgepair/ready-gate";
import type { DomainType } from "../../providers/libvirt";
import { hostFacts, readyGateAfter, type PlatformContext, type PlatformPair } from "./types";

export interface LibvirtPlatformArgs {
  uri?: pulumi.Input<string>;
  pool: pulumi.Input<string>;
  /** The appliance's qcow2 (bootc-image-builder output) as a volume in basePool. */
  baseImage: pulumi.Input<string>;
  basePool?: pulumi.Input<string>;
  vcpu?: pulumi.Input<number>;
  memoryMiB?: pulumi.Input<number>;
  /** Default auto: kvm when libvirt reports KVM, else qemu (TCG). */
  domainType?: pulumi.Input<DomainType>;
  privateDhcp?: { start: string; end: string };
}

export function deployLibvirt(ctx: PlatformContext, lv: LibvirtPlatformArgs): PlatformPair {
  const { name, stack, spec, parent } = ctx;
  const uri = lv.uri ? { uri: lv.uri } : {};
  const hosts = ctx.lbs.map((lb) =>
    hostFacts(lb, ctx.interfaceNames, {
      public: deriveMac(stack, lb.vm, "public"),
      private: deriveMac(stack, lb.vm, "private"),
      ...(spec.syncNetwork ? { sync: deriveMac(stack, lb.vm, "sync") } : {}),
    }),
  );
  const networks = new LibvirtNetworks(
    `${name}-net`,
    { spec, ...uri, ...(lv.privateDhcp ? { privateDhcp: lv.privateDhcp } : {}) },
    { parent },
  );
  const vms: LibvirtLbVm[] = [];
  const gates: ReadyGate[] = [];
  ctx.lbs.forEach((lb, i) => {
    const host = hosts[i]!;
    const previous = gates[i - 1];
    vms.push(
      new LibvirtLbVm(
        lb.vm,
        {
          ...uri,
          pool: lv.pool,
          baseImage: lv.baseImage,
          ...(lv.basePool ? { basePool: lv.basePool } : {}),
          vcpu: lv.vcpu ?? 2,
          memoryMiB: lv.memoryMiB ?? 2048,
          ...(lv.domainType ? { domainType: lv.domainType } : {}),
          userData: ctx.userData(host),
          metaData: renderMetaData({ stack, vm: `lb${i + 1}`, hostname: host.hostname }),
          publicNic: { network: networks.publicNetwork.name, mac: host.publicInterface.mac },
          privateNic: { network: networks.privateNetwork.name, mac: host.privateInterface.mac },
          ...(networks.syncNetwork && host.syncInterface
            ? { syncNic: { network: networks.syncNetwork.name, mac: host.syncInterface.mac } }
            : {}),
          // Never both at once: the second LB's changes (a replacement included) wait until the first serves again.
        },
        { parent, ...(previous ? { dependsOn: [previous] } : {}) },
      ),
    );
    const vm = vms[i]!;
    gates.push(readyGateAfter(ctx, i, vm, vm.domain.id));
  });
  const floatingIps = new FloatingIps(`${name}-floating-ips`, { routed: { spec } }, { parent });
  return { hosts, vms, floatingIps, sshAddresses: [...spec.platform.publicNetwork.lbAddresses] };
}
