/**
 * `npm run bench -- failover`: the pair's behaviour under failure, measured in the network-namespace lab (lab/) with
 * the real daemons, once with the rendered files as they are ("edgepair") and once, in the same run, with the proof
 * of concept's VRRP settings ("poc", lab/poc-config.ts), each in a fresh lab that is always torn down.
 *
 * The client is DESIGN.md's: a new TLS connection to the public API VIP every 10 ms, requests concurrent, each with
 * a 3 s timeout. Outage window (DESIGN.md) = from the fault to the start of the first request started after it that
 * succeeds through the peer. Every run of each configuration does, in order:
 *   1. unclean failover: every link of the active LB cut at once (carrier down); the peer takes over;
 *   2. fail-back: the cut LB's links come back; it is then made active again on purpose: by its own preemption
 *      where the configuration has it (PoC), otherwise by stopping keepalived cleanly on the peer, which is then
 *      started again and must rejoin as BACKUP (both inside the measured window);
 *   3. planned failover: keepalived stopped cleanly on the active LB; once the peer has taken over, it is started
 *      again (its rejoin is measured separately: with preemption it takes mastership back, a second move);
 *   4. HAProxy reload (SIGUSR2 to the master, as systemd reloads it) on the active LB under load.
 * Egress: during 1 and 2, 20 TCP and 5 UDP flows from the cluster node to the internet host's echo servers send a
 * numbered message every 100 ms and check every echo (lab/helper.ts `flows`), started before the event; a flow
 * survives when it sees no reset/close, no wrong echo and no gap between echoes over 2 s.
 *
 * Connections already open on the failed LB's HAProxy at the cut cannot survive (HAProxy's connections are not
 * synced): such requests end as timeouts and are counted as failed. While measuring, only cheap observers run
 * (`ip monitor address`, the notify script's FIFO lines); keepalived's state dump (Lab.vrrpState) is used only
 * between scenarios.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { readSpec } from "../spec/files";
import { readRequests, summarize, type RequestRecord } from "../lab/analysis";
import { DEFAULT_SPEC, guarded } from "../lab/cli";
import { sleep, waitFor, type ProcessRecord } from "../lab/exec";
import { AddressMonitor, Lab, type LbKey, type Log } from "../lab/lab";
import { pocKeepalivedConf, pocNotifyScript, POC, POC_SYSCTLS } from "../lab/poc-config";
import { PORTS } from "../lab/topology";
import { binRequests, LATE_MS, timelineSvg, type TimelineBin } from "./svg";
import { printTable } from "./stats";

// ------------------------------------------------------------------------------------------------ settings

export const FLOWS = { tcp: 20, udp: 5, intervalMs: 100, stallMs: 2000 };
/** after the last move, so every request started around it has finished or timed out (client timeout 3 s) */
const DRAIN_MS = 3500;
const BASELINE_MS = 1000;
/** flows established before the event, so conntrackd has synced them to the peer */
const FLOW_SYNC_MS = 1500;
/** without preemption: how long the returning LB is left as BACKUP before the peer is stopped */
const RETURN_SETTLE_MS = 3000;
const MOVE_TIMEOUT_MS = 30_000;

export type VariantName = "edgepair" | "poc";

interface Variant {
  name: VariantName;
  label: string;
  short: string;
  /** the returning higher-priority LB takes mastership back by itself */
  preempt: boolean;
}

const VARIANTS: Variant[] = [
  {
    name: "edgepair",
    label: "edgepair (rendered files as they are)",
    short: "edgepair: the rendered files as they are",
    preempt: false,
  },
  {
    name: "poc",
    label: `PoC-equivalent (lab/poc-config.ts: VRRPv${POC.vrrpVersion}, advert_int ${POC.advertIntSeconds}, no HAProxy tracking, no conntrackd hook, priorities ${POC.priority.primary}/${POC.priority.secondary} with preemption, tcp_loose 1)`,
    short: `PoC settings: VRRPv${POC.vrrpVersion}, advert ${POC.advertIntSeconds} s, no tracking, no conntrackd hook, preemption`,
    preempt: true,
  },
];

// ------------------------------------------------------------------------------------------------ results

export interface ClientFigures {
  requests: number;
  failed: number;
  errors: Record<string, number>;
  /** succeeded requests only */
  maxLatencyMs: number;
  p99LatencyMs: number;
  /** succeeded after over 1 s (a lost SYN retransmitted) */
  late: number;
  /** the failed requests (at most 50): start relative to the event, duration, error */
  failures: { startMs: number; ms: number; err: string }[];
}

