/**
 * The metrics endpoint behind the metrics password. HAProxy's listener on <lbAddress>:<metrics.port> hands every
 * path but its monitor URI to this server's socket; here HTTP basic auth (user `edgepair`) is checked against the
 * password file, read again when it changes (rotation needs no restart), and compared in constant time.
 *
 * A scrape flood must not slow the data path: whatever the request rate, the agent collects (its own series,
 * `conntrackd -s`, HAProxy's servers and its exporter) at most once per `minIntervalMs`, one collection at a time,
 * and every other scrape gets that text; connections are capped here and by HAProxy's listener (maxconn).
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { chmodSync, readFileSync, rmSync, statSync } from "node:fs";
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { HAPROXY_METRICS_PATH, HAPROXY_STATS_URI } from "../../render/haproxy";
import { METRICS_USER } from "../../k8s/scrape-config";
import type { AgentMetrics, Snapshot } from "./registry";

const REALM = "edgepair metrics";
const MAX_CONNECTIONS = 64;
/** HAProxy's exporter text for a few thousand servers is a few MB; more is not HAProxy's exporter. */
const MAX_EXPORTER_BYTES = 32 * 1024 * 1024;
const EXPORTER_TIMEOUT_MS = 3000;

export interface MetricsServerOptions {
  /** A UNIX socket path as this process reaches it, or a TCP address (tests). */
  listen: string | { host: string; port: number };
  /** The metrics password (0600); absent or empty: every scrape gets 503 until it is delivered. */
  passwordFile: string;
  /** HAProxy's exporter socket as this process reaches it. */
  exporterSocket: string;
  metrics: AgentMetrics;
  /** What is current (asked once per collection). */
  snapshot: () => Promise<Snapshot>;
  log: (line: string) => void;
  /** Default 1000. */
  minIntervalMs?: number;
}

/** How the last collections went (tests and the bench). */
export interface MetricsServerStats {
  collections: number;
  requests: number;
  refused: number;
}

export class MetricsServer {
  private server: Server | undefined;
  private cached: { at: number; body: string } | undefined;
  private collecting: Promise<string> | undefined;
  private password: { checkedAt: number; mtimeMs: number; digest: Buffer | undefined } | undefined;
  readonly stats: MetricsServerStats = { collections: 0, requests: 0, refused: 0 };

  constructor(private readonly o: MetricsServerOptions) {}

