/**
 * Rules that relate fields to each other. They read the raw input defensively — a field that is itself malformed
 * is skipped here because the schema already reported it — so a user sees every problem in one run.
 */
import {
  broadcastAddress,
  canonical,
  Cidr,
  contains,
  Ip,
  nthAddress,
  overlaps,
  parseCidr,
  parseHostAddress,
} from "./address";
import { DEFAULTS, INGRESS_DEFAULTS } from "./defaults";
import type { SpecProblem } from "./errors";
import { serviceProblems } from "./service-rules";
import type { Distribution } from "./types";

const SSH_PORT = 22;

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
const obj = (v: unknown): Obj => (isObj(v) ? v : {});
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

function ip(v: unknown): Ip | undefined {
  if (typeof v !== "string") return undefined;
  const r = parseHostAddress(v);
  return r.ok ? r.ip : undefined;
}

function net(v: unknown): Cidr | undefined {
  if (typeof v !== "string") return undefined;
  const r = parseCidr(v);
  return r.ok ? r.cidr : undefined;
}

interface NetworkPlan {
  cidr: Cidr;
  gateway?: Ip;
  lbAddresses: (Ip | undefined)[];
  nextHop?: Ip;
}

/** Checks one network block (cluster or public): sizes, membership, reserved addresses, distinct roles. */
function checkNetwork(
  path: string,
  raw: Obj,
  problems: SpecProblem[],
  opts: { ipv4Only: boolean },
): NetworkPlan | undefined {
  const cidr = net(raw.cidr);
  if (!cidr) return undefined;
  if (opts.ipv4Only && cidr.network.kind() !== "ipv4") {
    problems.push({ path: `${path}.cidr`, rule: "must be an IPv4 network (IPv6 VIPs are public addresses)" });
    return undefined;
  }
  const hostBits = (cidr.network.kind() === "ipv4" ? 32 : 128) - cidr.prefixLength;
  if (hostBits < 3) {
    problems.push({ path: `${path}.cidr`, rule: "must hold at least a gateway and two LB addresses (/29 or wider)" });
    return undefined;
  }
  const usable = (field: string, a: Ip | undefined) => {
    if (!a) return;
    if (!contains(cidr, a))
      problems.push({
        path: field,
        rule: `must be inside ${path}.cidr ${canonical(cidr.network)}/${cidr.prefixLength}`,
      });
    else if (canonical(a) === canonical(cidr.network))
      problems.push({ path: field, rule: "must not be the network address" });
    else if (cidr.network.kind() === "ipv4" && canonical(a) === canonical(broadcastAddress(cidr)))
      problems.push({ path: field, rule: "must not be the broadcast address" });
  };
  const gateway = raw.gateway === undefined ? nthAddress(cidr, 1) : ip(raw.gateway);
  usable(`${path}.gateway`, gateway);
  const lbRaw = raw.lbAddresses === undefined ? undefined : list(raw.lbAddresses);
  const lbAddresses = lbRaw ? lbRaw.map(ip) : [nthAddress(cidr, 2), nthAddress(cidr, 3)];
  lbAddresses.forEach((a, i) => {
    usable(`${path}.lbAddresses[${i}]`, a);
    if (a && gateway && canonical(a) === canonical(gateway)) {
      problems.push({ path: `${path}.lbAddresses[${i}]`, rule: `must differ from the gateway ${canonical(gateway)}` });
    }
  });
  const [a0, a1] = lbAddresses;
  if (a0 && a1 && canonical(a0) === canonical(a1))
    problems.push({ path: `${path}.lbAddresses[1]`, rule: "must differ from lbAddresses[0]" });
  return { cidr, gateway, lbAddresses };
}