export interface EgressFigures {
  tcp: { survived: number; total: number };
  udp: { survived: number; total: number };
  survived: number;
  total: number;
  /** UDP echoes never received (lost datagrams are not retransmitted; not a survival criterion) */
  udpLost: number;
  /** longest gap between echoes of any flow, ms */
  maxGapMs: number;
  failures: { flow: string; why: string }[];
}

export interface UncleanRun {
  from: LbKey;
  to: LbKey;
  /** DESIGN.md's outage window */
  outageMs: number | null;
  /** fault to the first request started after it that succeeded through the peer in under 1 s (no SYN retransmission) */
  promptMs: number | null;
  vipMovedMs: number | null;
  nextHopMovedMs: number | null;
  client: ClientFigures;
  egress: EgressFigures;
}

export interface FailbackRun {
  returning: LbKey;
  how: "preemption" | "peer stopped cleanly";
  /** from the links coming back to the returning LB holding keepalived's VIPs / the next hop */
  vipMovedMs: number | null;
  nextHopMovedMs: number | null;
  /** the stopped peer's keepalived started again and seen as BACKUP (ms after its start) */
  peerRejoinedMs?: number | null;
  client: ClientFigures;
  egress: EgressFigures;
}

export interface PlannedRun {
  from: LbKey;
  to: LbKey;
  vipMovedMs: number | null;
  nextHopMovedMs: number | null;
  client: ClientFigures;
  /** the stopped LB started again: requests from its start on */
  rejoin: { took: "mastership (preemption)" | "BACKUP"; client: ClientFigures; settledMs: number | null };
}

export interface ReloadRun {
  lb: LbKey;
  client: ClientFigures;
}

export interface VariantRun {
  run: number;
  unclean: UncleanRun;
  failback: FailbackRun;
  planned: PlannedRun;
  reload: ReloadRun;
  ms: number;
}

interface Stat {
  n: number;
  min: number | null;
  median: number | null;
  max: number | null;
  /** runs where the figure could not be measured (e.g. the peer never took over) */
  missing: number;
}

export interface VariantResult {
  name: VariantName;
  label: string;
  short: string;
  labPrefix: string;
  upMs: number;
  runs: VariantRun[];
  summary: Record<string, Stat>;
  /** the unclean failover of the run drawn in the SVG (median outage window) */
  picture: { run: number; bins: TimelineBin[]; svg: string };
  error?: string;
}

// ------------------------------------------------------------------------------------------------ figures

function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? 0;
}

export function clientFigures(records: readonly RequestRecord[], eventMs: number): ClientFigures {
  const ok = records
    .filter((r) => r.ok)
    .map((r) => r.end - r.start)
    .sort((a, b) => a - b);
  const errors: Record<string, number> = {};
  for (const r of records.filter((x) => !x.ok)) {
    const k = r.err ?? `HTTP ${r.status ?? "?"}`;
    errors[k] = (errors[k] ?? 0) + 1;
  }
  const round = (x: number) => Math.round(x);
  return {
    requests: records.length,
    failed: records.length - ok.length,
    errors,
    maxLatencyMs: round(ok[ok.length - 1] ?? 0),
    p99LatencyMs: round(percentile(ok, 0.99)),
    late: ok.filter((l) => l > LATE_MS).length,
    failures: records
      .filter((r) => !r.ok)
      .slice(0, 50)
      .map((r) => ({
        startMs: round(r.start - eventMs),
        ms: round(r.end - r.start),
        err: r.err ?? `HTTP ${r.status ?? "?"}`,
      })),
  };
}

export interface FlowReport {
  proto: "tcp" | "udp";
  id: number;
  sent: number;
  echoed: number;
  mismatched: number;
  err?: string;
  errAt?: number;
  gaps: [number, number][];
}

export function egressFigures(
  doc: { flows: FlowReport[] } | undefined,
  expected: { tcp: number; udp: number },
): EgressFigures {
  const flows = doc?.flows ?? [];
  const failures: { flow: string; why: string }[] = [];
  let maxGap = 0;
  let udpLost = 0;
  const survivedBy = { tcp: 0, udp: 0 };
  for (const f of flows) {
    const gap = f.gaps.reduce((m, [a, b]) => Math.max(m, b - a), 0);
    maxGap = Math.max(maxGap, gap);
    if (f.proto === "udp") udpLost += f.sent - f.echoed;
    const why = [
      f.err !== undefined ? f.err : "",
      f.echoed === 0 ? "no echo" : "",
      f.mismatched > 0 ? `${f.mismatched} wrong echoes` : "",
      gap > FLOWS.stallMs ? `stalled ${Math.round(gap)} ms` : "",
    ]
      .filter(Boolean)
      .join(", ");
    if (why) failures.push({ flow: `${f.proto}${f.id}`, why });
    else survivedBy[f.proto]++;
  }
  if (!doc) failures.push({ flow: "all", why: "the flows program wrote no report" });
  return {
    tcp: { survived: survivedBy.tcp, total: expected.tcp },
    udp: { survived: survivedBy.udp, total: expected.udp },
    survived: survivedBy.tcp + survivedBy.udp,
    total: expected.tcp + expected.udp,
    udpLost,
    maxGapMs: Math.round(maxGap),
    failures,
  };
}

