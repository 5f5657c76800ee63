/**
 * The daemons bootstrap brings up, through systemctl (run by an injectable CommandRunner: systemd cannot run in
 * tests). The image ships them disabled, so nothing serves with an image-default configuration before the rendered
 * files are in place; bootstrap enables and starts each one once its files went live.
 *
 * Start order (render/services.ts, bootstrapOrder, with the reasons): firewalld, haproxy, conntrackd, keepalived.
 * firewalld is enabled by the image already; then this is a no-op and the apply's `firewall-cmd --reload` loaded the
 * rendered zones. NetworkManager is not here: it runs from the image, and the apply's reloads load and activate the
 * profiles.
 */
import { BOOTSTRAP_UNITS as SERVICE_BOOTSTRAP_UNITS } from "../render/services";
import type { RenderedFile, ServiceName } from "../render/types";
import type { CommandResult, CommandRunner } from "./apply";

export interface ManagedUnit {
  service: ServiceName;
  unit: string;
}

/** In start order; the order and its reasons live in the service table (render/services.ts). */
export const BOOTSTRAP_UNITS: readonly ManagedUnit[] = SERVICE_BOOTSTRAP_UNITS;

const QUERY_TIMEOUT_MS = 15_000;
/** `enable --now` waits for the start job; systemd's own default start timeout is 90 s. */
const START_TIMEOUT_MS = 120_000;

export interface UnitState {
  /** systemctl is-active's word: active, inactive, failed, activating, ... ("unknown" when systemctl gave none) */
  activeState: string;
  enabled: boolean;
}

function lastWord(r: CommandResult): string {
  return r.output.trim().split(/\s+/).pop() || "unknown";
}

export async function activeState(runner: CommandRunner, unit: string): Promise<string> {
  return lastWord(await runner(["systemctl", "is-active", unit], { timeoutMs: QUERY_TIMEOUT_MS }));
}

export async function queryUnit(runner: CommandRunner, unit: string): Promise<UnitState> {
  const active = await activeState(runner, unit);
  const enabled = await runner(["systemctl", "is-enabled", unit], { timeoutMs: QUERY_TIMEOUT_MS });
  // "enabled-runtime" would not survive a reboot; only a persistent enablement counts.
  return { activeState: active, enabled: enabled.exitCode === 0 && lastWord(enabled) === "enabled" };
}

/** Stopped for good: a reload cannot reach it, and a start reads the files as they are on disk. */
function isStopped(activeState: string): boolean {
  return activeState === "inactive" || activeState === "failed" || activeState === "unknown";
}

export interface StartResult {
  unit: string;
  ok: boolean;
  /** "already running", "started", "enabled" (it ran, now also at boot), "failed" */
  result: "already running" | "started" | "enabled" | "failed";
  output: string;
}

/** Enables and starts `unit` unless it is both already; never restarts a running unit. */
export async function ensureRunning(runner: CommandRunner, unit: string): Promise<StartResult> {
  const before = await queryUnit(runner, unit);
  if (before.activeState === "active" && before.enabled)
    return { unit, ok: true, result: "already running", output: "" };
  const r = await runner(["systemctl", "enable", "--now", unit], { timeoutMs: START_TIMEOUT_MS });
  if (r.exitCode !== 0) return { unit, ok: false, result: "failed", output: r.output };
  return { unit, ok: true, result: before.activeState === "active" ? "enabled" : "started", output: r.output };
}

/** What bootstrap would do to `unit`, without doing it (dry run). */
export async function plannedStart(runner: CommandRunner, unit: string): Promise<string> {
  const s = await queryUnit(runner, unit);
  if (s.activeState === "active" && s.enabled) return "already running";
  return s.activeState === "active" ? "would enable" : "would enable and start";
}

export interface DeferringRunner {
  runner: CommandRunner;
  /** services whose reload was skipped because they were not running */
  deferred: () => ServiceName[];
}

/**
 * Wraps the runner the apply reloads with: a reload command of a managed service that is not running is not run
 * but answered as done, because starting it later reads the new files anyway. Otherwise a first boot would fail
 * on `systemctl reload haproxy.service` ("not active, cannot reload") and leave that reload owed in the apply
 * state, to be run again by every later apply. Commands are recognised by the reload actions of `files`
 * (never by guessing from argv), and each unit is asked once, when its first command comes.
 */
export function deferReloadsOfStopped(
  runner: CommandRunner,
  files: readonly RenderedFile[],
  units: readonly ManagedUnit[] = BOOTSTRAP_UNITS,
): DeferringRunner {
  const serviceOf = new Map<string, ServiceName>();
  for (const f of files) for (const argv of f.reload.commands) serviceOf.set(JSON.stringify(argv), f.reload.service);
  const stopped = new Map<ServiceName, boolean>();
  const deferred: ServiceName[] = [];
  const wrapped: CommandRunner = async (argv, opts) => {
    const service = serviceOf.get(JSON.stringify(argv));
    const managed = units.find((u) => u.service === service);
    if (!managed || service === undefined) return runner(argv, opts);
    let isStoppedNow = stopped.get(service);
    if (isStoppedNow === undefined) {
      isStoppedNow = isStopped(await activeState(runner, managed.unit));
      stopped.set(service, isStoppedNow);
    }
    if (!isStoppedNow) return runner(argv, opts);
    if (!deferred.includes(service)) deferred.push(service);
    return {
      exitCode: 0,
      timedOut: false,
      output: `${managed.unit} is not running: not reloaded, its start reads the new files`,
    };
  };
  return { runner: wrapped, deferred: () => [...deferred] };
}