export function semanticProblems(raw: unknown): SpecProblem[] {
  const problems: SpecProblem[] = [];
  const spec = obj(raw);
  const network = checkNetwork("network", obj(spec.network), problems, { ipv4Only: true });
  const platform = obj(spec.platform);
  const publicRaw = obj(platform.publicNetwork);
  const publicNet = checkNetwork("platform.publicNetwork", publicRaw, problems, { ipv4Only: false });
  const reservedInCluster = network
    ? [network.gateway, ...network.lbAddresses].filter((x): x is Ip => !!x).map(canonical)
    : [];

  if (network && publicNet && overlaps(network.cidr, publicNet.cidr)) {
    problems.push({ path: "platform.publicNetwork.cidr", rule: "must not overlap network.cidr" });
  }

  const va = obj(spec.virtualAddresses);
  const seenType = new Map<string, { type: unknown; path: string }>();
  const checkVip = (path: string, entry: unknown, list: Set<string> | undefined) => {
    const e = obj(entry);
    const a = ip(e.address);
    if (!a) return;
    const text = canonical(a);
    if (list) {
      if (list.has(text))
        problems.push({ path: `${path}.address`, rule: `duplicates ${text} earlier in the same list` });
      list.add(text);
    }
    const prior = seenType.get(text);
    if (prior && prior.type !== e.type && (e.type === "private" || e.type === "public")) {
      problems.push({
        path: `${path}.type`,
        rule: `must match ${prior.path}: ${text} cannot be both private and public`,
      });
    } else if (!prior) seenType.set(text, { type: e.type, path: `${path}.type` });
    if (e.type === "private" && network) {
      if (!contains(network.cidr, a)) {
        problems.push({
          path: `${path}.address`,
          rule: `is private, so it must be inside network.cidr ${canonical(network.cidr.network)}/${network.cidr.prefixLength}`,
        });
      } else if (reservedInCluster.includes(text)) {
        problems.push({ path: `${path}.address`, rule: `must not be the gateway or an LB address (${text})` });
      } else if (text === canonical(network.cidr.network) || text === canonical(broadcastAddress(network.cidr))) {
        problems.push({ path: `${path}.address`, rule: "must not be the network or broadcast address" });
      }
    }
    if (e.type === "public") {
      if (network && contains(network.cidr, a))
        problems.push({ path: `${path}.address`, rule: "is public, so it must be outside network.cidr" });
      if (publicNet && platform.type === "openstack" && !contains(publicNet.cidr, a)) {
        problems.push({
          path: `${path}.address`,
          rule: "must be inside platform.publicNetwork.cidr: on openstack a public address is a fixed IP of a VIP port",
        });
      } else if (publicNet && platform.type === "openstack") {
        const taken = [publicNet.gateway, ...publicNet.lbAddresses].filter((x): x is Ip => !!x).map(canonical);
        if (taken.includes(text))
          problems.push({
            path: `${path}.address`,
            rule: `must not be the public gateway or an LB's public address (${text})`,
          });
        else if (
          text === canonical(publicNet.cidr.network) ||
          (a.kind() === "ipv4" && text === canonical(broadcastAddress(publicNet.cidr)))
        ) {
          problems.push({
            path: `${path}.address`,
            rule: "must not be the public network's network or broadcast address",
          });
        }
      }
      // an IPv4 route needs an IPv4 next hop (IPv6 VIPs beside an IPv4 public network are the platform's to route)
      if (publicNet && platform.type === "libvirt" && a.kind() === "ipv4" && publicNet.cidr.network.kind() === "ipv6") {
        problems.push({
          path: `${path}.address`,
          rule: "cannot be IPv4 with an IPv6 platform.publicNetwork: it is routed to the public next hop",
        });
      }
      if (publicNet && platform.type === "libvirt" && contains(publicNet.cidr, a)) {
        problems.push({
          path: `${path}.address`,
          rule: "must be outside platform.publicNetwork.cidr: on libvirt public addresses are routed to platform.publicNetwork.nextHop",
        });
      }
    }
  };
  const apiSeen = new Set<string>();
  list(va.api).forEach((e, i) => checkVip(`virtualAddresses.api[${i}]`, e, apiSeen));
  const ingressSeen = new Set<string>();
  list(va.ingress).forEach((e, i) => checkVip(`virtualAddresses.ingress[${i}]`, e, ingressSeen));
  if (va.nat !== undefined) {
    checkVip("virtualAddresses.nat", va.nat, undefined);
    const nat = obj(va.nat);
    if (nat.type === "private")
      problems.push({
        path: "virtualAddresses.nat.type",
        rule: "must be public: egress is translated to an address outside the cluster network",
      });
    const a = ip(nat.address);
    if (a && a.kind() !== "ipv4")
      problems.push({ path: "virtualAddresses.nat.address", rule: "must be IPv4: the cluster network is IPv4" });
    if (a && a.kind() === "ipv4" && publicNet && publicNet.cidr.network.kind() !== "ipv4") {
      problems.push({
        path: "virtualAddresses.nat.address",
        rule: "needs an IPv4 platform.publicNetwork: egress leaves through the public NIC",
      });
    }
  }

  const allVips = [...list(va.api), ...list(va.ingress)].map(obj);
  if (va.nat === undefined && allVips.length > 0 && allVips.every((e) => e.type === "public")) {
    problems.push({
      path: "virtualAddresses",
      rule: "needs a private address or nat: VRRP must hold at least one address on the private network",
    });
  }

  const ingressBackend = spec.ingressBackend;
  if (va.ingress !== undefined && ingressBackend === undefined) {
    problems.push({ path: "ingressBackend", rule: "is required when virtualAddresses.ingress is set" });
  }
  if (va.ingress === undefined && ingressBackend !== undefined) {
    problems.push({ path: "ingressBackend", rule: "is set but virtualAddresses.ingress is not: nothing would use it" });
  }
  // a static backend at one of the pair's own addresses makes HAProxy forward to itself
  const own = new Map<string, string>();
  if (network) {
    if (network.gateway) own.set(canonical(network.gateway), "the gateway");
    network.lbAddresses.forEach((a) => a && own.set(canonical(a), "an LB address"));
  }
  for (const e of [...list(va.api), ...list(va.ingress), ...(va.nat !== undefined ? [va.nat] : [])].map(obj)) {
    const a = ip(e.address);
    if (a) own.set(canonical(a), "a virtual address");
  }
  const backendContext = { own, family: network?.cidr.network.kind() };
  checkBackend("apiBackend", obj(spec.apiBackend), problems, backendContext);
  if (ingressBackend !== undefined) checkBackend("ingressBackend", obj(ingressBackend), problems, backendContext);

  checkSyncNetwork(obj(spec.syncNetwork), spec.syncNetwork !== undefined, { network, publicNet, va, spec }, problems);
  problems.push(...serviceProblems(spec, serviceContext(spec, { network, publicNet, va })));
  checkPlatform(platform, publicNet, problems);
  checkPorts(spec, problems);
  checkVrrp(obj(spec.vrrp), problems);
  return problems;
}

