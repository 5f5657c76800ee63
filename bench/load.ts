/**
 * `npm run bench -- load` (issue 23), first scenario: egress at scale. In the lab (real haproxy, keepalived,
 * conntrackd, nftables in network namespaces) the cluster node opens N long-lived echo-verified flows (TCP and UDP,
 * each its own conntrack entry, lab/helper.ts `flows`) through the pair's NAT to the internet host, then:
 *   1. waits until the BACKUP's conntrackd holds every flow in its external cache (the sync figure);
 *   2. unclean failover: every link of the active LB cut at once; the peer commits the synced states into its kernel
 *      table (the takeover figure: until its table holds every flow) and carries the flows on;
 *   3. fail-back: the links come back, the returning LB rejoins as BACKUP and learns the flows again; then the flows
 *      are moved back to it on purpose (keepalived stopped cleanly on the peer, then started again).
 * A flow survives by the failover bench's rule (egressFigures: no reset/close, no wrong echo, no gap over 2 s); per
 * flow its longest gap around each move is recorded. conntrackd's CPU (both LBs, from /proc) over the whole run is reported too.
 * Bounded: every wait has a deadline scaled to the flow count; the lab is always torn down.
 */
import { readFileSync } from "node:fs";
import { readSpec } from "../spec/files";
import { parseConntrackdStats } from "../agent/metrics/conntrackd";
import { CONNTRACKD_CONFIG_PATH } from "../render/conntrackd";
import { DEFAULT_SPEC, guarded } from "../lab/cli";
import { sleep, waitFor } from "../lab/exec";
import { flowsReady, startFlows } from "../lab/flows";
import { Lab, type LbKey } from "../lab/lab";
import { PORTS } from "../lab/topology";
import { egressFigures, waitSteady, type FlowReport } from "./failover";
import { cpuSeconds, printTable, quantile, summarize, type Summary } from "./stats";

export interface LoadFlowsOptions {
  tcp: number;
  udp: number;
  /** each flow sends one message per interval */
  intervalMs: number;
}

/** What lab/helper.ts `flows` writes. */
interface FlowDoc {
  start: number;
  stoppedAt: number;
  flows: FlowReport[];
}

export interface EgressLoadRun {
  flows: number;
  /** flows started -> every flow saw its first echo */
  readyMs: number;
  /** flows started (connecting) -> the BACKUP's external cache holds them all */
  syncMs: number | null;
  /** the cut -> the new MASTER's kernel table holds every flow */
  takeoverMs: number | null;
  failover: MoveFigures;
  failback: MoveFigures;
  /** flows that came through both moves */
  survived: number;
  lost: { flow: string; why: string }[];
  /** CPU seconds of each LB's conntrackd over the run */
  conntrackdCpuS: Record<LbKey, number>;
}

export interface MoveFigures {
  /** per flow, its longest gap between echoes in the window after the move (ms; 0: none over gapResolutionMs) */
  gapP50Ms: number;
  gapP99Ms: number;
  gapMaxMs: number;
}

/** Gaps between echoes shorter than this are not recorded (the pace itself is one interval): reported as 0. */
export function gapResolutionMs(o: LoadFlowsOptions): number {
  return Math.round(o.intervalMs * 1.5);
}

async function conntrackdStats(lab: Lab, key: LbKey): Promise<ReturnType<typeof parseConntrackdStats>> {
  const r = await lab.runLb(key, ["conntrackd", "-C", CONNTRACKD_CONFIG_PATH, "-s"], { allowFail: true });
  return parseConntrackdStats(r.stdout);
}

/** Entries of the flows (everything towards the internet host: only the flows go there) in an LB's kernel table. */
async function kernelEntries(lab: Lab, key: LbKey): Promise<number> {
  const r = await lab.run(lab.lb(key).ns, ["conntrack", "-L", "-d", lab.plan.targets.internet], {
    allowFail: true,
    timeoutMs: 30_000,
  });
  return r.stdout.split("\n").filter((l) => l.trim() !== "").length;
}

