/**
 * The lab's stand-in programs, run inside the namespaces with plain `node` (the lab compiles this file once per
 * run with swc, so a start costs tens of milliseconds, not a TypeScript compiler start). Node built-ins only.
 *
 *   serve --name N [--https A:P --cert F --key F]... [--http A:P]... [--echo A:P]... [--banner A:P]... [--unhealthy A:P]...
 *       HTTP(S): GET /readyz answers 200 "ok" (a Kubernetes API's readiness), any other path a JSON line
 *       {"server":N,"peer":<client address as seen here>,"local":<address:port>}. echo: TCP and UDP echo.
 *       banner: an SSH stand-in that sends an SSH identification line. unhealthy: HTTP answering 503 to everything
 *       (a healthCheckNodePort without local endpoints). Prints "ready" once everything listens.
 *       An echo server answers the message "who?" (a TCP connection's first, or a datagram) with the JSON line
 *       {"server":N,"peer":<client address as seen here>} instead: which backend took it, and whom it saw.
 *   probe
 *       Backend probes for an agent outside the namespace: reads JSON lines {id,kind:"tcp"|"http",address,port,path?,
 *       timeoutMs} on stdin, answers {id,ok} on stdout for each, concurrently (what the agent's own prober does on a VM).
 *   poll --to A:P [--udp true] [--interval-ms 10] [--max-ms 20000]
 *       Asks "who?" every interval (a new connection or socket each time, each bounded by the interval x 5) until
 *       one is answered; prints {"at":<epoch ms of the answered attempt's start>,"server","peer"} and exits 0, or
 *       exits 1 at the bound. How long a new frontend takes to answer, to within the interval.
 *   ask --to A:P [--udp true] [--timeout-ms 2000]
 *       Sends "who?" to an echo server over TCP or UDP and prints its answer; exit 1 without one in time.
 *   client --url URL --out FILE [--interval-ms 10] [--timeout-ms 3000] [--max-ms 60000] [--max-requests 100000]
 *       The DESIGN.md client: a new TCP connection every interval, requests concurrent, each with its own timeout;
 *       one JSON line per finished request {i,start,end,ok,status?,server?,peer?,err?} (epoch ms). Stops on
 *       SIGTERM/SIGINT or at a bound, waits for requests in flight (bounded by the timeout), then exits 0.
 *   session --url URL --out FILE [--count 40] [--gap-ms 200] [--timeout-ms 3000]
 *       One keep-alive connection (one socket, never a second): COUNT requests, GAP apart, each bounded by the
 *       timeout. One JSON line per request {i,start,end,ok,status?,localPort?,err?}; the first failure ends the
 *       session (the connection is gone). Shows whether a connection open across a failover survives it.
 *   sessions --url URL --out FILE [--count 100] [--gap-ms 1000] [--timeout-ms 3000] [--max-ms 120000]
 *       COUNT such sessions at once, their starts spread over one gap (a steady request rate), each requesting every
 *       gap until SIGTERM/SIGINT or the bound; a session breaks at its first failure or second connection. Prints
 *       "ready" once every session has its first answer. At the end writes one JSON document to FILE: per session
 *       its requests, answers, longest time between answers and the break (error, epoch ms).
 *   flows --target A:P --out FILE [--tcp 20] [--udp 5] [--interval-ms 100] [--max-ms 120000] [--gap-report-ms 500]
 *       Long-lived egress flows to an echo server: N TCP connections and M UDP sockets (each its own source port, so
 *       its own conntrack entry), each sending one numbered message every interval and checking every echo against
 *       what it sent. Prints "ready" once every flow has seen its first echo. On SIGTERM/SIGINT or at the bound it
 *       stops sending, waits briefly for echoes in flight, and writes one JSON document to FILE: per flow the
 *       messages sent and echoed, mismatches, the first error (reset, close) with its time, and every gap between
 *       echoes longer than 500 ms ([from, to], epoch ms; the last one may end at the stop).
 */
import { createSocket } from "node:dgram";
import { appendFileSync, readFileSync, writeFileSync } from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import { createConnection, createServer as createTcpServer } from "node:net";
import type { RequestRecord } from "./analysis";
import type { SessionReport } from "./sessions";