function checkBackend(
  path: string,
  raw: Obj,
  problems: SpecProblem[],
  ctx: { own: Map<string, string>; family: string | undefined },
) {
  if (raw.nodeSelector === undefined && (raw.addresses === undefined || list(raw.addresses).length === 0)) {
    problems.push({ path, rule: "needs a nodeSelector or at least one address" });
  } else if (path === "apiBackend" && list(raw.addresses).length === 0) {
    // Nodes register through the API VIP: a pool filled only by Nodes would have no server until they exist
    problems.push({
      path: "apiBackend.addresses",
      rule: "needs at least one address: the API VIP must have a server before any Node registers through it",
    });
  }
  const seen = new Set<string>();
  list(raw.addresses).forEach((v, i) => {
    const a = ip(v);
    if (!a) return;
    if (seen.has(canonical(a))) problems.push({ path: `${path}.addresses[${i}]`, rule: `duplicates ${canonical(a)}` });
    seen.add(canonical(a));
    const mine = ctx.own.get(canonical(a));
    if (mine)
      problems.push({
        path: `${path}.addresses[${i}]`,
        rule: `must not be one of the pair's own addresses: ${canonical(a)} is ${mine} (HAProxy would forward to itself)`,
      });
    else if (ctx.family && a.kind() !== ctx.family)
      problems.push({
        path: `${path}.addresses[${i}]`,
        rule: `must be ${ctx.family === "ipv4" ? "IPv4" : "IPv6"} like network.cidr: backends are reached through the private NIC`,
      });
  });
}

/**
 * The sync link carries only VRRP and conntrackd between the two LBs: its own IPv4 network (the adverts carry the
 * IPv4 VIPs, which must be of the unicast addresses' family), apart from every network and address the pair serves.
 */
