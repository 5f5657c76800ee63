/**
 * The Service controller's pure parts (agent/service-lb): which Services are this pair's, the allocation from the
 * pools (examples and properties), and the frontends both LBs render from the recorded statuses.
 */
import fc from "fast-check";
import { allocate, type Assignment } from "../agent/service-lb/allocate";
import { serviceFrontends } from "../agent/service-lb/frontends";
import { HealthTracker, overlayScript, ServiceHealth } from "../agent/service-lb/health";
import type { KernelService } from "../render/service-lb";
import { isOurs, serviceView, type ServiceView } from "../agent/service-lb/view";
import { resolveSpec } from "../spec/resolve";
import type { ServiceLoadBalancers } from "../spec/types";
import { servicesRaw } from "./fixtures/variants";

const spec = resolveSpec(servicesRaw());
const slb = spec.serviceLoadBalancers!;

let seq = 0;
function svc(name: string, o: Partial<Omit<ServiceView, "key" | "name">> = {}): ServiceView {
  const namespace = o.namespace ?? "default";
  seq++;
  return {
    key: `${namespace}/${name}`,
    namespace,
    name,
    uid: `uid-${name}`,
    resourceVersion: "1",
    creationTimestamp: `2026-12-07T00:00:${String(seq % 60).padStart(2, "0")}Z`,
    type: "LoadBalancer",
    loadBalancerClass: "edgepair.io/pair",
    annotations: {},
    ports: [{ name: "p", protocol: "TCP", port: 80, nodePort: 30080 }],
    externalTrafficPolicy: "Cluster",
    allocateLoadBalancerNodePorts: true,
    loadBalancerSourceRanges: [],
    ipFamilies: ["IPv4"],
    deleting: false,
    finalizers: [],
    ingressIps: [],
    conditions: [],
    ...o,
  };
}

const addressOf = (m: Map<string, Assignment>, key: string) => {
  const a = m.get(key);
  return a && "address" in a ? a.address : a?.refused.reason;
};

