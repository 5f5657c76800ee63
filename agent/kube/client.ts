/**
 * The agent's connection to the cluster API: the control-plane addresses directly (never the pair's own VIP, so a
 * broken local HAProxy cannot lock the agent out), verified against the API's TLS name and CA, authenticated with
 * the bearer token in a 0600 file that is re-read whenever the file changes (token rotation replaces it).
 *
 * @kubernetes/client-node builds the TLS and auth options (KubeConfig with `tls-server-name`, a custom
 * Authenticator); requests go out over node:https with those options as raw JSON, because the typed client
 * cannot abort a watch before its response headers arrive (a stop() would leave a socket behind) and its
 * serializer drops keys it does not model. Every request is bounded in time; a connection failure moves on to the
 * next API server, and the one that answered is tried first next time.
 *
 * The token is never logged, never put in an error and never returned.
 */
import { readFile, stat } from "node:fs/promises";
import { request as httpsRequest, type RequestOptions } from "node:https";
import type { IncomingMessage } from "node:http";
import type * as K8s from "@kubernetes/client-node" with { "resolution-mode": "import" };
import { bootstrapTokenPath, type ClusterAccess } from "../../spec/agent-settings";

export type { K8s };
// @kubernetes/client-node 1.x is ESM-only and this project compiles to CommonJS (module node16): loaded with
// require (native require(esm) on Node >= 20.19; jest rewrites it, see jest.config.js).
export const k8s = require("@kubernetes/client-node") as typeof K8s;

/** The longest watch event line taken (a Node with every image listed is some hundred kB). */
export const MAX_WATCH_LINE = 16 * 1024 * 1024;

/** One answered request, for metrics and for tests that prove no request needed more than the agent's Role. */
export interface ResponseRecord {
  method: string;
  /** Path and query; never carries a secret (the token travels in a header). */
  path: string;
  server: string;
  /** HTTP status, or "error" when no response came. */
  status: number | "error";
  ms: number;
}

export interface KubeClientOptions {
  /** Bound on one request from connect to the last byte (a watch: until its response headers). Default 10 s. */
  requestTimeoutMs?: number;
  onResponse?: (r: ResponseRecord) => void;
}

