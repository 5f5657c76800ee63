/**
 * validate -> resolve: the one entry point every carrier uses (Pulumi program, CLI, agent).
 * Returns every problem at once, or the ResolvedSpec with defaults applied and derived addressing computed.
 */
import { canonical, compareAddresses, familyOf, Ip, nthAddress, parseCidr, parseHostAddress } from "./address";
import { DEFAULTS, INGRESS_DEFAULTS } from "./defaults";
import { fromZodIssues, SpecError, SpecProblem } from "./errors";
import { deriveRouterId } from "./router-id";
import { hostFactsSchema, loadBalancerSpecSchema, ParsedSpec } from "./schema";
import { semanticProblems } from "./semantics";
import { selectorProblems } from "./selector";
import { inRange, parsePoolEntry } from "./pools";
import type {
  ExtraService,
  HostFacts,
  ResolvedNetwork,
  ResolvedSpec,
  ResolvedSyncNetwork,
  ServiceLoadBalancers,
  VirtualAddress,
} from "./types";

export type Validation<T> = { ok: true; value: T } | { ok: false; problems: SpecProblem[] };

export function validateSpec(raw: unknown): Validation<ResolvedSpec> {
  const parsed = loadBalancerSpecSchema.safeParse(raw, { reportInput: true });
  const problems = [
    ...(parsed.success ? backendSelectorProblems(parsed.data) : fromZodIssues(parsed.error.issues)),
    ...semanticProblems(raw),
  ];
  if (problems.length > 0 || !parsed.success) return { ok: false, problems: dedupe(problems) };
  return { ok: true, value: resolve(parsed.data) };
}

function backendSelectorProblems(s: ParsedSpec): SpecProblem[] {
  return [
    ...selectorProblems(s.apiBackend.nodeSelector ?? {}, "apiBackend.nodeSelector"),
    ...(s.ingressBackend ? selectorProblems(s.ingressBackend.nodeSelector ?? {}, "ingressBackend.nodeSelector") : []),
    ...(s.extraServices ?? []).flatMap((e, i) =>
      e.backend.nodeSelector
        ? selectorProblems(e.backend.nodeSelector, `extraServices[${i}].backend.nodeSelector`)
        : [],
    ),
  ];
}

/** Throws SpecError listing every problem; for callers that cannot continue without a valid spec. */
export function resolveSpec(raw: unknown): ResolvedSpec {
  const r = validateSpec(raw);
  if (!r.ok) throw new SpecError(r.problems);
  return r.value;
}

export function validateHostFacts(raw: unknown): Validation<HostFacts> {
  const parsed = hostFactsSchema.safeParse(raw, { reportInput: true });
  if (!parsed.success) return { ok: false, problems: fromZodIssues(parsed.error.issues) };
  const h = parsed.data;
  if (h.publicInterface.name === h.privateInterface.name || h.publicInterface.mac === h.privateInterface.mac) {
    return {
      ok: false,
      problems: [{ path: "privateInterface", rule: "must be a different NIC from publicInterface" }],
    };
  }
  const sync = h.syncInterface;
  if (sync && [h.publicInterface, h.privateInterface].some((n) => n.name === sync.name || n.mac === sync.mac)) {
    return {
      ok: false,
      problems: [{ path: "syncInterface", rule: "must be a different NIC from publicInterface and privateInterface" }],
    };
  }
  return { ok: true, value: h };
}

