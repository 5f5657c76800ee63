/**
 * SSH is never reachable on a public VIP, and the machine config server (22623, OpenShift ignition with cluster
 * secrets) never from outside (DESIGN.md). Three places could break that, one policy each:
 * - Neutron security group rules: an ingress rule covering 22 or 22623/tcp from an outside prefix;
 * - floating IPs: the port a floating IP reaches must not admit 22 or 22623 at all (a floating IP makes that port
 *   reachable from the external network, whatever the LB's own firewall thinks of its addresses);
 * - firewalld on the LB (the rendered view): in a zone that holds outside addresses, SSH only to a destination that
 *   is not a VIP, 22623 only from inside.
 * "Inside" is RFC 1918 / RFC 6598 / ULA / link-local plus the `internalCidrs` config (lib/addresses.ts).
 */
import type { PolicyResource, ResourceValidationPolicy, StackValidationPolicy } from "@pulumi/policy";
import { internalRanges, isInside } from "./lib/addresses";
import { dependenciesOf, label } from "./lib/stack";
import { MACHINE_CONFIG_PORT, SSH_PORT, TYPES, VIEW_FILES } from "./lib/types";
import { num, str, withDefaults } from "./lib/values";
import {
  type FwPort,
  type FwZone,
  nmConnections,
  readKeepalived,
  readZone,
  viewFiles,
  zoneFiles,
} from "./lib/view-files";

export interface ExposureConfig {
  /** Prefixes that count as inside besides the private ranges (e.g. a routed corporate network). */
  internalCidrs: string[];
}

export const EXPOSURE_DEFAULTS: ExposureConfig = { internalCidrs: [] };

const exposureSchema = {
  properties: {
    internalCidrs: { type: "array" as const, items: { type: "string" as const }, default: [] as string[] },
  },
};

const GUARDED = [
  { port: SSH_PORT, what: "SSH (22/tcp)" },
  { port: MACHINE_CONFIG_PORT, what: "the machine config server (22623/tcp)" },
];

/** Neutron: no protocol (or "any") means every protocol; no range means every port. */
function ruleCovers(
  protocol: string | undefined,
  min: number | undefined,
  max: number | undefined,
  port: number,
): boolean {
  const anyProtocol = protocol === undefined || protocol === "" || protocol === "any";
  if (!anyProtocol && protocol !== "tcp" && protocol !== "6") return false;
  const lo = min === undefined || min === 0 ? 1 : min;
  const hi = max === undefined || max === 0 ? 65535 : max;
  return port >= lo && port <= hi;
}

interface SgRule {
  direction?: string;
  protocol?: string;
  min?: number;
  max?: number;
  remote?: string;
  remoteGroup?: string;
}

function sgRuleOf(props: unknown): SgRule {
  const min = num(props, "portRangeMin");
  const max = num(props, "portRangeMax");
  const r: SgRule = {};
  const set = <K extends keyof SgRule>(k: K, v: SgRule[K] | undefined) => {
    if (v !== undefined) r[k] = v;
  };
  set("direction", str(props, "direction"));
  set("protocol", str(props, "protocol")?.toLowerCase());
  set("min", min);
  set("max", max);
  set("remote", str(props, "remoteIpPrefix"));
  set("remoteGroup", str(props, "remoteGroupId"));
  return r;
}

/** The guarded ports an ingress rule opens, with its source; none for egress rules. */
function guardedOpenedBy(rule: SgRule): { port: number; what: string }[] {
  if (rule.direction !== undefined && rule.direction !== "ingress") return [];
  return GUARDED.filter((g) => ruleCovers(rule.protocol, rule.min, rule.max, g.port));
}

function sourceText(rule: SgRule): string {
  return rule.remote ?? (rule.remoteGroup ? `security group ${rule.remoteGroup}` : "anywhere (no remote prefix)");
}

export const securityGroupsKeepSshInside: ResourceValidationPolicy = {
  name: "security-groups-no-outside-ssh-or-mcs",
  description:
    "No Neutron security group rule admits SSH (22/tcp) or the machine config server (22623/tcp) from outside: the remote prefix must be an internal range (private ranges plus the internalCidrs config) or another security group.",
  enforcementLevel: "mandatory",
  severity: "critical",
  configSchema: exposureSchema,
  validateResource: (args, report) => {
    if (args.type !== TYPES.secGroupRule) return;
    const cfg = withDefaults(args.getConfig<Partial<ExposureConfig>>(), EXPOSURE_DEFAULTS);
    const ranges = internalRanges(cfg.internalCidrs);
    const rule = sgRuleOf(args.props);
    // a rule limited to members of another group admits no outside address
    if (rule.remote === undefined && rule.remoteGroup !== undefined) return;
    if (rule.remote !== undefined && isInside(rule.remote, ranges)) return;
    for (const g of guardedOpenedBy(rule))
      report(`rule opens ${g.what} to ${sourceText(rule)}, which is outside the internal ranges`);
  },
};

/** The ports a floating IP reaches: the port of a FloatingIpAssociate, or of a FloatingIp bound directly. */
function portsReachedBy(r: PolicyResource): PolicyResource[] {
  if (r.type === TYPES.floatingIpAssociate || r.type === TYPES.floatingIp)
    return dependenciesOf(r, "portId", TYPES.port);
  return [];
}

