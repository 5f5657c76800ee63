/**
 * Runs plan.ts's steps with injected effects: read status (with its resourceVersion) and the host's facts, ask
 * nextStep, do the one effect it names, and start over — re-reading everything after every effect, never carrying a
 * decision across one. So a driver killed at any point (or a host rebooted) and started again continues from what
 * status and bootc say, and two drivers cannot both take a turn: every imageSwitch write is guarded by the
 * resourceVersion it was planned from, and a conflict only means "read again".
 *
 * One run ends when the host is about to reboot ("rebooting": in production the agent dies with the host), when
 * there is nothing to do until the target or the pair changes ("idle"), on abort, or after `runForMs` / `maxSteps`
 * ("timeout": the caller runs it again). Effects that fail (bootc cannot pull, the API is away) are retried after
 * `pollMs`; the plan's deadlines, kept in status, decide when retrying turns into failing.
 *
 * Known limit: a switch that fails before its reboot (the peer never took the VIPs) leaves the target staged;
 * bootc has no way to drop a staged deployment without queueing a rollback (`bootc rollback` discards it but also
 * reorders the boot entries), so an unplanned reboot of that LB would boot the target outside this coordination.
 */
import { HeartbeatClock } from "../kube/heartbeat";
import type { ImageSwitchStatus } from "../../k8s/custom-resource";
import type { Role } from "../../spec/types";
import type { BootcClient } from "./bootc";
import {
  DEFAULT_SWITCH_TIMEOUTS,
  nextStep,
  type GateResult,
  type PeerFacts,
  type SelfFacts,
  type SelfReport,
  type Step,
  type SwitchTimeouts,
} from "./plan";
import type { StatusVrrpState } from "../../render/vrrp-state";

/** One LB's entry in status.loadBalancers, as far as the switch reads it. */
export interface StatusEntryView {
  name: string;
  vrrpState?: StatusVrrpState;
  bootedImage?: string;
  heartbeat?: string;
  /** Its Ready condition is True. */
  ready: boolean;
}

export interface ImageSwitchSnapshot {
  resourceVersion: string;
  imageSwitch?: ImageSwitchStatus;
  entries: StatusEntryView[];
}

export interface ImageSwitchStore {
  read(): Promise<ImageSwitchSnapshot>;
  /** Replaces status.imageSwitch if the object is still at `resourceVersion`: true; false on a conflict. */
  write(next: ImageSwitchStatus, resourceVersion: string): Promise<boolean>;
}

export interface KeepalivedControl {
  active(): Promise<boolean>;
  /** The VRRP instance's state while keepalived runs. */
  state(): Promise<StatusVrrpState>;
  /** A clean stop: keepalived sends priority-0 adverts, so the peer takes the VIPs at once. */
  stop(): Promise<void>;
  start(): Promise<void>;
}

export interface SwitchHost {
  bootc: BootcClient;
  /** Resolves once the reboot is under way (systemctl reboot); in tests, once the stand-in "rebooted". */
  reboot(): Promise<void>;
  keepalived: KeepalivedControl;
  peerAdvertsSeen(): Promise<boolean>;
  servicesUp(): Promise<boolean>;
  /** Services up and HAProxy's backends healthy. */
  healthGate(): Promise<GateResult>;
}

export interface SwitchDeps {
  self: { name: string; role: Role };
  /** The digest-pinned image the spec asks for. */
  targetImage: string;
  store: ImageSwitchStore;
  host: SwitchHost;
  /** This LB's own status entry: booted image, Progressing / Degraded of the switch. Called when it changes. */
  report(r: SelfReport): void | Promise<void>;
  timeouts?: Partial<SwitchTimeouts>;
  /** Between two looks while waiting, and after a failed effect. Default 2 s. */
  pollMs?: number;
  /** Bound on one run. Default 1 h. */
  runForMs?: number;
  /** Bound on the steps of one run. Default runForMs / pollMs * 4 + 100. */
  maxSteps?: number;
  /** A peer whose heartbeat has not moved for this long is not Ready, whatever its entry says. Default 35 s. */
  peerStaleAfterMs?: number;
  now?: () => Date;
  signal?: AbortSignal;
  onStep?: (step: Step, n: number) => void;
}

export type SwitchResult = "rebooting" | "idle" | "aborted" | "timeout";

export interface SwitchOutcome {
  result: SwitchResult;
  /** The last step planned. */
  step?: Step;
  steps: number;
  /** Failed effects and reads, in order (never a secret: API errors carry no token, bootc output none). */
  errors: string[];
}

class Aborted extends Error {}

/**
 * When each peer heartbeat was last seen to change, on this LB's clock, so skew between the VMs cannot make a dead
 * peer look alive (the same rule as agent/kube/status.ts). A heartbeat seen for the first time is trusted once,
 * never into the future.
 */
class HeartbeatAges {
  private readonly heartbeats = new HeartbeatClock();

  fresh(e: StatusEntryView, nowMs: number, staleAfterMs: number): boolean {
    if (e.heartbeat === undefined) return false;
    return this.heartbeats.observe(e.name, e.heartbeat, nowMs) <= staleAfterMs;
  }
}

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));

