/**
 * `npm run bench -- load` (issue 23), the agent at scale: a real API server (test/fixtures/kube-apiserver.ts) holding
 * thousands of Nodes, created by the bench, and the agent on the lab's active LB (test/fixtures/agent-on-lab.ts)
 * watching them. The lab's cluster network is widened to a /16 for it (a /24 has no room for 2,000 workers). Of the
 * Nodes, `backends` are workers (the ingress pool selects them: 2 x that many servers in HAProxy, HTTP and TLS), the
 * rest infra Nodes no pool selects. Every worker address is an alias of the lab's cluster node, where a stand-in
 * answers the ingress health port, so HAProxy's checks find real hosts (ARP answered, servers UP) as they would.
 * Figures:
 *   - the bulk: every Node created (concurrently) -> every worker a server in HAProxy's runtime list;
 *   - Node changes at that size: a worker deleted -> its server gone; created again -> its server back (runtime API,
 *     no reload), and the agent's apply time for each (its own edgepair_apply_duration_seconds);
 *   - the bench process's RSS and heap (the agent runs in it) before the Nodes and at their peak;
 *   - the LoadBalancer status writes per second (the agent's status writer must stay bounded however many Nodes
 *     change), over the bulk and over a quiet window after it;
 *   - the API requests the agent made (lists, watches, writes).
 * The host's neighbour-table limits are raised to the appliance image's for the run (withApplianceNeighbourLimits).
 * Bounded: every wait has a deadline; the lab and the API server are torn down.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { readServers, RuntimeSocket } from "../agent/haproxy";
import type { ResponseRecord } from "../agent/kube/client";
import { sleep, waitFor } from "../lab/exec";
import { startAgentOnLab, WORKER, type AgentOnLab } from "../test/fixtures/agent-on-lab";
import { devSpecRaw } from "../test/fixtures/variants";
import { printTable, summarize, type Summary } from "./stats";

export interface AgentScaleOptions {
  nodes: number;
  /** how many of them are workers (ingress backends) */
  backends: number;
  /** Node delete/create pairs measured after the bulk */
  changes: number;
}

export interface AgentScaleResult {
  options: AgentScaleOptions;
  /** every Node created -> every worker's server in the runtime list (ms) */
  bulkMs: number;
  createNodesMs: number;
  serversInRuntime: number;
  /** servers HAProxy runs (srv_op_state running) once the checks had their time */
  serversUp: number;
  nodeDeletedToServerGoneMs: Summary;
  nodeCreatedToServerBackMs: Summary;
  /** the agent's own apply time (its apply histogram over a delete and a create: seconds / applies; ms) */
  applyMs: Summary;
  /** the samples behind the three summaries above */
  samples: { goneMs: number[]; backMs: number[]; applyMs: number[] };
  rssMiB: { before: number; peak: number; after: number };
  /** whether "before" and "after" were taken after a forced collection (NODE_OPTIONS=--expose-gc) */
  gcForced: boolean;
  heapMiB: { before: number; peak: number; after: number };
  statusWrites: { bulkPerS: number; bulkMaxPerS: number; quietPerS: number };
  apiRequests: Record<string, number>;
}

const QUIET_MS = 30_000;
const INFRA = { "node-role.kubernetes.io/infra": "" };
const WORKER_BASE = 10; // 192.168.10.1 ...
const INFRA_BASE = 60; // 192.168.60.1 ...

function address(base: number, i: number): string {
  return `192.168.${base + Math.floor(i / 250)}.${1 + (i % 250)}`;
}

async function inParallel<T>(items: T[], width: number, f: (x: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await f(items[next++] as T);
    }),
  );
}

const mib = (bytes: number) => Math.round(bytes / 1024 / 1024);

/** The agent's apply histogram: the seconds of every apply so far, and how many there were. */
async function applies(h: AgentOnLab): Promise<{ seconds: number; count: number }> {
  const m = await h.agent.metrics.registry.getSingleMetric("edgepair_apply_duration_seconds")?.get();
  const total = (suffix: string) =>
    (m?.values ?? [])
      .filter((v) => (v as { metricName?: string }).metricName?.endsWith(suffix))
      .reduce((a, v) => a + v.value, 0);
  return { seconds: total("_sum"), count: total("_count") };
}

