/**
 * The lab's stand-in programs, run inside the namespaces with plain `node` (the lab compiles this file once per
 * run with swc, so a start costs tens of milliseconds, not a TypeScript compiler start). Node built-ins only.
 *
 *   serve --name N [--https A:P --cert F --key F]... [--http A:P]... [--echo A:P]... [--banner A:P]...
 *       HTTP(S): GET /readyz answers 200 "ok" (a Kubernetes API's readiness), any other path a JSON line
 *       {"server":N,"peer":<client address as seen here>,"local":<address:port>}. echo: TCP and UDP echo.
 *       banner: an SSH stand-in that sends an SSH identification line. Prints "ready" once everything listens.
 *   client --url URL --out FILE [--interval-ms 10] [--timeout-ms 3000] [--max-ms 60000] [--max-requests 100000]
 *       The DESIGN.md client: a new TCP connection every interval, requests concurrent, each with its own timeout;
 *       one JSON line per finished request {i,start,end,ok,status?,server?,peer?,err?} (epoch ms). Stops on
 *       SIGTERM/SIGINT or at a bound, waits for requests in flight (bounded by the timeout), then exits 0.
 */
import { createSocket } from "node:dgram";
import { appendFileSync, readFileSync } from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import { createServer as createTcpServer } from "node:net";
import { performance } from "node:perf_hooks";

function nowMs(): number {
  return performance.timeOrigin + performance.now();
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

function listen(server: { listen: (port: number, host: string, cb: () => void) => unknown; once: (e: "error", cb: (err: Error) => void) => unknown }, at: string): Promise<void> {
  const { host, port } = hostPort(at);
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
}

async function serve(m: Map<string, string[]>): Promise<void> {
  const name = one(m, "name");
  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    if (req.url === "/readyz") {
      res.writeHead(200, { "content-type": "text/plain" }).end("ok");
      return;
    }
    const body = JSON.stringify({ server: name, peer: req.socket.remoteAddress, local: `${req.socket.localAddress}:${req.socket.localPort}` });
    res.writeHead(200, { "content-type": "application/json", connection: "close" }).end(`${body}\n`);
  };
  const waits: Promise<void>[] = [];
  for (const at of m.get("http") ?? []) waits.push(listen(http.createServer(handler), at));
  const httpsAt = m.get("https") ?? [];
  if (httpsAt.length > 0) {
    const tls = { cert: readFileSync(one(m, "cert")), key: readFileSync(one(m, "key")) };
    for (const at of httpsAt) waits.push(listen(https.createServer(tls, handler), at));
  }
  for (const at of m.get("echo") ?? []) {
    waits.push(listen(createTcpServer((s) => s.on("error", () => s.destroy()).pipe(s)), at));
    const { host, port } = hostPort(at);
    const udp = createSocket(host.includes(":") ? "udp6" : "udp4");
    udp.on("message", (msg, rinfo) => udp.send(msg, rinfo.port, rinfo.address));
    waits.push(new Promise((resolve, reject) => {
      udp.once("error", reject);
      udp.bind(port, host, () => resolve());
    }));
  }
  for (const at of m.get("banner") ?? []) {
    waits.push(listen(createTcpServer((s) => {
      s.on("error", () => s.destroy());
      s.end("SSH-2.0-edgepair-lab\r\n");
    }), at));
  }
  await Promise.all(waits);
  process.stdout.write("ready\n");
}

interface RequestRecord {
  i: number;
  start: number;
  end: number;
  ok: boolean;
  status?: number;
  server?: string;
  peer?: string;
  err?: string;
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
    const req = mod.request(url, { method: "GET", agent: false, rejectUnauthorized: false, timeout: timeoutMs, headers: { connection: "close" } }, (res) => {
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
        finish({ ok, status: res.statusCode ?? 0, ...(who.server ? { server: who.server } : {}), ...(who.peer ? { peer: who.peer.replace(/^::ffff:/, "") } : {}) });
      });
      res.on("error", (e) => finish({ ok: false, err: e.message }));
    });
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

async function main(): Promise<void> {
  const [mode, ...rest] = process.argv.slice(2);
  const m = options(rest);
  if (mode === "serve") await serve(m);
  else if (mode === "client") {
    await client(m);
    process.exit(0);
  } else throw new Error(`unknown mode ${mode ?? "(none)"}: serve | client`);
}

main().catch((e: unknown) => {
  process.stderr.write(`helper: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
