/**
 * Keeps the agent's API token fresh: a TokenRequest for its own ServiceAccount (the Role allows `create
 * serviceaccounts/token` on that one name) well before the current token expires, written atomically, 0600, to
 * cluster.tokenFile, where the client picks it up on its next request (client.ts re-reads the file when it changes).
 *
 * The first token is the long-lived one delivered at bootstrap (the ServiceAccount's token Secret; a JWT without
 * `exp`). Before it is replaced it is kept, 0600, at bootstrapTokenPath(tokenFile): a VM that was off longer than a
 * short-lived token lives comes back with an expired tokenFile, and the client then falls back to that token once
 * (on 401) to get a new one — otherwise the LB would be locked out for good.
 *
 * The token is never logged, never put in an error or an event; only its expiry time leaves this module.
 */
import { randomBytes } from "node:crypto";
import { open, readFile, rename, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { z } from "zod";
import { agentNames } from "../../k8s/names";
import { bootstrapTokenPath } from "../../spec/agent-settings";
import { isTransient, type KubeClient } from "./client";
import { Backoff, type BackoffOptions } from "./watch";

/** Writes `content` to `path` so readers see the old file or the new one, never a partial one; mode 0600. */
export async function writeSecretFileAtomic(path: string, content: string): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
  try {
    const fh = await open(tmp, "wx", 0o600);
    try {
      await fh.chmod(0o600); // whatever the umask
      await fh.writeFile(content);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw new Error(`cannot write ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  // the rename itself must reach the disk, or a crash could bring back the old token
  const dir = await open(dirname(path), "r");
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

/** iat/exp of a JWT (seconds), read without verifying: only to schedule renewal. undefined when not a JWT. */
export function jwtTimes(token: string): { iat?: number; exp?: number } | undefined {
  const parts = token.split(".");
  if (parts.length !== 3) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(parts[1] as string, "base64url").toString("utf8")) as {
      iat?: unknown;
      exp?: unknown;
    };
    return {
      ...(typeof claims.iat === "number" ? { iat: claims.iat } : {}),
      ...(typeof claims.exp === "number" ? { exp: claims.exp } : {}),
    };
  } catch {
    return undefined;
  }
}

const tokenRequestReply = z.object({
  status: z.object({ token: z.string().min(1), expirationTimestamp: z.string() }),
});

export interface TokenKeeperOptions {
  /** Lifetime asked for. Default 24 h (the API server may shorten it; the reply's expiry is what counts). */
  expirationSeconds?: number;
  /** Renew once this share of the lifetime has passed (jittered by 5 %). Default 0.8, as the kubelet does. */
  renewAt?: number;
  /** Back-off of failed renewals; capped well below the remaining lifetime. */
  backoff?: BackoffOptions;
  onRenewed?: (info: { expiresAt: Date }) => void;
  onError?: (message: string) => void;
  now?: () => number;
}

export class TokenKeeper {
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private inFlight: Promise<unknown> | undefined;
  private readonly backoff: Backoff;
  private readonly now: () => number;
  private expiry: Date | undefined;

  constructor(
    private readonly client: KubeClient,
    private readonly o: TokenKeeperOptions = {},
  ) {
    this.backoff = new Backoff(o.backoff ?? { initialMs: 1000, maxMs: 60_000 });
    this.now = o.now ?? Date.now;
  }

  get expiresAt(): Date | undefined {
    return this.expiry;
  }

  /** Schedules renewal from the current token's own expiry (at once when it has none: the bootstrap token). */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    const token = await readFile(this.client.cluster.tokenFile, "utf8").catch(() => "");
    const t = jwtTimes(token.trim());
    if (t?.exp !== undefined) this.expiry = new Date(t.exp * 1000);
    this.schedule(t?.exp === undefined ? 0 : this.renewDelay(t.iat, t.exp));
  }

  /** A new token now; resolves with its expiry. */
  async renewNow(): Promise<{ expiresAt: Date }> {
    const p = this.renew();
    this.inFlight = p.catch(() => undefined);
    return p;
  }

  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.inFlight;
  }

  private renewDelay(iat: number | undefined, exp: number): number {
    const expMs = exp * 1000;
    const start = iat !== undefined ? iat * 1000 : this.now();
    const share = (this.o.renewAt ?? 0.8) * (0.95 + Math.random() * 0.1);
    return Math.max(0, start + (expMs - start) * Math.min(share, 0.95) - this.now());
  }

  private schedule(ms: number): void {
    if (!this.running) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const p = this.renew().then(
        () => this.backoff.reset(),
        (e: unknown) => {
          this.o.onError?.(`token renewal: ${e instanceof Error ? e.message : String(e)}`);
          // retry sooner than the token runs out; a permanent refusal still retries, slowly
          const left = this.expiry ? this.expiry.getTime() - this.now() : Infinity;
          const delay = Math.min(this.backoff.next() * (isTransient(e) ? 1 : 4), Math.max(1000, left / 4));
          this.schedule(delay);
        },
      );
      this.inFlight = p;
    }, ms);
  }

  private async renew(): Promise<{ expiresAt: Date }> {
    const c = this.client.cluster;
    const sa = agentNames({ name: c.loadBalancerName, namespace: c.namespace }).serviceAccount;
    const reply = await this.client.request(
      "POST",
      `/api/v1/namespaces/${encodeURIComponent(c.namespace)}/serviceaccounts/${encodeURIComponent(sa)}/token`,
      {
        body: {
          apiVersion: "authentication.k8s.io/v1",
          kind: "TokenRequest",
          spec: { expirationSeconds: this.o.expirationSeconds ?? 86_400 },
        },
      },
    );
    const parsed = tokenRequestReply.safeParse(reply);
    if (!parsed.success) throw new Error("TokenRequest: the reply carries no token");
    const { token, expirationTimestamp } = parsed.data.status;
    await this.keepBootstrapToken();
    await writeSecretFileAtomic(c.tokenFile, `${token}\n`);
    const expiresAt = new Date(expirationTimestamp);
    this.expiry = expiresAt;
    const t = jwtTimes(token);
    this.schedule(t?.exp !== undefined ? this.renewDelay(t.iat, t.exp) : (expiresAt.getTime() - this.now()) * 0.8);
    this.o.onRenewed?.({ expiresAt });
    return { expiresAt };
  }

  /** The token in tokenFile has no expiry (the bootstrap token): keep it before it is replaced. */
  private async keepBootstrapToken(): Promise<void> {
    const path = this.client.cluster.tokenFile;
    const current = (await readFile(path, "utf8").catch(() => "")).trim();
    if (current.length === 0 || jwtTimes(current)?.exp !== undefined) return;
    await writeSecretFileAtomic(bootstrapTokenPath(path), `${current}\n`);
  }
}
