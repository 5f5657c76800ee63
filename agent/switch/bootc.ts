/**
 * The host's image through the `bootc` CLI, run as argv through an injectable CommandRunner (agent/apply/reload.ts):
 * `bootc status --format json` (the BootcHost document, reference/anchors.md B.2), `bootc switch <ref>` (stages the
 * target, effective at the next boot) and `bootc rollback` (queues the previous deployment for the next boot and
 * discards a staged one). Never `bootc upgrade`: the pair follows an explicit digest-pinned ref, and after a switch
 * to a digest an upgrade would be a no-op anyway (B.1). The reboot is a separate effect (systemctlReboot), so that
 * the caller decides when the host goes down and can record that first.
 *
 * `bootc rollback` toggles: run while a rollback is already queued it reverts that queue (bootc's deploy.rs,
 * "Reverting queued rollback state"). Callers must check `rollbackQueued` first; see plan.ts.
 */
import { z } from "zod";
import type { CommandRunner } from "../apply/reload";

export const BOOTC_API_VERSION = "org.containers.bootc/v1";
export const BOOTC_KIND = "BootcHost";

/** One deployment's image, as `bootc status` reports it. */
export interface BootcImage {
  /** The ref as switched to (`.image.image.image`), e.g. registry.example/lb@sha256:… */
  ref: string;
  transport: string;
  /** The manifest digest (`.image.imageDigest`), "sha256:<64 hex>". */
  digest: string;
  version?: string;
}

export interface BootcHostStatus {
  booted: BootcImage;
  /** Applied at the next shutdown. */
  staged: BootcImage | null;
  /** What `bootc rollback` would boot next. */
  rollback: BootcImage | null;
  /** `bootc rollback` was run and the rollback deployment boots next. */
  rollbackQueued: boolean;
}

export class BootcError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BootcError";
  }
}

export interface BootcOptions {
  /** `bootc status`. Default 60 s. */
  statusTimeoutMs?: number;
  /** `bootc switch` pulls the image: minutes on a slow registry. Default 30 min. */
  switchTimeoutMs?: number;
  /** `bootc rollback` only reorders boot entries. Default 2 min. */
  rollbackTimeoutMs?: number;
}

const DIGEST = /^sha256:[0-9a-f]{64}$/;

// Only what the agent reads; any other field (cachedUpdate, ostree, store, …) may come and go between bootc versions.
const imageStatus = z.object({
  image: z.object({ image: z.string().min(1), transport: z.string().min(1) }),
  imageDigest: z.string().regex(DIGEST),
  version: z.string().nullish(),
});
const bootEntry = z.object({ image: imageStatus.nullish() });
const bootcHost = z.object({
  apiVersion: z.literal(BOOTC_API_VERSION),
  kind: z.literal(BOOTC_KIND),
  status: z.object({
    booted: bootEntry.nullish(),
    staged: bootEntry.nullish(),
    rollback: bootEntry.nullish(),
    rollbackQueued: z.boolean().optional(),
  }),
});

function imageOf(entry: z.infer<typeof bootEntry> | null | undefined): BootcImage | null {
  const i = entry?.image;
  if (!i) return null;
  return {
    ref: i.image.image,
    transport: i.image.transport,
    digest: i.imageDigest,
    ...(i.version ? { version: i.version } : {}),
  };
}

/** The BootcHost document parsed; throws BootcError naming the field when it is not one of a booted bootc host. */
export function parseBootcStatus(json: string): BootcHostStatus {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch {
    throw new BootcError("bootc status: output is not JSON");
  }
  const r = bootcHost.safeParse(raw);
  if (!r.success) {
    const first = r.error.issues[0];
    throw new BootcError(
      `bootc status: ${first ? `${first.path.join(".") || "(document)"}: ${first.message}` : "not a BootcHost document"}`,
    );
  }
  const s = r.data.status;
  const booted = imageOf(s.booted);
  // status.booted == null is bootc's own "not a bootc host" (B.1); an entry without an image is not image-based
  if (!booted) throw new BootcError("bootc status: status.booted: this host did not boot a bootc container image");
  return {
    booted,
    staged: imageOf(s.staged),
    rollback: imageOf(s.rollback),
    rollbackQueued: s.rollbackQueued ?? false,
  };
}