function dedupe(problems: SpecProblem[]): SpecProblem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const k = `${p.path}\u0000${p.rule}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

function host(text: string): Ip {
  const r = parseHostAddress(text);
  if (!r.ok) throw new Error(`unreachable: validated address ${text}`);
  return r.ip;
}

function resolveNetwork(n: { cidr: string; gateway?: string; lbAddresses?: [string, string] }): ResolvedNetwork {
  const r = parseCidr(n.cidr);
  if (!r.ok) throw new Error(`unreachable: validated cidr ${n.cidr}`);
  const { cidr } = r;
  const lb = n.lbAddresses?.map((a) => canonical(host(a))) ?? [
    canonical(nthAddress(cidr, 2)),
    canonical(nthAddress(cidr, 3)),
  ];
  return {
    cidr: `${canonical(cidr.network)}/${cidr.prefixLength}`,
    prefixLength: cidr.prefixLength,
    gateway: n.gateway ? canonical(host(n.gateway)) : canonical(nthAddress(cidr, 1)),
    lbAddresses: [lb[0] as string, lb[1] as string],
  };
}

function resolveSyncNetwork(n: { cidr: string; lbAddresses?: [string, string] }): ResolvedSyncNetwork {
  const r = parseCidr(n.cidr);
  if (!r.ok) throw new Error(`unreachable: validated cidr ${n.cidr}`);
  const lb = n.lbAddresses?.map((a) => canonical(host(a))) ?? [
    canonical(nthAddress(r.cidr, 1)),
    canonical(nthAddress(r.cidr, 2)),
  ];
  return {
    cidr: `${canonical(r.cidr.network)}/${r.cidr.prefixLength}`,
    prefixLength: r.cidr.prefixLength,
    lbAddresses: [lb[0]!, lb[1]!],
  };
}

function vip(v: { address: string; type: "private" | "public" }): VirtualAddress {
  const ip = host(v.address);
  return { address: canonical(ip), family: familyOf(ip), type: v.type };
}

/** Sorted numerically and unique by address: renderers iterate these, so order must never depend on input order. */
export function uniqueSorted(addresses: VirtualAddress[]): VirtualAddress[] {
  const byAddress = new Map<string, VirtualAddress>();
  for (const a of addresses) if (!byAddress.has(a.address)) byAddress.set(a.address, a);
  return [...byAddress.values()].sort((a, b) => compareAddresses(a.address, b.address));
}

function resolveServiceLoadBalancers(s: NonNullable<ParsedSpec["serviceLoadBalancers"]>): ServiceLoadBalancers {
  return {
    loadBalancerClass: s.loadBalancerClass ?? DEFAULTS.loadBalancerClass,
    defaultClass: s.defaultClass ?? false,
    pools: s.pools.map((p) => ({
      name: p.name,
      type: p.type,
      ranges: p.addresses.map((a) => {
        const r = parsePoolEntry(a);
        if (!r.ok) throw new Error(`unreachable: validated pool entry ${a}`);
        return r.range;
      }),
    })),
  };
}

function resolveExtraService(
  e: NonNullable<ParsedSpec["extraServices"]>[number],
  vips: VirtualAddress[],
  slb: ServiceLoadBalancers | undefined,
): ExtraService {
  const address = host(e.frontend.address);
  const type =
    vips.find((v) => v.address === canonical(address))?.type ??
    slb?.pools.find((p) => p.ranges.some((r) => inRange(r, address)))?.type;
  if (!type) throw new Error(`unreachable: validated frontend ${e.frontend.address}`);
  return {
    name: e.name,
    protocol: e.protocol,
    frontend: { address: canonical(address), port: e.frontend.port, type },
    backend: {
      nodePort: e.backend.nodePort,
      ...(e.backend.nodeSelector ? { nodeSelector: e.backend.nodeSelector } : {}),
      addresses: [...new Set((e.backend.addresses ?? []).map((a) => canonical(host(a))))].sort(compareAddresses),
    },
    sourceRanges: [
      ...new Set(
        (e.sourceRanges ?? []).map((c) => {
          const r = parseCidr(c);
          if (!r.ok) throw new Error(`unreachable: validated source range ${c}`);
          return `${canonical(r.cidr.network)}/${r.cidr.prefixLength}`;
        }),
      ),
    ].sort(),
  };
}

function resolve(s: ParsedSpec): ResolvedSpec {
  const network = resolveNetwork(s.network);
  const api = s.virtualAddresses.api.map(vip);
  const ingress = (s.virtualAddresses.ingress ?? []).map(vip);
  const nat = s.virtualAddresses.nat ? vip(s.virtualAddresses.nat) : undefined;
  const all = [...api, ...ingress, ...(nat ? [nat] : [])];
  const gatewayVip: VirtualAddress[] = nat ? [{ address: network.gateway, family: 4, type: "private" }] : [];

  const publicNetwork = resolveNetwork(s.platform.publicNetwork);
  const publicCidr = parseCidr(publicNetwork.cidr);
  const nextHop =
    s.platform.type !== "libvirt"
      ? undefined
      : s.platform.publicNetwork.nextHop
        ? canonical(host(s.platform.publicNetwork.nextHop))
        : publicCidr.ok
          ? canonical(nthAddress(publicCidr.cidr, DEFAULTS.publicNextHopHost))
          : undefined;

  const ingressDefaults = INGRESS_DEFAULTS[s.distribution];
  const ib = s.ingressBackend;
  const hc = { ...DEFAULTS.healthCheck, ...s.healthCheck };
  const sortedHosts = (xs: string[] | undefined) => (xs ?? []).map((a) => canonical(host(a))).sort(compareAddresses);
  const serviceLoadBalancers = s.serviceLoadBalancers ? resolveServiceLoadBalancers(s.serviceLoadBalancers) : undefined;
  const privateVips = uniqueSorted([...gatewayVip, ...all.filter((a) => a.type === "private")]);
  const firstPrivate4 = privateVips.find((v) => v.family === 4)?.address;
  if (!firstPrivate4) throw new Error("unreachable: validated: a private address or nat");

  return {
    clusterName: s.clusterName,
    distribution: s.distribution,
    network,
    virtualAddresses: { api, ingress, ...(nat ? { nat } : {}) },
    apiBackend: {
      nodeSelector: s.apiBackend.nodeSelector ?? {},
      addresses: sortedHosts(s.apiBackend.addresses),
      port: s.apiBackend.port ?? DEFAULTS.apiPort,
    },
    ...(ib
      ? {
          ingressBackend: {
            nodeSelector: ib.nodeSelector ?? {},
            addresses: sortedHosts(ib.addresses),
            httpPort: ib.httpPort ?? ingressDefaults.httpPort,
            httpsPort: ib.httpsPort ?? ingressDefaults.httpsPort,
            healthPort: ib.healthPort ?? ingressDefaults.healthPort,
            healthPath: ib.healthPath ?? ingressDefaults.healthPath,
            proxyProtocol: ib.proxyProtocol ?? false,
          },
        }
      : {}),
    vrrp: {
      routerId: s.vrrp?.routerId ?? deriveRouterId(s.clusterName),
      advertIntervalSeconds: s.vrrp?.advertInterval ?? DEFAULTS.vrrpAdvertIntervalSeconds,
      priority: s.vrrp?.priority ?? { ...DEFAULTS.vrrpPriority },
    },
    conntrack: { port: s.conntrack?.port ?? DEFAULTS.conntrackPort },
    ...(s.syncNetwork ? { syncNetwork: resolveSyncNetwork(s.syncNetwork) } : {}),
    ...(serviceLoadBalancers ? { serviceLoadBalancers } : {}),
    extraServices: (s.extraServices ?? []).map((e) => resolveExtraService(e, all, serviceLoadBalancers)),
    healthCheck: { intervalMs: Math.round(hc.intervalSeconds * 1000), rise: hc.rise, fall: hc.fall },
    metrics: { port: s.metrics?.port ?? DEFAULTS.metricsPort },
    ...(s.image ? { image: s.image } : {}),
    platform: { type: s.platform.type, publicNetwork: { ...publicNetwork, ...(nextHop ? { nextHop } : {}) } },
    derived: {
      privateVips,
      publicVips: uniqueSorted(all.filter((a) => a.type === "public")),
      serviceSourceAddress: nat ? network.gateway : firstPrivate4,
      frontends: {
        api: uniqueSorted(api),
        machineConfig: s.distribution === "openshift" ? uniqueSorted(api.filter((a) => a.type === "private")) : [],
        ingress: uniqueSorted(ingress),
      },
    },
  };
}