export const floatingIpsReachNoSsh: StackValidationPolicy = {
  name: "floating-ips-no-ssh-or-mcs",
  description:
    "A floating IP only reaches ports whose security groups admit neither SSH (22/tcp) nor the machine config server (22623/tcp), from any source: what a floating IP reaches is reachable from the external network.",
  enforcementLevel: "mandatory",
  severity: "critical",
  validateStack: (args, report) => {
    const rules = args.resources.filter((r) => r.type === TYPES.secGroupRule);
    for (const fip of args.resources) {
      for (const port of portsReachedBy(fip)) {
        const groups = new Set(dependenciesOf(port, "securityGroupIds").map((g) => g.urn));
        for (const rule of rules) {
          const inGroup = dependenciesOf(rule, "securityGroupId").some((g) => groups.has(g.urn));
          if (!inGroup) continue;
          const spec = sgRuleOf(rule.props);
          for (const g of guardedOpenedBy(spec)) {
            report(
              `${label(fip)} reaches port ${port.name}, whose security group rule ${rule.name} opens ${g.what} from ${sourceText(spec)}`,
              fip.urn,
            );
          }
        }
      }
    }
  },
};

function covers(p: FwPort, port: number): boolean {
  return (p.protocol === "tcp" || p.protocol === "") && port >= p.from && port <= p.to;
}

/** Whether a zone-level or rich-rule element admits a guarded port. */
function admits(services: string[], ports: FwPort[], port: number): boolean {
  return (port === SSH_PORT && services.includes("ssh")) || ports.some((p) => covers(p, port));
}

/** Zones holding an outside address (a public VIP, the LB's public address): those face the outside. */
function outwardZones(files: Map<string, string>, ranges: ReturnType<typeof internalRanges>): Set<string> {
  const zones = new Set<string>();
  for (const c of nmConnections(files)) if (c.zone && c.addresses.some((a) => !isInside(a, ranges))) zones.add(c.zone);
  return zones;
}

/** The pair's virtual addresses as this LB knows them: keepalived's VIPs and the dummy NIC's floating addresses. */
function vipsOf(files: Map<string, string>): Set<string> {
  const vips = new Set<string>();
  const keepalived = files.get(VIEW_FILES.keepalived);
  if (keepalived) for (const a of readKeepalived(keepalived).virtualAddresses) vips.add(a);
  for (const c of nmConnections(files)) if (c.type === "dummy") for (const a of c.addresses) vips.add(a);
  return vips;
}

function zoneProblems(zone: FwZone, vips: Set<string>, ranges: ReturnType<typeof internalRanges>): string[] {
  const problems: string[] = [];
  const where = `${zone.path} (zone ${zone.name}, faces the outside)`;
  if (zone.target === "ACCEPT") problems.push(`${where}: target ACCEPT admits every port, SSH and 22623 included`);
  for (const g of GUARDED) {
    if (admits(zone.services, zone.ports, g.port))
      problems.push(`${where}: opens ${g.what} to every address of the zone, its public VIPs included`);
  }
  for (const rule of zone.rules) {
    if (rule.action !== "accept") continue;
    const sourceInside = rule.source !== undefined && !rule.sourceInverted && isInside(rule.source, ranges);
    if (sourceInside) continue;
    const from = rule.source ? `${rule.sourceInverted ? "not " : ""}${rule.source}` : "anywhere";
    if (admits(rule.services, rule.ports, SSH_PORT)) {
      const to = rule.destination?.split("/")[0]?.toLowerCase();
      if (to === undefined || rule.destinationInverted)
        problems.push(
          `${where}: a rule accepts SSH from ${from} to every address of the zone, its public VIPs included`,
        );
      else if (vips.has(to)) problems.push(`${where}: a rule accepts SSH from ${from} on ${to}, a VIP`);
    }
    if (admits(rule.services, rule.ports, MACHINE_CONFIG_PORT))
      problems.push(`${where}: a rule accepts 22623/tcp from ${from}`);
  }
  return problems;
}

export const firewallKeepsSshOffVips: ResourceValidationPolicy = {
  name: "firewall-no-ssh-on-vips-or-outside-mcs",
  description:
    "The LB's firewalld (as rendered in its view): in a zone that faces the outside, SSH is accepted only on the LB's own address, never zone-wide or on a VIP, and 22623/tcp only from internal sources.",
  enforcementLevel: "mandatory",
  severity: "critical",
  configSchema: exposureSchema,
  validateResource: (args, report) => {
    if (args.type !== TYPES.renderedView) return;
    const cfg = withDefaults(args.getConfig<Partial<ExposureConfig>>(), EXPOSURE_DEFAULTS);
    const ranges = internalRanges(cfg.internalCidrs);
    const files = viewFiles(args.props);
    const outward = outwardZones(files, ranges);
    const vips = vipsOf(files);
    for (const [path, text] of zoneFiles(files)) {
      let zone: FwZone;
      try {
        zone = readZone(path, text);
      } catch (e) {
        report(`${path}: not a readable firewalld zone (${e instanceof Error ? e.message : String(e)})`);
        continue;
      }
      if (!outward.has(zone.name)) continue;
      for (const p of zoneProblems(zone, vips, ranges)) report(p);
    }
  },
};