describe("service-lb, pure", () => {
  test("serviceView keeps what allocation needs; malformed objects are dropped, not thrown", () => {
    const v = serviceView({
      metadata: {
        name: "web",
        namespace: "shop",
        uid: "u1",
        resourceVersion: "7",
        creationTimestamp: "2026-12-07T00:00:00Z",
        annotations: { "edgepair.io/address-pool": "public" },
        finalizers: ["edgepair.io/load-balancer"],
      },
      spec: {
        type: "LoadBalancer",
        loadBalancerClass: "edgepair.io/pair",
        ports: [{ name: "http", protocol: "TCP", port: 80, nodePort: 31080 }],
        externalTrafficPolicy: "Local",
        healthCheckNodePort: 32000,
        loadBalancerSourceRanges: ["10.0.0.0/8"],
      },
      status: { loadBalancer: { ingress: [{ ip: "198.51.100.128", ipMode: "VIP" }] } },
    });
    expect(v).toMatchObject({
      key: "shop/web",
      externalTrafficPolicy: "Local",
      healthCheckNodePort: 32000,
      ingressIps: ["198.51.100.128"],
      allocateLoadBalancerNodePorts: true,
      deleting: false,
    });
    expect(serviceView({ metadata: { name: "x" } })).toBeUndefined();
    expect(serviceView(null)).toBeUndefined();
  });

  test("isOurs: our class; no class only when the pair is the default; never another type or class", () => {
    expect(isOurs(svc("a"), slb)).toBe(true);
    expect(isOurs(svc("b", { loadBalancerClass: "metallb.io/x" }), slb)).toBe(false);
    expect(isOurs(svc("c", { loadBalancerClass: undefined }), slb)).toBe(false);
    expect(isOurs(svc("c", { loadBalancerClass: undefined }), { ...slb, defaultClass: true })).toBe(true);
    expect(isOurs(svc("d", { type: "NodePort" }), { ...slb, defaultClass: true })).toBe(false);
    expect(isOurs(svc("a"), undefined)).toBe(false);
  });

  test("first free address in pool order; a held address stays; the pool and a requested address are honoured", () => {
    const m = allocate(slb, [
      svc("old", { ingressIps: ["198.51.100.140"] }),
      svc("new"),
      svc("internal", { annotations: { "edgepair.io/address-pool": "internal" } }),
      svc("asks", { annotations: { "edgepair.io/load-balancer-ips": "198.51.100.150" } }),
      svc("legacy", { loadBalancerIP: "192.168.100.230" }),
    ]);
    expect(Object.fromEntries([...m].map(([k]) => [k, addressOf(m, k)]))).toEqual({
      "default/old": "198.51.100.140",
      "default/new": "198.51.100.128",
      "default/internal": "192.168.100.200",
      "default/asks": "198.51.100.150",
      "default/legacy": "192.168.100.230",
    });
  });

  test("refusals name the reason; one refused Service changes nobody else's address", () => {
    const m = allocate(slb, [
      svc("holder", { ingressIps: ["198.51.100.150"] }),
      svc("taken", { annotations: { "edgepair.io/load-balancer-ips": "198.51.100.150" } }),
      svc("outside", { annotations: { "edgepair.io/load-balancer-ips": "203.0.113.9" } }),
      svc("garbage", { annotations: { "edgepair.io/load-balancer-ips": "not-an-ip, $(reboot)" } }),
      svc("two", { annotations: { "edgepair.io/load-balancer-ips": "198.51.100.151,198.51.100.152" } }),
      svc("nopool", { annotations: { "edgepair.io/address-pool": "nope" } }),
      svc("sctp", { ports: [{ name: "s", protocol: "SCTP", port: 9, nodePort: 30009 }] }),
      svc("nonodeport", { allocateLoadBalancerNodePorts: false, ports: [{ name: "p", protocol: "TCP", port: 80 }] }),
      svc("v6", { ipFamilies: ["IPv6"] }),
      svc("v6ranges", { loadBalancerSourceRanges: ["2001:db8::/32"] }),
    ]);
    const reasons = Object.fromEntries([...m].map(([k]) => [k, addressOf(m, k)]));
    expect(reasons).toEqual({
      "default/holder": "198.51.100.150",
      "default/taken": "AddressInUse",
      "default/outside": "AddressNotInPool",
      "default/garbage": "BadAnnotation",
      "default/two": "BadAnnotation",
      "default/nopool": "BadAnnotation",
      "default/sctp": "UnsupportedProtocol",
      "default/nonodeport": "NoNodePorts",
      "default/v6": "UnsupportedFamily",
      "default/v6ranges": "BadSourceRanges",
    });
    const garbage = m.get("default/garbage");
    expect(garbage && "refused" in garbage && garbage.refused.message).toMatch(
      /^edgepair\.io\/load-balancer-ips: "not-an-ip"/,
    );
  });

  test("22 and 22623 only on a private address: a public request is refused, an automatic one comes from a private pool", () => {
    const ssh = [{ name: "s", protocol: "TCP", port: 22, nodePort: 30022 }];
    const m = allocate(slb, [
      svc("ssh-auto", { ports: ssh }),
      svc("ssh-public", { ports: ssh, annotations: { "edgepair.io/load-balancer-ips": "198.51.100.140" } }),
      svc("mcs-public-pool", {
        ports: [{ name: "m", protocol: "TCP", port: 22623, nodePort: 30623 }],
        annotations: { "edgepair.io/address-pool": "public" },
      }),
    ]);
    expect(addressOf(m, "default/ssh-auto")).toBe("192.168.100.200");
    expect(addressOf(m, "default/ssh-public")).toBe("PortNotAllowed");
    expect(addressOf(m, "default/mcs-public-pool")).toBe("PortNotAllowed");
  });

  test("sharing: same key and distinct ports share one address; the same port or another key does not", () => {
    const shared = { "edgepair.io/allow-shared-ip": "dns" };
    const m = allocate(slb, [
      svc("dns-tcp", { annotations: shared, ports: [{ name: "d", protocol: "TCP", port: 53, nodePort: 30053 }] }),
      svc("dns-udp", { annotations: shared, ports: [{ name: "d", protocol: "UDP", port: 53, nodePort: 30054 }] }),
      svc("dns-dup", { annotations: shared, ports: [{ name: "d", protocol: "UDP", port: 53, nodePort: 30055 }] }),
      svc("other", { ports: [{ name: "d", protocol: "TCP", port: 54, nodePort: 30056 }] }),
    ]);
    expect(addressOf(m, "default/dns-tcp")).toBe("198.51.100.128");
    expect(addressOf(m, "default/dns-udp")).toBe("198.51.100.128");
    expect(addressOf(m, "default/dns-dup")).toBe("198.51.100.129");
    expect(addressOf(m, "default/other")).toBe("198.51.100.130");
    const clash = allocate(slb, [
      svc("a", { annotations: shared, ingressIps: ["198.51.100.140"] }),
      svc("b", { annotations: { ...shared, "edgepair.io/load-balancer-ips": "198.51.100.140" } }),
    ]);
    expect(addressOf(clash, "default/b")).toBe("PortConflict");
  });

  test("exhausted pool -> PoolExhausted; a Service being deleted keeps its address until it is gone", () => {
    const tiny: ServiceLoadBalancers = {
      ...slb,
      pools: [
        {
          name: "tiny",
          type: "public",
          ranges: [slb.pools[0]!.ranges[0]!].map((r) => ({ first: r.first, last: r.first + 1 })),
        },
      ],
    };
    const m = allocate(tiny, [
      svc("going", { deleting: true, ingressIps: ["198.51.100.128"] }),
      svc("one"),
      svc("two"),
    ]);
    expect(m.has("default/going")).toBe(false);
    expect(addressOf(m, "default/one")).toBe("198.51.100.129");
    expect(addressOf(m, "default/two")).toBe("PoolExhausted");
  });

  test("two writers claimed one address: the older Service keeps it, the younger is allocated again", () => {
    const m = allocate(slb, [
      svc("younger", { creationTimestamp: "2026-12-07T00:00:09Z", ingressIps: ["198.51.100.140"] }),
      svc("older", { creationTimestamp: "2026-12-07T00:00:01Z", ingressIps: ["198.51.100.140"] }),
    ]);
    expect(addressOf(m, "default/older")).toBe("198.51.100.140");
    expect(addressOf(m, "default/younger")).toBe("198.51.100.128");
  });

  test("an extra service's frontend in a pool is never handed to a Service", () => {
    // servicesRaw's mqtt extra service listens on 198.51.100.130:8883
    const m = allocate(
      slb,
      [
        svc("wants", { annotations: { "edgepair.io/load-balancer-ips": "198.51.100.130" } }),
        svc("a"),
        svc("b"),
        svc("c"),
      ],
      spec.extraServices,
    );
    expect(addressOf(m, "default/wants")).toBe("AddressInUse");
    expect([...m.values()].flatMap((a) => ("address" in a ? [a.address] : []))).not.toContain("198.51.100.130");
  });

  test("frontends: one per port on the recorded address; ETP Local checks the healthCheckNodePort; a stale status opens nothing", () => {
    const services = [
      svc("web", {
        ingressIps: ["198.51.100.128"],
        ports: [
          { name: "http", protocol: "TCP", port: 80, nodePort: 30080 },
          { name: "q", protocol: "UDP", port: 443, nodePort: 30443 },
        ],
        loadBalancerSourceRanges: ["10.0.0.0/8", "2001:db8::/32"],
      }),
      svc("local", { ingressIps: ["198.51.100.129"], externalTrafficPolicy: "Local", healthCheckNodePort: 32100 }),
      svc("stale", { ingressIps: ["198.51.100.200"] }),
    ];
    const assignments = allocate(slb, services);
    const nodes = [
      { name: "w1", address: "192.168.100.20" },
      { name: "w2", address: "192.168.100.21" },
    ];
    const f = serviceFrontends(services, assignments, nodes);
    expect(f.map((x) => [x.chain, x.address, x.port, x.protocol, x.check.kind, x.sourceRanges])).toEqual([
      ["svc/default/local/tcp/80", "198.51.100.129", 80, "TCP", "http", []],
      ["svc/default/web/tcp/80", "198.51.100.128", 80, "TCP", "tcp", ["10.0.0.0/8"]],
      ["svc/default/web/udp/443", "198.51.100.128", 443, "UDP", "none", ["10.0.0.0/8"]],
    ]);
    expect(f[0]!.check).toEqual({ kind: "http", port: 32100, path: "/healthz" });
    expect(f[1]!.backends).toEqual([
      { address: "192.168.100.20", port: 30080 },
      { address: "192.168.100.21", port: 30080 },
    ]);
  });
});

