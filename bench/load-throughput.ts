/**
 * `npm run bench -- load` (issue 23), throughput against the bare path, side by side in one lab and one run:
 *   - egress: iperf3 (Debian's) TCP and UDP from the cluster node to the internet host through the pair's NAT (the
 *     MASTER's nftables NAT, conntrack, conntrackd syncing, firewalld), and the same two namespaces over the bare
 *     path (topology.ts BARE_PATH: the same shape of links and bridges, a router with nothing in it);
 *   - proxied: iperf3 TCP from the cluster node through HAProxy (the public ingress VIP's TLS port, TCP mode, to one
 *     ingress host) and directly to that host; HAProxy as rendered (`option splice-request` and `-response`: the kernel
 *     moves the data between the two sockets) and, beside it, without splicing.
 * iperf3 needs its control and data connections on one server: for the proxied runs the ingress backend is cut down
 * to that one host (the others in maintenance) and pointed at iperf3's port through HAProxy's runtime API; its health
 * checks keep their own port. Everything is put back after each run. Every test runs `seconds` (+1 s omitted).
 * UDP is sent unthrottled (-b 0): the figure is what arrives and the loss beside it.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { HAPROXY_CONFIG_PATH } from "../render/haproxy";
import { waitFor, type ProcessRecord } from "../lab/exec";
import type { Lab, LbKey } from "../lab/lab";
import { waitSteady } from "./failover";
import { runsInLab } from "./lab-runs";
import { printTable, summarize, type Summary } from "./stats";

export const IPERF_PORT = 5201;
const HTTPS_FRONTEND_PORT = 443;
const BACKEND = "be_ingress_https";

export interface ThroughputOptions {
  /** seconds per iperf3 test */
  seconds: number;
}

export interface UdpFigure {
  /** received (Mbit/s) */
  mbps: number;
  lostPct: number;
}

export interface ThroughputRun {
  /** haproxy: as rendered (spliced); haproxyCopy: the same without splicing */
  tcpMbps: { nat: number; bare: number; haproxy: number; haproxyCopy: number; direct: number };
  udp: { nat: UdpFigure; bare: UdpFigure };
  /** pipes both HAProxies had taken for splicing after the proxied run, as rendered and without splicing */
  pipes: { spliced: number; copy: number };
}

interface IperfJson {
  end?: {
    /** the receiver's view (TCP and UDP): what arrived, and for UDP what was lost */
    sum_received?: { bits_per_second: number; lost_percent?: number };
  };
  error?: string;
}

/** One iperf3 test from the cluster node; throws with iperf3's own error. */
async function iperf(
  lab: Lab,
  target: string,
  o: ThroughputOptions,
  { udp = false, port = IPERF_PORT }: { udp?: boolean; port?: number } = {},
): Promise<IperfJson> {
  const argv = ["iperf3", "-c", target, "-p", String(port), "-t", String(o.seconds), "-O", "1", "-J"];
  if (udp) argv.push("-u", "-b", "0");
  const r = await lab.run(lab.ns("node"), argv, { allowFail: true, timeoutMs: (o.seconds + 20) * 1000 });
  let doc: IperfJson;
  try {
    doc = JSON.parse(r.stdout) as IperfJson;
  } catch {
    throw new Error(`iperf3 to ${target}: no JSON (${r.stderr.trim() || r.stdout.slice(0, 200)})`);
  }
  if (doc.error) throw new Error(`iperf3 to ${target}: ${doc.error}`);
  return doc;
}

const mbps = (bps: number | undefined) => Math.round((bps ?? 0) / 1e5) / 10;
const tcpMbps = (d: IperfJson) => mbps(d.end?.sum_received?.bits_per_second);
function udpFigure(d: IperfJson): UdpFigure {
  const r = d.end?.sum_received;
  return { mbps: mbps(r?.bits_per_second), lostPct: Math.round((r?.lost_percent ?? 0) * 10) / 10 };
}

export interface ServerState {
  name: string;
  address: string;
  port: number;
  /** srv_admin_state: 0 ready; any maintenance bit set otherwise */
  admin: number;
}

export async function backendServers(lab: Lab, key: LbKey): Promise<ServerState[]> {
  // "show servers state <backend>": one line per server after two header lines; fields 4 name, 5 address,
  // 7 admin state, 19 port
  const out = await lab.haproxyCommand(key, `show servers state ${BACKEND}`);
  return out
    .split("\n")
    .filter((l) => /^\d+ /.test(l))
    .map((l) => l.split(" "))
    .map((f) => ({ name: f[3] as string, address: f[4] as string, admin: Number(f[6]), port: Number(f[18]) }));
}

/**
 * A runtime API command that must succeed: HAProxy answers `set server ... state` with nothing and `... addr` with
 * what it changed ("... changed from ... by 'stats socket command'"); anything else is its complaint.
 */
async function must(lab: Lab, key: LbKey, command: string): Promise<void> {
  const reply = (await lab.haproxyCommand(key, command)).trim();
  if (reply !== "" && !/changed from .* by 'stats socket command'$/.test(reply))
    throw new Error(`${key}: "${command}": ${reply}`);
}