async function run(runner: CommandRunner, argv: readonly string[], timeoutMs: number): Promise<string> {
  const r = await runner(argv, { timeoutMs });
  if (r.exitCode !== 0) {
    const why = r.timedOut
      ? `timed out after ${timeoutMs} ms`
      : r.exitCode === null
        ? "could not run"
        : `exit ${r.exitCode}`;
    throw new BootcError(`${argv.join(" ")}: ${why}: ${r.output.trim().slice(-1024)}`);
  }
  return r.output;
}

export async function readBootcStatus(runner: CommandRunner, opts: BootcOptions = {}): Promise<BootcHostStatus> {
  // stdout and stderr arrive interleaved (CommandRunner); bootc writes the document alone on stdout, so take the
  // JSON object that spans from the first "{" line to the last "}"
  const out = await run(runner, ["bootc", "status", "--format", "json"], opts.statusTimeoutMs ?? 60_000);
  const start = out.indexOf("{");
  const end = out.lastIndexOf("}");
  if (start < 0 || end < start) throw new BootcError("bootc status: output holds no JSON document");
  return parseBootcStatus(out.slice(start, end + 1));
}

/** Stages `ref` for the next boot (pulls it first). */
export async function bootcSwitch(runner: CommandRunner, ref: string, opts: BootcOptions = {}): Promise<void> {
  if (!/@sha256:[0-9a-f]{64}$/.test(ref))
    throw new BootcError(`bootc switch: ${ref}: must be pinned by digest (REPOSITORY@sha256:<64 hex>)`);
  await run(runner, ["bootc", "switch", ref], opts.switchTimeoutMs ?? 30 * 60_000);
}

/** Queues the rollback deployment for the next boot. Not idempotent (see the module comment). */
export async function bootcRollback(runner: CommandRunner, opts: BootcOptions = {}): Promise<void> {
  await run(runner, ["bootc", "rollback"], opts.rollbackTimeoutMs ?? 120_000);
}

/** `systemctl reboot`: returns once systemd accepted the job; the agent is stopped with the rest of the host. */
export async function systemctlReboot(runner: CommandRunner): Promise<void> {
  const r = await runner(["systemctl", "reboot"], { timeoutMs: 60_000 });
  if (r.exitCode !== 0)
    throw new BootcError(
      `systemctl reboot: ${r.timedOut ? "timed out" : `exit ${r.exitCode ?? "none"}`}: ${r.output.trim().slice(-512)}`,
    );
}

/** The three bootc operations bound to one runner, as the switch driver takes them. */
export interface BootcClient {
  status(): Promise<BootcHostStatus>;
  switchTo(ref: string): Promise<void>;
  rollback(): Promise<void>;
}

export function bootcClient(runner: CommandRunner, opts: BootcOptions = {}): BootcClient {
  return {
    status: () => readBootcStatus(runner, opts),
    switchTo: (ref) => bootcSwitch(runner, ref, opts),
    rollback: () => bootcRollback(runner, opts),
  };
}

/** The digest of a digest-pinned ref ("sha256:…"), undefined when it carries none. */
export function digestOf(ref: string): string | undefined {
  const m = /@(sha256:[0-9a-f]{64})$/.exec(ref);
  return m ? m[1] : undefined;
}

/** REPOSITORY@DIGEST of a deployment: what status reports as its booted image (a tag in the ref is dropped). */
export function pinnedRef(image: BootcImage): string {
  const withoutDigest = image.ref.replace(/@.*$/, "");
  const lastSlash = withoutDigest.lastIndexOf("/");
  const colon = withoutDigest.lastIndexOf(":");
  const repository = colon > lastSlash ? withoutDigest.slice(0, colon) : withoutDigest;
  return `${repository}@${image.digest}`;
}
