/**
 * Rules of `serviceLoadBalancers` and `extraServices` against the rest of the spec (semantics.ts calls them with
 * what it already parsed). Each problem names the field and the rule; collisions are computed after defaults.
 */
import { broadcastAddress, canonical, contains, parseCidr, type Cidr, type Ip } from "./address";
import type { SpecProblem } from "./errors";
import { cidrRange, inRange, ipv4Number, parsePoolEntry, rangesOverlap, rangeText, type Ipv4Range } from "./pools";

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
const obj = (v: unknown): Obj => (isObj(v) ? v : {});
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

export interface ServiceContext {
  network?: { cidr: Cidr; gateway?: Ip; lbAddresses: (Ip | undefined)[] };
  publicNet?: { cidr: Cidr; gateway?: Ip; lbAddresses: (Ip | undefined)[] };
  syncCidr?: Cidr;
  platform: unknown;
  /** every api/ingress/nat address written, with its field and type */
  vips: { path: string; ip: Ip; type: unknown; role: "api" | "ingress" | "nat" }[];
  /** the pair's own ports after defaults, with what they are */
  ownPorts: Map<number, string>;
  ip: (v: unknown) => Ip | undefined;
}

interface ParsedPool {
  name: string;
  type: unknown;
  ranges: { path: string; range: Ipv4Range }[];
}

export function serviceProblems(spec: Obj, ctx: ServiceContext): SpecProblem[] {
  const problems: SpecProblem[] = [];
  const pools =
    spec.serviceLoadBalancers === undefined
      ? []
      : checkPools(obj(spec.serviceLoadBalancers), ctx, staticBackends(spec, ctx), problems);
  checkExtraServices(list(spec.extraServices), pools, ctx, problems);
  return problems;
}

function checkPools(
  raw: Obj,
  ctx: ServiceContext,
  backends: { path: string; ip: Ip }[],
  problems: SpecProblem[],
): ParsedPool[] {
  const pools: ParsedPool[] = [];
  const names = new Set<string>();
  list(raw.pools).forEach((p, i) => {
    const pool = obj(p);
    const path = `serviceLoadBalancers.pools[${i}]`;
    if (typeof pool.name === "string") {
      if (names.has(pool.name)) problems.push({ path: `${path}.name`, rule: `duplicates pool name ${pool.name}` });
      names.add(pool.name);
    }
    const parsed: ParsedPool = { name: String(pool.name), type: pool.type, ranges: [] };
    list(pool.addresses).forEach((a, j) => {
      if (typeof a !== "string") return;
      const entryPath = `${path}.addresses[${j}]`;
      const r = parsePoolEntry(a);
      if (!r.ok) {
        problems.push({ path: entryPath, rule: r.rule });
        return;
      }
      checkPoolRange(entryPath, r.range, pool.type, ctx, backends, problems);
      parsed.ranges.push({ path: entryPath, range: r.range });
    });
    pools.push(parsed);
  });
  // pairwise, across and within pools: one address is never handed out by two entries
  const all = pools.flatMap((p) => p.ranges);
  all.forEach((a, i) => {
    const earlier = all.slice(0, i).find((b) => rangesOverlap(a.range, b.range));
    if (earlier) problems.push({ path: a.path, rule: `overlaps ${earlier.path} (${rangeText(earlier.range)})` });
  });
  return pools;
}

/**
 * What no pool may hold, as notUnicast() refuses it for a single address (spec/address.ts): an entry is checked as a
 * range, so a public pool such as 224.0.0.0/16 (VRRP's own 224.0.0.18 is multicast) or 169.254.0.0/16 (the cloud's
 * metadata service) would otherwise be routed to the pair and held on both LBs.
 */
const NOT_UNICAST: { range: Ipv4Range; text: string; what: string }[] = (
  [
    ["0.0.0.0/8", "the unspecified range"],
    ["127.0.0.0/8", "loopback"],
    ["169.254.0.0/16", "link-local"],
    ["224.0.0.0/4", "multicast"],
    ["255.255.255.255/32", "the broadcast address"],
  ] as const
).map(([text, what]) => {
  const c = parseCidr(text);
  if (!c.ok) throw new Error(`unreachable: ${text}`);
  return { range: cidrRange(c.cidr), text, what };
});

/** The spec's static backend addresses (API, ingress, extra services), by field: nodes' addresses, never a Service's. */
function staticBackends(spec: Obj, ctx: ServiceContext): { path: string; ip: Ip }[] {
  const of = (path: string, raw: unknown) =>
    list(raw).flatMap((v, i) => {
      const a = ctx.ip(v);
      return a ? [{ path: `${path}[${i}]`, ip: a }] : [];
    });
  return [
    ...of("apiBackend.addresses", obj(spec.apiBackend).addresses),
    ...of("ingressBackend.addresses", obj(spec.ingressBackend).addresses),
    ...list(spec.extraServices).flatMap((e, i) =>
      of(`extraServices[${i}].backend.addresses`, obj(obj(e).backend).addresses),
    ),
  ];
}