describe("service-lb allocation, properties", () => {
  const name = fc.constantFrom("a", "b", "c", "d", "e", "f", "g", "h");
  const port = fc.record({ protocol: fc.constantFrom("TCP", "UDP"), port: fc.integer({ min: 1, max: 4 }) });
  const requestable = fc.constantFrom(undefined, "198.51.100.128", "198.51.100.129", "192.168.100.200", "203.0.113.1");
  const arbService = fc.record({
    name,
    ports: fc.uniqueArray(port, { minLength: 1, maxLength: 3, selector: (p) => `${p.protocol}/${p.port}` }),
    request: requestable,
    key: fc.constantFrom(undefined, "k1", "k2"),
    pool: fc.constantFrom(undefined, "public", "internal"),
    held: requestable,
    age: fc.integer({ min: 0, max: 59 }),
  });
  const tinySlb: ServiceLoadBalancers = {
    ...slb,
    pools: slb.pools.map((p) => ({ ...p, ranges: p.ranges.map((r) => ({ first: r.first, last: r.first + 2 })) })),
  };
  type Arb = typeof arbService extends fc.Arbitrary<infer T> ? T : never;
  const views = (xs: Arb[]) =>
    xs.map((x) =>
      svc(x.name, {
        creationTimestamp: `2026-12-07T00:00:${String(x.age).padStart(2, "0")}Z`,
        ports: x.ports.map((p, i) => ({ name: `p${i}`, ...p, nodePort: 30000 + i })),
        annotations: {
          ...(x.request ? { "edgepair.io/load-balancer-ips": x.request } : {}),
          ...(x.key ? { "edgepair.io/allow-shared-ip": x.key } : {}),
          ...(x.pool ? { "edgepair.io/address-pool": x.pool } : {}),
        },
        ingressIps: x.held ? [x.held] : [],
      }),
    );

  test("never one address for two Services unless they share a key and no port; stable when re-run on its own result", () => {
    fc.assert(
      fc.property(fc.uniqueArray(arbService, { selector: (s) => s.name, maxLength: 8 }), (xs) => {
        const vs = views(xs);
        const m = allocate(tinySlb, vs);
        const byAddress = new Map<string, ServiceView[]>();
        for (const v of vs) {
          const a = m.get(v.key);
          if (a && "address" in a) byAddress.set(a.address, [...(byAddress.get(a.address) ?? []), v]);
        }
        for (const holders of byAddress.values()) {
          if (holders.length < 2) continue;
          const keys = new Set(holders.map((h) => h.annotations["edgepair.io/allow-shared-ip"]));
          expect(keys.size).toBe(1);
          expect([...keys][0]).toBeDefined();
          const ports = holders.flatMap((h) => h.ports.map((p) => `${p.protocol}/${p.port}`));
          expect(new Set(ports).size).toBe(ports.length);
        }
        // the statuses the writer records, read back: the same allocation
        const recorded = vs.map((v) => {
          const a = m.get(v.key);
          return { ...v, ingressIps: a && "address" in a ? [a.address] : [] };
        });
        const again = allocate(tinySlb, recorded);
        for (const v of recorded) expect([v.key, addressOf(again, v.key)]).toEqual([v.key, addressOf(m, v.key)]);
      }),
      { numRuns: 300 },
    );
  });

  test("a new Service never moves an allocated one", () => {
    fc.assert(
      fc.property(fc.uniqueArray(arbService, { selector: (s) => s.name, minLength: 2, maxLength: 8 }), (xs) => {
        const vs = views(xs).map((v) => ({ ...v, ingressIps: [] as string[] }));
        const first = allocate(tinySlb, vs.slice(0, -1));
        const recorded = vs.slice(0, -1).map((v) => {
          const a = first.get(v.key);
          return { ...v, ingressIps: a && "address" in a ? [a.address] : [] };
        });
        const next = allocate(tinySlb, [
          ...recorded,
          { ...vs[vs.length - 1]!, creationTimestamp: "2026-12-07T00:01:00Z" },
        ]);
        for (const v of recorded)
          if (v.ingressIps.length > 0) expect([v.key, addressOf(next, v.key)]).toEqual([v.key, v.ingressIps[0]]);
      }),
      { numRuns: 300 },
    );
  });
});

