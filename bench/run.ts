/**
 * `npm run bench -- [render|failover|libvirt|propagation|propagation-runtime|services|metrics|load ...]`: runs the named benchmarks (all when none is named), prints a table and writes
 * JSON to bench/results/<name>.json.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { benchFailover } from "./failover";
import { benchLibvirt } from "./libvirt";
import { propagationBench } from "./propagation";
import { benchClusterPropagation } from "./propagation-cluster";
import { benchRender } from "./render";
import { benchServices } from "./services";
import { benchMetrics } from "./metrics";
import { benchEgressLoad } from "./load";
import { benchSessionsLoad } from "./load-sessions";
import { benchThroughput } from "./load-throughput";
import { benchAgentLoad, printAgentScale } from "./load-agent";
import { benchVrrpLoad } from "./load-vrrp";
import { printTable } from "./stats";

const REPO = join(__dirname, "..");
const RESULTS = join(REPO, "bench", "results");

const BENCHES: Record<string, () => unknown> = {
  // needs root: two labs (lab/), edgepair and the PoC-equivalent settings; also writes bench/results/failover-*.svg
  failover: () => benchFailover({ resultsDir: RESULTS, runs: Number(process.env.EDGEPAIR_BENCH_RUNS ?? "5") }),
  // needs root and the engines: create and destroy the libvirt lab through the real Pulumi engine, seconds per step
  libvirt: async () => {
    const result = await benchLibvirt({ runs: Number(process.env.EDGEPAIR_BENCH_LIBVIRT_RUNS ?? "3") });
    printTable(
      (["preview", "up", "refresh", "destroy", "upPlusDestroy"] as const).map((step) => ({
        step: step === "upPlusDestroy" ? "up + destroy" : step,
        "median s": (result.summary[step].medianMs / 1000).toFixed(1),
        "min s": (result.summary[step].minMs / 1000).toFixed(1),
        "max s": (result.summary[step].maxMs / 1000).toFixed(1),
        runs: result.summary[step].n,
      })),
    );
    console.log(
      `virt type ${result.virtType}; libvirtd start ${(result.daemonStartMs / 1000).toFixed(1)} s, stop ${(result.daemonStopMs / 1000).toFixed(1)} s`,
    );
    return result;
  },
  // needs root and the engines: the lab + a real API server; a Node created in the cluster -> first request served by it
  propagation: async () => {
    const r = await benchClusterPropagation({ changes: Number(process.env.EDGEPAIR_BENCH_PROPAGATION_RUNS ?? "20") });
    printTable(
      (["nodeAddedToFirstRequest", "nodeDeletedToServerGone"] as const).map((k) => ({
        change:
          k === "nodeAddedToFirstRequest"
            ? "Node created -> first request served by it"
            : "Node deleted -> server gone from HAProxy",
        "min ms": r[k].minMs.toFixed(0),
        "median ms": r[k].medianMs.toFixed(0),
        "max ms": r[k].maxMs.toFixed(0),
        n: r[k].n,
      })),
    );
    console.log(
      `${r.changes} changes, ${r.requests} requests (${r.failedRequests} failed: ${r.failures.map((f) => `${f.err} ${f.count}`).join(", ") || "none"}), ${r.reloads} reloads`,
    );
    return r;
  },
  // needs root: a real haproxy (master-worker) in a throwaway namespace; render + runtime API -> first request it serves
  "propagation-runtime": async () => {
    const r = await propagationBench({ runs: Number(process.env.EDGEPAIR_BENCH_PROPAGATION_RUNS ?? "20") });
    printTable(
      (["add", "addSync", "drain", "delete"] as const).map((k) => ({
        change: {
          add: "Node added -> first response from it",
          addSync: "Node added -> runtime API done",
          drain: "Node removed -> drained",
          delete: "Node removed -> deleted",
        }[k],
        "min ms": r[k].minMs.toFixed(1),
        "median ms": r[k].medianMs.toFixed(1),
        "max ms": r[k].maxMs.toFixed(1),
        n: r[k].n,
      })),
    );
    console.log(
      `${r.changes} changes, ${r.requests} requests, ${r.failedRequests} failed, ${r.requestsAfterDrain} after a drain, ${r.reloads} reloads`,
    );
    return r;
  },
  // needs root and the engines: the lab + a real API server + an agent on each LB; Services of type LoadBalancer
  services: async () => {
    const r = await benchServices({
      samples: Number(process.env.EDGEPAIR_BENCH_SERVICE_SAMPLES ?? "20"),
      runs: Number(process.env.EDGEPAIR_BENCH_RUNS ?? "5"),
      services: Number(process.env.EDGEPAIR_BENCH_SERVICES ?? "500"),
    });
    const row = (what: string, s: { minMs: number; medianMs: number; maxMs: number; n: number }, goal: string) => ({
      what,
      "min ms": s.minMs.toFixed(0),
      "median ms": s.medianMs.toFixed(0),
      "max ms": s.maxMs.toFixed(0),
      n: s.n,
      goal,
    });
    printTable([
      row("Service created -> first TCP answer", r.createdToAnswer.tcp, "median <= 1000 ms"),
      row("Service created -> first UDP answer", r.createdToAnswer.udp, "median <= 1000 ms"),
      row("unclean failover, 1 Service address: first prompt success", r.outage.none, "<= 400 ms"),
      row(
        `unclean failover, ${r.scale.services + 1} Service addresses: first prompt success`,
        r.outage.many,
        "within 10 % of 1, <= 400 ms",
      ),
      row(
        "unclean failover, 1 Service address: DESIGN.md outage",
        r.outage.design.none,
        "(SYN retransmission flatters it)",
      ),
      row(
        `unclean failover, ${r.scale.services + 1} addresses: DESIGN.md outage`,
        r.outage.design.many,
        "(SYN retransmission flatters it)",
      ),
      row(`nft -f of the table with ${r.scale.services} Services`, r.scale.nftApply, "report"),
      row("lab.cut itself (outage figures are short by at most this)", r.outage.cut, "report"),
    ]);
    console.log(
      `flows across ${r.flows.failovers} unclean failovers (there and back): ${r.flows.survived}/${r.flows.total} survived (goal 100 %), longest echo gap ${r.flows.maxGapMs > 0 ? `${r.flows.maxGapMs} ms` : "none over 500 ms"} (goal <= 1000 ms)`,
    );
    console.log(
      `${r.scale.services} Services: every address recorded after ${r.scale.allRecordedMs} ms, both LBs forward all after ${r.scale.bothForwardMs} ms; RSS ${r.scale.rssMiB.before} -> ${r.scale.rssMiB.after} MiB, heap ${r.scale.heapMiB.before} -> ${r.scale.heapMiB.after} MiB (both agents and the bench in one process); outage ratio ${r.outage.ratio}`,
    );
    return r;
  },
  // needs root and the engines: the lab + a real API server + an agent on each LB; a scrape flood beside the data path
  metrics: async () => {
    const r = await benchMetrics({
      runs: Number(process.env.EDGEPAIR_BENCH_RUNS ?? "5"),
      windowMs: Number(process.env.EDGEPAIR_BENCH_METRICS_WINDOW_MS ?? "8000"),
    });
    const x = r.summary;
    const row = (what: string, s: { minMs: number; medianMs: number; maxMs: number; n: number }, unit: string) => ({
      what,
      min: `${s.minMs} ${unit}`,
      median: `${s.medianMs} ${unit}`,
      max: `${s.maxMs} ${unit}`,
      runs: s.n,
    });
    printTable([
      row("ingress request, quiet: median", x.quietMedianMs, "ms"),
      row("ingress request, scrape flood: median", x.floodMedianMs, "ms"),
      row("ingress request, quiet: p99", x.quietP99Ms, "ms"),
      row("ingress request, scrape flood: p99", x.floodP99Ms, "ms"),
      row("flood requests per second (mostly refused: 429 or reset)", x.scrapesPerS, "/s"),
      row("agent collections per second (flood)", x.collectionsPerS, "/s"),
      row("HAProxy worker CPU per window, quiet", x.haproxyCpuQuietS, "s"),
      row("HAProxy worker CPU per window, flood", x.haproxyCpuFloodS, "s"),
      row("agents + bench CPU per window, quiet", x.processCpuQuietS, "s"),
      row("agents + bench CPU per window, flood", x.processCpuFloodS, "s"),
    ]);
    console.log(
      `${r.windowMs / 1000} s windows, flood ${r.connections.right} connections with the password + ${r.connections.wrong} without; failed ingress requests: quiet ${x.failedQuiet}, flood ${x.failedFlood}; a scraper on another cluster host during the floods: ${x.otherScraper.ok}/${x.otherScraper.asked} answered`,
    );
    return r;
  },
  // needs root: the lab; each scenario of issue 23 in its own lab, one after the other (EDGEPAIR_LOAD_ONLY picks some):
  // egress: N flows (EDGEPAIR_LOAD_FLOWS, 4/5 TCP, one message per EDGEPAIR_LOAD_INTERVAL_MS) and a few fast probe flows
  // (EDGEPAIR_LOAD_PROBE_FLOWS at EDGEPAIR_LOAD_PROBE_INTERVAL_MS) across an unclean failover and a fail-back; sessions: keep-alive
  // sessions (EDGEPAIR_LOAD_SESSIONS through the ingress VIP, a tenth of that through the API VIP) across a planned
  // failover and a fail-back; throughput: iperf3 through the NAT and HAProxy beside the bare path and direct
  // (EDGEPAIR_LOAD_SECONDS per test); agent (needs the engines): EDGEPAIR_LOAD_NODES Nodes in a real API server, of
  // them EDGEPAIR_LOAD_BACKENDS ingress backends, the agent on the lab's active LB watching them; vrrp: per advert
  // interval (EDGEPAIR_LOAD_ADVERTS) spurious transitions under EDGEPAIR_LOAD_SATURATE_S of load, and the prompt figure
  load: async () => {
    const runs = Number(process.env.EDGEPAIR_BENCH_RUNS ?? "5");
    const only = (process.env.EDGEPAIR_LOAD_ONLY ?? "egress,sessions,throughput,agent,vrrp").split(",");
    const scenarios: Record<string, () => Promise<unknown>> = {
      egress: () => {
        const flows = Number(process.env.EDGEPAIR_LOAD_FLOWS ?? "10000");
        const udp = Math.round(flows / 5);
        const intervalMs = Number(process.env.EDGEPAIR_LOAD_INTERVAL_MS ?? "500");
        const probe = {
          flows: Number(process.env.EDGEPAIR_LOAD_PROBE_FLOWS ?? "200"),
          intervalMs: Number(process.env.EDGEPAIR_LOAD_PROBE_INTERVAL_MS ?? "20"),
        };
        return benchEgressLoad({
          runs,
          flows: { tcp: flows - udp, udp, intervalMs, ...(probe.flows > 0 ? { probe } : {}) },
          resultsDir: RESULTS,
        });
      },
      sessions: () => {
        const ingress = Number(process.env.EDGEPAIR_LOAD_SESSIONS ?? "2000");
        const options = { ingress, api: Math.round(ingress / 10), gapMs: 1000, windowMs: 5000 };
        return benchSessionsLoad({ runs, options });
      },
      throughput: () =>
        benchThroughput({ runs, options: { seconds: Number(process.env.EDGEPAIR_LOAD_SECONDS ?? "5") } }),
      vrrp: () =>
        benchVrrpLoad({
          intervals: (process.env.EDGEPAIR_LOAD_ADVERTS ?? "0.1,0.05,0.04,0.03").split(",").map(Number),
          saturateS: Number(process.env.EDGEPAIR_LOAD_SATURATE_S ?? "600"),
          runs,
        }),
      agent: async () => {
        const r = await benchAgentLoad({
          nodes: Number(process.env.EDGEPAIR_LOAD_NODES ?? "5000"),
          backends: Number(process.env.EDGEPAIR_LOAD_BACKENDS ?? "2000"),
          changes: Number(process.env.EDGEPAIR_LOAD_CHANGES ?? "10"),
          runs,
        });
        printAgentScale(r);
        return r;
      },
    };
    const unknown = only.filter((n) => !(n in scenarios));
    if (unknown.length > 0)
      throw new Error(
        `EDGEPAIR_LOAD_ONLY: unknown scenario ${unknown.join(", ")} (known: ${Object.keys(scenarios).join(", ")})`,
      );
    const results: Record<string, unknown> = {};
    for (const [name, run] of Object.entries(scenarios)) {
      if (!only.includes(name)) continue;
      console.log(`\n-- load: ${name}`);
      // one scenario failing must not lose the others' figures
      results[name] = await run().catch((e: unknown) => {
        console.error(`load: ${name} failed: ${e instanceof Error ? e.message : String(e)}`);
        process.exitCode = 1;
        return { error: e instanceof Error ? e.message : String(e) };
      });
      // each scenario's figures also on their own: a run of one scenario leaves the others' files alone
      writeResults(`load-${name}`, `load ${name}`, results[name]);
    }
    return results;
  },
  render: () => {
    const results = benchRender(REPO);
    printTable(
      results.map((r) => ({
        case: r.case,
        backends: r.backends,
        files: r.files,
        bytes: r.bytes,
        "median ms": r.timing.medianMs,
        "p95 ms": r.timing.p95Ms,
        runs: r.timing.n,
      })),
    );
    return results;
  },
};

/** bench/results/<file>.json: the figures with what produced them; returns its path. */
function writeResults(file: string, bench: string, results: unknown): string {
  const out = join(RESULTS, `${file}.json`);
  const doc = { bench, node: process.version, date: new Date().toISOString(), results };
  writeFileSync(out, `${JSON.stringify(doc, null, 2)}\n`);
  return out;
}

async function main(names: string[]): Promise<number> {
  const chosen = names.length > 0 ? names : Object.keys(BENCHES);
  const unknown = chosen.filter((n) => !(n in BENCHES));
  if (unknown.length > 0) {
    console.error(`unknown benchmark: ${unknown.join(", ")} (known: ${Object.keys(BENCHES).join(", ")})`);
    return 2;
  }
  mkdirSync(RESULTS, { recursive: true });
  for (const name of chosen) {
    console.log(`\n== ${name}`);
    const results = await BENCHES[name]?.();
    console.log(`wrote ${writeResults(name, name, results)}`);
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => (process.exitCode = code),
  (e: unknown) => {
    console.error(e instanceof Error ? e.message : String(e));
    process.exitCode = 1;
  },
);