// Records are compared with times taken in other processes (the test, the agent): the wall clock read afresh agrees
// across them. performance.timeOrigin is fixed when a process starts, so in a long-lived one timeOrigin + now() drifts
// from the wall clock when that is stepped or the machine is paused. A CI run measured 14.6 s from a server's add to
// its first answer, and saw answers after its drain: as if the test's clock lagged this one's by 14.6 s.
function nowMs(): number {
  return Date.now();
}

function options(argv: string[]): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i] as string;
    if (!k.startsWith("--")) throw new Error(`unexpected argument ${k}`);
    const v = argv[i + 1];
    if (v === undefined) throw new Error(`${k} needs a value`);
    m.set(k.slice(2), [...(m.get(k.slice(2)) ?? []), v]);
    i++;
  }
  return m;
}

function one(m: Map<string, string[]>, k: string, fallback?: string): string {
  const v = m.get(k)?.[0] ?? fallback;
  if (v === undefined) throw new Error(`--${k} is required`);
  return v;
}

function hostPort(s: string): { host: string; port: number } {
  const i = s.lastIndexOf(":");
  return { host: s.slice(0, i).replace(/^\[|\]$/g, ""), port: Number(s.slice(i + 1)) };
}

/**
 * The accept queue a stand-in server asks for (the kernel caps it at net.core.somaxconn, which the lab raises on the
 * internet host): the load bench opens 10,000 connections at once, and Node's default of 511 overflowed, leaving
 * clients with a connection the server had not accepted (SYN-ACKs resent for seconds, then a reset).
 */
const LISTEN_BACKLOG = 16_384;

function listen(
  server: {
    listen: (o: { port: number; host: string; backlog: number }, cb: () => void) => unknown;
    once: (e: "error", cb: (err: Error) => void) => unknown;
  },
  at: string,
): Promise<void> {
  const { host, port } = hostPort(at);
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ port, host, backlog: LISTEN_BACKLOG }, () => resolve());
  });
}

async function serve(m: Map<string, string[]>): Promise<void> {
  const name = one(m, "name");
  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    if (req.url === "/readyz") {
      res.writeHead(200, { "content-type": "text/plain" }).end("ok");
      return;
    }
    const body = JSON.stringify({
      server: name,
      peer: req.socket.remoteAddress,
      local: `${req.socket.localAddress}:${req.socket.localPort}`,
    });
    // the connection stays open only when the client asks for it (the session mode; the DESIGN client sends close)
    res.writeHead(200, { "content-type": "application/json" }).end(`${body}\n`);
  };
  const waits: Promise<void>[] = [];
  for (const at of m.get("http") ?? []) waits.push(listen(http.createServer(handler), at));
  // a Service's healthCheckNodePort on a node without a local endpoint: kube-proxy answers 503
  for (const at of m.get("unhealthy") ?? [])
    waits.push(
      listen(
        http.createServer((_req, res) => res.writeHead(503).end("no local endpoints\n")),
        at,
      ),
    );
  const httpsAt = m.get("https") ?? [];
  if (httpsAt.length > 0) {
    const tls = { cert: readFileSync(one(m, "cert")), key: readFileSync(one(m, "key")) };
    for (const at of httpsAt) waits.push(listen(https.createServer(tls, handler), at));
  }
  const who = (peer: string | undefined) => `${JSON.stringify({ server: name, peer })}\n`;
  for (const at of m.get("echo") ?? []) {
    waits.push(
      listen(
        createTcpServer((s) => {
          s.on("error", () => s.destroy());
          s.once("data", (first) => {
            if (first.toString() === WHO) s.end(who(s.remoteAddress));
            else {
              s.write(first);
              s.pipe(s);
            }
          });
        }),
        at,
      ),
    );
    const { host, port } = hostPort(at);
    // thousands of flows' datagrams: the default buffer (about 200 small datagrams) overflows between two reads
    const udp = createSocket({ type: host.includes(":") ? "udp6" : "udp4", recvBufferSize: 4 << 20 });
    udp.on("message", (msg, rinfo) =>
      udp.send(msg.toString() === WHO ? who(rinfo.address) : msg, rinfo.port, rinfo.address),
    );
    waits.push(
      new Promise((resolve, reject) => {
        udp.once("error", reject);
        udp.bind(port, host, () => resolve());
      }),
    );
  }
  for (const at of m.get("banner") ?? []) {
    waits.push(
      listen(
        createTcpServer((s) => {
          s.on("error", () => s.destroy());
          s.end("SSH-2.0-edgepair-lab\r\n");
        }),
        at,
      ),
    );
  }
  await Promise.all(waits);
  process.stdout.write("ready\n");
}

