/**
 * The frame every lab benchmark of `npm run bench -- load` shares: one fresh lab of the dev spec, `runs` runs of a
 * scenario in it one after the other, a log with seconds since the start, and the lab always torn down.
 */
import { readSpec } from "../spec/files";
import { DEFAULT_SPEC, guarded } from "../lab/cli";
import { Lab } from "../lab/lab";

export type BenchLog = (line: string) => void;

export function benchLog(): BenchLog {
  const t0 = Date.now();
  return (line) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s] ${line}`);
}

export async function runsInLab<R>(
  runs: number,
  run: (lab: Lab, i: number, log: BenchLog) => Promise<R>,
  done: (r: R) => string,
): Promise<R[]> {
  const log = benchLog();
  const results: R[] = [];
  const lab = Lab.create(readSpec(DEFAULT_SPEC), (l) => log(`lab: ${l}`));
  try {
    await guarded(lab, log, async () => {
      await lab.up();
      for (let i = 0; i < runs; i++) {
        const r = await run(lab, i, log);
        log(`run ${i + 1}/${runs}: ${done(r)}`);
        results.push(r);
      }
    });
  } finally {
    await lab.down();
  }
  return results;
}