function stat(values: (number | null | undefined)[]): Stat {
  const v = values.filter((x): x is number => typeof x === "number" && Number.isFinite(x)).sort((a, b) => a - b);
  const mid =
    v.length === 0
      ? null
      : v.length % 2 === 1
        ? (v[(v.length - 1) / 2] as number)
        : ((v[v.length / 2 - 1] as number) + (v[v.length / 2] as number)) / 2;
  return {
    n: v.length,
    min: v[0] ?? null,
    median: mid === null ? null : Math.round(mid * 10) / 10,
    max: v[v.length - 1] ?? null,
    missing: values.length - v.length,
  };
}

const pct = (e: EgressFigures) => (e.total === 0 ? 0 : (100 * e.survived) / e.total);

/** The summary rows: key -> figures of every run. */
function summaryOf(runs: VariantRun[]): Record<string, Stat> {
  const s = (f: (r: VariantRun) => number | null | undefined) => stat(runs.map(f));
  return {
    "unclean.outageMs": s((r) => r.unclean.outageMs),
    "unclean.promptMs": s((r) => r.unclean.promptMs),
    "unclean.failed": s((r) => r.unclean.client.failed),
    "unclean.maxLatencyMs": s((r) => r.unclean.client.maxLatencyMs),
    "unclean.p99LatencyMs": s((r) => r.unclean.client.p99LatencyMs),
    "unclean.vipMovedMs": s((r) => r.unclean.vipMovedMs),
    "unclean.nextHopMovedMs": s((r) => r.unclean.nextHopMovedMs),
    "planned.failed": s((r) => r.planned.client.failed),
    "planned.rejoinFailed": s((r) => r.planned.rejoin.client.failed),
    "failback.failed": s((r) => r.failback.client.failed),
    "reload.failed": s((r) => r.reload.client.failed),
    "egress.failover.survivedPct": s((r) => pct(r.unclean.egress)),
    "egress.failback.survivedPct": s((r) => pct(r.failback.egress)),
    "egress.failover.maxGapMs": s((r) => r.unclean.egress.maxGapMs),
    "egress.failback.maxGapMs": s((r) => r.failback.egress.maxGapMs),
  };
}

// ------------------------------------------------------------------------------------------------ the lab side

class Scenario {
  private readonly procs: ProcessRecord[] = [];
  constructor(
    private readonly lab: Lab,
    readonly tag: string,
  ) {}

  clientOut(): string {
    return join(this.lab.dir, "logs", `${this.tag}-client.jsonl`);
  }
  flowsOut(): string {
    return join(this.lab.dir, "logs", `${this.tag}-flows.json`);
  }

  startClient(): void {
    const t = this.lab.plan.targets;
    const url = `https://${t.apiVipPublic}:${this.lab.state.spec.apiBackend.port}/who`;
    this.procs.push(this.lab.startClient(`bench/${this.tag}-client`, url, this.clientOut(), { maxMs: 120_000 }));
  }

  async startFlows(): Promise<void> {
    const t = this.lab.plan.targets;
    const p = this.lab.startHelper(`bench/${this.tag}-flows`, "node", [
      "flows",
      "--target",
      `${t.internet}:${PORTS.echo}`,
      "--out",
      this.flowsOut(),
      "--tcp",
      String(FLOWS.tcp),
      "--udp",
      String(FLOWS.udp),
      "--interval-ms",
      String(FLOWS.intervalMs),
      "--max-ms",
      "120000",
    ]);
    this.procs.push(p);
    await waitFor(
      `egress flows of ${this.tag} to see their first echoes`,
      async () => (readFileSync(p.log, "utf8").includes("ready") ? true : undefined),
      {
        timeoutMs: 10_000,
        intervalMs: 50,
      },
    );
    await sleep(FLOW_SYNC_MS);
  }

  /** Stops what this scenario started (client: requests in flight finish; flows: their report is written). */
  async stop(): Promise<void> {
    await Promise.all(this.procs.splice(0).map((p) => this.lab.stopClient(p)));
  }

  requests(): RequestRecord[] {
    return readRequests(this.clientOut());
  }

  egress(): EgressFigures {
    let doc: { flows: FlowReport[] } | undefined;
    try {
      doc = JSON.parse(readFileSync(this.flowsOut(), "utf8")) as { flows: FlowReport[] };
    } catch {
      doc = undefined;
    }
    return egressFigures(doc, FLOWS);
  }
}

