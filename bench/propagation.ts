/**
 * `npm run bench -- propagation`: a Node change -> the first request served by that backend, through HAProxy's
 * runtime API (agent/haproxy, no reload). Needs root (a network namespace).
 *
 * The real haproxy 2.6 runs the dev stack's rendered haproxy.cfg in master-worker mode (-W) in a throwaway network
 * namespace: the VIPs sit on its loopback, the API backends are lab/helper.ts `serve` processes on 127.0.0.x
 * answering their own name, and lab/helper.ts `client` opens a new connection to the API VIP every 2 ms and logs
 * which backend answered (epoch ms, the same clock as here). Two edits make the rendered file runnable here:
 * the admin socket moves into a temp dir and maxconn drops to 1000 (this container's FD limit).
 *
 * Each change is timed the way the agent does it: render haproxy.cfg for the new backend set, then syncServers
 * (read the running servers, plan, apply). Add: from the start of the render to the END of the first response
 * from the new backend. Remove: from the start to the drain command taking effect (no new connection reaches the
 * server after it; checked against the request log) and to its deletion.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync, openSync, readSync, closeSync, fstatSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { syncServers, RuntimeSocket, type SyncServersResult } from "../agent/haproxy/index";
import { readSpec } from "../spec/files";
import type { RequestRecord } from "../lab/analysis";
import { DEFAULT_SPEC } from "../lab/cli";
import { exec, isAlive, sleep, startDetached, stopProcess, waitFor, type ProcessRecord } from "../lab/exec";
import { renderHaproxy } from "../render/haproxy";
import type { Backend, BackendSets, HostFacts, ResolvedSpec } from "../spec/types";
import { printTable, summarize, type Summary } from "./stats";

// ------------------------------------------------------------------------------------------------ live haproxy

export const BENCH_HOST: HostFacts = {
  hostname: "bench-lb-1",
  role: "primary",
  publicInterface: { name: "eth0", mac: "52:54:00:be:00:01" },
  privateInterface: { name: "eth1", mac: "52:54:00:be:00:02" },
};

const CLIENT_INTERVAL_MS = 2;
const CLIENT_MAX_MS = 600_000; // the client stops by itself even if nobody stops it
let counter = 0;

/** Epoch ms, comparable with lab/helper.ts records (why the wall clock and not timeOrigin + now(): see there). */
export function nowMs(): number {
  return Date.now();
}

/** The request log of a running lab/helper.ts client, read incrementally (the file only grows). */
export class RequestLog {
  private offset = 0;
  private partial = "";
  readonly records: RequestRecord[] = [];

  constructor(readonly path: string) {}

  /** Reads what was appended since the last call; returns every record so far. */
  refresh(): RequestRecord[] {
    let fd: number;
    try {
      fd = openSync(this.path, "r");
    } catch {
      return this.records; // not written yet
    }
    try {
      const size = fstatSync(fd).size;
      if (size > this.offset) {
        const buf = Buffer.alloc(size - this.offset);
        const n = readSync(fd, buf, 0, buf.length, this.offset);
        this.offset += n;
        const text = this.partial + buf.subarray(0, n).toString("utf8");
        const lines = text.split("\n");
        this.partial = lines.pop() ?? "";
        for (const l of lines) if (l.trim() !== "") this.records.push(JSON.parse(l) as RequestRecord);
      }
    } finally {
      closeSync(fd);
    }
    return this.records;
  }
}

/**
 * The first response from `server` that ended at or after `since`; polled every 2 ms, at most `timeoutMs`.
 * Undefined when none came (the caller decides whether that is a failure or the expected outcome).
 */
export async function firstServedBy(
  log: RequestLog,
  server: string,
  since: number,
  timeoutMs: number,
): Promise<RequestRecord | undefined> {
  const deadline = nowMs() + timeoutMs;
  let seen = 0;
  for (let i = 0; i < 100_000; i++) {
    const all = log.refresh();
    for (; seen < all.length; seen++) {
      const r = all[seen];
      if (r && r.ok && r.server === server && r.end >= since) return r;
    }
    if (nowMs() >= deadline) return undefined;
    await sleep(2);
  }
  return undefined;
}

export class LiveHaproxy {
  private readonly processes: ProcessRecord[] = [];
  readonly socket: RuntimeSocket;
  private haproxy?: ProcessRecord;

  private constructor(
    readonly spec: ResolvedSpec,
    readonly ns: string,
    readonly dir: string,
  ) {
    this.socket = new RuntimeSocket(join(dir, "admin.sock"), 2000);
  }

