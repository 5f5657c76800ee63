/**
 * `npm run bench -- metrics` (issue 21, "a scrape flood never slows the data path"): the lab pair with an agent on
 * each LB (test/fixtures/agent-on-lab.ts, all daemons real). Each run has two windows side by side: quiet, and a
 * scrape flood on the active LB's metrics port from the cluster node (keep-alive connections asking back to back,
 * most with the password, some with a wrong one). In both, the lab's client asks the ingress VIP every 10 ms over a
 * new connection; the figures are its latencies and failures, the flood's rate, what the agent did for it (its
 * collections), and the CPU HAProxy's worker and this process (both agents and the bench) spent. Needs root.
 *
 * The flood generator runs on the same two cores: its own CPU is part of what the data path competes with here, so
 * the ratio is an upper bound of what a flood costs a VM whose scraper runs elsewhere.
 */
import { join } from "node:path";
import { readRequests } from "../lab/analysis";
import { exec, sleep } from "../lab/exec";
import { inNetns, type LbKey } from "../lab/lab";
import { haproxyWorkerPid } from "../agent/haproxy";
import { LAB_METRICS_PASSWORD, startAgentOnLab, type AgentOnLab } from "../test/fixtures/agent-on-lab";
import { cpuSeconds, quantile, summarize, type Summary } from "./stats";

export interface MetricsWindow {
  requests: number;
  failed: number;
  /** per request of the ingress client: connect + request + answer */
  latencyMs: { median: number; p99: number; max: number };
  haproxyCpuS: number;
  processCpuS: number;
}

export interface MetricsBenchRun {
  quiet: MetricsWindow;
  flood: MetricsWindow & {
    scrapes: number;
    scrapesPerS: number;
    statuses: Record<string, number>;
    /** collections the active LB's agent made during the flood */
    collections: number;
    refusedCounted: number;
    /** a scraper on another host of the cluster network, once a second during the flood: answered 200 / asked */
    otherScraper: { ok: number; asked: number };
  };
}

export interface MetricsBenchResult {
  runs: MetricsBenchRun[];
  windowMs: number;
  connections: { right: number; wrong: number };
  summary: {
    quietMedianMs: Summary;
    floodMedianMs: Summary;
    quietP99Ms: Summary;
    floodP99Ms: Summary;
    scrapesPerS: Summary;
    collectionsPerS: Summary;
    failedQuiet: number;
    failedFlood: number;
    otherScraper: { ok: number; asked: number };
    haproxyCpuQuietS: Summary;
    haproxyCpuFloodS: Summary;
    processCpuQuietS: Summary;
    processCpuFloodS: Summary;
  };
}