/**
 * Points the ingress TLS backend of both LBs at iperf3 on `host` alone; returns what puts it back (each server's
 * port and admin state as they were). A failure half way puts back what it had changed before it throws.
 */
async function pointAtIperf(lab: Lab, host: string): Promise<() => Promise<void>> {
  const undo: (() => Promise<void>)[] = [];
  const restore = async () => {
    for (const u of undo.reverse()) await u();
  };
  try {
    for (const key of ["lb1", "lb2"] as const) {
      for (const s of await backendServers(lab, key)) {
        const server = `${BACKEND}/${s.name}`;
        if (s.address === host) {
          await must(lab, key, `set server ${server} addr ${host} port ${IPERF_PORT}`);
          undo.push(() => must(lab, key, `set server ${server} addr ${host} port ${s.port}`));
        } else {
          await must(lab, key, `set server ${server} state maint`);
          if (s.admin === 0) undo.push(() => must(lab, key, `set server ${server} state ready`));
        }
      }
    }
  } catch (e) {
    await restore();
    throw e;
  }
  return restore;
}

/**
 * Both LBs' haproxy.cfg without `option splice-request` and `-response` (the rendered file has them), reloaded (the lab's files only):
 * the copy path beside the spliced one; returns what writes the files back as they were and reloads again.
 */
async function withoutSplice(lab: Lab): Promise<() => Promise<void>> {
  const originals = new Map<LbKey, string>();
  const restore = async () => {
    for (const [key, text] of originals) {
      writeFileSync(join(lab.renderedRoot(key), HAPROXY_CONFIG_PATH), text);
      await reloaded(lab, key);
    }
  };
  try {
    for (const key of ["lb1", "lb2"] as const) {
      const file = join(lab.renderedRoot(key), HAPROXY_CONFIG_PATH);
      const cfg = readFileSync(file, "utf8");
      if ((cfg.match(SPLICE_LINES) ?? []).length !== 2)
        throw new Error(`${key}: haproxy.cfg has no "option splice-request" and "-response" lines to take out`);
      originals.set(key, cfg);
      writeFileSync(file, cfg.replace(SPLICE_LINES, ""));
      await reloaded(lab, key);
    }
  } catch (e) {
    await restore();
    throw e;
  }
  return restore;
}

const SPLICE_LINES = /^\s*option splice-(request|response)\n/gm;

/** Pipes in use or pooled (a pipe goes back to the pool after a burst) in both HAProxies' current workers. */
async function pipesTaken(lab: Lab): Promise<number> {
  let n = 0;
  for (const key of ["lb1", "lb2"] as const) {
    const info = await lab.haproxyCommand(key, "show info");
    for (const field of ["PipesUsed", "PipesFree"])
      n += Number(new RegExp(`^${field}: (\\d+)`, "m").exec(info)?.[1] ?? 0);
  }
  return n;
}

/** Reloads an LB's HAProxy and waits for its new worker (a failed load keeps the old one: the wait times out). */
async function reloaded(lab: Lab, key: LbKey): Promise<void> {
  const pid = async () => /^Pid: (\d+)/m.exec(await lab.haproxyCommand(key, "show info"))?.[1];
  const before = await pid();
  if (!lab.reloadHaproxy(key)) throw new Error(`${key}: haproxy is not running`);
  await waitFor(`${key}'s reloaded haproxy`, async () => ((await pid()) !== before ? true : undefined), {
    timeoutMs: 20_000,
    intervalMs: 200,
  });
}

/** iperf3's server; --forceflush, or its "Server listening" line waits in a buffer (its output is a file here). */
export const IPERF_SERVER = ["iperf3", "-s", "-p", String(IPERF_PORT), "--forceflush"];

/** iperf3's server prints this once it listens. */
export async function iperfListening(p: ProcessRecord): Promise<void> {
  await waitFor(
    `${p.name} to listen`,
    async () => (readFileSync(p.log, "utf8").includes("Server listening") ? true : undefined),
    { timeoutMs: 10_000, intervalMs: 50 },
  );
}