  /** Namespace, loopback VIPs, lab helper compiled; then haproxy on the config rendered for `initial`. */
  static async start(spec: ResolvedSpec, initial: BackendSets): Promise<LiveHaproxy> {
    const ns = `ep-hx-${process.pid}-${++counter}`;
    const dir = mkdtempSync(join(tmpdir(), "ep-haproxy-agent-"));
    await exec(["ip", "netns", "add", ns]);
    const live = new LiveHaproxy(spec, ns, dir);
    try {
      await live.inNs(["ip", "link", "set", "lo", "up"]);
      // ~500 new connections a second from one source address to one VIP: reuse TIME_WAIT ports, or a long run
      // would run out of them (the default reuse applies to 127.0.0.0/8 only)
      await live.inNs(["sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1", "net.ipv4.ip_local_port_range=1024 65000"]);
      const vips = [
        ...spec.derived.frontends.api,
        ...spec.derived.frontends.ingress,
        ...spec.derived.frontends.machineConfig,
      ].map((v) => v.address);
      for (const a of new Set([...vips, spec.network.lbAddresses[0]])) {
        await live.inNs(["ip", "addr", "add", `${a}/${a.includes(":") ? 128 : 32}`, "dev", "lo"]);
      }
      compileHelper(join(dir, "helper.js"));
      const cfg = join(dir, "haproxy.cfg");
      writeFileSync(cfg, live.config(initial));
      live.haproxy = live.track(
        startDetached("haproxy", ns, live.nsArgv(["haproxy", "-W", "-db", "-f", cfg]), join(dir, "haproxy.log")),
      );
      await waitFor(
        "haproxy's admin socket",
        async () => {
          if (live.haproxy && !isAlive(live.haproxy))
            throw new Error(`haproxy exited: ${readLog(join(dir, "haproxy.log"))}`);
          return /^Pid: \d+$/m.test(await live.socket.send("show info")) ? true : undefined;
        },
        { timeoutMs: 10_000, intervalMs: 50 },
      );
      return live;
    } catch (e) {
      await live.stop();
      throw e;
    }
  }

  /** The rendered haproxy.cfg for `backends`, with the two edits that let it run here (see the file comment). */
  config(backends: BackendSets): string {
    const [file] = renderHaproxy({ spec: this.spec, host: BENCH_HOST, backends });
    if (!file) throw new Error("renderHaproxy rendered nothing");
    return adaptForTest(file.content, this.socket.path);
  }

  /** The master (the process started) and the current worker (HAProxy's own `show info`). */
  async pids(): Promise<{ master: number; worker: number }> {
    const info = await this.socket.run("show info", /^Name: HAProxy$/m);
    const worker = Number(/^Pid: (\d+)$/m.exec(info)?.[1]);
    if (!this.haproxy || !isAlive(this.haproxy)) throw new Error("haproxy master is not running");
    return { master: this.haproxy.pid, worker };
  }

  haproxyLog(): string {
    return readLog(join(this.dir, "haproxy.log"));
  }

  /** A backend answering `label` on address:port for each port; waits until it listens. */
  async startBackend(label: string, address: string, ports: readonly number[]): Promise<ProcessRecord> {
    const log = join(this.dir, `backend-${label}.log`);
    const http = ports.flatMap((p) => ["--http", `${address}:${p}`]);
    const p = this.track(
      startDetached(`backend ${label}`, this.ns, this.nsArgv(this.helper("serve", "--name", label, ...http)), log),
    );
    await waitFor(
      `backend ${label} listening`,
      async () => {
        if (!isAlive(p)) throw new Error(`backend ${label} exited: ${readLog(log)}`);
        return readLog(log).includes("ready\n") ? true : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 20 },
    );
    return p;
  }

  /** A new connection to `url` every 2 ms, each request logged; stopped by stop() or stopProcess. */
  startClient(url: string, name = "client"): { process: ProcessRecord; log: RequestLog } {
    const out = join(this.dir, `${name}-${++counter}.jsonl`);
    const argv = this.helper(
      "client",
      "--url",
      url,
      "--out",
      out,
      "--interval-ms",
      String(CLIENT_INTERVAL_MS),
      "--timeout-ms",
      "2000",
      "--max-ms",
      String(CLIENT_MAX_MS),
    );
    const proc = this.track(startDetached(name, this.ns, this.nsArgv(argv), join(this.dir, `${name}.log`)));
    return { process: proc, log: new RequestLog(out) };
  }

