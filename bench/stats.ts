/** Small statistics, process CPU and table printing shared by the benchmarks. */
import { readFileSync } from "node:fs";

export interface Summary {
  n: number;
  medianMs: number;
  p95Ms: number;
  meanMs: number;
  minMs: number;
  maxMs: number;
}

/** The sample at index floor(q * n) of ascending `sorted` (0 when empty). */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}

export function summarize(samplesMs: number[]): Summary {
  const s = [...samplesMs].sort((a, b) => a - b);
  const at = (q: number) => (s.length === 0 ? NaN : quantile(s, q));
  const round = (x: number) => Math.round(x * 1000) / 1000;
  return {
    n: s.length,
    medianMs: round(at(0.5)),
    p95Ms: round(at(0.95)),
    meanMs: round(s.reduce((a, b) => a + b, 0) / s.length),
    minMs: round(s[0] ?? NaN),
    maxMs: round(s[s.length - 1] ?? NaN),
  };
}

export function printTable(rows: Record<string, string | number>[]): void {
  if (rows.length === 0) return;
  const cols = Object.keys(rows[0] ?? {});
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c]).length)));
  const line = (vals: string[]) => vals.map((v, i) => v.padEnd(width[i] ?? 0)).join("  ");
  console.log(line(cols));
  console.log(line(width.map((w) => "-".repeat(w))));
  for (const r of rows) console.log(line(cols.map((c) => String(r[c]))));
}

const TICKS_PER_S = 100; // /proc/<pid>/stat and /proc/stat count in clock ticks (USER_HZ)

/** The machine's CPU time so far (s, all cores), from /proc/stat's cpu line: idle (with iowait), softirq, total. */
export function machineCpuSeconds(): { idle: number; softirq: number; total: number } {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq ...
  return {
    idle: ((f[3] ?? 0) + (f[4] ?? 0)) / TICKS_PER_S,
    softirq: (f[6] ?? 0) / TICKS_PER_S,
    total: f.reduce((a, b) => a + b, 0) / TICKS_PER_S,
  };
}

/** CPU seconds (user + system) a process has spent, from /proc; 0 when it is gone. */
export function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_S;
  } catch {
    return 0;
  }
}

/** A process and its children (HAProxy's master and its worker): CPU seconds of each, by PID. */
export function treeCpuSeconds(pid: number): Map<number, number> {
  const out = new Map([[pid, cpuSeconds(pid)]]);
  let children: string[] = [];
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean);
  } catch {
    return out;
  }
  for (const c of children) out.set(Number(c), cpuSeconds(Number(c)));
  return out;
}

/** CPU seconds spent between two treeCpuSeconds readings, by the processes present in both or new in the second. */
export function cpuSpent(before: Map<number, number>, after: Map<number, number>): number {
  let s = 0;
  for (const [pid, v] of after) s += v - (before.get(pid) ?? 0);
  return Math.round(s * 100) / 100;
}
