/**
 * `npm run bench -- load` (issue 23), the egress scenario: egress at scale. In the lab (real haproxy, keepalived,
 * conntrackd, nftables in network namespaces) the cluster node opens N long-lived echo-verified flows (TCP and UDP,
 * each its own conntrack entry, lab/helper.ts `flows`) through the pair's NAT to the internet host, then:
 *   1. waits until the BACKUP's conntrackd holds every flow in its external cache (the sync figure);
 *   2. unclean failover: every link of the active LB cut at once; the peer commits the synced states into its kernel
 *      table (the takeover figure: until its table holds every flow) and carries the flows on;
 *   3. fail-back: the links come back, the returning LB rejoins as BACKUP and learns the flows again; then the flows
 *      are moved back to it on purpose (keepalived stopped cleanly on the peer, then started again).
 * A flow survives by the failover bench's rule (egressFigures: no reset/close, no wrong echo, no gap over 2 s); per
 * flow its longest gap around each move is recorded. conntrackd's CPU (both LBs, from /proc) over the whole run is reported too.
 * Strict twins, because TCP's retransmissions flatter "survived" and the bulk's slow pace rounds every gap up to a
 * multiple of its interval: the UDP messages never echoed (a datagram the pair dropped is not sent again), and a few
 * probe flows at a fast pace beside the bulk, whose gaps measure the outage to within their pace. The sync backlog
 * (flows the MASTER's conntrackd knows and the BACKUP's does not) is sampled while the flows open and at the cut;
 * the notify script's line on the agent's FIFO gives when the new MASTER finished its transition. The run's flows
 * without an echo over time are drawn (bench/results/load-egress.svg, the run with the median failover gap).
 * Bounded: every wait has a deadline scaled to the flow count; the lab is always torn down.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseConntrackdStats } from "../agent/metrics/conntrackd";
import { CONNTRACKD_CONFIG_PATH } from "../render/conntrackd";
import { sleep, waitFor } from "../lab/exec";
import { flowsReady, startFlows } from "../lab/flows";
import type { Lab, LbKey } from "../lab/lab";
import { PORTS } from "../lab/topology";
import { egressFigures, waitHolder, waitSteady, type FlowReport } from "./failover";
import { cpuSeconds, printTable, quantile, summarize, type Summary } from "./stats";
import { timelineSvg } from "./svg";
import { benchLog, runsInLab } from "./lab-runs";

export interface LoadFlowsOptions {
  tcp: number;
  udp: number;
  /** each flow sends one message per interval */
  intervalMs: number;
  /** beside the bulk, a few flows at a fast pace (4/5 TCP): their gaps measure the outage to within their pace */
  probe?: { flows: number; intervalMs: number };
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
  /** the cut -> the new MASTER's kernel table holds every flow (its entry count read every 20 ms: an upper bound) */
  takeoverMs: number | null;
  /** the cut -> the new MASTER's notify script has finished (its line on the agent's FIFO) */
  masterMs: number | null;
  failover: MoveFigures;
  failback: MoveFigures;
  /** the probe flows' figures (present when the options have probes) */
  probe?: { failover: MoveFigures; failback: MoveFigures };
  /** the strict twin of `survived` (which TCP's retransmissions can flatter): UDP messages never echoed, per UDP
   * flow over both moves (UDP does not retransmit: each is a datagram the pair dropped), times the send interval */
  udpLostMs: { p99: number; max: number; totalMessages: number };
  /** while the flows opened: the most flows the MASTER's conntrackd knew that the BACKUP's did not yet */
  syncBacklogMax: number;
  /** the same just before the cut (goal 0: a cut then loses nothing not yet sent) */
  syncBacklogAtCut: number;
  timeline: Timeline;
  /** flows that came through both moves */
  survived: number;
  lost: { flow: string; why: string }[];
  /** of the flows not surviving: those that broke (reset, closed, a wrong echo) and those only stalled over 2 s */
  broken: number;
  stalled: number;
  /** CPU seconds of each LB's conntrackd over the run */
  conntrackdCpuS: Record<LbKey, number>;
}

export interface MoveFigures {
  /** per flow, its longest gap between echoes in the window after the move (ms; 0: none over gapResolutionMs) */
  gapP50Ms: number;
  gapP99Ms: number;
  gapMaxMs: number;
  /** the same by protocol: TCP's includes its retransmission backoff, UDP's only the outage and the pace */
  tcpGapP99Ms: number;
  udpGapP99Ms: number;
}

