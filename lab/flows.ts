/**
 * Long-lived echo-verified flows (lab/helper.ts `flows`) from one of the lab's hosts, as the tests and benches use
 * them around a failover: started, ready once every flow saw its first echo (an error in any flow fails the wait:
 * "ready (with errors)" is not ready), stopped, and read back as figures (bench/failover.ts egressFigures).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { egressFigures, type EgressFigures } from "../bench/failover";
import { GaveUp, waitFor, type ProcessRecord } from "./exec";
import type { Lab } from "./lab";

export interface FlowsRun {
  proc: ProcessRecord;
  out: string;
  expected: { tcp: number; udp: number };
}

export function startFlows(
  lab: Lab,
  name: string,
  hostKey: string,
  target: string,
  o: { tcp: number; udp: number; intervalMs?: number; maxMs?: number; gapReportMs?: number },
): FlowsRun {
  const out = join(lab.dir, "logs", `${name.replace(/\//g, "-")}.json`);
  const proc = lab.startHelper(name, hostKey, [
    "flows",
    "--target",
    target,
    "--out",
    out,
    "--tcp",
    String(o.tcp),
    "--udp",
    String(o.udp),
    "--interval-ms",
    String(o.intervalMs ?? 100),
    "--max-ms",
    String(o.maxMs ?? 60_000),
    ...(o.gapReportMs !== undefined ? ["--gap-report-ms", String(o.gapReportMs)] : []),
  ]);
  return { proc, out, expected: { tcp: o.tcp, udp: o.udp } };
}

export async function flowsReady(run: FlowsRun, timeoutMs = 10_000): Promise<void> {
  await helperReady(run.proc, "every flow's first echo", timeoutMs);
}

/** A helper that prints "ready" once all its flows or sessions are answered ("ready (with errors)" fails the wait). */
export async function helperReady(proc: ProcessRecord, what: string, timeoutMs: number): Promise<void> {
  await waitFor(
    `${proc.name}: ${what}`,
    async () => {
      const log = readFileSync(proc.log, "utf8");
      const failed = /^ready \(with errors\)(.*)$/m.exec(log);
      if (failed) throw new GaveUp(`${proc.name}: failed before all were ready${failed[1] ?? ""}`);
      return /^ready$/m.test(log) ? true : undefined;
    },
    { timeoutMs, intervalMs: 50 },
  );
}

/** Stops the flows (they write their report on SIGTERM) and reads the figures. */
export async function stopFlows(lab: Lab, run: FlowsRun): Promise<EgressFigures> {
  await lab.stopClient(run.proc);
  return egressFigures(JSON.parse(readFileSync(run.out, "utf8")) as Parameters<typeof egressFigures>[0], run.expected);
}
