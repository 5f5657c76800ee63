/**
 * `npm run bench -- services` (issue 20 item 6): Services of type LoadBalancer on the lab pair, with a real
 * kube-apiserver and an agent on each LB (test/fixtures/agent-on-lab.ts), all daemons real. Needs root.
 *
 * - created -> served: a Service is created with a requested address; a poller in the client namespace asks "who?"
 *   every 10 ms over a new connection (TCP) or socket (UDP); one sample = the POST -> the start of the first answered
 *   attempt. The Service is deleted and gone (finalizer released) before the next sample.
 * - flows: echo-verified TCP and UDP flows from the outside client to one shared Service address, across an unclean
 *   failover and the fail-back (a second unclean failover back).
 * - scale: 500 Services in the private pool (500 addresses on both LBs' private NIC): time until the writer recorded
 *   every address, until both LBs forward every frontend; the process's RSS and heap (both agents and the bench run in
 *   it: the figure is an upper bound of the agents'); `nft -f` of the resulting table, in a throwaway namespace.
 * - outage: unclean failover while the DESIGN client (a new connection every 10 ms) on the cluster node asks a Service
 *   in the private pool: from the fault to the first request started after it that succeeds. The same runs with only
 *   that Service, then with the 500 beside it, in one lab.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { readRequests, summarize as outageOf } from "../lab/analysis";
import { exec, sleep, waitFor } from "../lab/exec";
import type { Lab, LbKey } from "../lab/lab";
import { startAgentOnLab, type AgentOnLab } from "../test/fixtures/agent-on-lab";
import { devSpecRaw } from "../test/fixtures/variants";
import type { EgressFigures } from "./failover";
import { flowsReady, startFlows, stopFlows } from "../lab/flows";
import { LATE_MS } from "./svg";
import { summarize, type Summary } from "./stats";

export interface ServicesBenchResult {
  samples: number;
  createdToAnswer: { tcp: Summary; udp: Summary };
  flows: EgressFigures & { failovers: number };
  scale: {
    services: number;
    allRecordedMs: number;
    bothForwardMs: number;
    rssMiB: { before: number; after: number };
    heapMiB: { before: number; after: number };
    nftApply: Summary;
  };
  outage: {
    /** strict: the first request started after the fault that succeeded without a SYN retransmission */
    none: Summary;
    many: Summary;
    ratio: number;
    runs: number;
    /** DESIGN.md's outage window (a retransmitted SYN's success counts): flattered by TCP, beside the strict one */
    design: { none: Summary; many: Summary };
    /** strict, with the many: a routed public pool address from outside (the next hop moves, no ARP) */
    publicMany: Summary;
    /** how long `lab.cut` took: the outage figures are short of the truth by at most this */
    cut: Summary;
    samples: { none: OutageRun[]; many: OutageRun[] };
  };
}

const NS = "default";
const CLASS = "edgepair.io/pair";
const PORTS = { echo: 30202, echoUdp: 30204, http: 30200, httpPublic: 30205 };
const PROBE = {
  tcp: "198.18.0.200",
  udp: "198.18.0.199",
  flows: "198.18.0.201",
  outage: "192.168.103.250",
  outagePublic: "198.18.0.202",
};

function spec(): Record<string, unknown> {
  const raw = devSpecRaw();
  // a /22 cluster network: room for 500 Service addresses on it
  raw.network = { cidr: "192.168.100.0/22", gateway: "192.168.100.1", lbAddresses: ["192.168.100.2", "192.168.100.3"] };
  raw.serviceLoadBalancers = {
    pools: [
      { name: "public", addresses: ["198.18.0.0/24"], type: "public" },
      { name: "internal", addresses: ["192.168.102.1-192.168.103.254"], type: "private" },
    ],
  };
  return raw;
}

type PortSpec = { protocol: "TCP" | "UDP"; port: number; nodePort?: number };

async function createService(
  env: AgentOnLab,
  name: string,
  ports: PortSpec[],
  annotations: Record<string, string> = {},
): Promise<number> {
  const t = Date.now();
  await env.cluster.must("POST", `/api/v1/namespaces/${NS}/services`, {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name, namespace: NS, annotations },
    spec: {
      type: "LoadBalancer",
      loadBalancerClass: CLASS,
      ports: ports.map((p, i) => ({ name: `p${i}`, targetPort: 7, ...p })),
    },
  });
  return t;
}

