/**
 * The seam between EdgePair and a platform. A platform builds what differs per cloud — the networks, the two VMs
 * and where the public addresses come from — and returns the host facts it settled on; EdgePair keeps what every
 * platform shares (spec, image, secrets, user-data composition, rendered views, cluster access, secret delivery).
 */
import * as pulumi from "@pulumi/pulumi";
import { ReadyGate } from "../../providers/edgepair/ready-gate";
import { HAPROXY_MONITOR_URI } from "../../render/haproxy";
import type { HostFacts, ResolvedSpec, Role } from "../../spec/types";
import type { FloatingIps } from "../floating-ips";

/**
 * A value known while the program runs (libvirt's MACs, derived from names) or only once a resource exists (a
 * Neutron port's MAC). Keeping the plain case plain keeps it visible at preview and in tests without an apply.
 */
export type Known<T> = T | pulumi.Output<T>;

export function mapKnown<T, U>(value: Known<T>, f: (t: T) => U): Known<U> {
  return pulumi.Output.isInstance(value) ? ((value as pulumi.Output<T>).apply(f) as pulumi.Output<U>) : f(value as T);
}

/** One LB as EdgePair plans it, before any platform resource exists. */
export interface LbPlan {
  role: Role;
  /** The VM's resource name (`<pair>-lb1`); libvirt derives the NICs' MACs from it, so it must never change. */
  vm: string;
  hostname: string;
}

export interface InterfaceNames {
  public: string;
  private: string;
  /** the sync link's NIC (spec.syncNetwork) */
  sync?: string;
}

export interface PlatformContext {
  name: string;
  stack: string;
  spec: ResolvedSpec;
  lbs: LbPlan[];
  interfaceNames: InterfaceNames;
  parent: pulumi.ComponentResource;
  /** Whether and how long the next LB waits for the previous one to serve again (ready-gate.ts). */
  readiness: { enabled: boolean; timeoutSeconds: number };
  /** Secret: the #cloud-config of the LB with these facts (EdgePair composes it; the platform only delivers it). */
  userData(host: Known<HostFacts>): pulumi.Output<string>;
}

export interface PlatformPair {
  /** Per LB, in plan order. */
  hosts: Known<HostFacts>[];
  /** Per LB, in plan order; the second depends on the first. */
  vms: pulumi.Resource[];
  floatingIps: FloatingIps;
  /** Per LB: the address SecretDelivery reaches it on over SSH. */
  sshAddresses: string[];
}

export function hostFacts(
  lb: LbPlan,
  names: InterfaceNames,
  macs: { public: string; private: string; sync?: string },
): HostFacts {
  return {
    hostname: lb.hostname,
    role: lb.role,
    publicInterface: { name: names.public, mac: macs.public },
    privateInterface: { name: names.private, mac: macs.private },
    ...(macs.sync !== undefined ? { syncInterface: { name: names.sync ?? "enp3s0", mac: macs.sync } } : {}),
  };
}

/**
 * The gate after LB `i`: it waits, whenever that VM is created or replaced, until the LB's HAProxy answers on its
 * monitor URI (private address, metrics port); the next VM depends on it, so the two are never down together.
 */
export function readyGateAfter(
  ctx: PlatformContext,
  i: number,
  vm: pulumi.Resource,
  vmId: pulumi.Input<string>,
): ReadyGate {
  const lb = ctx.lbs[i]!;
  const address = ctx.spec.network.lbAddresses[i]!;
  return new ReadyGate(
    `${lb.vm}-ready`,
    {
      url: `http://${address}:${ctx.spec.metrics.port}${HAPROXY_MONITOR_URI}`,
      after: vmId,
      enabled: ctx.readiness.enabled,
      timeoutSeconds: ctx.readiness.timeoutSeconds,
    },
    { parent: ctx.parent, dependsOn: [vm] },
  );
}
