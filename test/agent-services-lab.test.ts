/**
 * Services of type LoadBalancer end to end (issue 20): a real kube-apiserver holds the Services and Nodes, an agent
 * on each LB of the network-namespace lab (real haproxy, keepalived, conntrackd, firewalld, nftables) watches them;
 * the lease holder allocates from the spec's pools and writes status, finalizer and Events; both LBs forward the
 * addresses in the kernel to the lab workers' NodePorts. Answers are checked from the outside client, with the
 * client's own address seen by the backend. Needs root.
 */
import { ANNOTATION_IPS, ANNOTATION_SHARED, FINALIZER } from "../agent/service-lb/view";
import { CONDITION_TYPE } from "../agent/service-lb/writer";
import { sleep, waitFor } from "../lab/exec";
import type { LbKey } from "../lab/lab";
import { OUTSIDE } from "../lab/topology";
import { flowsReady, startFlows, stopFlows } from "../lab/flows";
import { startAgentOnLab, type AgentOnLab } from "./fixtures/agent-on-lab";
import { devSpecRaw } from "./fixtures/variants";

const suite = process.getuid?.() === 0 ? describe : describe.skip;

const NODE_PORT = { tcp: 30107, udp: 30108, other: 30109, checked: 30110, local: 30111 };
/** the ETP Local Service's healthCheckNodePort: 200 on the first worker (it has the endpoint), 503 on the second */
const HEALTH_NODE_PORT = 32100;
const CLASS = "edgepair.io/pair";
/** a /29 public pool, routed to the pair like the floating IPs: 198.51.100.128-135 */
const POOL = "198.51.100.128/29";

function spec(): Record<string, unknown> {
  const raw = devSpecRaw();
  raw.serviceLoadBalancers = { pools: [{ name: "public", addresses: [POOL], type: "public" }] };
  // probes every 0.5 s, two in a row: a dead backend leaves within about a second
  raw.healthCheck = { intervalSeconds: 0.5, rise: 2, fall: 2 };
  return raw;
}

interface ServiceObject {
  metadata: { name: string; finalizers?: string[]; resourceVersion: string };
  status?: {
    loadBalancer?: { ingress?: { ip: string; ipMode?: string }[] };
    conditions?: { type: string; status: string; reason: string; message: string }[];
  };
}

