/**
 * The two LB VMs of a pair must not share what one failure takes down. OpenStack: both instances carry a
 * scheduler hint to one server group whose policy is anti-affinity (Nova then never places them on one compute
 * host). libvirt (one host by nature): distinct domain names, NIC MACs, disks and seeds, so neither VM can boot
 * the other's disk, answer for the other's MAC or be redefined over it.
 */
import type { PolicyResource, ReportViolation, StackValidationPolicy } from "@pulumi/policy";
import { dependenciesOf, groupBy, label, lbVms, pairName, type LbVm } from "./lib/stack";
import { TYPES } from "./lib/types";
import { isRecord, known, list, record, str, strings } from "./lib/values";

const ANTI_AFFINITY = ["anti-affinity", "soft-anti-affinity"];

/** `what` of each VM, reporting every value that more than one VM (or one VM twice) uses. */
function reportShared(
  vms: LbVm[],
  what: string,
  valuesOf: (r: PolicyResource) => string[],
  report: ReportViolation,
): void {
  const users = new Map<string, string[]>();
  for (const vm of vms)
    for (const v of valuesOf(vm.resource)) users.set(v, [...(users.get(v) ?? []), vm.resource.name]);
  for (const [v, names] of users) {
    // sorted: the engine hands resources over in no fixed order, and a reviewer's message must not flap
    if (names.length > 1)
      report(
        `${what} ${v} is used ${names.length} times, by ${[...names].sort().join(" and ")}: each LB VM needs its own`,
        vms[0]?.resource.urn,
      );
  }
}

const volumeRef = (v: unknown): string | undefined => {
  const pool = str(v, "pool");
  const volume = str(v, "volume");
  return pool !== undefined && volume !== undefined ? `${pool}/${volume}` : undefined;
};

function checkLibvirt(vms: LbVm[], report: ReportViolation): void {
  reportShared(vms, "libvirt domain name", (r) => [str(r.props, "name")].flatMap((n) => (n ? [n] : [])), report);
  reportShared(
    vms,
    "NIC MAC",
    (r) => list(r.props, "nics").flatMap((n) => [str(n, "mac")?.toLowerCase()].flatMap((m) => (m ? [m] : []))),
    report,
  );
  reportShared(
    vms,
    "disk volume",
    (r) => list(r.props, "disks").flatMap((d) => [volumeRef(d)].flatMap((v) => (v ? [v] : []))),
    report,
  );
  reportShared(
    vms,
    "cloud-init seed volume",
    (r) => [volumeRef(record(r.props, "cloudInit"))].flatMap((v) => (v ? [v] : [])),
    report,
  );
}

/**
 * The server group an instance is hinted to: the ServerGroup resource in the stack (through the property
 * dependency, known even while its ID is not), else the group ID given as a value; undefined without any hint.
 */
function groupOf(r: PolicyResource): { resource?: PolicyResource; id?: string } | undefined {
  const resource = dependenciesOf(r, "schedulerHints", TYPES.serverGroup)[0];
  let id: string | undefined;
  let unknownId = false;
  for (const h of list(r.props, "schedulerHints")) {
    // null: no group in this hint; undefined: a group whose value is not known yet
    const g = known(() => (isRecord(h) ? (h.group ?? null) : null));
    if (g === undefined) unknownId = true;
    else if (typeof g === "string" && g !== "") id = g;
  }
  if (!resource && id === undefined && !unknownId) return undefined;
  return { ...(resource ? { resource } : {}), ...(id !== undefined ? { id } : {}) };
}

function checkOpenStack(vms: LbVm[], report: ReportViolation): void {
  reportShared(vms, "instance name", (r) => [str(r.props, "name")].flatMap((n) => (n ? [n] : [])), report);
  const keys = new Set<string>();
  for (const vm of vms) {
    const group = groupOf(vm.resource);
    if (!group) {
      report(
        `${label(vm.resource)} has no scheduler hint to a server group: Nova may place both LBs on one compute host`,
        vm.resource.urn,
      );
      continue;
    }
    if (group.resource) {
      const policies = strings(group.resource.props, "policies");
      if (!policies.some((p) => ANTI_AFFINITY.includes(p))) {
        report(
          `${label(vm.resource)} is in server group ${group.resource.name} whose policies are [${policies.join(", ")}], not anti-affinity: both LBs may land on one compute host`,
          vm.resource.urn,
        );
      }
    }
    keys.add(group.resource?.urn ?? group.id ?? "?");
  }
  if (keys.size > 1)
    report(
      `the LB instances of ${pairName(vms[0]!.pair)} are in ${keys.size} different server groups: anti-affinity only holds within one group`,
      vms[0]?.resource.urn,
    );
}

export const lbVmsSpread: StackValidationPolicy = {
  name: "lb-vms-spread",
  description:
    "The two LB VMs of a pair never share a failure domain: on OpenStack both are in one server group with an anti-affinity policy; on libvirt their domain names, NIC MACs, disks and seeds are distinct.",
  enforcementLevel: "mandatory",
  severity: "high",
  validateStack: (args, report) => {
    for (const [pair, vms] of groupBy(lbVms(args.resources), (v) => v.pair)) {
      if (vms.length < 2) {
        report(
          `${pairName(pair)} has ${vms.length} LB VM (${vms.map((v) => v.resource.name).join(", ")}): a pair needs two`,
          vms[0]?.resource.urn,
        );
        continue;
      }
      const byPlatform = groupBy(vms, (v) => v.platform);
      checkLibvirt(byPlatform.get("libvirt") ?? [], report);
      checkOpenStack(byPlatform.get("openstack") ?? [], report);
    }
  },
};