const since = (t0: number, at: number | undefined): number | null => (at === undefined ? null : at - t0);

/** One LB holds keepalived's VIPs and the next hop, nothing is cut, both keepalived run. Not used while measuring. */
export async function waitSteady(lab: Lab, timeoutMs = 30_000): Promise<LbKey> {
  return waitFor(
    "one LB holding the VIPs and the next hop",
    async () => {
      const h = await lab.holders();
      if (lab.state.cut.length > 0) throw new Error(`links cut: ${lab.state.cut.join(", ")}`);
      return h.vip.length === 1 && h.nextHop.length === 1 && h.vip[0] === h.nextHop[0] ? h.vip[0] : undefined;
    },
    { timeoutMs, intervalMs: 250 },
  );
}

/** Waits until `key` alone holds the VIPs; returns when that was seen (polled every 50 ms). */
export async function waitHolder(lab: Lab, key: LbKey): Promise<number> {
  return waitFor(`${key} to hold the VIPs`, async () => ((await lab.active()) === key ? Date.now() : undefined), {
    timeoutMs: 30_000,
    intervalMs: 50,
  });
}

/** The latest transition the notify script reported for `key` after `after` is `state` (its FIFO line). */
async function waitTransition(
  lab: Lab,
  key: LbKey,
  state: string,
  after: number,
  timeoutMs: number,
): Promise<number | undefined> {
  try {
    return await waitFor(
      `${key} to report ${state}`,
      async () => {
        const last = lab
          .transitions(key)
          .filter((t) => t.at >= after)
          .pop();
        return last?.state === state ? last.at : undefined;
      },
      { timeoutMs, intervalMs: 50 },
    );
  } catch {
    return undefined;
  }
}

export async function unclean(
  lab: Lab,
  tag: string,
): Promise<{ run: UncleanRun; records: RequestRecord[]; fault: number }> {
  const from = await lab.active();
  const to = lab.other(from);
  const sc = new Scenario(lab, tag);
  const monitor = new AddressMonitor(lab.lb(to).ns);
  try {
    await sc.startFlows();
    sc.startClient();
    await sleep(BASELINE_MS);
    await monitor.ready();
    const fault = await lab.cut(from);
    const vip = lab.state.spec.derived.privateVips[0]?.address ?? "";
    const [vipAt, hopAt] = await Promise.all([
      monitor.waitFor(vip, MOVE_TIMEOUT_MS),
      monitor.waitFor(lab.plan.targets.nextHop, MOVE_TIMEOUT_MS),
    ]);
    await sleep(DRAIN_MS);
    await sc.stop();
    const records = sc.requests();
    const peer = lab.lb(to).privateAddress;
    const s = summarize(records, fault, peer);
    const prompt = records.find((r) => r.start >= fault && r.ok && r.peer === peer && r.end - r.start <= LATE_MS);
    return {
      run: {
        from,
        to,
        outageMs: s.outageMs === undefined ? null : Math.round(s.outageMs),
        promptMs: prompt ? Math.round(prompt.start - fault) : null,
        vipMovedMs: since(fault, vipAt),
        nextHopMovedMs: since(fault, hopAt),
        client: clientFigures(records, fault),
        egress: sc.egress(),
      },
      records,
      fault,
    };
  } finally {
    monitor.stop();
    await sc.stop();
  }
}

/** The cut LB comes back and is made active again (preemption, or a clean stop of the peer, which then rejoins). */
export async function failback(lab: Lab, tag: string, returning: LbKey, preempt: boolean): Promise<FailbackRun> {
  const peer = lab.other(returning);
  const sc = new Scenario(lab, tag);
  const monitor = new AddressMonitor(lab.lb(returning).ns);
  const vip = lab.state.spec.derived.privateVips[0]?.address ?? "";
  try {
    await sc.startFlows();
    sc.startClient();
    await sleep(BASELINE_MS);
    await monitor.ready();
    const back = await lab.restore(returning);
    // With preemption the returning LB takes over by itself (the PoC: after its master-down timer, ~10 s);
    // otherwise it stays BACKUP and is given a few seconds (conntrackd's resync) before the peer stops.
    let vipAt = await monitor.waitFor(vip, preempt ? MOVE_TIMEOUT_MS : RETURN_SETTLE_MS);
    let how: FailbackRun["how"] = "preemption";
    let peerRejoinedMs: number | null | undefined;
    if (vipAt === undefined) {
      how = "peer stopped cleanly";
      await lab.stopKeepalived(peer);
      vipAt = await monitor.waitFor(vip, MOVE_TIMEOUT_MS);
      await monitor.waitFor(lab.plan.targets.nextHop, MOVE_TIMEOUT_MS);
      await sleep(1000);
      const started = Date.now();
      await lab.startKeepalived(peer);
      const at = await waitTransition(lab, peer, "BACKUP", started, 20_000);
      peerRejoinedMs = since(started, at);
    }
    const hopAt = await monitor.waitFor(lab.plan.targets.nextHop, MOVE_TIMEOUT_MS);
    await sleep(DRAIN_MS);
    await sc.stop();
    return {
      returning,
      how,
      vipMovedMs: since(back, vipAt),
      nextHopMovedMs: since(back, hopAt),
      ...(peerRejoinedMs !== undefined ? { peerRejoinedMs } : {}),
      client: clientFigures(sc.requests(), back),
      egress: sc.egress(),
    };
  } finally {
    monitor.stop();
    await sc.stop();
  }
}