function checkSyncNetwork(
  raw: Obj,
  present: boolean,
  ctx: { network: NetworkPlan | undefined; publicNet: NetworkPlan | undefined; va: Obj; spec: Obj },
  problems: SpecProblem[],
) {
  if (!present) return;
  const cidr = net(raw.cidr);
  if (!cidr) return;
  const text = `${canonical(cidr.network)}/${cidr.prefixLength}`;
  if (cidr.network.kind() !== "ipv4") {
    problems.push({
      path: "syncNetwork.cidr",
      rule: "must be an IPv4 network: VRRPv3 adverts carry the IPv4 VIPs only over IPv4",
    });
    return;
  }
  if (32 - cidr.prefixLength < 2) {
    problems.push({ path: "syncNetwork.cidr", rule: "must hold two LB addresses (/30 or wider)" });
    return;
  }
  if (obj(ctx.spec.platform).type === "libvirt" && 32 - cidr.prefixLength < 3) {
    problems.push({
      path: "syncNetwork.cidr",
      rule: "must be /29 or wider on libvirt: the host's bridge takes an address beside the two LBs'",
    });
    return;
  }
  for (const [path, other] of [
    ["network.cidr", ctx.network],
    ["platform.publicNetwork.cidr", ctx.publicNet],
  ] as const) {
    if (other && overlaps(cidr, other.cidr))
      problems.push({ path: "syncNetwork.cidr", rule: `must not overlap ${path}: the link is the LBs' own` });
  }
  const lbRaw = raw.lbAddresses === undefined ? undefined : list(raw.lbAddresses);
  const lbAddresses = lbRaw ? lbRaw.map(ip) : [nthAddress(cidr, 1), nthAddress(cidr, 2)];
  lbAddresses.forEach((a, i) => {
    if (!a) return;
    const path = `syncNetwork.lbAddresses[${i}]`;
    if (!contains(cidr, a)) problems.push({ path, rule: `must be inside syncNetwork.cidr ${text}` });
    else if (canonical(a) === canonical(cidr.network) || canonical(a) === canonical(broadcastAddress(cidr))) {
      problems.push({ path, rule: "must not be the network or broadcast address" });
    }
  });
  const [a0, a1] = lbAddresses;
  if (a0 && a1 && canonical(a0) === canonical(a1))
    problems.push({ path: "syncNetwork.lbAddresses[1]", rule: "must differ from syncNetwork.lbAddresses[0]" });
  // an address the pair serves or forwards to inside the link would be routed over it, away from its network
  const served: [string, unknown][] = [
    ...list(ctx.va.api).map((e, i): [string, unknown] => [`virtualAddresses.api[${i}].address`, obj(e).address]),
    ...list(ctx.va.ingress).map((e, i): [string, unknown] => [
      `virtualAddresses.ingress[${i}].address`,
      obj(e).address,
    ]),
    ...(ctx.va.nat !== undefined
      ? [["virtualAddresses.nat.address", obj(ctx.va.nat).address] as [string, unknown]]
      : []),
    ...(["apiBackend", "ingressBackend"] as const).flatMap((b) =>
      list(obj(ctx.spec[b]).addresses).map((a, i): [string, unknown] => [`${b}.addresses[${i}]`, a]),
    ),
  ];
  for (const [path, v] of served) {
    const a = ip(v);
    if (a && contains(cidr, a))
      problems.push({
        path,
        rule: `must be outside syncNetwork.cidr ${text}: that link carries only VRRP and the conntrack sync`,
      });
  }
}

/** What the Service rules relate to: the networks, every VIP written and the pair's own ports after defaults. */
function serviceContext(
  spec: Obj,
  ctx: { network: NetworkPlan | undefined; publicNet: NetworkPlan | undefined; va: Obj },
): Parameters<typeof serviceProblems>[1] {
  const vips = [
    ...list(ctx.va.api).map((e, i) => ({ path: `virtualAddresses.api[${i}]`, e: obj(e), role: "api" as const })),
    ...list(ctx.va.ingress).map((e, i) => ({
      path: `virtualAddresses.ingress[${i}]`,
      e: obj(e),
      role: "ingress" as const,
    })),
    ...(ctx.va.nat !== undefined ? [{ path: "virtualAddresses.nat", e: obj(ctx.va.nat), role: "nat" as const }] : []),
  ].flatMap(({ path, e, role }) => {
    const a = ip(e.address);
    return a ? [{ path, ip: a, type: e.type, role }] : [];
  });
  const metrics = obj(spec.metrics).port;
  const conntrack = obj(spec.conntrack).port;
  const ownPorts = new Map<number, string>([
    [6443, "the API frontend"],
    [22623, "the machine-config frontend"],
    [80, "an ingress frontend"],
    [443, "an ingress frontend"],
    [typeof metrics === "number" ? metrics : DEFAULTS.metricsPort, "the metrics port"],
    [typeof conntrack === "number" ? conntrack : DEFAULTS.conntrackPort, "the conntrack sync port"],
  ]);
  const sync = net(obj(spec.syncNetwork).cidr);
  return {
    ...(ctx.network ? { network: ctx.network } : {}),
    ...(ctx.publicNet ? { publicNet: ctx.publicNet } : {}),
    ...(sync ? { syncCidr: sync } : {}),
    platform: obj(spec.platform).type,
    vips,
    ownPorts,
    ip,
  };
}

