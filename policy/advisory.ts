/**
 * Recommendations: advisory by default (the preview shows them, the update goes on); each can be raised to
 * mandatory or disabled in the pack's config. A lab legitimately breaks them (small VMs, no ready gate).
 */
import type { ResourceValidationPolicy } from "@pulumi/policy";
import { TYPES } from "./lib/types";
import { known, num, strings, withDefaults } from "./lib/values";

/** Resource-level policies see the URN, whose type part lists every ancestor's type. */
const under = (urn: string, componentType: string) =>
  (urn.split("::")[2] ?? "").split("$").slice(0, -1).includes(componentType);
const EDGEPAIR_TYPE_PREFIX = "edgepair:index:";
const underEdgePair = (urn: string) =>
  (urn.split("::")[2] ?? "")
    .split("$")
    .slice(0, -1)
    .some((t) => t.startsWith(EDGEPAIR_TYPE_PREFIX));

export const hardAntiAffinity: ResourceValidationPolicy = {
  name: "server-group-hard-anti-affinity",
  description:
    "The pair's OpenStack server group uses hard anti-affinity. soft-anti-affinity lets Nova put both LBs on one compute host when it is short of hosts, and that host's failure then takes the whole pair.",
  enforcementLevel: "advisory",
  severity: "medium",
  validateResource: (args, report) => {
    if (args.type !== TYPES.serverGroup || !underEdgePair(args.urn)) return;
    const policies = strings(args.props, "policies");
    if (policies.includes("soft-anti-affinity"))
      report(`server group policies are [${policies.join(", ")}]: prefer anti-affinity (antiAffinity: "hard")`);
  },
};

export const readyGateEnabled: ResourceValidationPolicy = {
  name: "second-lb-waits-for-first",
  description:
    "The ready gate between the two LBs is enabled: when the first LB is created or replaced, the second waits until the first serves again, so an update never takes both down. Disable it only where the VMs boot nothing (a lab).",
  enforcementLevel: "advisory",
  severity: "medium",
  validateResource: (args, report) => {
    if (args.type !== TYPES.readyGate) return;
    if (known(() => args.props.enabled) === false)
      report(`the gate is disabled: the next LB will not wait for this one to serve again`);
  },
};

export interface SizingConfig {
  minVcpus: number;
  minMemoryMiB: number;
}

export const SIZING_DEFAULTS: SizingConfig = { minVcpus: 2, minMemoryMiB: 2048 };

export const lbVmSizing: ResourceValidationPolicy = {
  name: "lb-vm-sizing",
  description:
    "Each libvirt LB VM has at least 2 vCPUs and 2048 MiB (configurable: minVcpus, minMemoryMiB): HAProxy, keepalived, conntrackd and the agent must keep up with a failover's burst of connections.",
  enforcementLevel: "advisory",
  severity: "low",
  configSchema: {
    properties: {
      minVcpus: { type: "integer", minimum: 1, default: SIZING_DEFAULTS.minVcpus },
      minMemoryMiB: { type: "integer", minimum: 256, default: SIZING_DEFAULTS.minMemoryMiB },
    },
  },
  validateResource: (args, report) => {
    if (args.type !== TYPES.libvirtDomain || !under(args.urn, TYPES.libvirtLbVm)) return;
    const cfg = withDefaults(args.getConfig<Partial<SizingConfig>>(), SIZING_DEFAULTS);
    const vcpu = num(args.props, "vcpu");
    const memory = num(args.props, "memoryMiB");
    if (vcpu !== undefined && vcpu < cfg.minVcpus) report(`vcpu ${vcpu} is below ${cfg.minVcpus}`);
    if (memory !== undefined && memory < cfg.minMemoryMiB) report(`memoryMiB ${memory} is below ${cfg.minMemoryMiB}`);
  },
};

export const firstBootInputsCreateOnly: ResourceValidationPolicy = {
  name: "first-boot-inputs-create-only",
  description:
    "An LB's first-boot data (cloud-init user-data on the libvirt seed or the Nova instance) is create-only (ignoreChanges): day-2 changes reach the LBs through the LoadBalancer resource, and a changed user-data would otherwise replace both VMs.",
  enforcementLevel: "advisory",
  severity: "medium",
  validateResource: (args, report) => {
    const seed = args.type === TYPES.libvirtCloudInitDisk && under(args.urn, TYPES.libvirtLbVm);
    const server = args.type === TYPES.instance && under(args.urn, TYPES.openstackLbServer);
    if (!seed && !server) return;
    if (!args.opts.ignoreChanges.includes("userData"))
      report(`userData is not in ignoreChanges: a spec change would replace this LB`);
  },
};
