/**
 * Time to validate + render one LB's files from the raw spec: the dev stack, and the dev stack with 1000 API and
 * 1000 ingress backends. Memory is the heap growth while rendering the large case.
 */
import { performance } from "node:perf_hooks";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { renderAll } from "../render/index";
import { resolveSpec } from "../spec/resolve";
import type { Backend, HostFacts } from "../spec/types";
import { summarize, Summary } from "./stats";

const host: HostFacts = {
  hostname: "bench-lb-1",
  role: "primary",
  publicInterface: { name: "eth0", mac: "52:54:00:be:00:01" },
  privateInterface: { name: "eth1", mac: "52:54:00:be:00:02" },
};

function backends(prefix: string, count: number, offset: number): Backend[] {
  return Array.from({ length: count }, (_, i) => {
    const n = offset + i;
    return {
      name: `${prefix}-${i}`,
      address: `10.${Math.floor(n / 65536) % 256}.${Math.floor(n / 256) % 256}.${n % 256}`,
    };
  });
}

function time(iterations: number, fn: () => unknown): Summary {
  for (let i = 0; i < Math.min(20, iterations); i++) fn(); // warm-up: JIT and module caches
  const samples: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const t0 = performance.now();
    fn();
    samples.push(performance.now() - t0);
  }
  return summarize(samples);
}

export interface RenderBenchResult {
  case: string;
  backends: number;
  files: number;
  bytes: number;
  timing: Summary;
}

export function benchRender(repo: string): RenderBenchResult[] {
  const raw = (parse(readFileSync(join(repo, "Pulumi.dev.yaml"), "utf8")) as { config: Record<string, unknown> })
    .config["edgepair:spec"];
  const devBackends = { api: backends("cp", 3, 10), ingress: backends("worker", 2, 20) };
  const bigBackends = { api: backends("cp", 1000, 1000), ingress: backends("worker", 1000, 3000) };
  const cases = [
    { name: "dev stack", backends: devBackends, iterations: 500 },
    { name: "dev stack, 1000+1000 backends", backends: bigBackends, iterations: 100 },
  ];
  return cases.map((c) => {
    const run = () => renderAll({ spec: resolveSpec(raw), host, backends: c.backends });
    const files = run();
    return {
      case: c.name,
      backends: c.backends.api.length + c.backends.ingress.length,
      files: files.length,
      bytes: files.reduce((a, f) => a + Buffer.byteLength(f.content), 0),
      timing: time(c.iterations, run),
    };
  });
}
