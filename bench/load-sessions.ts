/**
 * `npm run bench -- load` (issue 23), the handoff at scale: many keep-alive sessions through a planned failover and
 * a fail-back. In the lab (real haproxy, keepalived, nftables in network namespaces) the client host opens N
 * sessions to the public ingress VIP (plain HTTP, port 80) and the cluster node M to the private API VIP (TLS,
 * passthrough), each one connection for its whole life and one request every gap (lab/helper.ts `sessions`); then:
 *   1. a quiet window on the active LB (the baseline of its HAProxy's CPU);
 *   2. planned failover: keepalived stopped cleanly on the active LB; its HAProxy keeps every session, and the new
 *      MASTER hands their packets back to it (render/handoff.ts, whose rule counts them) for one more window;
 *   3. keepalived started again there (it rejoins as BACKUP), then the fail-back: keepalived stopped on the peer,
 *      which hands the VIPs back to the LB that has held the sessions all along, and started again.
 * A session is broken at its first failed request (error, timeout, status other than 200) or when it needed a
 * second connection; goal: none. Reported with the handoff's packets per second and the CPU of both HAProxies over
 * the window, beside the same window before the move, and the machine's softirq CPU (where the kernel's `dup` runs;
 * machine-wide, so it includes the lab's whole data path). Bounded: every wait has a deadline; the lab is torn down.
 */
import { HANDOFF_TABLE } from "../render/handoff";
import { isAlive, sleep } from "../lab/exec";
import type { Lab, LbKey } from "../lab/lab";
import { sessionsReady, startSessions, stopSessions, type SessionsDoc, type SessionsRun } from "../lab/sessions";
import { waitHolder, waitSteady } from "./failover";
import { runsInLab } from "./lab-runs";
import { cpuSpent, machineCpuSeconds, printTable, quantile, summarize, treeCpuSeconds, type Summary } from "./stats";

export interface SessionsLoadOptions {
  /** keep-alive sessions through the public ingress VIP (client host) */
  ingress: number;
  /** keep-alive sessions through the private API VIP (cluster node) */
  api: number;
  /** each session sends one request per gap */
  gapMs: number;
  /** how long each measured window lasts (before the move, after it) */
  windowMs: number;
}

export interface WindowFigures {
  /** handoff packets counted by the MASTER's rule in the window, per second */
  handoffPps: number;
  /** CPU seconds of each LB's HAProxy (master and workers) in the window */
  haproxyCpuS: Record<LbKey, number>;
  /** the machine's softirq CPU seconds in the window (all of the lab's packet path, both cores) */
  softirqCpuS: number;
}

export interface SessionsLoadRun {
  sessions: { ingress: number; api: number };
  /** sessions started -> every one answered once */
  readyMs: number;
  /** keepalived stopped on the active LB -> the peer holds the VIPs */
  movedMs: number;
  /** keepalived stopped on the peer -> the first LB holds the VIPs again */
  movedBackMs: number;
  before: WindowFigures;
  handoff: WindowFigures;
  /** handoff packets over the whole time the peer was MASTER */
  handoffPackets: number;
  requests: number;
  broken: { ingress: number; api: number };
  /** the first broken sessions: which, why, when (ms after the move) */
  brokenSample: { kind: "ingress" | "api"; id: number; err: string; atMs: number }[];
  /** per session its longest time between two answers: p99 and max over all sessions (ms) */
  longestGapP99Ms: number;
  longestGapMaxMs: number;
}

/** The handoff rule's packet counter on an LB (0 when the table is not there). */
async function handoffPackets(lab: Lab, key: LbKey): Promise<number> {
  const r = await lab.run(lab.lb(key).ns, ["nft", "list", "table", "ip", HANDOFF_TABLE], { allowFail: true });
  return Number(/counter packets (\d+)/.exec(r.stdout)?.[1] ?? 0);
}

async function measureWindow(lab: Lab, master: LbKey, ms: number): Promise<WindowFigures> {
  const haproxy = (k: LbKey) => treeCpuSeconds(lab.proc(`${k}/haproxy`)!.pid);
  const c0 = { lb1: haproxy("lb1"), lb2: haproxy("lb2") };
  const [p0, s0, t0] = [await handoffPackets(lab, master), machineCpuSeconds().softirq, Date.now()];
  await sleep(ms);
  const [p1, s1, t1] = [await handoffPackets(lab, master), machineCpuSeconds().softirq, Date.now()];
  return {
    handoffPps: Math.round(((p1 - p0) * 1000) / (t1 - t0)),
    haproxyCpuS: { lb1: cpuSpent(c0.lb1, haproxy("lb1")), lb2: cpuSpent(c0.lb2, haproxy("lb2")) },
    softirqCpuS: +(s1 - s0).toFixed(2),
  };
}