const WHO = "who?";

interface ProbeQuery {
  id: number;
  kind: "tcp" | "http";
  address: string;
  port: number;
  path?: string;
  timeoutMs: number;
}

function probeOnce(q: ProbeQuery): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), q.timeoutMs);
    const done = (ok: boolean) => {
      clearTimeout(timer);
      resolve(ok);
    };
    if (q.kind === "tcp") {
      const s = createConnection({ host: q.address, port: q.port }, () => {
        s.destroy();
        done(true);
      });
      s.on("error", () => done(false));
      return;
    }
    http
      .get({ host: q.address, port: q.port, path: q.path ?? "/", agent: false }, (res) => {
        res.resume();
        done((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 400);
      })
      .on("error", () => done(false));
  });
}

async function probe(): Promise<void> {
  let buffered = "";
  process.stdin.on("data", (chunk: Buffer) => {
    buffered += chunk.toString();
    let nl = buffered.indexOf("\n");
    while (nl >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      nl = buffered.indexOf("\n");
      const q = JSON.parse(line) as ProbeQuery;
      void probeOnce(q).then((ok) => process.stdout.write(`${JSON.stringify({ id: q.id, ok })}\n`));
    }
  });
  await new Promise<void>((resolve) => process.stdin.on("end", resolve));
}

/** One "who?" to an echo server (serve --echo), TCP or UDP; resolves with the answer. */
function askOnce(host: string, port: number, udpMode: boolean, timeoutMs: number): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    let close = () => undefined as void;
    const timer = setTimeout(() => {
      close();
      reject(new Error(`no answer from ${host}:${port} in ${timeoutMs} ms`));
    }, timeoutMs);
    const settle = (err: Error | undefined, text = "") => {
      clearTimeout(timer);
      close();
      if (err) reject(err);
      else resolve(text);
    };
    if (udpMode) {
      const udp = createSocket(host.includes(":") ? "udp6" : "udp4");
      close = () => {
        try {
          udp.close();
        } catch {
          // closed already
        }
      };
      udp.on("message", (msg) => settle(undefined, msg.toString()));
      udp.on("error", (e) => settle(e));
      udp.send(WHO, port, host);
    } else {
      let text = "";
      const s = createConnection({ host, port }, () => s.write(WHO));
      close = () => void s.destroy();
      s.on("data", (d) => (text += d.toString()));
      s.on("end", () => settle(undefined, text));
      s.on("error", (e) => settle(e));
    }
  });
}

async function ask(m: Map<string, string[]>): Promise<void> {
  const { host, port } = hostPort(one(m, "to"));
  const answer = await askOnce(host, port, one(m, "udp", "false") === "true", Number(one(m, "timeout-ms", "2000")));
  process.stdout.write(answer.endsWith("\n") ? answer : `${answer}\n`);
}

async function poll(m: Map<string, string[]>): Promise<void> {
  const { host, port } = hostPort(one(m, "to"));
  const udpMode = one(m, "udp", "false") === "true";
  const intervalMs = Number(one(m, "interval-ms", "10"));
  const deadline = nowMs() + Number(one(m, "max-ms", "20000"));
  const answered = await new Promise<{ at: number; text: string } | undefined>((resolve) => {
    let done = false;
    const tick = () => {
      if (done) return;
      if (nowMs() > deadline) {
        done = true;
        resolve(undefined);
        return;
      }
      const at = nowMs();
      askOnce(host, port, udpMode, intervalMs * 5).then(
        (text) => {
          if (!done) {
            done = true;
            resolve({ at, text });
          }
        },
        () => undefined,
      );
      setTimeout(tick, intervalMs);
    };
    tick();
  });
  if (!answered) {
    process.stderr.write(`poll: no answer from ${host}:${port}\n`);
    process.exit(1);
  }
  const who = JSON.parse(answered.text) as { server: string; peer: string };
  process.stdout.write(`${JSON.stringify({ at: answered.at, ...who })}\n`);
}