/** Per flow: its longest gap overlapping [from, to]. */
function moveFigures(doc: FlowDoc, from: number, to: number): MoveFigures {
  const longest = doc.flows
    .map((f) => f.gaps.filter(([a, b]) => b >= from && a <= to).reduce((m, [a, b]) => Math.max(m, b - a), 0))
    .sort((a, b) => a - b);
  return {
    gapP50Ms: Math.round(quantile(longest, 0.5)),
    gapP99Ms: Math.round(quantile(longest, 0.99)),
    gapMaxMs: Math.round(longest.at(-1) ?? 0),
  };
}

/**
 * One run on a started lab: flows, sync, unclean failover, fail-back (see the module comment). The lab is left
 * steady (one MASTER, nothing cut) for the next run.
 */
export async function egressLoadRun(
  lab: Lab,
  tag: string,
  o: LoadFlowsOptions,
  progress: (line: string) => void = () => {},
): Promise<EgressLoadRun> {
  const n = o.tcp + o.udp;
  const from = await waitSteady(lab);
  const to = lab.other(from);
  const ctd = (k: LbKey) => lab.proc(`${k}/conntrackd`)!.pid;
  // a previous run's flows, gone but still in the tables (closing states), would count for this run's
  for (const k of ["lb1", "lb2"] as const)
    await lab.run(lab.lb(k).ns, ["conntrack", "-D", "-d", lab.plan.targets.internet], { allowFail: true });
  const cpu0 = { lb1: cpuSeconds(ctd("lb1")), lb2: cpuSeconds(ctd("lb2")) };
  // long enough for the whole run at any flow count: the stop ends it sooner
  const started = Date.now();
  const run = startFlows(lab, `load/${tag}-flows`, "node", `${lab.plan.targets.internet}:${PORTS.echo}`, {
    ...o,
    maxMs: 600_000,
    gapReportMs: gapResolutionMs(o),
  });
  const scaled = (ms: number) => ms + n * 5;
  try {
    await flowsReady(run, scaled(10_000));
    const ready = Date.now();
    progress(`${tag}: ${n} flows echoing through ${from}`);
    const synced = await waitFor(
      `${to}'s conntrackd to hold ${n} flows`,
      async () => (((await conntrackdStats(lab, to))?.externalEntries ?? 0) >= n ? Date.now() : undefined),
      { timeoutMs: scaled(30_000), intervalMs: 200 },
    ).catch(() => null);
    progress(
      `${tag}: ready after ${ready - started} ms, synced after ${synced === null ? "-" : synced - started} ms; cutting ${from}`,
    );
    await sleep(1000);

    const fault = await lab.cut(from);
    const took = await waitFor(
      `${to}'s kernel table to hold every flow`,
      async () => ((await kernelEntries(lab, to)) >= n ? Date.now() : undefined),
      { timeoutMs: scaled(30_000), intervalMs: 100 },
    ).catch(() => null);
    await sleep(Math.max(5000, 3 * o.intervalMs));
    progress(`${tag}: ${to} holds the flows (${took === null ? "-" : took - fault} ms); restoring ${from}`);

    await lab.restore(from);
    await waitFor(
      `${from}'s conntrackd to learn the flows back`,
      async () => (((await conntrackdStats(lab, from))?.externalEntries ?? 0) >= n ? true : undefined),
      { timeoutMs: scaled(60_000), intervalMs: 250 },
    ).catch(() => undefined);
    const back = Date.now();
    await lab.stopKeepalived(to);
    await waitFor(`${from} to hold the VIPs again`, async () => ((await lab.active()) === from ? true : undefined), {
      timeoutMs: 30_000,
      intervalMs: 100,
    });
    await lab.startKeepalived(to);
    await sleep(Math.max(5000, 3 * o.intervalMs));
    await lab.stopClient(run.proc);
    const doc = JSON.parse(readFileSync(run.out, "utf8")) as FlowDoc;
    const { failures: lost } = egressFigures(doc, o);
    return {
      flows: n,
      readyMs: ready - started,
      syncMs: synced === null ? null : synced - started,
      takeoverMs: took === null ? null : took - fault,
      failover: moveFigures(doc, fault, back),
      failback: moveFigures(doc, back, doc.stoppedAt),
      survived: n - lost.length,
      lost: lost.slice(0, 50),
      conntrackdCpuS: {
        lb1: +(cpuSeconds(ctd("lb1")) - cpu0.lb1).toFixed(2),
        lb2: +(cpuSeconds(ctd("lb2")) - cpu0.lb2).toFixed(2),
      },
    };
  } finally {
    await lab.stopClient(run.proc).catch(() => undefined);
  }
}