  /** One keep-alive connection making `count` requests `gapMs` apart (lab/helper.ts session). */
  startSession(url: string, count: number, gapMs: number): { process: ProcessRecord; out: string } {
    const out = join(this.dir, `session-${++counter}.jsonl`);
    const argv = this.helper(
      "session",
      "--url",
      url,
      "--out",
      out,
      "--count",
      String(count),
      "--gap-ms",
      String(gapMs),
      "--timeout-ms",
      "3000",
    );
    return {
      process: this.track(startDetached("session", this.ns, this.nsArgv(argv), join(this.dir, "session.log"))),
      out,
    };
  }

  /** Every process started, by PID (haproxy's master takes its worker down); then the namespace and the temp dir. */
  async stop(): Promise<void> {
    for (const p of [...this.processes].reverse()) await stopProcess(p, 3000);
    // anything still in the namespace was started there by this harness (the haproxy worker at worst)
    const left = (await exec(["ip", "netns", "pids", this.ns], { allowFail: true })).stdout
      .split(/\s+/)
      .filter(Boolean);
    for (const pid of left) await exec(["kill", "-9", pid], { allowFail: true });
    await exec(["ip", "netns", "del", this.ns], { allowFail: true });
    rmSync(this.dir, { recursive: true, force: true });
  }

  private track(p: ProcessRecord): ProcessRecord {
    this.processes.push(p);
    return p;
  }

  private helper(...args: string[]): string[] {
    return [process.execPath, join(this.dir, "helper.js"), ...args];
  }

  private nsArgv(argv: string[]): string[] {
    return ["nsenter", `--net=/run/netns/${this.ns}`, "--", ...argv];
  }

  private inNs(argv: string[]): Promise<unknown> {
    return exec(this.nsArgv(argv));
  }
}

/** The admin socket into the temp dir (the rendered /run/haproxy may not exist here), maxconn within the FD limit. */
export function adaptForTest(rendered: string, socketPath: string): string {
  const socketLine = /^(\s*stats socket )\/run\/haproxy\/admin\.sock( .*)$/m;
  const maxconnLine = /^(\s*maxconn )\d+$/m;
  if (!socketLine.test(rendered) || !maxconnLine.test(rendered))
    throw new Error("rendered haproxy.cfg lacks the stats socket or maxconn line");
  return rendered.replace(socketLine, `$1${socketPath}$2`).replace(maxconnLine, "$11000");
}

function compileHelper(out: string): void {
  // the lab's own stand-in programs, compiled once with swc like lab/lab.ts does (a start costs milliseconds)
  const swc = require("@swc/core") as typeof import("@swc/core");
  const js = swc.transformFileSync(join(__dirname, "..", "lab", "helper.ts"), {
    jsc: { parser: { syntax: "typescript" }, target: "es2022" },
    module: { type: "commonjs" },
    sourceMaps: false,
    swcrc: false,
  });
  writeFileSync(out, js.code);
}