/**
 * One run on a started lab (see the module comment); the lab is left steady with the same MASTER as before.
 */
export async function sessionsLoadRun(
  lab: Lab,
  tag: string,
  o: SessionsLoadOptions,
  progress: (line: string) => void = () => {},
): Promise<SessionsLoadRun> {
  const from = await waitSteady(lab);
  const to = lab.other(from);
  const t = lab.plan.targets;
  if (!t.ingressVip || !t.apiVipPrivate)
    throw new Error("the load bench's sessions need an ingress VIP and a private API VIP");
  const runs: Record<"ingress" | "api", SessionsRun> = {} as Record<"ingress" | "api", SessionsRun>;
  const maxMs = 600_000; // the stop ends them sooner
  const started = Date.now();
  try {
    runs.ingress = startSessions(lab, `load/${tag}-ingress`, "cli", `http://${t.ingressVip}/`, {
      count: o.ingress,
      gapMs: o.gapMs,
      maxMs,
    });
    runs.api = startSessions(
      lab,
      `load/${tag}-api`,
      "node",
      `https://${t.apiVipPrivate}:${lab.state.spec.apiBackend.port}/who`,
      {
        count: o.api,
        gapMs: o.gapMs,
        maxMs,
      },
    );
    const readyWithin = 20_000 + o.gapMs + 10 * (o.ingress + o.api);
    await Promise.all([sessionsReady(runs.ingress, readyWithin), sessionsReady(runs.api, readyWithin)]);
    const ready = Date.now();
    progress(`${tag}: ${o.ingress} ingress + ${o.api} API sessions answered through ${from} (${ready - started} ms)`);

    const before = await measureWindow(lab, to, o.windowMs);
    const handoff0 = await handoffPackets(lab, to);
    const stopAt = Date.now();
    // watched while keepalived stops: the stop returns only once the process has exited, well after the move
    const [, moved] = await Promise.all([lab.stopKeepalived(from), waitHolder(lab, to)]);
    const handoff = await measureWindow(lab, to, o.windowMs);
    progress(`${tag}: ${to} took over in ${moved - stopAt} ms; handing off ${handoff.handoffPps} packets/s to ${from}`);

    await lab.startKeepalived(from);
    await lab.waitVrrp(from, "BACKUP", 30_000);
    const backAt = Date.now();
    const [, movedBack] = await Promise.all([lab.stopKeepalived(to), waitHolder(lab, from)]);
    const handoffPackets1 = await handoffPackets(lab, to);
    await lab.startKeepalived(to);
    await lab.waitVrrp(to, "BACKUP", 30_000);
    await sleep(2 * o.gapMs);
    progress(`${tag}: back on ${from} in ${movedBack - backAt} ms; stopping the sessions`);

    const docs = { ingress: await stopSessions(lab, runs.ingress), api: await stopSessions(lab, runs.api) };
    const all = (d: SessionsDoc) => d.sessions;
    const brokenOf = (d: SessionsDoc) => d.sessions.filter((s) => s.err !== undefined);
    const gaps = [...all(docs.ingress), ...all(docs.api)].map((s) => s.longestGapMs).sort((a, b) => a - b);
    return {
      sessions: { ingress: docs.ingress.sessions.length, api: docs.api.sessions.length },
      readyMs: ready - started,
      movedMs: moved - stopAt,
      movedBackMs: movedBack - backAt,
      before,
      handoff,
      handoffPackets: handoffPackets1 - handoff0,
      requests: [...all(docs.ingress), ...all(docs.api)].reduce((n, s) => n + s.answered, 0),
      broken: { ingress: brokenOf(docs.ingress).length, api: brokenOf(docs.api).length },
      brokenSample: (["ingress", "api"] as const)
        .flatMap((kind) =>
          brokenOf(docs[kind]).map((s) => ({ kind, id: s.id, err: s.err ?? "", atMs: (s.errAt ?? 0) - stopAt })),
        )
        .slice(0, 20),
      longestGapP99Ms: quantile(gaps, 0.99),
      longestGapMaxMs: gaps.at(-1) ?? 0,
    };
  } finally {
    for (const r of Object.values(runs)) await lab.stopClient(r.proc).catch(() => undefined);
    // a failure half way must not leave an LB without keepalived for the next run
    for (const k of ["lb1", "lb2"] as const) {
      const p = lab.proc(`${k}/keepalived`);
      // never hiding the error that brought us here
      if (!p || !isAlive(p))
        await lab.startKeepalived(k).catch((e: unknown) => progress(`${k}: keepalived: ${String(e)}`));
    }
  }
}