export interface EgressLoadResult {
  flows: LoadFlowsOptions;
  runs: EgressLoadRun[];
  summary: {
    survivedPct: Summary;
    readyMs: Summary;
    syncMs: Summary;
    takeoverMs: Summary;
    failoverGapP99Ms: Summary;
    failoverGapMaxMs: Summary;
    failbackGapP99Ms: Summary;
    conntrackdCpuS: Summary;
  };
}

/** `runs` runs of egressLoadRun in one fresh lab of the dev spec, always torn down. */
export async function benchEgressLoad(o: { runs: number; flows: LoadFlowsOptions }): Promise<EgressLoadResult> {
  const t0 = Date.now();
  const log = (line: string) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s] ${line}`);
  const runs: EgressLoadRun[] = [];
  const lab = Lab.create(readSpec(DEFAULT_SPEC), (l) => log(`lab: ${l}`));
  try {
    await guarded(lab, log, async () => {
      await lab.up();
      for (let i = 0; i < o.runs; i++) {
        const r = await egressLoadRun(lab, `egress-${i + 1}`, o.flows, log);
        log(
          `run ${i + 1}/${o.runs}: ${r.survived}/${r.flows} survived; sync ${r.syncMs ?? "-"} ms, takeover ${r.takeoverMs ?? "-"} ms; ` +
            `longest gap p99 ${r.failover.gapP99Ms} / ${r.failback.gapP99Ms} ms (failover / fail-back)`,
        );
        runs.push(r);
      }
    });
  } finally {
    await lab.down();
  }
  const of = (f: (r: EgressLoadRun) => number | null) => summarize(runs.map(f).filter((v): v is number => v !== null));
  const summary = {
    survivedPct: of((r) => (100 * r.survived) / r.flows),
    readyMs: of((r) => r.readyMs),
    syncMs: of((r) => r.syncMs),
    takeoverMs: of((r) => r.takeoverMs),
    failoverGapP99Ms: of((r) => r.failover.gapP99Ms),
    failoverGapMaxMs: of((r) => r.failover.gapMaxMs),
    failbackGapP99Ms: of((r) => r.failback.gapP99Ms),
    conntrackdCpuS: of((r) => r.conntrackdCpuS.lb1 + r.conntrackdCpuS.lb2),
  };
  printTable(
    (
      [
        ["flows surviving both moves (%)", "survivedPct", "100"],
        ["flows started -> all echoing (ms)", "readyMs", "-"],
        ["flows started -> BACKUP holds all (ms)", "syncMs", "-"],
        ["cut -> new MASTER's table holds all (ms)", "takeoverMs", "-"],
        ["failover: longest echo gap per flow, p99 (ms)", "failoverGapP99Ms", "<= 1000"],
        ["failover: longest echo gap, max (ms)", "failoverGapMaxMs", "-"],
        ["fail-back: longest echo gap per flow, p99 (ms)", "failbackGapP99Ms", "<= 1000"],
        ["conntrackd CPU, both LBs, per run (s)", "conntrackdCpuS", "-"],
      ] as const
    ).map(([label, key, goal]) => ({
      figure: label,
      min: summary[key].minMs.toFixed(key === "conntrackdCpuS" ? 2 : 0),
      median: summary[key].medianMs.toFixed(key === "conntrackdCpuS" ? 2 : 0),
      max: summary[key].maxMs.toFixed(key === "conntrackdCpuS" ? 2 : 0),
      goal,
    })),
  );
  console.log(
    `${o.flows.tcp} TCP + ${o.flows.udp} UDP flows, one message per ${o.flows.intervalMs} ms (gaps under ${gapResolutionMs(o.flows)} ms count as 0); ${runs.length} runs`,
  );
  return { flows: o.flows, runs, summary };
}