/** Flows without an echo over time (a bin counts a flow when one of its gaps covers the bin's middle). */
export interface Timeline {
  /** the cut, epoch ms: bins and marks are relative to it */
  cutAt: number;
  fromMs: number;
  binMs: number;
  bins: { tcp: number; udp: number }[];
  marks: { atMs: number; label: string }[];
}

/** Gaps between echoes shorter than this are not recorded (the pace itself is one interval): reported as 0. */
export function gapResolutionMs(o: LoadFlowsOptions): number {
  return Math.round(o.intervalMs * 1.5);
}

async function conntrackdStats(lab: Lab, key: LbKey): Promise<ReturnType<typeof parseConntrackdStats>> {
  const r = await lab.runLb(key, ["conntrackd", "-C", CONNTRACKD_CONFIG_PATH, "-s"], { allowFail: true });
  return parseConntrackdStats(r.stdout);
}

/**
 * Entries in an LB's kernel table, from /proc/<pid>/net/stat/nf_conntrack of its conntrackd (a process in its
 * namespace): a file read. `conntrack -L` of 10,000 entries every 100 ms took CPU from the very takeover it timed,
 * and UDP echoes were lost while it ran (most likely in the machine's packet backlog: no socket or conntrack counter
 * moved). The count includes the LB's own local entries (tens, beside 10,000 flows committed in one batch).
 */
function kernelEntries(conntrackdPid: number): number {
  const perCpu = readFileSync(`/proc/${conntrackdPid}/net/stat/nf_conntrack`, "utf8").split("\n")[1] ?? "";
  return parseInt(perCpu.trim().split(/\s+/)[0] ?? "0", 16);
}

/** Per flow: its longest gap overlapping [from, to]. */
function moveFigures(doc: FlowDoc, from: number, to: number): MoveFigures {
  const longest = (flows: FlowReport[]) =>
    flows
      .map((f) => f.gaps.filter(([a, b]) => b >= from && a <= to).reduce((m, [a, b]) => Math.max(m, b - a), 0))
      .sort((a, b) => a - b);
  const all = longest(doc.flows);
  const p99 = (proto: "tcp" | "udp") => Math.round(quantile(longest(doc.flows.filter((f) => f.proto === proto)), 0.99));
  return {
    gapP50Ms: Math.round(quantile(all, 0.5)),
    gapP99Ms: Math.round(quantile(all, 0.99)),
    gapMaxMs: Math.round(all.at(-1) ?? 0),
    tcpGapP99Ms: p99("tcp"),
    udpGapP99Ms: p99("udp"),
  };
}

function udpLostMs(doc: FlowDoc, o: LoadFlowsOptions): EgressLoadRun["udpLostMs"] {
  const lost = doc.flows
    .filter((f) => f.proto === "udp")
    .map((f) => f.sent - f.echoed)
    .sort((a, b) => a - b);
  return {
    p99: quantile(lost, 0.99) * o.intervalMs,
    max: (lost.at(-1) ?? 0) * o.intervalMs,
    totalMessages: lost.reduce((a, b) => a + b, 0),
  };
}

const TIMELINE_BIN_MS = 100;