function processCpuS(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

async function window(
  env: AgentOnLab,
  key: LbKey,
  name: string,
  ms: number,
  during?: () => Promise<void>,
): Promise<MetricsWindow> {
  const lab = env.lab;
  const out = join(lab.dir, `${name}.jsonl`);
  const socket = env.agents[key]!.haproxySocket();
  const worker = await haproxyWorkerPid(socket);
  const [h0, p0] = [cpuSeconds(worker), processCpuS()];
  const client = lab.startClient(name, `http://${lab.plan.targets.ingressVip}/`, out, {
    intervalMs: 10,
    timeoutMs: 3000,
    maxMs: ms,
  });
  await (during ? during() : sleep(ms));
  await lab.stopClient(client);
  const [h1, p1] = [cpuSeconds(worker), processCpuS()];
  const records = readRequests(out);
  const latencies = records
    .filter((r) => r.ok)
    .map((r) => r.end - r.start)
    .sort((a, b) => a - b);
  return {
    requests: records.length,
    failed: records.filter((r) => !r.ok).length,
    latencyMs: {
      median: quantile(latencies, 0.5),
      p99: quantile(latencies, 0.99),
      max: latencies[latencies.length - 1] ?? 0,
    },
    haproxyCpuS: +(h1 - h0).toFixed(2),
    processCpuS: +(p1 - p0).toFixed(2),
  };
}

export async function benchMetrics(opts: {
  runs: number;
  windowMs: number;
  progress?: (line: string) => void;
}): Promise<MetricsBenchResult> {
  const say = opts.progress ?? ((l: string) => console.log(l));
  const connections = { right: 24, wrong: 8 };
  say("metrics bench: lab + API server + an agent on each LB");
  const env = await startAgentOnLab({ both: true });
  const runs: MetricsBenchRun[] = [];
  try {
    const lab = env.lab;
    const key = await lab.active();
    const address = lab.lb(key).privateAddress;
    const url = `http://${address}:${lab.state.spec.metrics.port}/metrics`;
    const node = lab.ns("node");
    const flood = (n: number, auth: string) =>
      exec(
        inNetns(
          node,
          lab.helperArgv(
            "flood",
            "--url",
            url,
            "--connections",
            String(n),
            "--max-ms",
            String(opts.windowMs),
            "--auth",
            auth,
          ),
        ),
        { timeoutMs: opts.windowMs + 30_000 },
      );
    for (let i = 0; i < opts.runs; i++) {
      const quiet = await window(env, key, `quiet-${i}`, opts.windowMs);
      const stats = env.agents[key]!.agent.metricsStats!;
      const [c0, r0] = [stats.collections, stats.refused];
      let floods: { requests: number; statuses: Record<string, number>; ms: number }[] = [];
      const otherScraper = { ok: 0, asked: 0 };
      const loud = await window(env, key, `flood-${i}`, opts.windowMs, async () => {
        const scrapeElsewhere = async () => {
          // Prometheus elsewhere on the cluster network: the flood's 429s are per source, never its
          for (let t0 = Date.now(); Date.now() - t0 < opts.windowMs - 1000; await sleep(1000)) {
            otherScraper.asked++;
            const r = await lab.curl(lab.ns("wk1"), url.replace("://", `://edgepair:${LAB_METRICS_PASSWORD}@`), 3);
            if (r.ok) otherScraper.ok++;
          }
        };
        const [rs] = await Promise.all([
          Promise.all([
            flood(connections.right, `edgepair:${LAB_METRICS_PASSWORD}`),
            flood(connections.wrong, "edgepair:wrong"),
          ]),
          scrapeElsewhere(),
        ]);
        floods = rs.map((r) => JSON.parse(r.stdout.trim().split("\n").pop() ?? "{}") as (typeof floods)[number]);
      });
      const statuses: Record<string, number> = {};
      for (const f of floods) for (const [k, v] of Object.entries(f.statuses)) statuses[k] = (statuses[k] ?? 0) + v;
      const scrapes = floods.reduce((a, f) => a + f.requests, 0);
      const run: MetricsBenchRun = {
        quiet,
        flood: {
          ...loud,
          scrapes,
          scrapesPerS: Math.round(scrapes / (opts.windowMs / 1000)),
          statuses,
          collections: stats.collections - c0,
          refusedCounted: stats.refused - r0,
          otherScraper,
        },
      };
      runs.push(run);
      say(
        `run ${i + 1}/${opts.runs}: ingress median ${quiet.latencyMs.median.toFixed(1)} -> ${loud.latencyMs.median.toFixed(1)} ms, p99 ${quiet.latencyMs.p99.toFixed(1)} -> ${loud.latencyMs.p99.toFixed(1)} ms; ${run.flood.scrapesPerS} scrapes/s (${JSON.stringify(statuses)}), ${run.flood.collections} collections; a scraper on wk1: ${otherScraper.ok}/${otherScraper.asked} answered`,
      );
    }
  } finally {
    await env.stop();
  }
  const s = (f: (r: MetricsBenchRun) => number) => summarize(runs.map(f));
  return {
    runs,
    windowMs: opts.windowMs,
    connections,
    summary: {
      quietMedianMs: s((r) => r.quiet.latencyMs.median),
      floodMedianMs: s((r) => r.flood.latencyMs.median),
      quietP99Ms: s((r) => r.quiet.latencyMs.p99),
      floodP99Ms: s((r) => r.flood.latencyMs.p99),
      scrapesPerS: s((r) => r.flood.scrapesPerS),
      collectionsPerS: s((r) => r.flood.collections / (opts.windowMs / 1000)),
      failedQuiet: runs.reduce((a, r) => a + r.quiet.failed, 0),
      failedFlood: runs.reduce((a, r) => a + r.flood.failed, 0),
      otherScraper: {
        ok: runs.reduce((a, r) => a + r.flood.otherScraper.ok, 0),
        asked: runs.reduce((a, r) => a + r.flood.otherScraper.asked, 0),
      },
      haproxyCpuQuietS: s((r) => r.quiet.haproxyCpuS),
      haproxyCpuFloodS: s((r) => r.flood.haproxyCpuS),
      processCpuQuietS: s((r) => r.quiet.processCpuS),
      processCpuFloodS: s((r) => r.flood.processCpuS),
    },
  };
}
