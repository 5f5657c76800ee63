/**
 * Finding one pair's parts in a stack. The LB VMs are the libvirt Domains under an `edgepair:index:LbVm` and the
 * Nova instances under an `edgepair:index:OpenStackLbServer`; a pair is everything under one EdgePair (a stack
 * may hold several pairs, or compose the VM components without EdgePair: then the VMs' common parent is the
 * pair). Links between resources (a port's network, an instance's ports, a floating IP's port) are followed through
 * the engine's property dependencies, which are known in a preview even where the IDs are not.
 */
import type { PolicyResource } from "@pulumi/policy";
import { TYPES } from "./types";

export function ancestor(r: PolicyResource, type: string): PolicyResource | undefined {
  for (let p = r.parent, depth = 0; p && depth < 64; p = p.parent, depth++) if (p.type === type) return p;
  return undefined;
}

export interface LbVm {
  platform: "libvirt" | "openstack";
  resource: PolicyResource;
  /** The URN that names the pair: the EdgePair's, else the VM component's parent's, else the stack. */
  pair: string;
}

export function lbVms(resources: readonly PolicyResource[]): LbVm[] {
  const out: LbVm[] = [];
  for (const r of resources) {
    let platform: LbVm["platform"] | undefined;
    let component: PolicyResource | undefined;
    if (r.type === TYPES.libvirtDomain) {
      platform = "libvirt";
      component = ancestor(r, TYPES.libvirtLbVm);
    } else if (r.type === TYPES.instance) {
      platform = "openstack";
      component = ancestor(r, TYPES.openstackLbServer);
    }
    if (!platform || !component) continue;
    const pair = ancestor(r, TYPES.edgePair)?.urn ?? component.parent?.urn ?? "stack";
    out.push({ platform, resource: r, pair });
  }
  return out;
}

export function groupBy<T>(items: readonly T[], key: (t: T) => string): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const i of items) m.set(key(i), [...(m.get(key(i)) ?? []), i]);
  return m;
}

/** The resources a property's value came from (the engine's propertyDependencies). */
export function dependenciesOf(r: PolicyResource, property: string, type?: string): PolicyResource[] {
  const deps = r.propertyDependencies[property] ?? [];
  return type ? deps.filter((d) => d.type === type) : [...deps];
}

/** "name (type)" for messages: what a reviewer finds in the preview. */
export function label(r: { name: string; type: string }): string {
  return `${r.name} (${r.type})`;
}

/** The resource whose URN names the pair, for messages. */
export function pairName(pair: string): string {
  return pair === "stack" ? "the stack" : (pair.split("::").pop() ?? pair);
}
