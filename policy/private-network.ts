/**
 * VRRP, conntrackd sync and the VIPs only work when both LBs sit on the same networks, each with an address of
 * its own: a VIP cannot move to an LB on another network, and two LBs with one address fight over it. Judged per
 * pair on what the platform registers: on OpenStack the instances' ports (their network and fixed IPs, followed
 * through property dependencies), on libvirt the domains' NIC networks and the addresses in the LBs' rendered
 * NetworkManager keyfiles (libvirt itself hands out no addresses to the LBs).
 */
import type { PolicyResource, ReportViolation, StackValidationPolicy } from "@pulumi/policy";
import { ancestor, dependenciesOf, groupBy, label, lbVms, pairName, type LbVm } from "./lib/stack";
import { TYPES } from "./lib/types";
import { list, str } from "./lib/values";
import { nmConnections, viewFiles } from "./lib/view-files";

/** Per VM: network identity -> the addresses it holds there (empty when not known). */
type Attachments = Map<string, string[]>;

function libvirtAttachments(domain: PolicyResource): Attachments {
  const out: Attachments = new Map();
  for (const nic of list(domain.props, "nics")) {
    const network = str(nic, "network");
    if (network !== undefined) out.set(`libvirt network ${network}`, []);
  }
  return out;
}

/**
 * A port's network: the Network resource its ID came from (the same in a preview, where the ID is unknown, and
 * in an update), else the ID given as a value (an existing network).
 */
function portNetwork(port: PolicyResource): string | undefined {
  const dep = dependenciesOf(port, "networkId")[0];
  if (dep) return `network ${dep.name}`;
  const id = str(port.props, "networkId");
  return id !== undefined ? `network ${id}` : undefined;
}

function openstackAttachments(instance: PolicyResource): Attachments {
  const out: Attachments = new Map();
  for (const port of dependenciesOf(instance, "networks", TYPES.port)) {
    const network = portNetwork(port);
    if (network === undefined) continue;
    const addresses = list(port.props, "fixedIps").flatMap((f) => [str(f, "ipAddress")].flatMap((a) => (a ? [a] : [])));
    out.set(network, [...(out.get(network) ?? []), ...addresses]);
  }
  return out;
}

/** libvirt: the rendered views of the pair carry each LB's addresses per connection (private, public). */
function viewAddresses(resources: readonly PolicyResource[], pair: string): Map<string, Map<string, string[]>> {
  const perLb = new Map<string, Map<string, string[]>>();
  for (const view of resources) {
    if (view.type !== TYPES.renderedView) continue;
    if ((ancestor(view, TYPES.edgePair)?.urn ?? "stack") !== pair) continue;
    const lb = str(view.props, "lb") ?? view.name;
    const conns = new Map<string, string[]>();
    for (const c of nmConnections(viewFiles(view.props))) if (c.type !== "dummy") conns.set(c.id, c.addresses);
    perLb.set(lb, conns);
  }
  return perLb;
}

function sameNetworks(vms: LbVm[], attachments: Attachments[], report: ReportViolation): void {
  const [a, b] = attachments;
  const [va, vb] = vms;
  if (!a || !b || !va || !vb) return;
  const onlyA = [...a.keys()].filter((n) => !b.has(n));
  const onlyB = [...b.keys()].filter((n) => !a.has(n));
  if (a.size === 0 || b.size === 0) {
    report(
      `${pairName(va.pair)}: ${a.size === 0 ? label(va.resource) : label(vb.resource)} is attached to no network the policy can see`,
      va.resource.urn,
    );
  } else if (onlyA.length > 0 || onlyB.length > 0) {
    report(
      `${pairName(va.pair)}: the LBs are not on the same networks (${va.resource.name} only on [${onlyA.join(", ")}], ${vb.resource.name} only on [${onlyB.join(", ")}]); VRRP and the VIPs need both on each`,
      va.resource.urn,
    );
  }
  for (const [network, addrs] of a) {
    const shared = addrs.filter((x) => (b.get(network) ?? []).includes(x));
    if (shared.length > 0)
      report(
        `${pairName(va.pair)}: both LBs hold ${shared.join(", ")} on ${network}; each needs its own address`,
        va.resource.urn,
      );
  }
}

function distinctViewAddresses(pair: string, views: Map<string, Map<string, string[]>>, report: ReportViolation): void {
  const [first, second] = [...views.entries()];
  if (!first || !second) return;
  for (const [conn, addrs] of first[1]) {
    const other = second[1].get(conn);
    if (other === undefined) {
      report(
        `${pairName(pair)}: ${second[0]}'s rendered view has no connection ${conn}, which ${first[0]} has: the LBs are not on the same networks`,
      );
      continue;
    }
    const shared = addrs.filter((x) => other.includes(x));
    if (shared.length > 0)
      report(
        `${pairName(pair)}: ${first[0]} and ${second[0]} both configure ${shared.join(", ")} on ${conn}; each LB needs its own address`,
      );
  }
}

export const lbsShareOnePrivateNetwork: StackValidationPolicy = {
  name: "lbs-same-networks-distinct-addresses",
  description:
    "Both LBs of a pair are attached to the same private (and public) network, each with an address of its own: VIPs can only move between LBs on one network, and a shared address breaks VRRP.",
  enforcementLevel: "mandatory",
  severity: "high",
  validateStack: (args, report) => {
    for (const [pair, vms] of groupBy(lbVms(args.resources), (v) => v.pair)) {
      if (vms.length !== 2) continue; // lb-vms-spread reports a pair that is not two VMs
      const attachments = vms.map((vm) =>
        vm.platform === "libvirt" ? libvirtAttachments(vm.resource) : openstackAttachments(vm.resource),
      );
      sameNetworks(vms, attachments, report);
      if (vms.every((vm) => vm.platform === "libvirt"))
        distinctViewAddresses(pair, viewAddresses(args.resources, pair), report);
    }
  },
};