function timeline(doc: FlowDoc, cutAt: number, marks: Timeline["marks"]): Timeline {
  const fromMs = -2000;
  const n = Math.ceil((doc.stoppedAt - cutAt - fromMs) / TIMELINE_BIN_MS);
  const bins = Array.from({ length: Math.max(0, n) }, () => ({ tcp: 0, udp: 0 }));
  for (const f of doc.flows)
    for (const [a, b] of f.gaps) {
      // bins whose middle lies inside the gap
      const first = Math.max(0, Math.ceil((a - cutAt - fromMs) / TIMELINE_BIN_MS - 0.5));
      const last = Math.min(n - 1, Math.floor((b - cutAt - fromMs) / TIMELINE_BIN_MS - 0.5));
      for (let i = first; i <= last; i++) bins[i]![f.proto]++;
    }
  return { cutAt, fromMs, binMs: TIMELINE_BIN_MS, bins, marks };
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
  const probeUdp = o.probe ? Math.round(o.probe.flows / 5) : 0;
  const probe = o.probe ? { tcp: o.probe.flows - probeUdp, udp: probeUdp, intervalMs: o.probe.intervalMs } : undefined;
  const n = o.tcp + o.udp + (o.probe?.flows ?? 0);
  const from = await waitSteady(lab);
  const to = lab.other(from);
  const ctd = (k: LbKey) => lab.proc(`${k}/conntrackd`)!.pid;
  // a previous run's flows, gone but still in the tables (closing states), would count for this run's
  for (const k of ["lb1", "lb2"] as const)
    await lab.run(lab.lb(k).ns, ["conntrack", "-D", "-d", lab.plan.targets.internet], { allowFail: true });
  const cpu0 = { lb1: cpuSeconds(ctd("lb1")), lb2: cpuSeconds(ctd("lb2")) };
  let syncBacklogMax = 0;
  const backlog = async (): Promise<{ backlog: number; external: number }> => {
    const [m, b] = await Promise.all([conntrackdStats(lab, from), conntrackdStats(lab, to)]);
    const external = b?.externalEntries ?? 0;
    const v = Math.max(0, (m?.internalEntries ?? 0) - external);
    syncBacklogMax = Math.max(syncBacklogMax, v);
    return { backlog: v, external };
  };
  // long enough for the whole run at any flow count: the stop ends it sooner
  const started = Date.now();
  const target = `${lab.plan.targets.internet}:${PORTS.echo}`;
  const runs = [
    startFlows(lab, `load/${tag}-flows`, "node", target, { ...o, maxMs: 600_000, gapReportMs: gapResolutionMs(o) }),
    ...(probe
      ? [
          startFlows(lab, `load/${tag}-probe`, "node", target, {
            ...probe,
            maxMs: 600_000,
            gapReportMs: gapResolutionMs(probe),
          }),
        ]
      : []),
  ];
  const scaled = (ms: number) => ms + n * 5;
  // the sync backlog while the flows open, sampled until the BACKUP holds them all
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      await backlog().catch(() => undefined);
      // conntrackd -s on both LBs: not faster, or the sampling itself slows the opening it measures
      await sleep(500);
    }
  })();
  try {
    await Promise.all(runs.map((r) => flowsReady(r, scaled(10_000))));
    const ready = Date.now();
    progress(`${tag}: ${n} flows echoing through ${from}`);
    const synced = await waitFor(
      `${to}'s conntrackd to hold ${n} flows`,
      async () => ((await backlog()).external >= n ? Date.now() : undefined),
      { timeoutMs: scaled(30_000), intervalMs: 200 },
    ).catch(() => null);
    sampling = false;
    await sampler;
    progress(
      `${tag}: ready after ${ready - started} ms, synced after ${synced === null ? "-" : synced - started} ms; cutting ${from}`,
    );
    await sleep(1000);
    const syncBacklogAtCut = (await backlog()).backlog;

    const fault = await lab.cut(from);
    const took = await waitFor(
      `${to}'s kernel table to hold every flow`,
      async () => (kernelEntries(ctd(to)) >= n ? Date.now() : undefined),
      { timeoutMs: scaled(30_000), intervalMs: 20 },
    ).catch(() => null);
    await sleep(Math.max(5000, 3 * o.intervalMs));
    progress(`${tag}: ${to} holds the flows (${took === null ? "-" : took - fault} ms); restoring ${from}`);

    const restored = await lab.restore(from);
    await waitFor(
      `${from}'s conntrackd to learn the flows back`,
      async () => (((await conntrackdStats(lab, from))?.externalEntries ?? 0) >= n ? true : undefined),
      { timeoutMs: scaled(60_000), intervalMs: 250 },
    ).catch(() => undefined);
    const back = Date.now();
    await lab.stopKeepalived(to);
    await waitHolder(lab, from);
    await lab.startKeepalived(to);
    await sleep(Math.max(5000, 3 * o.intervalMs));
    for (const r of runs) await lab.stopClient(r.proc);
    const docs = runs.map((r) => JSON.parse(readFileSync(r.out, "utf8")) as FlowDoc);
    const doc = docs[0]!;
    const probeDoc = docs[1];
    const lost = [
      ...egressFigures(doc, o).failures,
      ...(probe && probeDoc
        ? egressFigures(probeDoc, probe).failures.map((f) => ({ ...f, flow: `probe ${f.flow}` }))
        : []),
    ];
    return {
      flows: n,
      readyMs: ready - started,
      syncMs: synced === null ? null : synced - started,
      takeoverMs: took === null ? null : took - fault,
      masterMs: ((t) => (t === undefined ? null : t.at - fault))(
        lab.transitions(to).find((t) => t.state === "MASTER" && t.at >= fault),
      ),
      failover: moveFigures(doc, fault, back),
      failback: moveFigures(doc, back, doc.stoppedAt),
      ...(probeDoc
        ? {
            probe: {
              failover: moveFigures(probeDoc, fault, back),
              failback: moveFigures(probeDoc, back, probeDoc.stoppedAt),
            },
          }
        : {}),
      udpLostMs: udpLostMs(doc, o),
      syncBacklogMax,
      syncBacklogAtCut,
      timeline: timeline(doc, fault, [
        { atMs: 0, label: `every link of ${from} cut` },
        ...(took === null ? [] : [{ atMs: took - fault, label: `${to}'s table holds every flow` }]),
        { atMs: restored - fault, label: `${from}'s links back` },
        { atMs: back - fault, label: `fail-back: keepalived stopped on ${to}` },
      ]),
      survived: n - lost.length,
      lost: lost.slice(0, 50),
      broken: lost.filter((l) => !/^stalled \d+ ms$/.test(l.why)).length,
      stalled: lost.filter((l) => /^stalled \d+ ms$/.test(l.why)).length,
      conntrackdCpuS: {
        lb1: +(cpuSeconds(ctd("lb1")) - cpu0.lb1).toFixed(2),
        lb2: +(cpuSeconds(ctd("lb2")) - cpu0.lb2).toFixed(2),
      },
    };
  } finally {
    sampling = false;
    await sampler;
    for (const r of runs) await lab.stopClient(r.proc).catch(() => undefined);
  }
}