function checkPoolRange(
  path: string,
  r: Ipv4Range,
  type: unknown,
  ctx: ServiceContext,
  backends: { path: string; ip: Ip }[],
  problems: SpecProblem[],
) {
  const inside = (c: Cidr) => inRange(r, c.network) || containsNumber(c, r.first) || containsNumber(c, r.last);
  const within = (c: Cidr) => containsNumber(c, r.first) && containsNumber(c, r.last);
  const network = ctx.network;
  const special = NOT_UNICAST.find((s) => rangesOverlap(r, s.range));
  if (special)
    problems.push({ path, rule: `must hold unicast addresses only: it overlaps ${special.text} (${special.what})` });
  if (type === "private" && network) {
    if (!within(network.cidr))
      problems.push({ path, rule: `is private, so it must be inside network.cidr ${cidrOf(network.cidr)}` });
    else {
      const edges = [network.cidr.network, broadcastAddress(network.cidr)];
      if (edges.some((e) => inRange(r, e)))
        problems.push({ path, rule: "must not hold network.cidr's network or broadcast address" });
    }
  }
  if (type === "public") {
    if (network && inside(network.cidr))
      problems.push({ path, rule: `is public, so it must be outside network.cidr ${cidrOf(network.cidr)}` });
    const pub = ctx.publicNet;
    if (pub && ctx.platform === "libvirt" && inside(pub.cidr))
      problems.push({
        path,
        rule: "must be outside platform.publicNetwork.cidr: on libvirt public pools are routed to platform.publicNetwork.nextHop",
      });
    // an IPv4 route needs an IPv4 next hop, as for a public IPv4 VIP (semantics.ts)
    if (pub && ctx.platform === "libvirt" && pub.cidr.network.kind() !== "ipv4")
      problems.push({
        path,
        rule: "cannot be IPv4 with an IPv6 platform.publicNetwork: it is routed to the public next hop",
      });
    if (pub && ctx.platform === "openstack") {
      if (!within(pub.cidr))
        problems.push({
          path,
          rule: "must be inside platform.publicNetwork.cidr: on openstack a public Service address is a fixed IP of a VIP port",
        });
      else {
        for (const [what, a] of [
          ["the public gateway", pub.gateway],
          ["an LB's public address", pub.lbAddresses[0]],
          ["an LB's public address", pub.lbAddresses[1]],
        ] as const) {
          if (a && inRange(r, a)) problems.push({ path, rule: `must not hold ${what} ${canonical(a)}` });
        }
        // as for a public VIP there: Neutron gives neither address to a port
        if ([pub.cidr.network, broadcastAddress(pub.cidr)].some((e) => inRange(r, e)))
          problems.push({ path, rule: "must not hold platform.publicNetwork.cidr's network or broadcast address" });
      }
    }
  }
  if (ctx.syncCidr && inside(ctx.syncCidr))
    problems.push({
      path,
      rule: "must be outside syncNetwork.cidr: that link carries only VRRP and the conntrack sync",
    });
  if (network) {
    for (const [what, a] of [
      ["the gateway", network.gateway],
      ["an LB address", network.lbAddresses[0]],
      ["an LB address", network.lbAddresses[1]],
    ] as const) {
      if (a && inRange(r, a)) problems.push({ path, rule: `must not hold ${what} ${canonical(a)}` });
    }
  }
  for (const v of ctx.vips) {
    if (inRange(r, v.ip))
      problems.push({ path, rule: `must not hold a virtual address: ${canonical(v.ip)} is ${v.path}` });
  }
  // Both LBs hold a pool's addresses as their own: a node at one of them could no longer be reached through the pair,
  // and a Service given its address would take the node's traffic. The first one names the collision.
  const backend = backends.find((b) => inRange(r, b.ip));
  if (backend)
    problems.push({
      path,
      rule: `must not hold a static backend: ${canonical(backend.ip)} is ${backend.path}, a node's address`,
    });
}

function checkExtraServices(raw: unknown[], pools: ParsedPool[], ctx: ServiceContext, problems: SpecProblem[]) {
  const names = new Map<string, string>();
  const frontends = new Map<string, string>();
  raw.forEach((e, i) => {
    const svc = obj(e);
    const path = `extraServices[${i}]`;
    if (typeof svc.name === "string") {
      const prior = names.get(svc.name);
      if (prior) problems.push({ path: `${path}.name`, rule: `duplicates ${prior}.name ${svc.name}` });
      else names.set(svc.name, path);
    }
    checkFrontend(path, svc, pools, ctx, frontends, problems);
    // whatever the frontend's problems: every problem at once
    checkExtraBackends(`${path}.backend`, obj(svc.backend), ctx, problems);
  });
}