/** Relays every TCP connection accepted at --listen to the Unix socket --unix (lab.ts startRelay). */
async function relay(m: Map<string, string[]>): Promise<void> {
  const to = one(m, "unix");
  const server = createTcpServer((s) => {
    const upstream = createConnection(to);
    const end = () => {
      s.destroy();
      upstream.destroy();
    };
    s.on("error", end);
    upstream.on("error", end);
    s.pipe(upstream).pipe(s);
  });
  await listen(server, one(m, "listen"));
  process.stdout.write("ready\n");
}

async function client(m: Map<string, string[]>): Promise<void> {
  const url = new URL(one(m, "url"));
  const out = one(m, "out");
  const intervalMs = Number(one(m, "interval-ms", "10"));
  const timeoutMs = Number(one(m, "timeout-ms", "3000"));
  const maxMs = Number(one(m, "max-ms", "60000"));
  const maxRequests = Number(one(m, "max-requests", "100000"));
  const mod = url.protocol === "https:" ? https : http;
  let stopping = false;
  let inFlight = 0;
  const t0 = nowMs();
  const stop = (): void => {
    stopping = true;
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);

  const fire = (i: number): void => {
    const start = nowMs();
    inFlight++;
    let done = false;
    const finish = (r: Omit<RequestRecord, "i" | "start" | "end">): void => {
      if (done) return;
      done = true;
      inFlight--;
      appendFileSync(out, `${JSON.stringify({ i, start, end: nowMs(), ...r })}\n`);
    };
    const req = mod.request(
      url,
      { method: "GET", agent: false, rejectUnauthorized: false, timeout: timeoutMs, headers: { connection: "close" } },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (body += d));
        res.on("end", () => {
          let who: { server?: string; peer?: string } = {};
          try {
            who = JSON.parse(body) as typeof who;
          } catch {
            // a non-JSON answer (e.g. "ok" of /readyz) carries no server name
          }
          const ok = res.statusCode === 200;
          finish({
            ok,
            status: res.statusCode ?? 0,
            ...(who.server ? { server: who.server } : {}),
            ...(who.peer ? { peer: who.peer.replace(/^::ffff:/, "") } : {}),
          });
        });
        res.on("error", (e) => finish({ ok: false, err: e.message }));
      },
    );
    // the whole request, connect included, is bounded by one timer
    const timer = setTimeout(() => {
      req.destroy(new Error("timeout"));
    }, timeoutMs);
    req.on("close", () => clearTimeout(timer));
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", (e: NodeJS.ErrnoException) => finish({ ok: false, err: e.code ?? e.message }));
    req.end();
  };

  // Paced against the clock, not by chained timers: a slow event loop does not thin out the attempts.
  for (let i = 0; i < maxRequests && !stopping && nowMs() - t0 < maxMs; i++) {
    fire(i);
    const next = t0 + (i + 1) * intervalMs;
    const wait = next - nowMs();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  const deadline = nowMs() + timeoutMs + 1000;
  while (inFlight > 0 && nowMs() < deadline) await new Promise((r) => setTimeout(r, 20));
}

interface Answer {
  ok: boolean;
  status?: number;
  localPort?: number;
  err?: string;
}

/** One GET on a keep-alive agent, bounded by the timeout; `onSocket` sees the socket it went out on. */
function getOnce(url: URL, agent: http.Agent, timeoutMs: number, onSocket: (s: object) => void): Promise<Answer> {
  const mod = url.protocol === "https:" ? https : http;
  return new Promise((resolve) => {
    const req = mod.request(url, { method: "GET", agent, rejectUnauthorized: false }, (res) => {
      res.resume();
      const localPort = res.socket.localPort ?? 0; // the socket goes back to the agent before "end"
      res.on("end", () => resolve({ ok: res.statusCode === 200, status: res.statusCode ?? 0, localPort }));
      res.on("error", (e) => resolve({ ok: false, err: e.message }));
    });
    req.on("socket", onSocket);
    const timer = setTimeout(() => req.destroy(new Error("timeout")), timeoutMs);
    req.on("close", () => clearTimeout(timer));
    req.on("error", (e: NodeJS.ErrnoException) => resolve({ ok: false, err: e.code ?? e.message }));
    req.end();
  });
}

