/**
 * `npm run bench -- [render|failover|libvirt|propagation|propagation-runtime ...]`: runs the named benchmarks (all when none is named), prints a table and writes
 * JSON to bench/results/<name>.json.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { benchFailover } from "./failover";
import { benchLibvirt } from "./libvirt";
import { propagationBench } from "./propagation";
import { benchClusterPropagation } from "./propagation-cluster";
import { benchRender } from "./render";
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
    const out = join(RESULTS, `${name}.json`);
    const doc = { bench: name, node: process.version, date: new Date().toISOString(), results };
    writeFileSync(out, `${JSON.stringify(doc, null, 2)}\n`);
    console.log(`wrote ${out}`);
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