export async function planned(lab: Lab, tag: string, preempt: boolean): Promise<PlannedRun> {
  const from = await lab.active();
  const to = lab.other(from);
  const sc = new Scenario(lab, tag);
  const toMonitor = new AddressMonitor(lab.lb(to).ns);
  const fromMonitor = new AddressMonitor(lab.lb(from).ns);
  const vip = lab.state.spec.derived.privateVips[0]?.address ?? "";
  try {
    sc.startClient();
    await sleep(BASELINE_MS);
    await Promise.all([toMonitor.ready(), fromMonitor.ready()]);
    const stopAt = Date.now();
    await lab.stopKeepalived(from);
    const [vipAt, hopAt] = await Promise.all([
      toMonitor.waitFor(vip, MOVE_TIMEOUT_MS),
      toMonitor.waitFor(lab.plan.targets.nextHop, MOVE_TIMEOUT_MS),
    ]);
    await sleep(DRAIN_MS);
    const rejoinAt = Date.now();
    await lab.startKeepalived(from);
    let settled: number | undefined;
    let took: PlannedRun["rejoin"]["took"] = "BACKUP";
    if (preempt) {
      took = "mastership (preemption)";
      settled = await fromMonitor.waitFor(lab.plan.targets.nextHop, MOVE_TIMEOUT_MS);
    } else {
      settled = await waitTransition(lab, from, "BACKUP", rejoinAt, 20_000);
    }
    await sleep(DRAIN_MS);
    await sc.stop();
    const records = sc.requests();
    return {
      from,
      to,
      vipMovedMs: since(stopAt, vipAt),
      nextHopMovedMs: since(stopAt, hopAt),
      client: clientFigures(
        records.filter((r) => r.start < rejoinAt),
        stopAt,
      ),
      rejoin: {
        took,
        client: clientFigures(
          records.filter((r) => r.start >= rejoinAt),
          rejoinAt,
        ),
        settledMs: since(rejoinAt, settled),
      },
    };
  } finally {
    toMonitor.stop();
    fromMonitor.stop();
    await sc.stop();
  }
}

export async function reload(lab: Lab, tag: string): Promise<ReloadRun> {
  const lb = await lab.active();
  const sc = new Scenario(lab, tag);
  try {
    sc.startClient();
    await sleep(BASELINE_MS);
    const at = Date.now();
    if (!lab.reloadHaproxy(lb)) throw new Error(`${lb}: haproxy is not running, cannot reload`);
    await sleep(DRAIN_MS);
    await sc.stop();
    return { lb, client: clientFigures(sc.requests(), at) };
  } finally {
    await sc.stop();
  }
}

/** Rewrites both LBs' keepalived.conf and notify script to the PoC's (lab-only) and restarts keepalived on both. */
export async function applyPoc(lab: Lab, log: Log): Promise<void> {
  const keys: LbKey[] = ["lb2", "lb1"];
  for (const k of keys) await lab.stopKeepalived(k);
  for (const k of keys) {
    const root = lab.renderedRoot(k);
    const conf = join(root, "etc/keepalived/keepalived.conf");
    const notify = join(root, "etc/edgepair/keepalived-notify.sh");
    writeFileSync(conf, pocKeepalivedConf(readFileSync(conf, "utf8"), lab.lb(k).role));
    writeFileSync(notify, pocNotifyScript(readFileSync(notify, "utf8"))); // keeps the file's mode (0700)
    await lab.run(lab.lb(k).ns, ["sysctl", "-qw", ...Object.entries(POC_SYSCTLS).map(([key, v]) => `${key}=${v}`)]);
  }
  log(
    `  keepalived.conf and notify script of both LBs rewritten by lab/poc-config.ts, ${Object.keys(POC_SYSCTLS).join(", ")} set as the PoC had it; restarting keepalived`,
  );
  await lab.startKeepalived("lb1");
  await lab.waitVrrp("lb1", "MASTER", 30_000);
  await lab.startKeepalived("lb2");
  await lab.waitVrrp("lb2", "BACKUP", 30_000);
  await waitSteady(lab);
}