/** A keep-alive session: one socket for its whole life, counted, so a request never opens a second one unseen. */
function keepAliveSession(url: URL): {
  get: (timeoutMs: number) => Promise<Answer>;
  sockets: () => number;
  close: () => void;
} {
  const mod = url.protocol === "https:" ? https : http;
  const agent = new mod.Agent({ keepAlive: true, maxSockets: 1, maxTotalSockets: 1 });
  const seen = new WeakSet<object>();
  let sockets = 0;
  return {
    get: (timeoutMs) =>
      getOnce(url, agent, timeoutMs, (s) => {
        if (!seen.has(s)) sockets++;
        seen.add(s);
      }),
    sockets: () => sockets,
    close: () => agent.destroy(),
  };
}

/** "ready", or "ready (with errors)" and the first one: which flow or session, what, and how many failed. */
function readyLine(reports: { id: number; proto?: string; err?: string }[]): string {
  const failed = reports.filter((r) => r.err !== undefined);
  const first = failed[0];
  return first
    ? `ready (with errors): ${failed.length} failed, first ${first.proto ?? "session"}${first.id} ${first.err}\n`
    : "ready\n";
}

async function session(m: Map<string, string[]>): Promise<void> {
  const url = new URL(one(m, "url"));
  const out = one(m, "out");
  const count = Math.min(Number(one(m, "count", "40")), 1000);
  const gapMs = Number(one(m, "gap-ms", "200"));
  const timeoutMs = Number(one(m, "timeout-ms", "3000"));
  const s = keepAliveSession(url);
  for (let i = 0; i < count; i++) {
    const start = nowMs();
    const r = await s.get(timeoutMs);
    appendFileSync(out, `${JSON.stringify({ i, start, end: nowMs(), sockets: s.sockets(), ...r })}\n`);
    if (!r.ok || s.sockets() > 1) break;
    const wait = start + gapMs - nowMs();
    if (wait > 0) await new Promise((res) => setTimeout(res, wait));
  }
  s.close();
}

async function sessions(m: Map<string, string[]>): Promise<void> {
  const url = new URL(one(m, "url"));
  const out = one(m, "out");
  const count = Math.min(Number(one(m, "count", "100")), 20_000);
  const gapMs = Number(one(m, "gap-ms", "1000"));
  const timeoutMs = Number(one(m, "timeout-ms", "3000"));
  const maxMs = Number(one(m, "max-ms", "120000"));
  const t0 = nowMs();
  let stopping = false;
  process.on("SIGTERM", () => (stopping = true));
  process.on("SIGINT", () => (stopping = true));
  const reports: SessionReport[] = [];
  let ready = false;
  const readyCheck = (): void => {
    if (ready || !reports.every((r) => r.answered > 0 || r.err !== undefined)) return;
    ready = true;
    process.stdout.write(readyLine(reports));
  };
  const run = async (r: SessionReport): Promise<void> => {
    // spread over one gap: a steady request rate, not a burst of connects every gap
    await new Promise((res) => setTimeout(res, (r.id * gapMs) / count));
    const s = keepAliveSession(url);
    let lastAnswer = nowMs();
    while (!stopping && nowMs() - t0 < maxMs) {
      const start = nowMs();
      r.requests++;
      const a = await s.get(timeoutMs);
      if (!a.ok || s.sockets() > 1) {
        r.err = a.err ?? (a.ok ? "a second connection" : `status ${a.status}`);
        r.errAt = start;
        break;
      }
      const now = nowMs();
      if (r.answered > 0) r.longestGapMs = Math.max(r.longestGapMs, now - lastAnswer);
      lastAnswer = now;
      r.answered++;
      r.localPort ??= a.localPort;
      readyCheck();
      const wait = start + gapMs - nowMs();
      if (wait > 0) await new Promise((res) => setTimeout(res, wait));
    }
    readyCheck();
    s.close();
  };
  for (let id = 0; id < count; id++) reports.push({ id, requests: 0, answered: 0, longestGapMs: 0 });
  await Promise.all(reports.map(run));
  writeFileSync(out, `${JSON.stringify({ start: t0, stoppedAt: nowMs(), gapMs, sessions: reports })}\n`);
}

interface FlowReport {
  proto: "tcp" | "udp";
  id: number;
  localPort?: number;
  sent: number;
  echoed: number;
  mismatched: number;
  err?: string;
  errAt?: number;
  firstEchoAt?: number;
  lastEchoAt?: number;
  /** gaps between consecutive echoes (or from the last echo to the stop) longer than GAP_REPORT_MS */
  gaps: [number, number][];
}

