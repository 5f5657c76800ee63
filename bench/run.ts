/**
 * `npm run bench -- [render ...]`: runs the named benchmarks (all when none is named), prints a table and writes
 * JSON to bench/results/<name>.json.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { benchRender } from "./render";
import { printTable } from "./stats";

const REPO = join(__dirname, "..");
const RESULTS = join(REPO, "bench", "results");

const BENCHES: Record<string, () => unknown> = {
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

function main(names: string[]): number {
  const chosen = names.length > 0 ? names : Object.keys(BENCHES);
  const unknown = chosen.filter((n) => !(n in BENCHES));
  if (unknown.length > 0) {
    console.error(`unknown benchmark: ${unknown.join(", ")} (known: ${Object.keys(BENCHES).join(", ")})`);
    return 2;
  }
  mkdirSync(RESULTS, { recursive: true });
  for (const name of chosen) {
    console.log(`\n== ${name}`);
    const results = BENCHES[name]?.();
    const out = join(RESULTS, `${name}.json`);
    const doc = { bench: name, node: process.version, date: new Date().toISOString(), results };
    writeFileSync(out, `${JSON.stringify(doc, null, 2)}\n`);
    console.log(`wrote ${out}`);
  }
  return 0;
}

process.exitCode = main(process.argv.slice(2));