async function deleteAndWait(env: AgentOnLab, name: string): Promise<void> {
  await env.cluster.must("DELETE", `/api/v1/namespaces/${NS}/services/${name}`);
  await waitFor(
    `${name} gone`,
    async () => {
      const r = await env.cluster.must("GET", `/api/v1/namespaces/${NS}/services`);
      return (r.body as { items: { metadata: { name: string } }[] }).items.some((s) => s.metadata.name === name)
        ? undefined
        : true;
    },
    { timeoutMs: 30_000, intervalMs: 50 },
  );
}

/** POST -> first answer of a poller started before it, in ms. */
async function createdToAnswer(env: AgentOnLab, i: number, udp: boolean): Promise<number> {
  const name = `probe-${udp ? "udp" : "tcp"}-${i}`;
  const address = udp ? PROBE.udp : PROBE.tcp;
  const port = udp ? 53 : 7;
  const p = env.lab.startHelper(name, "cli", [
    "poll",
    "--to",
    `${address}:${port}`,
    ...(udp ? ["--udp", "true"] : []),
    "--interval-ms",
    "10",
    "--max-ms",
    "20000",
  ]);
  const t0 = await createService(
    env,
    name,
    [{ protocol: udp ? "UDP" : "TCP", port, nodePort: udp ? PORTS.echoUdp : PORTS.echo }],
    {
      "edgepair.io/load-balancer-ips": address,
    },
  );
  const answer = await waitFor(
    `${name}'s first answer`,
    async () => {
      const m = /\{"at":(\d+)/.exec(readFileSync(p.log, "utf8"));
      return m ? Number(m[1]) : undefined;
    },
    { timeoutMs: 25_000, intervalMs: 20 },
  );
  await env.lab.stopClient(p);
  await deleteAndWait(env, name);
  return answer - t0;
}

interface OutageRun {
  outageMs: number;
  promptMs: number;
  cutMs: number;
  failed: number;
  slow: number;
}

/** From the cluster node to the private-pool probe (ARP moves), or from outside to the public one (routed). */
async function serviceOutage(env: AgentOnLab, run: string, side: "private" | "public" = "private"): Promise<OutageRun> {
  const lab = env.lab;
  const from = await lab.active();
  const to = lab.other(from);
  const out = join(lab.dir, "logs", `outage-${run}.jsonl`);
  const [address, ns] = side === "private" ? [PROBE.outage, lab.ns("node")] : [PROBE.outagePublic, lab.ns("cli")];
  const client = lab.startClient(`outage-${run}`, `http://${address}/who`, out, { ns });
  try {
    await sleep(1000);
    const called = Date.now();
    await lab.cut(from);
    // from when the cut is surely in place: a request started between the call and the links going down can still
    // be served by the old MASTER, and the backend cannot tell which LB forwarded it. So the figure is a lower bound,
    // short of the truth by at most the cut's own duration (reported beside it).
    const fault = Date.now();
    await lab.waitVrrp(to, "MASTER", 15_000);
    await sleep(2000);
    await lab.stopClient(client);
    const records = readRequests(out);
    const s = outageOf(records, fault);
    // DESIGN.md's outage counts a request whose lost SYN was retransmitted a second later and then succeeded: its
    // strict twin is the first request started after the fault that succeeded without one (within LATE_MS)
    const prompt = records.find((r) => r.start >= fault && r.ok && r.end - r.start <= LATE_MS);
    if (s.outageMs === undefined || !prompt) throw new Error(`outage run ${run}: no request succeeded after the fault`);
    return {
      outageMs: s.outageMs,
      promptMs: prompt.start - fault,
      cutMs: fault - called,
      failed: s.failed,
      slow: s.slow,
    };
  } finally {
    await lab.restore(from);
    await lab.waitVrrp(from, "BACKUP", 30_000);
    await sleep(2000);
  }
}

function describe(o: OutageRun): string {
  return `outage ${o.outageMs} ms (DESIGN.md), first prompt success ${o.promptMs} ms; cut took ${o.cutMs} ms; ${o.failed} failed, ${o.slow} slow`;
}

async function tableChains(lab: Lab, key: LbKey, prefix: string): Promise<number> {
  const r = await lab.run(lab.lb(key).ns, ["nft", "list", "table", "ip", "edgepair_services"], { allowFail: true });
  return r.stdout.split("\n").filter((l) => l.includes(`chain svc/${NS}/${prefix}`)).length;
}

export async function benchServices(opts: {
  samples?: number;
  runs?: number;
  services?: number;
  progress?: (line: string) => void;
}): Promise<ServicesBenchResult> {
  const say = opts.progress ?? ((l: string) => console.log(l));
  const samples = opts.samples ?? 20;
  const runs = opts.runs ?? 5;
  const bulk = opts.services ?? 500;
  say("services bench: lab + API server + an agent on each LB");
  const env = await startAgentOnLab({ spec: spec(), both: true, progress: () => undefined });
  try {
    const lab = env.lab;
    for (const h of lab.plan.hosts.filter((x) => x.role === "ingress")) {
      const p = lab.startHelper(`${h.key}/bench-nodeports`, h.key, [
        "serve",
        "--name",
        h.serverName ?? h.key,
        "--echo",
        `${h.address}:${PORTS.echo}`,
        "--echo",
        `${h.address}:${PORTS.echoUdp}`,
        "--http",
        `${h.address}:${PORTS.http}`,
        "--http",
        `${h.address}:${PORTS.httpPublic}`,
      ]);
      await lab.waitListening(p);
    }

    const tcp: number[] = [];
    const udp: number[] = [];
    for (let i = 0; i < samples; i++) {
      tcp.push(await createdToAnswer(env, i, false));
      udp.push(await createdToAnswer(env, i, true));
      say(`  created -> served ${i + 1}/${samples}: TCP ${tcp[i]} ms, UDP ${udp[i]} ms`);
    }

    say("flows: 100 TCP + 100 UDP across an unclean failover and the fail-back");
    const shared = { "edgepair.io/load-balancer-ips": PROBE.flows, "edgepair.io/allow-shared-ip": "flows" };
    await createService(env, "flows-tcp", [{ protocol: "TCP", port: 7, nodePort: PORTS.echo }], shared);
    await createService(env, "flows-udp", [{ protocol: "UDP", port: 7, nodePort: PORTS.echoUdp }], shared);
    await waitFor(
      "flows answered",
      async () => ((await lab.ask("cli", `${PROBE.flows}:7`, { udp: true })).ok ? true : undefined),
      {
        timeoutMs: 20_000,
        intervalMs: 100,
      },
    );
    const run = startFlows(lab, "bench/flows", "cli", `${PROBE.flows}:7`, {
      tcp: 100,
      udp: 100,
      intervalMs: 200,
      maxMs: 120_000,
    });
    let figures: EgressFigures;
    try {
      await flowsReady(run, 20_000);
      await sleep(2000);
      for (let f = 0; f < 2; f++) await lab.failover({ restore: true, settleMs: 3000 });
    } finally {
      figures = await stopFlows(lab, run);
    }
    const flows = { ...figures, failovers: 2 };
    say(`  ${flows.survived}/${flows.total} survived, longest gap ${flows.maxGapMs} ms`);

    await createService(env, "outage", [{ protocol: "TCP", port: 80, nodePort: PORTS.http }], {
      "edgepair.io/load-balancer-ips": PROBE.outage,
    });
    await waitFor(
      "outage probe answered",
      async () => ((await lab.curl(lab.ns("node"), `http://${PROBE.outage}/who`, 1)).ok ? true : undefined),
      {
        timeoutMs: 20_000,
        intervalMs: 100,
      },
    );
    const none: OutageRun[] = [];
    for (let r = 0; r < runs; r++) {
      const o = await serviceOutage(env, `none-${r}`);
      none.push(o);
      say(`  1 Service address: ${describe(o)}`);
    }

    say(`scale: ${bulk} Services in the private pool`);
    const mib = (n: number) => Math.round((n / 2 ** 20) * 10) / 10;
    const before = process.memoryUsage();
    const t0 = Date.now();
    for (let i = 0; i < bulk; i++)
      await createService(env, `bulk-${i}`, [{ protocol: "TCP", port: 80 }], {
        "edgepair.io/address-pool": "internal",
      });
    const created = Date.now();
    await waitFor(
      "every bulk Service recorded",
      async () => {
        const r = await env.cluster.must("GET", `/api/v1/namespaces/${NS}/services`);
        const items = (
          r.body as { items: { metadata: { name: string }; status?: { loadBalancer?: { ingress?: unknown[] } } }[] }
        ).items;
        return items.filter(
          (s) => s.metadata.name.startsWith("bulk-") && (s.status?.loadBalancer?.ingress?.length ?? 0) > 0,
        ).length >= bulk
          ? true
          : undefined;
      },
      { timeoutMs: 300_000, intervalMs: 500 },
    );
    const allRecordedMs = Date.now() - t0;
    await waitFor(
      "both LBs forward every bulk Service",
      async () =>
        (await tableChains(lab, "lb1", "bulk-")) >= bulk && (await tableChains(lab, "lb2", "bulk-")) >= bulk
          ? true
          : undefined,
      { timeoutMs: 300_000, intervalMs: 500 },
    );
    const bothForwardMs = Date.now() - t0;
    const after = process.memoryUsage();
    say(
      `  created in ${created - t0} ms, all recorded after ${allRecordedMs} ms, both forward after ${bothForwardMs} ms`,
    );

    const file = join(lab.renderedRoot("lb1"), "etc/edgepair/services.nft");
    const scratch = `${lab.prefix}-nftbench`;
    const applies: number[] = [];
    await exec(["ip", "netns", "add", scratch]);
    try {
      for (let r = 0; r < runs; r++) {
        const t = performance.now();
        await exec(["ip", "netns", "exec", scratch, "nft", "-f", file]);
        applies.push(performance.now() - t);
      }
    } finally {
      await exec(["ip", "netns", "del", scratch]);
    }

    const many: OutageRun[] = [];
    for (let r = 0; r < runs; r++) {
      const o = await serviceOutage(env, `many-${r}`);
      many.push(o);
      say(`  ${bulk + 1} Service addresses: ${describe(o)}`);
    }
    // the same with a routed public pool address, from outside: no ARP to move, the next hop moves
    await createService(env, "outage-public", [{ protocol: "TCP", port: 80, nodePort: PORTS.httpPublic }], {
      "edgepair.io/load-balancer-ips": PROBE.outagePublic,
    });
    await waitFor(
      "public outage probe answered",
      async () => ((await lab.curl(lab.ns("cli"), `http://${PROBE.outagePublic}/who`, 1)).ok ? true : undefined),
      { timeoutMs: 20_000, intervalMs: 100 },
    );
    const publicMany: OutageRun[] = [];
    for (let r = 0; r < runs; r++) {
      const o = await serviceOutage(env, `public-${r}`, "public");
      publicMany.push(o);
      say(`  ${bulk + 2} Service addresses, a public one from outside: ${describe(o)}`);
    }
    const noneS = summarize(none.map((o) => o.promptMs));
    const manyS = summarize(many.map((o) => o.promptMs));
    return {
      samples,
      createdToAnswer: { tcp: summarize(tcp), udp: summarize(udp) },
      flows,
      scale: {
        services: bulk,
        allRecordedMs,
        bothForwardMs,
        rssMiB: { before: mib(before.rss), after: mib(after.rss) },
        heapMiB: { before: mib(before.heapUsed), after: mib(after.heapUsed) },
        nftApply: summarize(applies),
      },
      outage: {
        none: noneS,
        many: manyS,
        ratio: Math.round((manyS.medianMs / noneS.medianMs) * 100) / 100,
        runs,
        design: { none: summarize(none.map((o) => o.outageMs)), many: summarize(many.map((o) => o.outageMs)) },
        publicMany: summarize(publicMany.map((o) => o.promptMs)),
        cut: summarize([...none, ...many, ...publicMany].map((o) => o.cutMs)),
        samples: { none, many },
      },
    };
  } finally {
    await env.stop();
  }
}