function checkFrontend(
  path: string,
  svc: Obj,
  pools: ParsedPool[],
  ctx: ServiceContext,
  frontends: Map<string, string>,
  problems: SpecProblem[],
) {
  const fe = obj(svc.frontend);
  const a = ctx.ip(fe.address);
  const port = typeof fe.port === "number" ? fe.port : undefined;
  if (!a) return;
  const where = frontendOf(a, pools, ctx);
  const fePath = `${path}.frontend.address`;
  if (a.kind() !== "ipv4") {
    problems.push({
      path: fePath,
      rule: "must be IPv4: the cluster network is IPv4, and the kernel does not translate between families",
    });
    return;
  }
  if (!where) {
    problems.push({
      path: fePath,
      rule: `must be one of virtualAddresses.api or .ingress, or inside a pool of serviceLoadBalancers: ${canonical(a)} is neither`,
    });
  } else if (where.kind === "nat") {
    problems.push({
      path: fePath,
      rule: "must not be virtualAddresses.nat: its ports are the egress translation's",
    });
  }
  if (where && port !== undefined) {
    const portPath = `${path}.frontend.port`;
    const own = where.kind === "vip" ? ctx.ownPorts.get(port) : undefined;
    if (own)
      problems.push({ path: portPath, rule: `must not be ${port} on a virtual address of the pair: it is ${own}` });
    else if (where.type === "public" && (port === 22 || port === 22623))
      problems.push({
        path: portPath,
        rule: `must not be ${port} on a public address: ${port === 22 ? "SSH" : "the machine-config server"} is never exposed outside`,
      });
    const key = `${canonical(a)} ${String(svc.protocol)} ${port}`;
    const prior = frontends.get(key);
    if (prior) problems.push({ path: portPath, rule: `${svc.protocol} ${canonical(a)}:${port} is already ${prior}` });
    else frontends.set(key, `${path}.frontend`);
  }
}

function checkExtraBackends(path: string, raw: Obj, ctx: ServiceContext, problems: SpecProblem[]) {
  if (raw.nodeSelector === undefined && list(raw.addresses).length === 0)
    problems.push({ path, rule: "needs a nodeSelector or at least one address" });
  const network = ctx.network;
  const seen = new Set<string>();
  list(raw.addresses).forEach((v, i) => {
    const a = ctx.ip(v);
    if (!a) return;
    const p = `${path}.addresses[${i}]`;
    if (seen.has(canonical(a))) problems.push({ path: p, rule: `duplicates ${canonical(a)}` });
    seen.add(canonical(a));
    if (network && !contains(network.cidr, a))
      problems.push({
        path: p,
        rule: `must be inside network.cidr ${cidrOf(network.cidr)}: NodePorts are reached through the private NIC`,
      });
    else if (
      network &&
      [network.cidr.network, broadcastAddress(network.cidr)].some((x) => canonical(x) === canonical(a))
    )
      problems.push({ path: p, rule: "must not be network.cidr's network or broadcast address" });
    else if (network && [network.gateway, ...network.lbAddresses].some((x) => x && canonical(x) === canonical(a)))
      problems.push({
        path: p,
        rule: `must not be one of the pair's own addresses: ${canonical(a)} (it would forward to itself)`,
      });
    else {
      const vip = ctx.vips.find((x) => canonical(x.ip) === canonical(a));
      if (vip) problems.push({ path: p, rule: `must not be a virtual address: ${canonical(a)} is ${vip.path}` });
    }
  });
}

type Frontend = { kind: "vip" | "nat" | "pool"; type: unknown };

function frontendOf(a: Ip, pools: ParsedPool[], ctx: ServiceContext): Frontend | undefined {
  const vip = ctx.vips.find((v) => canonical(v.ip) === canonical(a));
  if (vip) return { kind: vip.role === "nat" ? "nat" : "vip", type: vip.type };
  const pool = pools.find((p) => p.ranges.some((r) => inRange(r.range, a)));
  return pool ? { kind: "pool", type: pool.type } : undefined;
}

function containsNumber(c: Cidr, n: number): boolean {
  if (c.network.kind() !== "ipv4") return false;
  const size = 2 ** (32 - c.prefixLength);
  const start = ipv4Number(c.network);
  return n >= start && n < start + size;
}

function cidrOf(c: Cidr): string {
  return `${canonical(c.network)}/${c.prefixLength}`;
}
