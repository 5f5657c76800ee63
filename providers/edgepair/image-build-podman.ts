/**
 * Running podman for the image providers (image-build.ts, image-build-disk.ts) without leaking registry
 * credentials. The credentials never reach a command line (every user on the host can read /proc/<pid>/cmdline) nor
 * the environment: they go into a containers-auth.json (`--authfile`) in a fresh 0700 temp dir, the file 0600,
 * removed when the command ends, whatever the outcome. Every message that leaves here (errors with podman's output)
 * has the password, and the base64 `auth` made from it, replaced by "[secret]".
 *
 * Podman itself is found on PATH and configured by its usual files and environment (CONTAINERS_CONF,
 * CONTAINERS_STORAGE_CONF, REGISTRY_AUTH_FILE for the build's own pulls): nothing here chooses its storage.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface RegistryAuth {
  username: string;
  password: string;
}

/** Bytes of a command's output kept for an error message (the end, where podman says what failed). */
const OUTPUT_TAIL = 8 * 1024;

/** The registry part of `registry[:port]/path` (what containers-auth.json is keyed by). */
export function registryHost(repository: string): string {
  return repository.split("/")[0] as string;
}

/** The strings that must never appear in a message: the password and the `auth` value built from it. */
export function secretsOf(auth: RegistryAuth | undefined): string[] {
  if (!auth) return [];
  return [auth.password, Buffer.from(`${auth.username}:${auth.password}`).toString("base64")].filter(
    (s) => s.length > 0,
  );
}

export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) out = out.split(s).join("[secret]");
  return out;
}

export interface RunOptions {
  timeoutMs: number;
  /** Redacted from every message. */
  secrets?: readonly string[];
  /** Names the step in messages, e.g. "image build". */
  what: string;
}

/**
 * Runs argv (no shell) in its own process group; resolves with stdout. On a non-zero exit or the timeout (the group
 * is killed) it throws with the command's name, the exit and the end of its output, redacted.
 */
export function run(argv: readonly string[], opts: RunOptions): Promise<string> {
  const secrets = opts.secrets ?? [];
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0] as string, argv.slice(1), { detached: true, stdio: ["ignore", "pipe", "pipe"] });
    const out: Buffer[] = [];
    let tail = "";
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => {
      tail = (tail + b.toString("utf8")).slice(-OUTPUT_TAIL);
    });
    let timedOut = false;
    const kill = (signal: NodeJS.Signals) => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, signal);
      } catch {
        // the group is gone already
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      kill("SIGTERM");
      setTimeout(() => kill("SIGKILL"), 10_000).unref();
    }, opts.timeoutMs);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(new Error(redact(`${opts.what}: cannot run ${argv[0]}: ${e.message}`, secrets)));
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out).toString("utf8");
      if (code === 0 && !timedOut) return resolve(stdout);
      const why = timedOut
        ? `did not finish within ${Math.round(opts.timeoutMs / 1000)} s`
        : `exited with ${code ?? signal}`;
      const said = tail.trim() || stdout.slice(-OUTPUT_TAIL).trim() || "(no output)";
      reject(new Error(redact(`${opts.what}: \`${argv.slice(0, 2).join(" ")}\` ${why}: ${said}`, secrets)));
    });
  });
}

/**
 * Calls fn with the path of a temp containers-auth.json holding `auth` for `registry` (undefined when there is no
 * auth: podman then uses its default credentials), and removes the file and its dir afterwards.
 */
export async function withAuthFile<T>(
  registry: string,
  auth: RegistryAuth | undefined,
  fn: (authFile: string | undefined) => Promise<T>,
): Promise<T> {
  if (!auth) return fn(undefined);
  const dir = mkdtempSync(join(tmpdir(), "edgepair-auth-"));
  try {
    const file = join(dir, "auth.json");
    const encoded = Buffer.from(`${auth.username}:${auth.password}`).toString("base64");
    writeFileSync(file, JSON.stringify({ auths: { [registry]: { auth: encoded } } }), { mode: 0o600, flag: "wx" });
    return await fn(file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Checks the shape of registry credentials; the message names the field, never a value. */
export function checkAuth(auth: unknown, field: string): RegistryAuth | undefined {
  if (auth === undefined || auth === null) return undefined;
  const a = auth as Partial<Record<keyof RegistryAuth, unknown>>;
  if (typeof a.username !== "string" || a.username === "" || typeof a.password !== "string" || a.password === "") {
    throw new Error(`${field}: username and password must be non-empty strings`);
  }
  if (a.username.includes(":")) throw new Error(`${field}.username: must not contain ":" (registry basic auth)`);
  return { username: a.username, password: a.password };
}