function checkPlatform(platform: Obj, publicNet: NetworkPlan | undefined, problems: SpecProblem[]) {
  const pub = obj(platform.publicNetwork);
  if (platform.type === "openstack" && pub.nextHop !== undefined) {
    problems.push({
      path: "platform.publicNetwork.nextHop",
      rule: "is only for platform libvirt (routed floating IPs); on openstack the public VIPs move",
    });
  }
  if (platform.type !== "libvirt" || !publicNet) return;
  const hop = pub.nextHop === undefined ? nthAddress(publicNet.cidr, 4) : ip(pub.nextHop);
  if (!hop) return;
  const path = "platform.publicNetwork.nextHop";
  if (!contains(publicNet.cidr, hop)) problems.push({ path, rule: "must be inside platform.publicNetwork.cidr" });
  const taken = [publicNet.gateway, ...publicNet.lbAddresses].filter((x): x is Ip => !!x).map(canonical);
  if (taken.includes(canonical(hop)))
    problems.push({ path, rule: `must differ from the public gateway and LB addresses (${canonical(hop)})` });
}

function checkPorts(spec: Obj, problems: SpecProblem[]) {
  const frontendPorts = new Set([6443, 22623, 80, 443]);
  const metrics = obj(spec.metrics).port;
  const conntrack = obj(spec.conntrack).port ?? DEFAULTS.conntrackPort;
  if (typeof metrics === "number" && frontendPorts.has(metrics)) {
    problems.push({ path: "metrics.port", rule: `must not be a frontend port (6443, 22623, 80, 443)` });
  } else if (metrics === SSH_PORT) {
    problems.push({ path: "metrics.port", rule: "must not be 22: sshd listens there on every LB address" });
  } else if ((metrics ?? DEFAULTS.metricsPort) === conntrack) {
    // either one written, the other defaulted: name the written one
    if (metrics !== undefined)
      problems.push({ path: "metrics.port", rule: `must differ from the conntrack sync port ${String(conntrack)}` });
    else
      problems.push({
        path: "conntrack.port",
        rule: `must differ from the metrics port ${DEFAULTS.metricsPort} (its default)`,
      });
  }
  // after the distribution's defaults: a default can collide with a port written explicitly
  const ib = obj(spec.ingressBackend);
  const dist = INGRESS_DEFAULTS[spec.distribution as Distribution];
  if (spec.ingressBackend !== undefined && dist) {
    const http = typeof ib.httpPort === "number" ? ib.httpPort : dist.httpPort;
    const https = typeof ib.httpsPort === "number" ? ib.httpsPort : dist.httpsPort;
    if (http === https) {
      const defaulted =
        ib.httpsPort === undefined
          ? " (its default for this distribution)"
          : ib.httpPort === undefined
            ? " (httpPort's default for this distribution)"
            : "";
      problems.push({
        path: "ingressBackend.httpsPort",
        rule: `must differ from ingressBackend.httpPort: both are ${http}${defaulted}`,
      });
    }
  }
}

function checkVrrp(vrrp: Obj, problems: SpecProblem[]) {
  const interval = vrrp.advertInterval;
  if (
    typeof interval === "number" &&
    interval >= 0.01 &&
    Math.abs(Math.round(interval * 100) - interval * 100) > 1e-6
  ) {
    problems.push({ path: "vrrp.advertInterval", rule: "must be a multiple of 0.01 s (VRRPv3 centiseconds)" });
  }
  const prio = obj(vrrp.priority);
  if (typeof prio.primary === "number" && prio.primary === prio.secondary) {
    problems.push({ path: "vrrp.priority.secondary", rule: "must differ from vrrp.priority.primary" });
  }
}