const GAP_REPORT_MS = 500;

async function flows(m: Map<string, string[]>): Promise<void> {
  const { host, port } = hostPort(one(m, "target"));
  const out = one(m, "out");
  const nTcp = Number(one(m, "tcp", "20"));
  const nUdp = Number(one(m, "udp", "5"));
  const intervalMs = Number(one(m, "interval-ms", "100"));
  const maxMs = Number(one(m, "max-ms", "120000"));
  // a gap is an interval between echoes longer than this (at a slow pace every interval would be one otherwise)
  const gapReportMs = Number(one(m, "gap-report-ms", String(GAP_REPORT_MS)));
  const t0 = nowMs();
  const reports: FlowReport[] = [];
  const senders: (() => void)[] = [];
  const closers: (() => void)[] = [];

  const echoed = (r: FlowReport): void => {
    const now = nowMs();
    const last = r.lastEchoAt ?? now;
    if (now - last > gapReportMs) r.gaps.push([last, now]);
    r.firstEchoAt ??= now;
    r.lastEchoAt = now;
    r.echoed++;
  };
  const failed = (r: FlowReport, err: string): void => {
    if (r.err !== undefined) return;
    r.err = err;
    r.errAt = nowMs();
  };

  for (let id = 0; id < nTcp; id++) {
    const r: FlowReport = { proto: "tcp", id, sent: 0, echoed: 0, mismatched: 0, gaps: [] };
    reports.push(r);
    const pending: string[] = [];
    let buf = "";
    const sock = createConnection({ host, port });
    sock.setNoDelay(true);
    sock.setEncoding("utf8");
    sock.on("connect", () => (r.localPort = sock.localPort));
    sock.on("data", (d: string) => {
      buf += d;
      for (let head = pending[0]; head !== undefined && buf.length >= head.length; head = pending[0]) {
        if (buf.slice(0, head.length) !== head) r.mismatched++;
        buf = buf.slice(head.length);
        pending.shift();
        echoed(r);
      }
    });
    sock.on("error", (e: NodeJS.ErrnoException) => failed(r, e.code ?? e.message));
    sock.on("end", () => failed(r, "closed by peer"));
    sock.on("close", () => failed(r, "closed"));
    senders.push(() => {
      if (r.err !== undefined || sock.connecting) return;
      const msg = `tcp${id}:${r.sent}\n`;
      pending.push(msg);
      r.sent++;
      sock.write(msg);
    });
    // a reset, not a close: a closing client keeps every port in TIME_WAIT for 60 s, and the load bench's next run
    // (10,000 more connections to the same echo server within the minute) then crawled through a nearly exhausted
    // port range: readiness took 37 s instead of 3-4, and the stalled event loop cost the UDP flows their echoes
    closers.push(() => sock.resetAndDestroy());
  }

  for (let id = 0; id < nUdp; id++) {
    const r: FlowReport = { proto: "udp", id, sent: 0, echoed: 0, mismatched: 0, gaps: [] };
    reports.push(r);
    const outstanding = new Set<string>();
    const sock = createSocket(host.includes(":") ? "udp6" : "udp4");
    let connected = false;
    sock.on("message", (msg) => {
      const text = msg.toString("utf8");
      if (outstanding.delete(text)) echoed(r);
      else r.mismatched++;
    });
    sock.on("error", (e: NodeJS.ErrnoException) => failed(r, e.code ?? e.message));
    sock.connect(port, host, () => {
      connected = true;
      r.localPort = sock.address().port;
    });
    senders.push(() => {
      if (r.err !== undefined || !connected) return;
      const msg = `udp${id}:${r.sent}`;
      outstanding.add(msg);
      r.sent++;
      sock.send(msg, (e) => e && failed(r, (e as NodeJS.ErrnoException).code ?? e.message));
    });
    closers.push(() => sock.close());
  }

  let stopping = false;
  process.on("SIGTERM", () => (stopping = true));
  process.on("SIGINT", () => (stopping = true));
  let ready = false;
  // A steady packet rate: each interval is cut into slices of about 10 ms and every slice sends for its share of
  // the flows. All flows at once would be a burst that overflows the echo server's socket buffer, and the flows at
  // the burst's end would lose every message, every interval, while the link is idle in between.
  const slices = Math.max(1, Math.floor(intervalMs / 10));
  for (let tick = 0; !stopping && nowMs() - t0 < maxMs; tick++) {
    const slice = tick % slices;
    const from = Math.floor((slice * senders.length) / slices);
    const to = Math.floor(((slice + 1) * senders.length) / slices);
    for (let i = from; i < to; i++) senders[i]!();
    if (!ready && slice === slices - 1 && reports.every((r) => r.echoed > 0 || r.err !== undefined)) {
      ready = true;
      process.stdout.write(readyLine(reports));
    }
    const wait = t0 + ((tick + 1) * intervalMs) / slices - nowMs();
    if (wait > 0) await new Promise((res) => setTimeout(res, wait));
  }
  const stoppedAt = nowMs();
  // the gap that is still open at the stop counts too (a flow that never recovered)
  for (const r of reports) {
    const last = r.lastEchoAt ?? t0;
    if (stoppedAt - last > gapReportMs) r.gaps.push([last, stoppedAt]);
  }
  // echoes of the last messages
  await new Promise((res) => setTimeout(res, Math.min(500, 5 * intervalMs)));
  writeFileSync(out, `${JSON.stringify({ start: t0, stoppedAt, intervalMs, flows: reports })}\n`);
  for (const close of closers) close();
}