const isStatusWrite = (r: ResponseRecord) =>
  r.method !== "GET" && r.path.includes("/loadbalancers/") && r.path.includes("/status");

/** Status writes per second between two times, from the sampled running count: mean and the busiest second. */
function writeRate(
  samples: { at: number; writes: number }[],
  from: number,
  to: number,
): { perS: number; maxPerS: number } {
  const inside = samples.filter((x) => x.at >= from && x.at <= to);
  if (inside.length < 2) return { perS: 0, maxPerS: 0 };
  const first = inside[0]!;
  const last = inside.at(-1)!;
  let maxPerS = 0;
  for (const x of inside) {
    const later = inside.find((y) => y.at >= x.at + 1000);
    if (later) maxPerS = Math.max(maxPerS, ((later.writes - x.writes) * 1000) / (later.at - x.at));
  }
  return {
    perS: +(((last.writes - first.writes) * 1000) / Math.max(1, last.at - first.at)).toFixed(2),
    maxPerS: +maxPerS.toFixed(1),
  };
}

const APPLIANCE_SYSCTL = join(
  __dirname,
  "..",
  "images",
  "rootfs",
  "usr",
  "lib",
  "sysctl.d",
  "60-edgepair-appliance.conf",
);

/**
 * The appliance's neighbour-table limits (its image sets them on each LB VM) for the length of `f`, then the host's
 * own again. They exist only in the host's namespace: the lab's namespaces share one ARP table, whose default hard
 * limit (1,024) overflows with 2,000 workers, and HAProxy's checks of the rest then fail.
 */
async function withApplianceNeighbourLimits<T>(f: () => Promise<T>): Promise<T> {
  const keys = [
    ...readFileSync(APPLIANCE_SYSCTL, "utf8").matchAll(/^(net\.ipv[46]\.neigh\.default\.gc_thresh\d) = (\d+)$/gm),
  ];
  const path = (key: string) => join("/proc/sys", ...key.split("."));
  const before = keys.map(([, key]) => [key!, readFileSync(path(key!), "utf8").trim()] as const);
  try {
    for (const [, key, value] of keys) writeFileSync(path(key!), value!);
    return await f();
  } finally {
    for (const [key, value] of before) writeFileSync(path(key), value);
  }
}

export async function benchAgentAtScale(
  o: AgentScaleOptions,
  progress: (line: string) => void = console.log,
): Promise<AgentScaleResult> {
  return withApplianceNeighbourLimits(() => agentAtScale(o, progress));
}