function readLog(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

// ------------------------------------------------------------------------------------------------ the bench

export interface PropagationResult {
  haproxy: string;
  changes: number;
  /** Node added: render + runtime API + first response from it, ms */
  add: Summary;
  /** Node added: render + runtime API only (syncServers returned), ms; the rest of `add` is the data path */
  addSync: Summary;
  /** Node removed: render + runtime API until the drain is in effect, ms */
  drain: Summary;
  /** Node removed: until the server is deleted (sessions drained), ms */
  delete: Summary;
  requests: number;
  failedRequests: number;
  /** requests that started after a drain was in effect and still reached the drained server */
  requestsAfterDrain: number;
  reloads: number;
  samples: { addMs: number[]; addSyncMs: number[]; drainMs: number[]; deleteMs: number[] };
}

const API_PORT_IN_NS = 6443;
const CLOCK_SLACK_MS = 5; // two processes' Date.now() agree to the ms; this covers the ms rounding

/**
 * `runs` add/remove cycles (at least 10, so at least 20 changes) of one API Node, cp-new, next to three steady ones,
 * 100 ms apart. Throws when an added Node serves nothing within 3 s or a removal does not complete.
 */
export async function propagationBench(opts: { runs: number }): Promise<PropagationResult> {
  if (process.getuid?.() !== 0) throw new Error("propagation bench needs root (network namespace)");
  const runs = Math.max(10, opts.runs); // each run is one add and one remove: at least 20 changes
  const spec = readSpec(DEFAULT_SPEC);
  const base: Backend[] = ["cp-0", "cp-1", "cp-2"].map((name, i) => ({ name, address: `127.0.0.${10 + i}` }));
  const extra: Backend = { name: "cp-new", address: "127.0.0.20" };
  const only = (api: Backend[]): BackendSets => ({ api, ingress: [] });
  const live = await LiveHaproxy.start(spec, only(base));
  try {
    for (const b of [...base, extra]) await live.startBackend(b.name, b.address, [spec.apiBackend.port]);
    const vip = spec.derived.frontends.api[0]?.address ?? "";
    const client = live.startClient(`http://${vip}:${API_PORT_IN_NS}/`);
    for (const b of base) {
      if (!(await firstServedBy(client.log, b.name, 0, 5000)))
        throw new Error(`warm-up: no answer from ${b.name}\n${live.haproxyLog()}`);
    }
    const pidsBefore = await live.pids();
    const addMs: number[] = [];
    const addSyncMs: number[] = [];
    const drainMs: number[] = [];
    const deleteMs: number[] = [];
    let requestsAfterDrain = 0;
    for (let run = 0; run < runs; run++) {
      const added = await timedSync(live, only([...base, extra]));
      const first = await firstServedBy(client.log, extra.name, added.t0, 3000);
      if (!first)
        throw new Error(
          `run ${run}: ${extra.name} served nothing within 3 s of its add (${JSON.stringify(added.sync.result)})`,
        );
      addMs.push(first.end - added.t0);
      addSyncMs.push(added.t1 - added.t0);
      await sleep(100);

      const removed = await timedSync(live, only(base), { drainTimeoutMs: 3000 });
      const drainedAt = removed.sync.result.applied.find((a) => a.action.kind === "drain")?.finishedAt;
      const deletedAt = removed.sync.result.applied.find((a) => a.action.kind === "delete")?.finishedAt;
      if (drainedAt === undefined || deletedAt === undefined)
        throw new Error(`run ${run}: removal incomplete: ${JSON.stringify(removed.sync.result)}`);
      drainMs.push(drainedAt - removed.t0);
      deleteMs.push(deletedAt - removed.t0);
      await sleep(100);
      requestsAfterDrain += client.log
        .refresh()
        .filter(
          (r) => r.server === extra.name && r.start > drainedAt + CLOCK_SLACK_MS && r.start < deletedAt + 1000,
        ).length;
    }
    const pidsAfter = await live.pids();
    await stopProcess(client.process);
    const all = client.log.refresh();
    const result: PropagationResult = {
      haproxy: (await exec(["haproxy", "-v"])).stdout.split("\n")[0] ?? "",
      changes: 2 * runs,
      add: summarize(addMs),
      addSync: summarize(addSyncMs),
      drain: summarize(drainMs),
      delete: summarize(deleteMs),
      requests: all.length,
      failedRequests: all.filter((r) => !r.ok).length,
      requestsAfterDrain,
      reloads: pidsAfter.master === pidsBefore.master && pidsAfter.worker === pidsBefore.worker ? 0 : 1,
      samples: {
        addMs: addMs.map(round),
        addSyncMs: addSyncMs.map(round),
        drainMs: drainMs.map(round),
        deleteMs: deleteMs.map(round),
      },
    };
    printTable(
      (["add", "addSync", "drain", "delete"] as const).map((k) => ({
        change: {
          add: "add -> first response",
          addSync: "add -> runtime API done",
          drain: "remove -> drained",
          delete: "remove -> deleted",
        }[k],
        "min ms": result[k].minMs,
        "median ms": result[k].medianMs,
        "max ms": result[k].maxMs,
        n: result[k].n,
      })),
    );
    console.log(
      `${result.requests} requests, ${result.failedRequests} failed, ${result.requestsAfterDrain} after a drain; master/worker PIDs ${result.reloads === 0 ? "unchanged" : "CHANGED"}`,
    );
    return result;
  } finally {
    await live.stop();
  }
}

/** What the agent does on a Node change: render haproxy.cfg for the new backends, then sync the running servers. */
export async function timedSync(
  live: LiveHaproxy,
  backends: BackendSets,
  opts: { drainTimeoutMs?: number } = {},
): Promise<{ t0: number; t1: number; sync: SyncServersResult }> {
  const t0 = nowMs();
  const sync = await syncServers(live.socket, live.config(backends), opts);
  const t1 = nowMs();
  if (sync.result.failed)
    throw new Error(`sync failed at ${sync.result.failed.action.kind}: ${sync.result.failed.error}`);
  return { t0, t1, sync };
}

const round = (x: number): number => Math.round(x * 1000) / 1000;