// ------------------------------------------------------------------------------------------------ the bench

export interface FailoverBenchOptions {
  runs?: number;
  specPath?: string;
  /** runs are not started after this much time (each LB pair still finishes its current run) */
  budgetMs?: number;
  log?: Log;
  resultsDir: string;
}

export interface FailoverBenchResult {
  runsPerScenario: number;
  totalMs: number;
  truncated: boolean;
  definitions: Record<string, string>;
  variants: VariantResult[];
  table: Record<string, string>[];
  svgs: string[];
}

export async function benchFailover(opts: FailoverBenchOptions): Promise<FailoverBenchResult> {
  const runs = opts.runs ?? 5;
  if (!Number.isInteger(runs) || runs < 1 || runs > 50)
    throw new Error(`failover bench: runs must be an integer 1..50, got ${runs}`);
  const budgetMs = opts.budgetMs ?? 20 * 60_000;
  const log = opts.log ?? ((l: string) => console.log(l));
  const spec = readSpec(opts.specPath ?? DEFAULT_SPEC);
  const t0 = Date.now();
  const stamp = () => `[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s]`;
  let truncated = false;
  const results: VariantResult[] = [];
  const unclean0: Record<string, { records: RequestRecord[]; fault: number; run: UncleanRun }[]> = {};

  for (const variant of VARIANTS) {
    const lab = Lab.create(spec, (l) => log(`${stamp()} ${variant.name}: ${l}`));
    const result: VariantResult = {
      name: variant.name,
      label: variant.label,
      short: variant.short,
      labPrefix: lab.prefix,
      upMs: 0,
      runs: [],
      summary: {},
      picture: { run: 0, bins: [], svg: "" },
    };
    results.push(result);
    unclean0[variant.name] = [];
    log(`${stamp()} ${variant.name}: lab ${lab.prefix} up (${variant.label})`);
    try {
      await guarded(lab, log, async () => {
        const up = Date.now();
        await lab.up();
        if (variant.name === "poc") await applyPoc(lab, (l) => log(`${stamp()} ${variant.name}: ${l}`));
        result.upMs = Date.now() - up;
        for (let i = 1; i <= runs; i++) {
          if (Date.now() - t0 > budgetMs) {
            truncated = true;
            log(
              `${stamp()} ${variant.name}: time budget of ${budgetMs / 60_000} min spent, skipping runs ${i}..${runs}`,
            );
            break;
          }
          const r0 = Date.now();
          const p = (what: string) => log(`${stamp()} ${variant.name} run ${i}/${runs}: ${what}`);
          await waitSteady(lab);
          const u = await unclean(lab, `${variant.name}-${i}-unclean`);
          p(
            `unclean failover ${u.run.from} -> ${u.run.to}: outage ${u.run.outageMs ?? "-"} ms (prompt ${u.run.promptMs ?? "-"} ms), ` +
              `VIP +${u.run.vipMovedMs ?? "-"} ms, next hop +${u.run.nextHopMovedMs ?? "-"} ms, ${u.run.client.failed}/${u.run.client.requests} failed, ` +
              `max latency ${u.run.client.maxLatencyMs} ms; egress ${u.run.egress.survived}/${u.run.egress.total} survived`,
          );
          unclean0[variant.name]?.push({ records: u.records, fault: u.fault, run: u.run });
          const fb = await failback(lab, `${variant.name}-${i}-failback`, u.run.from, variant.preempt);
          p(
            `fail-back to ${fb.returning} (${fb.how}): ${fb.client.failed}/${fb.client.requests} failed; egress ${fb.egress.survived}/${fb.egress.total} survived`,
          );
          await waitSteady(lab);
          const pl = await planned(lab, `${variant.name}-${i}-planned`, variant.preempt);
          p(
            `planned failover ${pl.from} -> ${pl.to}: ${pl.client.failed}/${pl.client.requests} failed; rejoin of ${pl.from} as ${pl.rejoin.took}: ${pl.rejoin.client.failed}/${pl.rejoin.client.requests} failed`,
          );
          await waitSteady(lab);
          const rl = await reload(lab, `${variant.name}-${i}-reload`);
          p(`HAProxy reload on ${rl.lb}: ${rl.client.failed}/${rl.client.requests} failed`);
          result.runs.push({ run: i, unclean: u.run, failback: fb, planned: pl, reload: rl, ms: Date.now() - r0 });
        }
      });
    } catch (e) {
      result.error = e instanceof Error ? e.message : String(e);
      log(`${stamp()} ${variant.name}: FAILED: ${result.error}`);
    } finally {
      await lab.down();
    }
    result.summary = summaryOf(result.runs);
  }

  const svgs = writePictures(results, unclean0, opts.resultsDir);
  const table = comparisonTable(results);
  const totalMs = Date.now() - t0;
  printTable(table);
  log("");
  for (const k of ["client", "unclean.outageMs", "unclean.promptMs", "failed", "egress"])
    log(`${k}: ${DEFINITIONS[k]}`);
  for (const r of results) if (r.error) log(`${r.name}: FAILED: ${r.error}`);
  for (const p of svgs) log(`picture: ${p}`);
  log(
    `\nfailover bench: ${runs} runs per scenario and configuration${truncated ? " (TRUNCATED by the time budget)" : ""}; total ${(totalMs / 60_000).toFixed(1)} min`,
  );
  return {
    runsPerScenario: runs,
    totalMs,
    truncated,
    definitions: DEFINITIONS,
    variants: results,
    table,
    svgs,
  };
}