export interface RequestOptionsIn {
  body?: unknown;
  contentType?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** The API server answered with a non-2xx status (its Status object's reason and message; never our token). */
export class KubeApiError extends Error {
  constructor(
    readonly method: string,
    readonly path: string,
    readonly statusCode: number,
    readonly reason: string | undefined,
    serverMessage: string,
  ) {
    super(`${method} ${path}: ${statusCode}${reason ? ` ${reason}` : ""}${serverMessage ? `: ${serverMessage}` : ""}`);
    this.name = "KubeApiError";
  }
}

/** No API server answered: each one's failure (connection refused, TLS, timeout). */
export class KubeUnreachableError extends Error {
  constructor(
    readonly method: string,
    readonly path: string,
    readonly failures: { server: string; message: string }[],
  ) {
    super(`${method} ${path}: no API server answered (${failures.map((f) => `${f.server}: ${f.message}`).join("; ")})`);
    this.name = "KubeUnreachableError";
  }
}

export class AbortedError extends Error {
  constructor(what: string) {
    super(`${what}: aborted`);
    this.name = "AbortedError";
  }
}

/** An open watch stream: lines as they arrive, then exactly one `done` (null when the server closed it). */
export interface StreamHandlers {
  onLine(line: string): void;
  done(err: Error | null): void;
}

interface FileIdentity {
  ino: number;
  size: number;
  mtimeMs: number;
}

const sameFile = (a: FileIdentity | undefined, b: FileIdentity | undefined) =>
  a !== undefined && b !== undefined && a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs;

/**
 * The bearer token from tokenFile, re-read when the file changes (stat per request: rotation renames a new file in).
 * After a 401 it may switch to the bootstrap token (bootstrapTokenPath) until tokenFile changes again: a VM that
 * was off longer than a short-lived token lives would otherwise be locked out for good.
 */
export class TokenFileAuth {
  private token: string | undefined;
  private identity: FileIdentity | undefined;
  /** tokenFile's identity when it was found refused; the bootstrap token is used while the file stays so. */
  private refusedIdentity: FileIdentity | undefined;

  constructor(readonly tokenFile: string) {}

  async bearer(): Promise<string> {
    const id = await this.identityOf(this.tokenFile, "cluster.tokenFile");
    if (this.refusedIdentity && sameFile(id, this.refusedIdentity)) {
      const fallback = await this.readToken(bootstrapTokenPath(this.tokenFile), "bootstrap token file");
      if (fallback !== undefined) return fallback;
    }
    this.refusedIdentity = undefined;
    if (!sameFile(id, this.identity) || this.token === undefined) {
      const t = await this.readToken(this.tokenFile, "cluster.tokenFile");
      if (t === undefined) throw new Error(`cluster.tokenFile: ${this.tokenFile} is empty`);
      this.token = t;
      this.identity = id;
    }
    return this.token;
  }

  /** After a 401 with tokenFile's token: true when a bootstrap token exists to try instead. */
  async refused(): Promise<boolean> {
    if (this.refusedIdentity) return false; // the bootstrap token was refused too
    const fallback = await this.readToken(bootstrapTokenPath(this.tokenFile), "bootstrap token file").catch(
      () => undefined,
    );
    if (fallback === undefined || fallback === this.token) return false;
    this.refusedIdentity = await this.identityOf(this.tokenFile, "cluster.tokenFile");
    return true;
  }

  get usingBootstrapToken(): boolean {
    return this.refusedIdentity !== undefined;
  }

  private async identityOf(path: string, field: string): Promise<FileIdentity> {
    try {
      const s = await stat(path);
      return { ino: s.ino, size: s.size, mtimeMs: s.mtimeMs };
    } catch (e) {
      throw new Error(`${field}: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? "error"}`);
    }
  }

  private async readToken(path: string, field: string): Promise<string | undefined> {
    let text: string;
    try {
      text = await readFile(path, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT" && field !== "cluster.tokenFile") return undefined;
      throw new Error(`${field}: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? "error"}`);
    }
    const t = text.trim();
    return t.length > 0 ? t : undefined;
  }

  /** client-node's Authenticator: the Authorization header for whatever KubeConfig request is built. */
  authenticator(userName: string): Parameters<K8s.KubeConfig["addAuthenticator"]>[0] {
    return {
      isAuthProvider: (user) => user.name === userName,
      applyAuthentication: async (_user, opts) => {
        const headers = (opts.headers ??= {}) as Record<string, string>;
        headers.Authorization = `Bearer ${await this.bearer()}`;
      },
    };
  }
}

const USER = "edgepair-agent";

/** A KubeConfig for one control-plane address: the API's TLS name, its CA, the token file's bearer token. */
export function kubeConfigFor(cluster: ClusterAccess, server: string, auth: TokenFileAuth): K8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  const name = `api-${server}`;
  kc.loadFromOptions({
    clusters: [
      {
        name,
        server: server.replace(/\/$/, ""),
        tlsServerName: cluster.tlsServerName,
        skipTLSVerify: false,
        ...(cluster.caCertificate ? { caData: Buffer.from(cluster.caCertificate).toString("base64") } : {}),
      },
    ],
    users: [{ name: USER }],
    contexts: [{ name, cluster: name, user: USER, namespace: cluster.namespace }],
    currentContext: name,
  });
  kc.addAuthenticator(auth.authenticator(USER));
  return kc;
}

/** Statuses that say "this API server cannot answer now" rather than "this request is wrong": try the next one. */
const UNAVAILABLE = new Set([502, 503, 504]);

interface Attempt {
  res: IncomingMessage;
  server: string;
  started: number;
  /** Ends the request (used by streams); idempotent. */
  destroy(err?: Error): void;
}

export class KubeClient {
  readonly servers: readonly string[];
  readonly auth: TokenFileAuth;
  private readonly configs: K8s.KubeConfig[];
  private current = 0;
  private readonly timeoutMs: number;

  constructor(
    readonly cluster: ClusterAccess,
    private readonly options: KubeClientOptions = {},
  ) {
    this.auth = new TokenFileAuth(cluster.tokenFile);
    this.servers = cluster.apiServers.map((s) => s.replace(/\/$/, ""));
    this.configs = this.servers.map((s) => kubeConfigFor(cluster, s, this.auth));
    this.timeoutMs = options.requestTimeoutMs ?? 10_000;
  }

  /** The API server that answered last (tried first). */
  get currentServer(): string {
    return this.servers[this.current] as string;
  }

  /** The KubeConfig of the API server tried first, for client-node API clients. */
  get kubeConfig(): K8s.KubeConfig {
    return this.configs[this.current] as K8s.KubeConfig;
  }

  /** One request; the parsed JSON body (undefined when empty), or KubeApiError / KubeUnreachableError / AbortedError. */
  async request(method: string, path: string, opts: RequestOptionsIn = {}): Promise<unknown> {
    const a = await this.open(method, path, opts, false);
    const text = await readBody(
      a.res,
      opts.signal,
      a.started + (opts.timeoutMs ?? this.timeoutMs) - Date.now(),
      `${method} ${path}`,
    ).finally(() => a.destroy());
    this.record(method, path, a.server, a.res.statusCode ?? 0, a.started);
    const status = a.res.statusCode ?? 0;
    const body = parseJson(text);
    if (status < 200 || status > 299) throw apiError(method, path, status, body, text);
    return body;
  }

  /**
   * A watch (or any streaming GET): resolves once the response headers say 200, then hands over lines until the
   * server ends it, `idleTimeoutMs` passes without a byte, or `signal` aborts (no `done` then: the aborter knows).
   */
  async stream(
    path: string,
    handlers: StreamHandlers,
    opts: { signal: AbortSignal; idleTimeoutMs: number },
  ): Promise<void> {
    const a = await this.open("GET", path, { signal: opts.signal }, true);
    const status = a.res.statusCode ?? 0;
    if (status !== 200) {
      const text = await readBody(a.res, opts.signal, this.timeoutMs, `GET ${path}`).finally(() => a.destroy());
      this.record("GET", path, a.server, status, a.started);
      throw apiError("GET", path, status, parseJson(text), text);
    }
    this.record("GET", path, a.server, status, a.started);
    if (opts.signal.aborted) {
      a.destroy(); // aborted while the headers were on their way: no listener would ever fire
      return;
    }
    let finished = false;
    const finish = (err: Error | null) => {
      if (finished) return;
      finished = true;
      clearTimeout(idle);
      opts.signal.removeEventListener("abort", onAbort);
      a.destroy();
      if (!opts.signal.aborted) handlers.done(err);
    };
    const onAbort = () => finish(null);
    let idle = setTimeout(
      () => finish(new Error(`GET ${path}: no data for ${opts.idleTimeoutMs} ms`)),
      opts.idleTimeoutMs,
    );
    opts.signal.addEventListener("abort", onAbort, { once: true });
    let partial = "";
    a.res.setEncoding("utf8");
    a.res.on("data", (chunk: string) => {
      clearTimeout(idle);
      idle = setTimeout(
        () => finish(new Error(`GET ${path}: no data for ${opts.idleTimeoutMs} ms`)),
        opts.idleTimeoutMs,
      );
      partial += chunk;
      // one watch event is one object: a line this long is no Node or LoadBalancer, and would grow without bound
      if (partial.length > MAX_WATCH_LINE && partial.indexOf("\n") < 0) {
        finish(new Error(`GET ${path}: a watch event longer than ${MAX_WATCH_LINE / (1024 * 1024)} MiB`));
        return;
      }
      let nl: number;
      while ((nl = partial.indexOf("\n")) >= 0 && !finished) {
        const line = partial.slice(0, nl).trim();
        partial = partial.slice(nl + 1);
        if (line.length > 0) handlers.onLine(line);
      }
    });
    a.res.on("end", () => finish(null));
    a.res.on("error", (e) => finish(e));
    a.res.on("close", () => finish(a.res.complete ? null : new Error(`GET ${path}: connection closed`)));
  }

  private record(method: string, path: string, server: string, status: number | "error", started: number): void {
    this.options.onResponse?.({ method, path, server, status, ms: Date.now() - started });
  }

  /** Response headers from the first API server that answers, starting with the one that answered last. */
  private async open(method: string, path: string, opts: RequestOptionsIn, streaming: boolean): Promise<Attempt> {
    // a missing or empty token file is its own error (naming the field), not "every API server failed"
    await this.auth.bearer();
    const failures: { server: string; message: string }[] = [];
    let retriedWithBootstrap = false;
    for (let i = 0; i < this.servers.length; i++) {
      const idx = (this.current + i) % this.servers.length;
      const server = this.servers[idx] as string;
      if (opts.signal?.aborted) throw new AbortedError(`${method} ${path}`);
      let a: Attempt;
      const t0 = Date.now();
      try {
        a = await this.attempt(idx, method, path, opts, streaming);
      } catch (e) {
        if (e instanceof AbortedError) throw e;
        this.record(method, path, server, "error", t0);
        failures.push({ server, message: (e as Error).message });
        continue;
      }
      const status = a.res.statusCode ?? 0;
      if (UNAVAILABLE.has(status) && i < this.servers.length - 1) {
        a.destroy();
        this.record(method, path, server, status, a.started);
        failures.push({ server, message: `HTTP ${status}` });
        continue;
      }
      if (status === 401 && !retriedWithBootstrap && (await this.auth.refused())) {
        a.destroy();
        this.record(method, path, server, status, a.started);
        retriedWithBootstrap = true;
        i--; // same server, the bootstrap token
        continue;
      }
      this.current = idx;
      return a;
    }
    throw new KubeUnreachableError(method, path, failures);
  }

  private async attempt(
    idx: number,
    method: string,
    path: string,
    opts: RequestOptionsIn,
    streaming: boolean,
  ): Promise<Attempt> {
    const kc = this.configs[idx] as K8s.KubeConfig;
    const server = this.servers[idx] as string;
    const body = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    const reqOpts: RequestOptions = {
      method,
      headers: {
        Accept: "application/json",
        ...(body === undefined
          ? {}
          : { "Content-Type": opts.contentType ?? "application/json", "Content-Length": Buffer.byteLength(body) }),
      },
    };
    await kc.applyToHTTPSOptions(reqOpts);
    const started = Date.now();
    const timeoutMs = opts.timeoutMs ?? this.timeoutMs;
    return new Promise<Attempt>((resolve, reject) => {
      const req = httpsRequest(new URL(server + path), reqOpts);
      let settled = false;
      const destroy = (err?: Error) => {
        clearTimeout(timer);
        opts.signal?.removeEventListener("abort", onAbort);
        req.destroy(err);
      };
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        destroy();
        reject(err);
      };
      const onAbort = () => fail(new AbortedError(`${method} ${path}`));
      const timer = setTimeout(() => fail(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
      opts.signal?.addEventListener("abort", onAbort, { once: true });
      if (opts.signal?.aborted) onAbort(); // aborted while the credentials were read
      req.on("error", (e: NodeJS.ErrnoException) =>
        fail(new Error(e.code && !e.message.includes(e.code) ? `${e.code}: ${e.message}` : e.message)),
      );
      req.on("response", (res) => {
        if (settled) {
          res.destroy();
          return;
        }
        settled = true;
        // a stream's own timers take over; a request's overall deadline is enforced by readBody
        clearTimeout(timer);
        if (streaming) res.socket.setKeepAlive(true, 15_000);
        resolve({ res, server, started, destroy });
      });
      req.end(body);
    });
  }
}

function readBody(
  res: IncomingMessage,
  signal: AbortSignal | undefined,
  remainingMs: number,
  what: string,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (err: Error | undefined, text?: string) => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      if (err) {
        res.destroy();
        reject(err);
      } else resolve(text ?? "");
    };
    const onAbort = () => done(new AbortedError(what));
    const timer = setTimeout(
      () => done(new Error(`${what}: response not complete within the time limit`)),
      Math.max(remainingMs, 1),
    );
    signal?.addEventListener("abort", onAbort, { once: true });
    res.on("data", (c: Buffer) => {
      size += c.length;
      // a Node list of a large cluster is tens of MB; anything far beyond is not an API answer
      if (size > 256 * 1024 * 1024) done(new Error(`${what}: response larger than 256 MiB`));
      else chunks.push(c);
    });
    res.on("end", () => done(undefined, Buffer.concat(chunks).toString("utf8")));
    res.on("error", (e) => done(e));
    res.on("aborted", () => done(new Error(`${what}: connection closed`)));
  });
}

function parseJson(text: string): unknown {
  if (text.length === 0) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

function apiError(method: string, path: string, status: number, body: unknown, text: string): KubeApiError {
  const s = typeof body === "object" && body !== null ? (body as { reason?: unknown; message?: unknown }) : {};
  const message = typeof s.message === "string" ? s.message : text.slice(0, 512);
  return new KubeApiError(method, path, status, typeof s.reason === "string" ? s.reason : undefined, message);
}

/** True for errors that say the API was away or busy (retry later), false for ones a retry will not fix. */
export function isTransient(e: unknown): boolean {
  if (e instanceof KubeUnreachableError) return true;
  if (e instanceof KubeApiError) return e.statusCode === 429 || e.statusCode >= 500;
  return !(e instanceof AbortedError);
}