async function agentAtScale(o: AgentScaleOptions, progress: (line: string) => void): Promise<AgentScaleResult> {
  const spec = devSpecRaw();
  (spec.network as { cidr: string }).cidr = "192.168.0.0/16";
  const h = await startAgentOnLab({ spec, progress: () => undefined, productionTimings: true });
  const mem = { rss: [] as number[], heap: [] as number[] };
  const writes: { at: number; writes: number }[] = [];
  let seen = 0;
  let statusWrites = 0;
  const sample = () => {
    const m = process.memoryUsage();
    mem.rss.push(m.rss);
    mem.heap.push(m.heapUsed);
    for (; seen < h.responses.length; seen++) if (isStatusWrite(h.responses[seen]!)) statusWrites++;
    writes.push({ at: Date.now(), writes: statusWrites });
  };
  const sampler = setInterval(sample, 250);
  try {
    const lab = h.lab;
    const socket = new RuntimeSocket(h.haproxySocket());
    const ingress = async () => (await readServers(socket)).filter((s) => s.backend === "be_ingress_http");
    // the workers' addresses live on the cluster node, where a stand-in answers the ingress ports
    const workers = Array.from({ length: o.backends }, (_, i) => ({
      name: `w-${i}`,
      address: address(WORKER_BASE, i),
    }));
    const infra = Array.from({ length: o.nodes - o.backends }, (_, i) => ({
      name: `i-${i}`,
      address: address(INFRA_BASE, i),
    }));
    await lab.run(lab.ns("node"), ["ip", "-batch", "-"], {
      input: workers.map((w) => `addr add ${w.address}/32 dev eth0`).join("\n") + "\n",
    });
    const ib = lab.state.spec.ingressBackend!;
    const stub = lab.startHelper("load/agent-ingress-stub", "node", [
      "serve",
      "--name",
      "worker",
      ...[...new Set([ib.httpPort, ib.httpsPort, ib.healthPort])].flatMap((p) => ["--http", `0.0.0.0:${p}`]),
    ]);
    await lab.waitListening(stub);
    await sleep(2000);
    (globalThis as { gc?: () => void }).gc?.();
    sample();
    const before = { rss: mem.rss.at(-1)!, heap: mem.heap.at(-1)! };
    const base = (await ingress()).length;
    progress(`agent on ${h.key}: ${base} ingress servers before; creating ${o.nodes} Nodes (${o.backends} workers)`);

    const responses0 = h.responses.length;
    const t0 = Date.now();
    const all = [...workers.map((w) => ({ ...w, labels: WORKER })), ...infra.map((x) => ({ ...x, labels: INFRA }))];
    let created = 0;
    await inParallel(all, 16, async (n) => {
      await h.cluster.putNode(n.name, n.labels, n.address);
      if (++created % 1000 === 0) progress(`  ${created}/${all.length} Nodes created (${Date.now() - t0} ms)`);
    });
    const createdAt = Date.now();
    const servers = await waitFor(
      `${o.backends} more ingress servers in the runtime list`,
      async () => {
        const s = await ingress();
        return s.length >= base + o.backends ? s : undefined;
      },
      { timeoutMs: 300_000, intervalMs: 500 },
    );
    const bulkAt = Date.now();
    progress(`every worker a server ${bulkAt - createdAt} ms after the last Node was created`);
    const up = await waitFor(
      "the workers' servers UP",
      async () => {
        const s = (await ingress()).filter((x) => x.operState === "running").length;
        return s >= base + o.backends ? s : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 1000 },
    ).catch(() => -1);

    // three of the agent's 10 s heartbeats: a shorter window would catch one or none by its phase alone
    const q0 = Date.now();
    await sleep(QUIET_MS);
    sample();
    const quiet = writeRate(writes, q0, Date.now());

    const gone: number[] = [];
    const back: number[] = [];
    const apply: number[] = [];
    const has = async (a: string) => (await ingress()).some((s) => s.address === a);
    for (let i = 0; i < o.changes; i++) {
      const w = workers[Math.floor(((i + 0.5) * workers.length) / o.changes)]!;
      const a0 = await applies(h);
      const d0 = Date.now();
      await h.cluster.deleteNode(w.name);
      await waitFor(`${w.name}'s server gone`, async () => ((await has(w.address)) ? undefined : true), {
        timeoutMs: 30_000,
        intervalMs: 20,
      });
      gone.push(Date.now() - d0);
      await sleep(500);
      const c0 = Date.now();
      await h.cluster.putNode(w.name, WORKER, w.address);
      await waitFor(`${w.name}'s server back`, async () => ((await has(w.address)) ? true : undefined), {
        timeoutMs: 30_000,
        intervalMs: 20,
      });
      back.push(Date.now() - c0);
      await sleep(500);
      // every apply of the delete and the create: their mean
      const a1 = await applies(h);
      if (a1.count > a0.count) apply.push(Math.round(((a1.seconds - a0.seconds) * 1000) / (a1.count - a0.count)));
      progress(`  change ${i + 1}/${o.changes}: deleted -> gone ${gone.at(-1)} ms, created -> back ${back.at(-1)} ms`);
    }
    // what the agent keeps, not the garbage of 5,000 Nodes' lists: collected first when the bench runs with
    // --expose-gc (NODE_OPTIONS=--expose-gc), else "after" includes garbage not collected yet
    (globalThis as { gc?: () => void }).gc?.();
    sample();
    const bulk = writeRate(writes, t0, bulkAt);
    const counts: Record<string, number> = {};
    for (const r of h.responses.slice(responses0)) {
      const kind = `${r.method} ${r.path.replace(/\?.*$/, "").replace(/\/[^/]*$/, (m) => (/^\/(status|nodes)$/.test(m) ? m : "/*"))}`;
      counts[kind] = (counts[kind] ?? 0) + 1;
    }
    return {
      options: o,
      bulkMs: bulkAt - t0,
      createNodesMs: createdAt - t0,
      serversInRuntime: servers.length,
      serversUp: up,
      nodeDeletedToServerGoneMs: summarize(gone),
      nodeCreatedToServerBackMs: summarize(back),
      applyMs: summarize(apply),
      samples: { goneMs: gone, backMs: back, applyMs: apply },
      gcForced: typeof (globalThis as { gc?: () => void }).gc === "function",
      rssMiB: { before: mib(before.rss), peak: mib(Math.max(...mem.rss)), after: mib(mem.rss.at(-1)!) },
      heapMiB: { before: mib(before.heap), peak: mib(Math.max(...mem.heap)), after: mib(mem.heap.at(-1)!) },
      statusWrites: { bulkPerS: bulk.perS, bulkMaxPerS: bulk.maxPerS, quietPerS: quiet.perS },
      apiRequests: counts,
    };
  } finally {
    clearInterval(sampler);
    await h.stop();
  }
}