  async start(): Promise<void> {
    const server = createServer((req, res) => void this.handle(req, res));
    server.maxConnections = MAX_CONNECTIONS;
    server.headersTimeout = 5000;
    server.requestTimeout = 10_000;
    server.keepAliveTimeout = 5000;
    const listen = this.o.listen;
    if (typeof listen === "string") rmSync(listen, { force: true }); // a socket left by the previous agent
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      if (typeof listen === "string") server.listen(listen, resolve);
      else server.listen(listen.port, listen.host, resolve);
    });
    // HAProxy connects as its own user; anyone who reaches the socket still needs the password
    if (typeof listen === "string") chmodSync(listen, 0o666);
    server.on("error", (e) => this.o.log(`metrics: ${e.message}`));
    this.server = server;
  }

  /** The TCP port listened on (tests that listen on port 0). */
  get port(): number | undefined {
    const a = this.server?.address();
    return a && typeof a === "object" ? a.port : undefined;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    if (typeof this.o.listen === "string") rmSync(this.o.listen, { force: true });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.stats.requests++;
    try {
      if (req.method !== "GET" && req.method !== "HEAD") return reply(res, 405, "GET only\n");
      const digest = this.passwordDigest();
      if (!digest) return reply(res, 503, "the metrics password has not been delivered to this LB yet\n");
      if (!authorized(req.headers.authorization, digest)) {
        this.stats.refused++;
        this.o.metrics.authFailures.inc();
        res.setHeader("WWW-Authenticate", `Basic realm="${REALM}", charset="UTF-8"`);
        return reply(res, 401, "wrong or missing metrics password\n");
      }
      const path = (req.url ?? "/").split("?")[0];
      if (path === HAPROXY_METRICS_PATH) {
        const body = await this.collect();
        res.setHeader("Content-Type", this.o.metrics.registry.contentType);
        return reply(res, 200, req.method === "HEAD" ? "" : body);
      }
      if (path === HAPROXY_STATS_URI || path?.startsWith(`${HAPROXY_STATS_URI};`)) {
        const page = await exporterGet(this.o.exporterSocket, req.url ?? HAPROXY_STATS_URI);
        res.setHeader("Content-Type", page.contentType);
        return reply(res, page.status, page.body);
      }
      return reply(res, 404, `${HAPROXY_METRICS_PATH} or ${HAPROXY_STATS_URI}\n`);
    } catch (e) {
      this.o.log(`metrics: ${e instanceof Error ? e.message : String(e)}`);
      if (!res.headersSent) reply(res, 500, "the agent could not collect its metrics; see its journal\n");
      else res.destroy();
    }
  }

  /** The password's digest, the file read again only when it changed (looked at no more than once a second). */
  private passwordDigest(): Buffer | undefined {
    const now = Date.now();
    if (this.password && now - this.password.checkedAt < 1000) return this.password.digest;
    let mtimeMs = -1;
    try {
      mtimeMs = statSync(this.o.passwordFile).mtimeMs;
    } catch {
      // not delivered yet
    }
    if (this.password && this.password.mtimeMs === mtimeMs) {
      this.password.checkedAt = now;
      return this.password.digest;
    }
    let digest: Buffer | undefined;
    try {
      const text = readFileSync(this.o.passwordFile, "utf8").replace(/\r?\n$/, "");
      digest = text === "" ? undefined : sha256(text);
    } catch {
      digest = undefined;
    }
    this.password = { checkedAt: now, mtimeMs, digest };
    return digest;
  }

  private async collect(): Promise<string> {
    const min = this.o.minIntervalMs ?? 1000;
    if (this.cached && Date.now() - this.cached.at < min) return this.cached.body;
    this.collecting ??= this.collectNow().finally(() => (this.collecting = undefined));
    return this.collecting;
  }

  private async collectNow(): Promise<string> {
    this.stats.collections++;
    const [snapshot, exporter] = await Promise.all([
      this.o.snapshot(),
      exporterGet(this.o.exporterSocket, HAPROXY_METRICS_PATH).catch((e: unknown) => {
        this.o.log(`metrics: HAProxy's exporter: ${e instanceof Error ? e.message : String(e)}`);
        return undefined;
      }),
    ]);
    const haproxy = exporter?.status === 200 ? exporter.body : undefined;
    this.o.metrics.exporterUp.set(haproxy !== undefined ? 1 : 0);
    this.o.metrics.observe(snapshot);
    const body = `${await this.o.metrics.registry.metrics()}\n${haproxy ?? ""}`;
    this.cached = { at: Date.now(), body };
    return body;
  }
}

function sha256(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}

/** `Authorization: Basic base64(user:password)` for METRICS_USER and the password; constant time in the password. */
export function authorized(header: string | undefined, digest: Buffer): boolean {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header ?? "");
  if (!m) return false;
  const decoded = Buffer.from(m[1]!, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  if (colon < 0) return false;
  const passwordOk = timingSafeEqual(sha256(decoded.slice(colon + 1)), digest);
  return decoded.slice(0, colon) === METRICS_USER && passwordOk;
}

function reply(res: ServerResponse, status: number, body: string): void {
  res.statusCode = status;
  if (!res.hasHeader("Content-Type")) res.setHeader("Content-Type", "text/plain; charset=utf-8");
  res.end(body);
}

/** A GET on HAProxy's exporter socket: bounded in time and size. */
function exporterGet(socketPath: string, path: string): Promise<{ status: number; contentType: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: "GET", timeout: EXPORTER_TIMEOUT_MS }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (c: Buffer) => {
        size += c.length;
        if (size > MAX_EXPORTER_BYTES) req.destroy(new Error(`more than ${MAX_EXPORTER_BYTES} bytes`));
        else chunks.push(c);
      });
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 502,
          contentType: String(res.headers["content-type"] ?? "text/plain"),
          body: Buffer.concat(chunks).toString("utf8"),
        }),
      );
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`no answer within ${EXPORTER_TIMEOUT_MS} ms`)));
    req.on("error", reject);
    req.end();
  });
}