export interface SessionsLoadResult {
  options: SessionsLoadOptions;
  runs: SessionsLoadRun[];
  summary: Record<
    | "brokenSessions"
    | "readyMs"
    | "movedMs"
    | "movedBackMs"
    | "longestGapP99Ms"
    | "handoffPps"
    | "haproxyCpuBeforeS"
    | "haproxyCpuHandoffS"
    | "softirqBeforeS"
    | "softirqHandoffS",
    Summary
  >;
}

const bothHaproxies = (w: WindowFigures) => w.haproxyCpuS.lb1 + w.haproxyCpuS.lb2;

/** `runs` runs of sessionsLoadRun in one fresh lab of the dev spec, always torn down. */
export async function benchSessionsLoad(o: {
  runs: number;
  options: SessionsLoadOptions;
}): Promise<SessionsLoadResult> {
  const runs = await runsInLab(
    o.runs,
    (lab, i, log) => sessionsLoadRun(lab, `sessions-${i + 1}`, o.options, log),
    (r) =>
      `broken ${r.broken.ingress}/${r.sessions.ingress} ingress, ${r.broken.api}/${r.sessions.api} API; ` +
      `${r.requests} requests; handoff ${r.handoff.handoffPps} packets/s`,
  );
  const of = (f: (r: SessionsLoadRun) => number) => summarize(runs.map(f));
  const summary: SessionsLoadResult["summary"] = {
    brokenSessions: of((r) => r.broken.ingress + r.broken.api),
    readyMs: of((r) => r.readyMs),
    movedMs: of((r) => r.movedMs),
    movedBackMs: of((r) => r.movedBackMs),
    longestGapP99Ms: of((r) => r.longestGapP99Ms),
    handoffPps: of((r) => r.handoff.handoffPps),
    haproxyCpuBeforeS: of((r) => bothHaproxies(r.before)),
    haproxyCpuHandoffS: of((r) => bothHaproxies(r.handoff)),
    softirqBeforeS: of((r) => r.before.softirqCpuS),
    softirqHandoffS: of((r) => r.handoff.softirqCpuS),
  };
  const w = `${o.options.windowMs / 1000} s window`;
  printTable(
    (
      [
        ["broken sessions (planned failover + fail-back)", "brokenSessions", "0", 0],
        ["sessions started -> all answered (ms)", "readyMs", "-", 0],
        ["keepalived stopped -> peer holds the VIPs (ms, polled)", "movedMs", "-", 0],
        ["fail-back: stopped -> first LB holds them (ms, polled)", "movedBackMs", "-", 0],
        ["longest time between answers, p99 (ms)", "longestGapP99Ms", "-", 0],
        ["handoff packets/s (new MASTER -> old)", "handoffPps", "-", 0],
        [`HAProxy CPU, both LBs, ${w} before (s)`, "haproxyCpuBeforeS", "-", 2],
        [`HAProxy CPU, both LBs, ${w} of handoff (s)`, "haproxyCpuHandoffS", "-", 2],
        [`machine softirq CPU, ${w} before (s)`, "softirqBeforeS", "-", 2],
        [`machine softirq CPU, ${w} of handoff (s)`, "softirqHandoffS", "-", 2],
      ] as const
    ).map(([label, key, goal, digits]) => ({
      figure: label,
      min: summary[key].minMs.toFixed(digits),
      median: summary[key].medianMs.toFixed(digits),
      max: summary[key].maxMs.toFixed(digits),
      goal,
    })),
  );
  console.log(
    `${o.options.ingress} ingress + ${o.options.api} API keep-alive sessions, one request per ${o.options.gapMs} ms each; ${runs.length} runs`,
  );
  return { options: o.options, runs, summary };
}