export async function runSwitch(deps: SwitchDeps): Promise<SwitchOutcome> {
  const now = deps.now ?? (() => new Date());
  const pollMs = deps.pollMs ?? 2000;
  const runForMs = deps.runForMs ?? 3_600_000;
  const maxSteps = deps.maxSteps ?? Math.ceil(runForMs / pollMs) * 4 + 100;
  const staleAfterMs = deps.peerStaleAfterMs ?? 35_000;
  const timeouts: SwitchTimeouts = { ...DEFAULT_SWITCH_TIMEOUTS, ...deps.timeouts };
  const { host, store, signal } = deps;
  const ages = new HeartbeatAges();
  const errors: string[] = [];
  const startedMs = now().getTime();
  let lastReport: string | undefined;
  let step: Step | undefined;
  let gate: GateResult | undefined;
  let gateUsed: GateResult | undefined;
  let n = 0;

  const checkAbort = (): void => {
    if (signal?.aborted) throw new Aborted();
  };
  /** An effect, then the abort check: a driver killed right after an effect does nothing more. */
  const effect = async <T>(f: () => Promise<T>): Promise<T> => {
    checkAbort();
    const r = await f();
    checkAbort();
    return r;
  };
  const pause = (): Promise<void> =>
    new Promise((resolve) => {
      const t = setTimeout(done, pollMs);
      function done(): void {
        clearTimeout(t);
        signal?.removeEventListener("abort", done);
        resolve();
      }
      signal?.addEventListener("abort", done, { once: true });
    });
  const out = (result: SwitchResult): SwitchOutcome => ({ result, ...(step ? { step } : {}), steps: n, errors });
  /**
   * The step's imageSwitch, guarded by the resourceVersion it was planned from. Lost to another write (mostly a
   * heartbeat), the next look plans again — with the same gate result, which is still seconds fresh.
   */
  const write = async (s: Step, resourceVersion: string): Promise<boolean> => {
    const next = s.status.imageSwitch;
    if (!next) return true;
    const ok = await effect(() => store.write(next, resourceVersion));
    if (!ok) gate = gateUsed;
    return ok;
  };

  async function selfFacts(): Promise<SelfFacts> {
    const [bootc, keepalivedActive, servicesUp, peerAdvertsSeen] = await Promise.all([
      host.bootc.status(),
      host.keepalived.active(),
      host.servicesUp(),
      host.peerAdvertsSeen(),
    ]);
    const vrrpState: StatusVrrpState = keepalivedActive ? await host.keepalived.state() : "Stop";
    return {
      name: deps.self.name,
      role: deps.self.role,
      bootc,
      keepalivedActive,
      vrrpState,
      servicesUp,
      peerAdvertsSeen,
      ...(gate ? { gate } : {}),
    };
  }

  try {
    for (; n < maxSteps; n++) {
      checkAbort();
      if (now().getTime() - startedMs > runForMs) return out("timeout");
      let snapshot: ImageSwitchSnapshot;
      let self: SelfFacts;
      try {
        // status last: the heartbeats of both LBs move its resourceVersion every few seconds, so the write that
        // follows this plan must be planned from a read as fresh as possible (bootc status takes a while)
        self = await selfFacts();
        snapshot = await store.read();
      } catch (e) {
        errors.push(`read: ${message(e)}`);
        await pause();
        continue;
      }
      checkAbort();
      const at = now();
      const entry = snapshot.entries.find((e) => e.name !== deps.self.name);
      const peer: PeerFacts | undefined = entry && {
        name: entry.name,
        ready: entry.ready && ages.fresh(entry, at.getTime(), staleAfterMs),
        ...(entry.vrrpState ? { vrrpState: entry.vrrpState } : {}),
        ...(entry.bootedImage ? { bootedImage: entry.bootedImage } : {}),
      };
      step = nextStep({
        now: at,
        targetImage: deps.targetImage,
        self,
        ...(peer ? { peer } : {}),
        ...(snapshot.imageSwitch ? { imageSwitch: snapshot.imageSwitch } : {}),
        timeouts,
      });
      // a gate result answers one plan only (and the next, if this plan's write loses a conflict)
      gateUsed = gate;
      gate = undefined;
      deps.onStep?.(step, n);

      const report = JSON.stringify(step.status.self);
      if (report !== lastReport) {
        try {
          await deps.report(step.status.self);
          lastReport = report;
        } catch (e) {
          errors.push(`report: ${message(e)}`);
        }
      }

      try {
        const s = step;
        switch (s.kind) {
          case "wait":
            if (s.idle) return out("idle");
            await pause();
            break;
          case "claim-turn":
          case "pass-turn":
          case "complete":
            // a conflict: someone wrote first (often just a heartbeat); the next look decides again
            await write(s, snapshot.resourceVersion);
            break;
          case "fail":
            if (s.startKeepalived) await effect(() => host.keepalived.start());
            await write(s, snapshot.resourceVersion);
            break;
          case "resign":
            await effect(() => host.keepalived.stop());
            break;
          case "await-peer":
            if (s.startKeepalived) await effect(() => host.keepalived.start());
            else await pause();
            break;
          case "verify":
            if (s.probe) gate = await effect(() => host.healthGate());
            else await pause();
            break;
          case "switch-and-reboot":
            if (s.stage) await effect(() => host.bootc.switchTo(s.target));
            if (s.reboot) {
              if (!(await write(s, snapshot.resourceVersion))) break;
              await effect(() => host.reboot());
              return out("rebooting");
            }
            break;
          case "rollback-and-reboot":
            // status first: killed after it, the next run finds RollingBack and (rollbackQueued false) rolls back
            if (!(await write(s, snapshot.resourceVersion))) break;
            if (s.runRollback) await effect(() => host.bootc.rollback());
            if (await effect(() => host.keepalived.active())) await effect(() => host.keepalived.stop());
            await effect(() => host.reboot());
            return out("rebooting");
        }
      } catch (e) {
        if (e instanceof Aborted) throw e;
        errors.push(`${step.kind}: ${message(e)}`);
        await pause();
      }
    }
  } catch (e) {
    if (e instanceof Aborted) return out("aborted");
    throw e;
  }
  return out("timeout");
}
