/**
 * Service addresses (serviceLoadBalancers pools, extraServices) as a reviewer checks them: a second line behind the
 * spec's own rules (spec/service-rules.ts), which this code does not call, so one mistake there is not repeated
 * here. Judged where the settings arrive: the LoadBalancer custom resource (the spec the agents render from on day
 * 2, whoever edits it) and, for what the kernel will really forward, each LB's rendered services.nft.
 * - service-pools-distinct: an address in two pool entries could be handed to two Services at once; a pool holding
 *   one of the pair's own addresses (a VIP, the NAT gateway, an LB address) would give it to a Service, and both
 *   LBs hold a pool's addresses as their own.
 * - services-no-public-ssh-or-mcs: SSH (22) and the machine config server (22623) are never reachable from outside
 *   (DESIGN.md); a Service frontend on a public address must not take either port, whatever it forwards to.
 */
import type { ResourceValidationPolicy } from "@pulumi/policy";
import { canonical, nthAddress, parseCidr, parseHostAddress, type Ip } from "../spec/address";
import { inRange, parsePoolEntry, type Ipv4Range } from "../spec/pools";
import { internalRanges, isInside } from "./lib/addresses";
import { MACHINE_CONFIG_PORT, SSH_PORT, TYPES, VIEW_FILES } from "./lib/types";
import { list, num, record, str, withDefaults, type Props } from "./lib/values";
import { viewFiles } from "./lib/view-files";

/** The spec a LoadBalancer resource carries, or undefined for any other resource (or one not known yet). */
function crSpec(type: string, props: unknown): Props | undefined {
  return type === TYPES.loadBalancerCr ? record(props, "spec") : undefined;
}

function host(text: string | undefined): Ip | undefined {
  if (text === undefined) return undefined;
  const r = parseHostAddress(text);
  return r.ok ? r.ip : undefined;
}

interface Own {
  ip: Ip;
  what: string;
}

/**
 * The pair's own addresses in a spec as written: every VIP, and the gateway and LB addresses as written or, when left
 * out, as the spec defaults them (the network's first three hosts, spec/resolve.ts). The gateway is a VIP with nat.
 */
function ownAddresses(spec: Props): Own[] {
  const out: Own[] = [];
  const va = record(spec, "virtualAddresses");
  for (const role of ["api", "ingress"] as const)
    list(va, role).forEach((e, i) => {
      const ip = host(str(e, "address"));
      if (ip) out.push({ ip, what: `virtualAddresses.${role}[${i}]` });
    });
  const nat = host(str(record(va, "nat"), "address"));
  if (nat) out.push({ ip: nat, what: "virtualAddresses.nat" });
  const network = record(spec, "network");
  const cidrText = str(network, "cidr");
  const cidr = cidrText === undefined ? undefined : parseCidr(cidrText);
  const nth = (n: number) => (cidr?.ok ? nthAddress(cidr.cidr, n) : undefined);
  const gateway = str(network, "gateway") !== undefined ? host(str(network, "gateway")) : nth(1);
  if (gateway) out.push({ ip: gateway, what: "the gateway" });
  const written = list(network, "lbAddresses");
  [0, 1].forEach((i) => {
    const ip = written.length > 0 ? host(typeof written[i] === "string" ? written[i] : undefined) : nth(i + 2);
    if (ip) out.push({ ip, what: `an LB address (network.lbAddresses[${i}])` });
  });
  return out;
}

interface Entry {
  path: string;
  text: string;
  pool: string;
  type: string | undefined;
  range: Ipv4Range;
}

/** Every pool entry that parses; the others are reported by the caller (a spec the resolver would refuse). */
function poolEntries(spec: Props, bad: (path: string, text: string) => void): Entry[] {
  const out: Entry[] = [];
  list(record(spec, "serviceLoadBalancers"), "pools").forEach((p, i) => {
    const name = str(p, "name") ?? `#${i}`;
    list(p, "addresses").forEach((a, j) => {
      if (typeof a !== "string") return;
      const path = `spec.serviceLoadBalancers.pools[${i}].addresses[${j}]`;
      const r = parsePoolEntry(a);
      if (!r.ok) bad(path, a);
      else out.push({ path, text: a, pool: name, type: str(p, "type"), range: r.range });
    });
  });
  return out;
}