export const DEFINITIONS: Record<string, string> = {
  client: "DESIGN.md: a new TLS connection to the public API VIP every 10 ms, requests concurrent, 3 s timeout each",
  "unclean.outageMs":
    "DESIGN.md outage window: fault to the start of the first request started after it that succeeded through the peer",
  "unclean.promptMs":
    "fault to the start of the first request started after it that succeeded through the peer in <= 1 s (a request whose first SYN was lost succeeds ~1 s later by retransmission and counts for the DESIGN window)",
  failed:
    "requests that ended in an error or the 3 s timeout; includes connections open on the failed LB's HAProxy at the cut (not synced, they cannot survive)",
  maxLatencyMs: "slowest succeeded request (failed ones are counted in `failed`)",
  vipMovedMs:
    "fault (or restore/stop) to keepalived's first private VIP appearing on the taking-over LB (ip monitor address there)",
  nextHopMovedMs: "same, for the public next hop the notify script moves (routed floating IPs follow it)",
  egress: `${FLOWS.tcp} TCP + ${FLOWS.udp} UDP flows node -> internet echo servers, one message per ${FLOWS.intervalMs} ms each, every echo checked; survives = no reset/close, no wrong echo, no gap between echoes over ${FLOWS.stallMs} ms`,
  "planned.rejoinFailed":
    "requests started after keepalived was started again on the LB stopped for the planned failover",
};

// ------------------------------------------------------------------------------------------------ output

function writePictures(
  results: VariantResult[],
  unclean: Record<string, { records: RequestRecord[]; fault: number; run: UncleanRun }[]>,
  dir: string,
): string[] {
  const binMs = 100;
  const fromMs = -1000;
  // one x axis for every picture: to the latest next-hop move plus the drain, at most 20 s
  const lastMove = Math.max(1000, ...results.flatMap((r) => r.runs.map((x) => x.unclean.nextHopMovedMs ?? 0)));
  const toMs = Math.min(20_000, Math.ceil((lastMove + 3000) / 1000) * 1000);
  const written: string[] = [];
  for (const r of results) {
    const candidates = unclean[r.name] ?? [];
    if (candidates.length === 0) continue;
    const byOutage = [...candidates].sort((a, b) => (a.run.outageMs ?? Infinity) - (b.run.outageMs ?? Infinity));
    const chosen = byOutage[Math.floor((byOutage.length - 1) / 2)] as (typeof candidates)[number];
    const bins = binRequests(chosen.records, chosen.fault, fromMs, toMs, binMs);
    const svg = uncleanPicture(r, chosen.run, candidates.indexOf(chosen) + 1, candidates.length, bins, {
      fromMs,
      toMs,
      binMs,
    });
    const path = join(dir, `failover-${r.name}.svg`);
    writeFileSync(path, svg);
    r.picture = { run: candidates.indexOf(chosen) + 1, bins, svg: path };
    written.push(path);
  }
  return written;
}