export interface AgentScaleRuns {
  options: AgentScaleOptions;
  runs: AgentScaleResult[];
}

/** `runs` runs of benchAgentAtScale, each with its own lab, API server and agent (one bulk per run). */
export async function benchAgentLoad(
  o: AgentScaleOptions & { runs: number },
  progress: (line: string) => void = console.log,
): Promise<AgentScaleRuns> {
  const { runs: n, ...options } = o;
  const runs: AgentScaleResult[] = [];
  for (let i = 0; i < n; i++) {
    progress(`run ${i + 1}/${n}`);
    runs.push(await benchAgentAtScale(options, (l) => progress(`  ${l}`)));
  }
  return { options, runs };
}

const each = (f: (x: AgentScaleResult) => number) => (r: AgentScaleRuns) => r.runs.map(f);
const pooled = (f: (x: AgentScaleResult["samples"]) => number[]) => (r: AgentScaleRuns) =>
  r.runs.flatMap((x) => f(x.samples));

/** The table's rows: a figure, its samples, its goal. */
const ROWS: [string, (r: AgentScaleRuns) => number[], string][] = [
  ["Nodes created, 16 at a time (ms)", each((x) => x.createNodesMs), "-"],
  ["first Node created -> every worker a server (ms)", each((x) => x.bulkMs), "-"],
  ["ingress servers in the runtime list", each((x) => x.serversInRuntime), "-"],
  ["of them running (health checks passed)", each((x) => x.serversUp), "-"],
  ["Node deleted -> server gone (ms; every change of every run)", pooled((x) => x.goneMs), "<= 1000"],
  ["Node created -> server back (ms; every change of every run)", pooled((x) => x.backMs), "<= 1000"],
  ["agent apply time, per apply (ms; every change of every run)", pooled((x) => x.applyMs), "-"],
  ["bench process RSS before the Nodes (MiB)", each((x) => x.rssMiB.before), "-"],
  ["bench process RSS at the peak (MiB; the agent runs in it)", each((x) => x.rssMiB.peak), "-"],
  ["heap after the changes, collected (MiB)", each((x) => x.heapMiB.after), "-"],
  ["status writes/s over the bulk (mean)", each((x) => x.statusWrites.bulkPerS), "-"],
  ["status writes/s over the bulk (max in 1 s)", each((x) => x.statusWrites.bulkMaxPerS), "-"],
  [`status writes/s when quiet (${QUIET_MS / 1000} s)`, each((x) => x.statusWrites.quietPerS), "-"],
];

/** min / median / max over the runs; the change and apply figures over every change of every run. */
export function printAgentScale(r: AgentScaleRuns): void {
  printTable(
    ROWS.map(([figure, samples, goal]) => {
      const s = summarize(samples(r));
      // the write rates are fractions of one per second
      const f = (x: number) => (Math.abs(x) < 10 ? String(+x.toFixed(2)) : x.toFixed(0));
      return { figure, min: f(s.minMs), median: f(s.medianMs), max: f(s.maxMs), goal };
    }),
  );
  const last = r.runs.at(-1);
  console.log(
    `${r.options.nodes} Nodes (${r.options.backends} workers), ${r.options.changes} changes per run; ${r.runs.length} runs; heap collected before and after: ${last?.gcForced ?? false}`,
  );
  if (last)
    console.log(
      `API requests during the last run: ${Object.entries(last.apiRequests)
        .sort((a, b) => b[1] - a[1])
        .map(([k, v]) => `${k} ${v}`)
        .join(", ")}`,
    );
}