const ROWS: [label: string, key: string, of: (r: EgressLoadRun) => number | null, goal: string, digits: number][] = [
  ["flows surviving both moves (%)", "survivedPct", (r) => (100 * r.survived) / r.flows, "100", 2],
  ["of the others: broken (reset, closed, wrong echo)", "broken", (r) => r.broken, "0", 0],
  ["of the others: stalled over 2 s (no reset)", "stalled", (r) => r.stalled, "-", 0],
  ["strict: UDP time lost per flow, whole run, p99 (ms)", "udpLostP99Ms", (r) => r.udpLostMs.p99, "-", 0],
  ["strict: UDP time lost per flow, whole run, max (ms)", "udpLostMaxMs", (r) => r.udpLostMs.max, "-", 0],
  ["flows started -> all echoing (ms)", "readyMs", (r) => r.readyMs, "-", 0],
  ["flows started -> BACKUP holds all (ms)", "syncMs", (r) => r.syncMs, "-", 0],
  ["sync backlog while opening, max (flows)", "syncBacklogMax", (r) => r.syncBacklogMax, "-", 0],
  ["sync backlog at the cut (flows)", "syncBacklogAtCut", (r) => r.syncBacklogAtCut, "0", 0],
  ["cut -> new MASTER's notify script done (ms)", "masterMs", (r) => r.masterMs, "-", 0],
  ["cut -> new MASTER's table holds all (ms)", "takeoverMs", (r) => r.takeoverMs, "-", 0],
  ["failover: longest echo gap per flow, p99 (ms)", "failoverGapP99Ms", (r) => r.failover.gapP99Ms, "<= 1000", 0],
  ["failover: the same, TCP flows (ms)", "failoverTcpGapP99Ms", (r) => r.failover.tcpGapP99Ms, "-", 0],
  ["failover: the same, UDP flows (ms)", "failoverUdpGapP99Ms", (r) => r.failover.udpGapP99Ms, "-", 0],
  ["failover: longest echo gap, max (ms)", "failoverGapMaxMs", (r) => r.failover.gapMaxMs, "-", 0],
  ["fail-back: longest echo gap per flow, p99 (ms)", "failbackGapP99Ms", (r) => r.failback.gapP99Ms, "<= 1000", 0],
  [
    "strict: fast probe flows' failover gap, p99 (ms)",
    "probeFailoverGapP99Ms",
    (r) => r.probe?.failover.gapP99Ms ?? null,
    "<= 1000",
    0,
  ],
  [
    "strict: fast probe flows' failover gap, max (ms)",
    "probeFailoverGapMaxMs",
    (r) => r.probe?.failover.gapMaxMs ?? null,
    "-",
    0,
  ],
  [
    "strict: fast probe flows' fail-back gap, p99 (ms)",
    "probeFailbackGapP99Ms",
    (r) => r.probe?.failback.gapP99Ms ?? null,
    "<= 1000",
    0,
  ],
  [
    "conntrackd CPU, both LBs, per run (s)",
    "conntrackdCpuS",
    (r) => r.conntrackdCpuS.lb1 + r.conntrackdCpuS.lb2,
    "-",
    2,
  ],
];