describe("service-lb health, pure parts and the bound on probing", () => {
  const frontend = (n: number, check: KernelService["check"] = { kind: "tcp" }): KernelService => ({
    chain: "svc/default/web/tcp/80",
    name: "default/web:80/TCP",
    protocol: "TCP",
    address: "198.51.100.128",
    port: 80,
    sourceRanges: [],
    backends: Array.from({ length: n }, (_, i) => ({ address: `192.168.100.${20 + (i % 200)}`, port: 30000 + i })),
    check,
  });

  test("rise/fall: a backend leaves after `fall` failures in a row and returns after `rise` passes", () => {
    const t = new HealthTracker({ rise: 2, fall: 3 });
    expect([t.observe("a", false), t.observe("a", false), t.isUp("a")]).toEqual([false, false, true]);
    expect([t.observe("a", true), t.observe("a", false), t.observe("a", false), t.observe("a", false)]).toEqual([
      false,
      false,
      false,
      true,
    ]);
    expect(t.isUp("a")).toBe(false);
    expect([t.observe("a", true), t.observe("a", true), t.isUp("a")]).toEqual([false, true, true]);
  });

  test("the overlay points a down backend's slots at the healthy ones, in one transaction per map", () => {
    const f = frontend(3);
    const script = overlayScript([f], (_f, b) => b.port !== 30001);
    expect(script).toBe(
      "flush map ip edgepair_services svc/default/web/tcp/80/backends\n" +
        "add element ip edgepair_services svc/default/web/tcp/80/backends { 0 : 192.168.100.20 . 30000, 1 : 192.168.100.20 . 30000, 2 : 192.168.100.22 . 30002 }\n",
    );
    // every backend down: all keep their slots (as HAProxy serves a backend whose checks all fail)
    expect(overlayScript([f], () => false)).toContain("0 : 192.168.100.20 . 30000, 1 : 192.168.100.21 . 30001");
  });

  test("probing is bounded: a round of 600 probes at 200/s takes 3 s however short the interval", async () => {
    const probed: string[] = [];
    const h = new ServiceHealth({
      healthCheck: { intervalMs: 500, rise: 2, fall: 2 },
      runner: () => Promise.resolve({ exitCode: 0, timedOut: false, output: "" }),
      prober: (t) => {
        probed.push(`${t.address}:${t.port}`);
        return Promise.resolve(true);
      },
      log: () => undefined,
    });
    await h.applied([frontend(600)], { intervalMs: 500, rise: 2, fall: 2 });
    await h.round();
    await h.stop();
    expect(new Set(probed).size).toBe(600);
    expect(h.roundPeriodMs()).toBe(3000);
  });
});