/** One run: every path once, one after the other (see the module comment). */
export async function throughputRun(
  lab: Lab,
  o: ThroughputOptions,
  progress: (line: string) => void = () => {},
): Promise<ThroughputRun> {
  await waitSteady(lab);
  const bare = await lab.addBarePath();
  const inet = lab.plan.targets.internet;
  const ingressHost = lab.plan.hosts.find((h) => h.role === "ingress");
  const vip = lab.plan.targets.ingressVip;
  if (!ingressHost || !vip) throw new Error("the throughput bench needs an ingress host and a public ingress VIP");
  const servers: ProcessRecord[] = [
    lab.startIn("load/iperf3-inet", "inet", IPERF_SERVER),
    lab.startIn("load/iperf3-ingress", ingressHost.key, IPERF_SERVER),
  ];
  try {
    for (const p of servers) await iperfListening(p);
    const tcp = { nat: 0, bare: 0, haproxy: 0, haproxyCopy: 0, direct: 0 };
    tcp.bare = tcpMbps(await iperf(lab, bare, o));
    tcp.nat = tcpMbps(await iperf(lab, inet, o));
    progress(`TCP: bare ${tcp.bare}, NAT ${tcp.nat} Mbit/s`);
    const udpBare = udpFigure(await iperf(lab, bare, o, { udp: true }));
    const udpNat = udpFigure(await iperf(lab, inet, o, { udp: true }));
    progress(
      `UDP: bare ${udpBare.mbps} (${udpBare.lostPct} % lost), NAT ${udpNat.mbps} (${udpNat.lostPct} % lost) Mbit/s`,
    );
    tcp.direct = tcpMbps(await iperf(lab, ingressHost.address, o));
    const pipes = { spliced: 0, copy: 0 };
    for (const splice of [true, false]) {
      const putBack = splice ? async () => undefined : await withoutSplice(lab);
      try {
        const restore = await pointAtIperf(lab, ingressHost.address);
        try {
          // through the ingress VIP's TLS frontend: HAProxy forwards it to iperf3 on the one ingress host
          const v = tcpMbps(await iperf(lab, vip, o, { port: HTTPS_FRONTEND_PORT }));
          if (splice) [tcp.haproxy, pipes.spliced] = [v, await pipesTaken(lab)];
          else [tcp.haproxyCopy, pipes.copy] = [v, await pipesTaken(lab)];
        } finally {
          await restore();
        }
      } finally {
        await putBack();
      }
    }
    progress(`TCP: direct ${tcp.direct}, HAProxy ${tcp.haproxy}, HAProxy without splicing ${tcp.haproxyCopy} Mbit/s`);
    return { tcpMbps: tcp, udp: { nat: udpNat, bare: udpBare }, pipes };
  } finally {
    for (const p of servers) await lab.stopClient(p).catch(() => undefined);
  }
}

export interface ThroughputResult {
  options: ThroughputOptions;
  runs: ThroughputRun[];
  summary: Record<string, Summary>;
}

const ROWS: [string, string, (r: ThroughputRun) => number, string][] = [
  ["TCP bare routed path (Mbit/s)", "tcpBare", (r) => r.tcpMbps.bare, "-"],
  ["TCP through the NAT (Mbit/s)", "tcpNat", (r) => r.tcpMbps.nat, "-"],
  ["TCP NAT / bare (%)", "tcpNatPct", (r) => (100 * r.tcpMbps.nat) / r.tcpMbps.bare, ">= 90"],
  ["UDP bare, received (Mbit/s)", "udpBare", (r) => r.udp.bare.mbps, "-"],
  ["UDP NAT, received (Mbit/s)", "udpNat", (r) => r.udp.nat.mbps, "-"],
  ["UDP NAT / bare (%)", "udpNatPct", (r) => (100 * r.udp.nat.mbps) / r.udp.bare.mbps, ">= 90"],
  ["UDP bare, lost (%)", "udpBareLost", (r) => r.udp.bare.lostPct, "-"],
  ["UDP NAT, lost (%)", "udpNatLost", (r) => r.udp.nat.lostPct, "-"],
  ["TCP direct to the backend (Mbit/s)", "tcpDirect", (r) => r.tcpMbps.direct, "-"],
  ["TCP through HAProxy, as rendered: spliced (Mbit/s)", "tcpHaproxy", (r) => r.tcpMbps.haproxy, "-"],
  ["TCP through HAProxy without splicing (Mbit/s)", "tcpCopy", (r) => r.tcpMbps.haproxyCopy, "-"],
  ["HAProxy / direct (%)", "haproxyPct", (r) => (100 * r.tcpMbps.haproxy) / r.tcpMbps.direct, ">= 40"],
  ["HAProxy without splicing / direct (%)", "copyPct", (r) => (100 * r.tcpMbps.haproxyCopy) / r.tcpMbps.direct, "-"],
];

/** `runs` runs of throughputRun in one fresh lab of the dev spec, always torn down. */
export async function benchThroughput(o: { runs: number; options: ThroughputOptions }): Promise<ThroughputResult> {
  const runs = await runsInLab(
    o.runs,
    (lab, i, log) => throughputRun(lab, o.options, (l) => log(`run ${i + 1}/${o.runs}: ${l}`)),
    (r) =>
      `TCP NAT/bare ${Math.round((100 * r.tcpMbps.nat) / r.tcpMbps.bare)} %, UDP ${Math.round((100 * r.udp.nat.mbps) / r.udp.bare.mbps)} %`,
  );
  const summary = Object.fromEntries(ROWS.map(([, key, f]) => [key, summarize(runs.map(f))]));
  printTable(
    ROWS.map(([label, key, , goal]) => ({
      figure: label,
      min: summary[key]!.minMs.toFixed(1),
      median: summary[key]!.medianMs.toFixed(1),
      max: summary[key]!.maxMs.toFixed(1),
      goal,
    })),
  );
  console.log(`iperf3, ${o.options.seconds} s per test (+1 s omitted), one stream; ${runs.length} runs`);
  return { options: o.options, runs, summary };
}