export interface EgressLoadResult {
  flows: LoadFlowsOptions;
  runs: EgressLoadRun[];
  summary: Record<string, Summary>;
  /** the picture of the run with the median failover gap p99 */
  svg?: string;
}

/** The run's timeline as a picture: flows without an echo over time, TCP and UDP stacked, the moves marked. */
export function egressTimelineSvg(r: EgressLoadRun, o: LoadFlowsOptions, title: string): string {
  const t = r.timeline;
  const peak = Math.max(1, ...t.bins.map((b) => b.tcp + b.udp));
  return timelineSvg({
    title,
    subtitle: `${o.tcp} TCP + ${o.udp} UDP flows, one message per ${o.intervalMs} ms; a flow counts from its last echo before a gap of over ${gapResolutionMs(o)} ms to its next`,
    bins: t.bins.map((b, i) => ({ fromMs: t.fromMs + i * t.binMs, ok: 0, late: b.tcp, failed: b.udp })),
    binMs: t.binMs,
    fromMs: t.fromMs,
    toMs: t.fromMs + t.bins.length * t.binMs,
    yMax: Math.ceil(peak * 1.1),
    marks: t.marks.map((m, i) => ({ ...m, color: ["#222222", "#1f5fbf", "#7a3db8", "#1f8f8f"][i % 4] as string })),
    notes: [
      `survived ${r.survived}/${r.flows}; longest gap per flow p99: failover ${r.failover.gapP99Ms} ms (TCP ${r.failover.tcpGapP99Ms}, UDP ${r.failover.udpGapP99Ms}), fail-back ${r.failback.gapP99Ms} ms`,
      `strict: UDP messages never echoed ${r.udpLostMs.totalMessages} (per flow p99 ${r.udpLostMs.p99} ms of sending); takeover ${r.takeoverMs ?? "-"} ms`,
      ...(r.probe && o.probe
        ? [
            `strict: ${o.probe.flows} probe flows at one message per ${o.probe.intervalMs} ms: longest gap p99 ${r.probe.failover.gapP99Ms} ms (failover), ${r.probe.failback.gapP99Ms} ms (fail-back)`,
          ]
        : []),
    ],
    labels: {
      x: "seconds after the cut",
      y: "flows without an echo",
      legend: ["", "TCP flows", "UDP flows"],
      stoppedShade: false,
    },
  });
}

/** `runs` runs of egressLoadRun in one fresh lab of the dev spec, always torn down. */
export async function benchEgressLoad(o: {
  runs: number;
  flows: LoadFlowsOptions;
  resultsDir?: string;
}): Promise<EgressLoadResult> {
  const log = benchLog();
  const runs = await runsInLab(
    o.runs,
    (lab, i, l) => egressLoadRun(lab, `egress-${i + 1}`, o.flows, l),
    (r) =>
      `${r.survived}/${r.flows} survived; sync ${r.syncMs ?? "-"} ms, takeover ${r.takeoverMs ?? "-"} ms; ` +
      `longest gap p99 ${r.failover.gapP99Ms} / ${r.failback.gapP99Ms} ms (failover / fail-back)`,
  );
  const summary = Object.fromEntries(
    ROWS.map(([, key, f]) => [key, summarize(runs.map(f).filter((v): v is number => v !== null))]),
  );
  printTable(
    ROWS.map(([label, key, , goal, digits]) => ({
      figure: label,
      min: summary[key]!.minMs.toFixed(digits),
      median: summary[key]!.medianMs.toFixed(digits),
      max: summary[key]!.maxMs.toFixed(digits),
      goal,
    })),
  );
  let svg: string | undefined;
  const byGap = [...runs].sort((a, b) => a.failover.gapP99Ms - b.failover.gapP99Ms);
  const median = byGap[Math.floor((byGap.length - 1) / 2)];
  if (median && o.resultsDir) {
    svg = join(o.resultsDir, "load-egress.svg");
    const n = runs.indexOf(median) + 1;
    writeFileSync(
      svg,
      egressTimelineSvg(median, o.flows, `Egress at scale: run ${n} of ${runs.length} (median failover gap p99)`),
    );
    log(`picture: ${svg}`);
  }
  console.log(
    `${o.flows.tcp} TCP + ${o.flows.udp} UDP flows, one message per ${o.flows.intervalMs} ms (gaps under ${gapResolutionMs(o.flows)} ms count as 0); ${runs.length} runs`,
  );
  return { flows: o.flows, runs, summary, ...(svg ? { svg } : {}) };
}