/** The SVG of one unclean failover (exported so a picture can be redrawn from the JSON's bins). */
export function uncleanPicture(
  r: Pick<VariantResult, "name" | "short">,
  u: UncleanRun,
  run: number,
  of: number,
  bins: TimelineBin[],
  { fromMs, toMs, binMs }: { fromMs: number; toMs: number; binMs: number },
): string {
  const ms = (x: number | null) => (x === null ? "-" : `${x} ms`);
  return timelineSvg({
    title: `Unclean failover, ${r.name === "edgepair" ? "edgepair" : "PoC-equivalent settings"}: requests around the fault`,
    subtitle: `${r.short}; run ${run} of ${of} (median outage window)`,
    bins,
    binMs,
    fromMs,
    toMs,
    yMax: 2 * Math.ceil(Math.max(12, ...bins.map((b) => 1.1 * (b.ok + b.late + b.failed))) / 2),
    marks: [
      { atMs: 0, label: `fault: every link of ${u.from} cut`, color: "#111111" },
      ...(u.vipMovedMs !== null
        ? [{ atMs: u.vipMovedMs, label: `VIPs on ${u.to} (+${u.vipMovedMs} ms)`, color: "#1f5fbf" }]
        : []),
      ...(u.nextHopMovedMs !== null
        ? [{ atMs: u.nextHopMovedMs, label: `public next hop on ${u.to} (+${u.nextHopMovedMs} ms)`, color: "#8a2be2" }]
        : []),
    ],
    notes: [
      "client: a new TLS connection to the public API VIP every 10 ms, each with a 3 s timeout",
      `outage window (DESIGN.md) ${ms(u.outageMs)}; first success through ${u.to} without a SYN retransmission ${ms(u.promptMs)}`,
      `${u.client.failed} of ${u.client.requests} requests failed (${
        Object.entries(u.client.errors)
          .map(([k, v]) => `${k} ${v}`)
          .join(", ") || "none"
      }); ` +
        `${u.client.late} succeeded after > 1 s; max latency ${u.client.maxLatencyMs} ms, p99 ${u.client.p99LatencyMs} ms`,
      `egress flows (${FLOWS.tcp} TCP + ${FLOWS.udp} UDP, echo-checked every ${FLOWS.intervalMs} ms) survived: ${u.egress.survived}/${u.egress.total}; longest echo gap ${u.egress.maxGapMs} ms`,
    ],
  });
}

function fmtStat(s: Stat | undefined, unit = ""): string {
  if (!s || s.n === 0) return s && s.missing > 0 ? `never (${s.missing} runs)` : "-";
  const f = (x: number | null) => (x === null ? "-" : `${Number.isInteger(x) ? x : x.toFixed(1)}`);
  const miss = s.missing > 0 ? ` (+${s.missing} never)` : "";
  return `${f(s.min)} / ${f(s.median)} / ${f(s.max)}${unit}${miss}`;
}

function ratio(a: Stat | undefined, b: Stat | undefined): string {
  const x = a?.median ?? null;
  const y = b?.median ?? null;
  if (x === null || y === null) return "-";
  if (y === 0) return x === 0 ? "=" : "inf";
  const r = x / y;
  return r >= 10 ? r.toFixed(0) : r >= 0.1 ? r.toFixed(2) : r.toFixed(3);
}

const ROWS: { key: string; label: string; goal: string; unit?: string }[] = [
  { key: "unclean.outageMs", label: "unclean: outage window (DESIGN) ms", goal: "<= 400 median" },
  { key: "unclean.promptMs", label: "unclean: first prompt success ms", goal: "" },
  { key: "unclean.vipMovedMs", label: "unclean: VIPs moved ms", goal: "" },
  { key: "unclean.nextHopMovedMs", label: "unclean: next hop moved ms", goal: "" },
  { key: "unclean.failed", label: "unclean: failed requests", goal: "0" },
  { key: "unclean.maxLatencyMs", label: "unclean: max latency ms", goal: "" },
  { key: "unclean.p99LatencyMs", label: "unclean: p99 latency ms", goal: "" },
  { key: "planned.failed", label: "planned failover: failed", goal: "0" },
  { key: "planned.rejoinFailed", label: "planned: rejoin of stopped LB: failed", goal: "0" },
  { key: "failback.failed", label: "fail-back: failed", goal: "0" },
  { key: "reload.failed", label: "HAProxy reload: failed", goal: "0" },
  { key: "egress.failover.survivedPct", label: "egress unclean failover: survived %", goal: "100" },
  { key: "egress.failback.survivedPct", label: "egress fail-back: survived %", goal: "100" },
  { key: "egress.failover.maxGapMs", label: "egress unclean: longest echo gap ms", goal: "<= 2000" },
  { key: "egress.failback.maxGapMs", label: "egress fail-back: longest echo gap ms", goal: "<= 2000" },
];

function comparisonTable(results: VariantResult[]): Record<string, string>[] {
  const ep = results.find((r) => r.name === "edgepair");
  const poc = results.find((r) => r.name === "poc");
  return ROWS.map((row) => ({
    "scenario (min / median / max over runs)": row.label,
    goal: row.goal,
    edgepair: fmtStat(ep?.summary[row.key]),
    "PoC-equivalent": fmtStat(poc?.summary[row.key]),
    "ratio edgepair/PoC (medians)": ratio(ep?.summary[row.key], poc?.summary[row.key]),
  }));
}