export const servicePoolsDistinct: ResourceValidationPolicy = {
  name: "service-pools-distinct",
  description:
    "Service address pools (serviceLoadBalancers.pools in the LoadBalancer resource) never overlap each other and never hold one of the pair's own addresses (a VIP, the NAT gateway, an LB address): an address is handed to one Service at most, and never one the pair already uses.",
  enforcementLevel: "mandatory",
  severity: "high",
  validateResource: (args, report) => {
    const spec = crSpec(args.type, args.props);
    if (!spec) return;
    const entries = poolEntries(spec, (path, text) =>
      report(`${path} "${text}" is neither a CIDR nor a first-last range of IPv4 addresses: it cannot be judged`),
    );
    entries.forEach((e, i) => {
      for (const earlier of entries.slice(0, i))
        if (e.range.first <= earlier.range.last && earlier.range.first <= e.range.last)
          report(
            `${e.path} ${e.text} (pool ${e.pool}) overlaps ${earlier.path} ${earlier.text} (pool ${earlier.pool}): one address could go to two Services`,
          );
    });
    const own = ownAddresses(spec);
    for (const e of entries)
      for (const o of own)
        if (inRange(e.range, o.ip))
          report(`${e.path} ${e.text} (pool ${e.pool}) holds ${canonical(o.ip)}, ${o.what}: a Service would take it`);
  },
};

export interface ServiceExposureConfig {
  /** Prefixes that count as inside besides the private ranges (as for the exposure policies). */
  internalCidrs: string[];
}

export const SERVICE_EXPOSURE_DEFAULTS: ServiceExposureConfig = { internalCidrs: [] };

const GUARDED: Record<number, string> = {
  [SSH_PORT]: "SSH",
  [MACHINE_CONFIG_PORT]: "the machine config server",
};

/**
 * Why a frontend address counts as public, or undefined: typed public in the spec (a public VIP, an address of a
 * public pool), or, whatever its type says, outside the internal ranges (a mislabelled pool is still reachable).
 */
function publicBecause(
  ip: Ip,
  spec: Props,
  entries: Entry[],
  ranges: ReturnType<typeof internalRanges>,
): string | undefined {
  const va = record(spec, "virtualAddresses");
  const nat = record(va, "nat");
  const vip = [...list(va, "api"), ...list(va, "ingress"), ...(nat ? [nat] : [])].find((v) => {
    const a = host(str(v, "address"));
    return a !== undefined && canonical(a) === canonical(ip);
  });
  if (vip && str(vip, "type") === "public") return "a public VIP";
  const entry = entries.find((e) => e.type === "public" && inRange(e.range, ip));
  if (entry) return `in public pool ${entry.pool}`;
  if (!isInside(canonical(ip), ranges)) return "outside the internal ranges";
  return undefined;
}

/** `<address> . <tcp|udp> . <port> :` elements of services.nft's verdict map (comments left out). */
function forwardedFrontends(text: string): { address: string; protocol: string; port: number }[] {
  const out: { address: string; protocol: string; port: number }[] = [];
  for (const line of text.split("\n")) {
    const code = line.replace(/#.*$/, "");
    for (const m of code.matchAll(/(\d{1,3}(?:\.\d{1,3}){3})\s*\.\s*(tcp|udp)\s*\.\s*(\d{1,5})\s*:/g))
      out.push({ address: m[1]!, protocol: m[2]!.toUpperCase(), port: Number(m[3]) });
  }
  return out;
}

export const servicesNoPublicSshOrMcs: ResourceValidationPolicy = {
  name: "services-no-public-ssh-or-mcs",
  description:
    "No Service frontend (extraServices in the LoadBalancer resource, the forwarding map in each LB's rendered services.nft) takes port 22 or 22623 on a public address: a public VIP, an address of a public pool, or any address outside the internal ranges (private ranges plus the internalCidrs config).",
  enforcementLevel: "mandatory",
  severity: "critical",
  configSchema: {
    properties: {
      internalCidrs: { type: "array" as const, items: { type: "string" as const }, default: [] as string[] },
    },
  },
  validateResource: (args, report) => {
    const cfg = withDefaults(args.getConfig<Partial<ServiceExposureConfig>>(), SERVICE_EXPOSURE_DEFAULTS);
    const ranges = internalRanges(cfg.internalCidrs);
    const spec = crSpec(args.type, args.props);
    if (spec) {
      const entries = poolEntries(spec, () => undefined);
      list(spec, "extraServices").forEach((svc, i) => {
        const frontend = record(svc, "frontend");
        const port = num(frontend, "port");
        const ip = host(str(frontend, "address"));
        const what = port === undefined ? undefined : GUARDED[port];
        if (!ip || !what) return;
        const why = publicBecause(ip, spec, entries, ranges);
        if (why)
          report(
            `spec.extraServices[${i}] (${str(svc, "name") ?? "unnamed"}) takes ${str(svc, "protocol") ?? ""} ${canonical(ip)}:${port}, ${why}: ${what} must never be reachable from outside`,
          );
      });
    }
    if (args.type === TYPES.renderedView) {
      const text = viewFiles(args.props).get(VIEW_FILES.services);
      // unknown in the first preview on OpenStack (the files wait for the ports' MACs): judged by `up`
      if (text === undefined) return;
      for (const f of forwardedFrontends(text)) {
        const what = GUARDED[f.port];
        if (what && !isInside(f.address, ranges))
          report(
            `${VIEW_FILES.services}: forwards ${f.protocol} ${f.address}:${f.port}, outside the internal ranges: ${what} must never be reachable from outside`,
          );
      }
    }
  },
};