suite("agent: Services of type LoadBalancer on the lab pair, against a real API server", () => {
  let env: AgentOnLab;
  const ns = "default";
  const path = (name = "") => `/api/v1/namespaces/${ns}/services${name ? `/${name}` : ""}`;

  const create = async (
    name: string,
    o: {
      /** without nodePort the API server allocates one (a NodePort is unique in the cluster) */
      ports?: { protocol: string; port: number; nodePort?: number }[];
      annotations?: Record<string, string>;
      class?: string;
      local?: { healthCheckNodePort: number };
    } = {},
  ) => {
    await env.cluster.must("POST", path(), {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name, namespace: ns, ...(o.annotations ? { annotations: o.annotations } : {}) },
      spec: {
        type: "LoadBalancer",
        loadBalancerClass: o.class ?? CLASS,
        ...(o.local ? { externalTrafficPolicy: "Local", healthCheckNodePort: o.local.healthCheckNodePort } : {}),
        ports: (o.ports ?? [{ protocol: "TCP", port: 7 }]).map((p, i) => ({
          name: `p${i}`,
          ...p,
          targetPort: 7,
        })),
      },
    });
  };
  const get = async (name: string): Promise<ServiceObject | undefined> => {
    try {
      return (await env.cluster.must("GET", path(name))).body as ServiceObject;
    } catch (e) {
      if (/: 404 /.test(String(e))) return undefined;
      throw e;
    }
  };
  const ingressOf = async (name: string) => (await get(name))?.status?.loadBalancer?.ingress?.[0]?.ip;
  const conditionOf = async (name: string) =>
    (await get(name))?.status?.conditions?.find((c) => c.type === CONDITION_TYPE);
  const events = async (name: string) => {
    const r = await env.cluster.must("GET", `/apis/events.k8s.io/v1/namespaces/${ns}/events`);
    return (r.body as { items: { regarding: { name: string }; reason: string; note: string; type: string }[] }).items
      .filter((e) => e.regarding.name === name)
      .map((e) => `${e.type} ${e.reason}: ${e.note}`);
  };
  const table = async (key: LbKey) =>
    (await env.lab.run(env.lab.lb(key).ns, ["nft", "list", "table", "ip", "edgepair_services"], { allowFail: true }))
      .stdout;

  const workers = () => env.lab.plan.hosts.filter((x) => x.role === "ingress");
  const name = (h: { serverName?: string; key: string }) => h.serverName ?? h.key;
  const startNodePort = async (hostKey: string, port: number) => {
    const h = workers().find((x) => x.key === hostKey)!;
    const p = env.lab.startHelper(`${h.key}/np-${port}`, h.key, [
      "serve",
      "--name",
      name(h),
      "--echo",
      `${h.address}:${port}`,
    ]);
    await env.lab.waitListening(p);
  };
  /** which backends answer `count` new connections to `to` */
  const answering = async (to: string, count: number) => {
    const servers = new Set<string>();
    for (let i = 0; i < count; i++) {
      const r = await env.lab.ask("cli", to, { timeoutMs: 1000 });
      servers.add(r.ok ? r.server : `error: ${r.error}`);
    }
    return [...servers].sort();
  };

  beforeAll(async () => {
    env = await startAgentOnLab({ spec: spec(), both: true });
    // the workers' NodePorts: echo servers (TCP and UDP) that say who they are and whom they saw, one process per
    // port (a test stops one); the ETP Local Service's health NodePort says where its endpoint is
    for (const [i, h] of workers().entries()) {
      for (const port of Object.values(NODE_PORT)) await startNodePort(h.key, port);
      const health = i === 0 ? "--http" : "--unhealthy";
      const p = env.lab.startHelper(`${h.key}/hc`, h.key, [
        "serve",
        "--name",
        name(h),
        health,
        `${h.address}:${HEALTH_NODE_PORT}`,
      ]);
      await env.lab.waitListening(p);
    }
  }, 300_000);

  afterAll(async () => {
    if (env) await env.stop();
  }, 120_000);

  test("a TCP Service gets the pool's first address, a finalizer, a condition and an Event; answered from outside, the backend sees the client", async () => {
    const t0 = Date.now();
    await create("echo", { ports: [{ protocol: "TCP", port: 7, nodePort: NODE_PORT.tcp }] });
    const ip = await waitFor("echo's address", () => ingressOf("echo"), { timeoutMs: 20_000, intervalMs: 50 });
    expect(ip).toBe("198.51.100.128");
    let first: number | undefined;
    const answer = await waitFor(
      "echo's first answer from outside",
      async () => {
        const r = await env.lab.ask("cli", `${ip}:7`, { timeoutMs: 500 });
        if (r.ok) first = Date.now();
        return r.ok ? r : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 20 },
    );
    expect(answer.peer).toBe(OUTSIDE.client);
    process.stdout.write(`Service created -> first TCP answer through ${ip}: ${first! - t0} ms\n`);
    const svc = (await get("echo"))!;
    expect(svc.metadata.finalizers).toContain(FINALIZER);
    expect(svc.status?.loadBalancer?.ingress).toEqual([{ ip, ipMode: "VIP" }]);
    expect(await conditionOf("echo")).toMatchObject({ status: "True", reason: "Allocated" });
    expect(await events("echo")).toEqual([`Normal AddressAllocated: ${ip} from pool public`]);
    // both LBs forward it: the BACKUP is ready for a failover
    for (const key of ["lb1", "lb2"] as const)
      await waitFor(
        `${key} forwards echo`,
        async () => ((await table(key)).includes("svc/default/echo/tcp/7") ? true : undefined),
        {
          timeoutMs: 10_000,
          intervalMs: 100,
        },
      );
  }, 60_000);

  test("TCP and UDP Services with one sharing key share one address; a requested address is honoured", async () => {
    const shared = { [ANNOTATION_SHARED]: "dns" };
    await create("dns-tcp", { annotations: shared, ports: [{ protocol: "TCP", port: 53, nodePort: NODE_PORT.other }] });
    await create("dns-udp", { annotations: shared, ports: [{ protocol: "UDP", port: 53, nodePort: NODE_PORT.udp }] });
    await create("asks", { annotations: { [ANNOTATION_IPS]: "198.51.100.135" } });
    const a = await waitFor("dns-tcp's address", () => ingressOf("dns-tcp"), { timeoutMs: 20_000, intervalMs: 50 });
    const b = await waitFor("dns-udp's address", () => ingressOf("dns-udp"), { timeoutMs: 20_000, intervalMs: 50 });
    expect(a).toBe(b);
    expect(await waitFor("asks' address", () => ingressOf("asks"), { timeoutMs: 20_000, intervalMs: 50 })).toBe(
      "198.51.100.135",
    );
    const udp = await waitFor(
      "the UDP Service's answer",
      async () => {
        const r = await env.lab.ask("cli", `${b}:53`, { udp: true, timeoutMs: 500 });
        return r.ok ? r : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 50 },
    );
    expect(udp.peer).toBe(OUTSIDE.client);
  }, 60_000);

  test("a backend whose NodePort stops answering leaves within fall x interval and comes back after rise; ETP Local goes only where the endpoint is", async () => {
    await create("checked", { ports: [{ protocol: "TCP", port: 7, nodePort: NODE_PORT.checked }] });
    await create("local", {
      ports: [{ protocol: "TCP", port: 7, nodePort: NODE_PORT.local }],
      local: { healthCheckNodePort: HEALTH_NODE_PORT },
    });
    const checked = await waitFor("checked's address", () => ingressOf("checked"), {
      timeoutMs: 20_000,
      intervalMs: 50,
    });
    const local = await waitFor("local's address", () => ingressOf("local"), { timeoutMs: 20_000, intervalMs: 50 });
    const [w1, w2] = workers().map(name);
    // the address is recorded before the LBs forward it: wait for the first answers
    await waitFor(
      "checked answered by both workers",
      async () => ((await answering(`${checked}:7`, 8)).join() === [w1, w2].sort().join() ? true : undefined),
      {
        timeoutMs: 10_000,
        intervalMs: 100,
      },
    );
    expect(await answering(`${checked}:7`, 16)).toEqual([w1, w2].sort());
    // ETP Local: the second worker's health NodePort answers 503 (no local endpoint)
    await waitFor(
      "local served by the first worker only",
      async () => ((await answering(`${local}:7`, 8)).join() === w1 ? true : undefined),
      {
        timeoutMs: 10_000,
        intervalMs: 200,
      },
    );
    expect(await answering(`${local}:7`, 16)).toEqual([w1]);
    // the second worker's NodePort of "checked" dies
    const second = workers()[1]!;
    const t0 = Date.now();
    await env.lab.stopClient(env.lab.proc(`${second.key}/np-${NODE_PORT.checked}`)!);
    await waitFor(
      "checked served by the first worker only",
      async () => ((await answering(`${checked}:7`, 8)).join() === w1 ? true : undefined),
      {
        timeoutMs: 10_000,
        intervalMs: 100,
      },
    );
    const leftMs = Date.now() - t0;
    expect(await answering(`${checked}:7`, 16)).toEqual([w1]);
    await startNodePort(second.key, NODE_PORT.checked);
    const t1 = Date.now();
    await waitFor(
      "checked served by both again",
      async () => ((await answering(`${checked}:7`, 12)).length === 2 ? true : undefined),
      {
        timeoutMs: 10_000,
        intervalMs: 100,
      },
    );
    process.stdout.write(
      `backend health: dead NodePort out after ${leftMs} ms, back after ${Date.now() - t1} ms (interval 500 ms, fall 2, rise 2)\n`,
    );
  }, 90_000);

  test("another class is never touched; an exhausted pool gets an Event and no address, and one Service's refusal changes no other", async () => {
    await create("not-ours", { class: "example.com/other" });
    // 8 addresses: echo, dns (shared), asks, checked and local hold 5; three more fill the pool, the fourth is refused
    for (let i = 0; i < 4; i++) await create(`fill-${i}`);
    await waitFor(
      "fill-3's refusal",
      async () => ((await conditionOf("fill-3"))?.reason === "PoolExhausted" ? true : undefined),
      {
        timeoutMs: 20_000,
        intervalMs: 100,
      },
    );
    expect(await ingressOf("fill-3")).toBeUndefined();
    expect(await events("fill-3")).toEqual(["Warning PoolExhausted: no free address in pool public"]);
    await sleep(2000); // passes of the writer: still nothing on the other class, and one Event only
    const other = (await get("not-ours"))!;
    expect([
      other.metadata.finalizers ?? [],
      other.status?.loadBalancer?.ingress ?? [],
      other.status?.conditions ?? [],
    ]).toEqual([[], [], []]);
    expect(await events("not-ours")).toEqual([]);
    expect(await events("fill-3")).toHaveLength(1);
    expect(await ingressOf("echo")).toBe("198.51.100.128");
  }, 90_000);

  test("a Service deleted: frontend gone from both LBs, port closed, finalizer removed, the address handed to the waiting Service", async () => {
    await env.cluster.must("DELETE", path("echo"));
    await waitFor("echo gone", async () => ((await get("echo")) === undefined ? true : undefined), {
      timeoutMs: 20_000,
      intervalMs: 100,
    });
    for (const key of ["lb1", "lb2"] as const) expect(await table(key)).not.toContain("svc/default/echo/");
    expect(await events("echo")).toContain(
      "Normal AddressReleased: 198.51.100.128 released: the frontend is gone from both LBs",
    );
    // fill-3 was waiting: it gets the released address
    expect(await waitFor("fill-3's address", () => ingressOf("fill-3"), { timeoutMs: 20_000, intervalMs: 100 })).toBe(
      "198.51.100.128",
    );
  }, 60_000);

  test("from the cluster node too (hairpin); established TCP and UDP flows to a Service survive an unclean failover; no Service change reloaded keepalived or HAProxy", async () => {
    const ip = (await ingressOf("dns-udp"))!;
    for (const udp of [false, true])
      expect(await env.lab.ask("node", `${ip}:53`, { udp })).toMatchObject({ ok: true, peer: "192.168.100.1" });
    const flows = startFlows(env.lab, "service-flows", "cli", `${ip}:53`, { tcp: 5, udp: 5 });
    let figures: Awaited<ReturnType<typeof stopFlows>>;
    try {
      await flowsReady(flows);
      await sleep(1500);
      const report = await env.lab.failover({ restore: true, settleMs: 3000 });
      expect(report.vipMovedMs).toBeDefined();
    } finally {
      figures = await stopFlows(env.lab, flows);
    }
    expect(figures.failures).toEqual([]);
    expect(figures.survived).toBe(figures.total);
    // Services came and went throughout this suite: only the kernel's table changed, keepalived and HAProxy never
    const reloads = Object.values(env.agents).flatMap((a) => a?.reloads ?? []);
    expect(reloads.filter((r) => /keepalived|haproxy/.test(r))).toEqual([]);
  }, 90_000);

  test("the lease holder's agent stops: the other LB's agent takes the lease over and allocates", async () => {
    const holder = await waitFor(
      "the lease holder",
      async () => Object.values(env.agents).find((a) => a?.agent.servicesWriter),
      { timeoutMs: 10_000, intervalMs: 100 },
    );
    await holder.agent.stop();
    await env.cluster.must("DELETE", path("fill-0"));
    await create("late");
    const ip = await waitFor("late's address", () => ingressOf("late"), { timeoutMs: 30_000, intervalMs: 100 });
    expect(ip).toMatch(/^198\.51\.100\.1(2[89]|3[0-5])$/);
  }, 60_000);

  test("every request any agent made was allowed by its Role", () => {
    expect(env.responses.filter((r) => r.status === 403)).toEqual([]);
    expect(env.responses.some((r) => r.path.startsWith("/api/v1/services"))).toBe(true);
  });
});