/**
 * A scrape flood: `--connections` keep-alive connections GET `--url` back to back for `--max-ms` (bounded also by
 * `--max-requests`), with basic auth `--auth user:password` when given; prints {requests, statuses, ms} as JSON.
 */
async function flood(m: Map<string, string[]>): Promise<void> {
  const url = new URL(one(m, "url"));
  const connections = Number(one(m, "connections", "16"));
  const maxMs = Number(one(m, "max-ms", "10000"));
  const maxRequests = Number(one(m, "max-requests", "1000000"));
  const auth = m.get("auth")?.[0];
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const statuses: Record<string, number> = {};
  let requests = 0;
  const t0 = nowMs();
  const once = (): Promise<void> =>
    new Promise((resolve) => {
      const req = http.request(
        url,
        {
          agent,
          timeout: 5000,
          headers: auth ? { authorization: `Basic ${Buffer.from(auth).toString("base64")}` } : {},
        },
        (res) => {
          res.resume();
          res.on("end", () => {
            statuses[String(res.statusCode)] = (statuses[String(res.statusCode)] ?? 0) + 1;
            resolve();
          });
        },
      );
      req.on("timeout", () => req.destroy(new Error("timeout")));
      req.on("error", (e: NodeJS.ErrnoException) => {
        statuses[e.code ?? e.message] = (statuses[e.code ?? e.message] ?? 0) + 1;
        resolve();
      });
      req.end();
    });
  const loop = async (): Promise<void> => {
    while (nowMs() - t0 < maxMs && requests < maxRequests) {
      requests++;
      await once();
    }
  };
  await Promise.all(Array.from({ length: connections }, loop));
  agent.destroy();
  process.stdout.write(`${JSON.stringify({ requests, statuses, ms: Math.round(nowMs() - t0) })}\n`);
}

async function main(): Promise<void> {
  const [mode, ...rest] = process.argv.slice(2);
  const m = options(rest);
  if (mode === "serve") await serve(m);
  else if (mode === "relay") await relay(m);
  else if (mode === "client") {
    await client(m);
    process.exit(0);
  } else if (mode === "session") {
    await session(m);
    process.exit(0);
  } else if (mode === "sessions") {
    await sessions(m);
    process.exit(0);
  } else if (mode === "flows") {
    await flows(m);
    process.exit(0);
  } else if (mode === "ask") {
    await ask(m);
    process.exit(0);
  } else if (mode === "poll") {
    await poll(m);
    process.exit(0);
  } else if (mode === "probe") {
    await probe();
    process.exit(0);
  } else if (mode === "flood") {
    await flood(m);
    process.exit(0);
  } else
    throw new Error(
      `unknown mode ${mode ?? "(none)"}: serve | relay | client | session | sessions | flows | ask | poll | probe | flood`,
    );
}

main().catch((e: unknown) => {
  process.stderr.write(`helper: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
