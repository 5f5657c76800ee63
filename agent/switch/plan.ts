/**
 * The image switch of one LB, as a pure function: from what this LB sees now (its bootc deployments, keepalived,
 * the health gate), the peer's status entry and the LoadBalancer's status.imageSwitch, the one next step and the
 * status change it needs. No I/O and no clock of its own (`now` is an input), so every rule is testable alone and a
 * driver killed at any point resumes by asking again: the only state is in status and on the host (bootc).
 *
 * The rules (issue 8 item 5, DESIGN.md "Beyond the PoC"):
 * - One LB at a time, BACKUP first: an LB claims the first turn only when it is not VRRP MASTER (or the peer already
 *   runs the target), both LBs are Ready, and nobody holds a turn. The claim is a resourceVersion-guarded update of
 *   status.imageSwitch, so of two LBs that claim at once exactly one wins.
 * - The turn holder stages the target first (`bootc switch`, while it still serves), then, if MASTER, resigns
 *   (keepalived stopped cleanly so the peer takes the VIPs at once), and reboots only once the peer is Ready and
 *   MASTER. Just before the reboot the phase becomes Verifying: from then on, booting anything but the target means
 *   the target did not hold (the image's own boot check rolled it back).
 * - After the reboot keepalived stays down until the peer is Ready and its VRRP adverts are seen (await-peer); then
 *   the health gate: the host's services up and HAProxy's backends healthy (an injected probe), VRRP settled as
 *   BACKUP, the peer Ready. Passing it hands the turn to the peer (phase Pending, turn = peer), or completes.
 * - The gate not passing within the verify deadline, or no peer seen: `bootc rollback` and reboot (phase
 *   RollingBack), then Failed once the previous image runs again. This LB reports Degraded with the reason; the peer
 *   never takes a turn for a target whose switch Failed — a new target starts a new switch.
 * - Failed keeps `turn` naming the LB that failed, although nobody may switch: after its reboot that LB must still
 *   know it is the one to report Degraded, and status is the only memory that survives the reboot.
 *
 * Deadlines count from imageSwitch.lastTransitionTime (status, not memory), so they survive a reboot too.
 */
import type { ImageSwitchStatus } from "../../k8s/custom-resource";
import { IMAGE_SWITCH_PHASES } from "../../k8s/custom-resource";
import type { StatusVrrpState } from "../../render/vrrp-state";
import type { Role } from "../../spec/types";
import { digestOf, pinnedRef, type BootcHostStatus, type BootcImage } from "./bootc";

export type SwitchPhase = (typeof IMAGE_SWITCH_PHASES)[number];

/** The host's part of the health gate (services up, HAProxy backends healthy); each failure is a sentence. */
export interface GateResult {
  ok: boolean;
  failures: string[];
}

/** What this LB knows of itself, read fresh before every step. */
export interface SelfFacts {
  name: string;
  role: Role;
  bootc: BootcHostStatus;
  keepalivedActive: boolean;
  /** keepalived's state; Stop while it does not run. */
  vrrpState: StatusVrrpState;
  /** The load-balancing services run (a precondition for taking a turn). */
  servicesUp: boolean;
  /** VRRP adverts from the peer arrive on the private link. */
  peerAdvertsSeen: boolean;
  /** Present once probed; the plan asks for a probe with a `verify` step whose `probe` is true. */
  gate?: GateResult;
}

/** The peer as its status entry shows it. */
export interface PeerFacts {
  name: string;
  /** Ready=True in its entry AND a heartbeat that still moves (a rebooting peer keeps its last Ready=True). */
  ready: boolean;
  vrrpState?: StatusVrrpState;
  bootedImage?: string;
}

export interface SwitchTimeouts {
  /** From the claim to the reboot into the target: pull, resignation, the peer taking the VIPs. */
  switchMs: number;
  /** From Verifying (written just before the reboot) to the health gate passed: reboot, peer seen, gate. */
  verifyMs: number;
  /** After a rollback reboot, keepalived starts without seeing the peer after this long: the previous image is
   *  known good, and an LB waiting for a peer that is gone would leave nobody serving. */
  rejoinAloneMs: number;
}

export const DEFAULT_SWITCH_TIMEOUTS: SwitchTimeouts = {
  switchMs: 45 * 60_000,
  verifyMs: 15 * 60_000,
  rejoinAloneMs: 5 * 60_000,
};

export interface PlanInput {
  now: Date;
  /** The digest-pinned image the spec asks for (REPOSITORY@sha256:…). */
  targetImage: string;
  self: SelfFacts;
  /** Absent when the peer has no status entry. */
  peer?: PeerFacts;
  imageSwitch?: ImageSwitchStatus;
  timeouts: SwitchTimeouts;
}

export interface ConditionReport {
  reason: string;
  message: string;
}

/** This LB's own entry, as far as the switch decides it. */
export interface SelfReport {
  bootedImage: string;
  /** Progressing=True while this LB holds the turn; absent: the switch does not make it progress. */
  progressing?: ConditionReport;
  /** Degraded=True while this LB's failed switch stands; absent: the switch does not degrade it. */
  degraded?: ConditionReport;
}

export interface StatusChange {
  /** The next status.imageSwitch as a whole, written by a resourceVersion-guarded update; absent: unchanged. */
  imageSwitch?: ImageSwitchStatus;
  self: SelfReport;
}

interface StepBase {
  /** Why this step, in a sentence (logs, tests). */
  reason: string;
  status: StatusChange;
}

export type Step = StepBase &
  (
    | { kind: "wait"; /** nothing will change for this LB until the target or the pair does */ idle: boolean }
    | { kind: "claim-turn" }
    | { kind: "resign" }
    | {
        kind: "switch-and-reboot";
        target: string;
        /** run `bootc switch` */ stage: boolean;
        /** write status, then reboot */ reboot: boolean;
      }
    | {
        kind: "await-peer";
        /** the peer is seen (or, after a rollback, waited for long enough): start keepalived */ startKeepalived: boolean;
      }
    | {
        kind: "verify";
        /** run the health gate and ask again; false: it ran and fails, wait */ probe: boolean;
        failures: string[];
      }
    | { kind: "pass-turn" }
    | { kind: "complete" }
    | {
        kind: "rollback-and-reboot";
        /** false when a rollback is already queued (bootc rollback toggles) */ runRollback: boolean;
      }
    | { kind: "fail"; /** undo a resignation: keepalived is down and no reboot is coming */ startKeepalived: boolean }
  );

export type StepKind = Step["kind"];

export const CONDITION_REASONS = { progressing: "ImageSwitch", degraded: "ImageSwitchFailed" } as const;

const IN_FLIGHT: ReadonlySet<SwitchPhase> = new Set<SwitchPhase>(["Pending", "Switching", "Verifying", "RollingBack"]);
const MAX_MESSAGE = 4096;

const runs = (image: BootcImage | null, target: string): boolean => image !== null && image.digest === digestOf(target);
const peerRuns = (peer: PeerFacts | undefined, target: string): boolean =>
  peer?.bootedImage !== undefined &&
  digestOf(peer.bootedImage) !== undefined &&
  digestOf(peer.bootedImage) === digestOf(target);
const elapsedMs = (s: ImageSwitchStatus, now: Date): number => now.getTime() - Date.parse(s.lastTransitionTime);
const seconds = (ms: number): string => `${Math.round(ms / 1000)} s`;

function selfReport(self: SelfFacts, s: ImageSwitchStatus | undefined): SelfReport {
  const report: SelfReport = { bootedImage: pinnedRef(self.bootc.booted) };
  if (!s || s.turn !== self.name) return report;
  if (s.phase === "Switching" || s.phase === "Verifying" || s.phase === "RollingBack") {
    report.progressing = { reason: CONDITION_REASONS.progressing, message: `${s.phase} to ${s.targetImage}` };
  }
  if (s.phase === "RollingBack" || s.phase === "Failed") {
    report.degraded = {
      reason: CONDITION_REASONS.degraded,
      message: s.message ?? `the switch to ${s.targetImage} failed`,
    };
  }
  return report;
}

/** The next imageSwitch: `s` with these fields; a new lastTransitionTime when the phase or the turn changes. */
function next(
  input: PlanInput,
  s: ImageSwitchStatus,
  change: Partial<ImageSwitchStatus> & { message: string },
): ImageSwitchStatus {
  const phaseChanges = change.phase !== undefined && change.phase !== s.phase;
  const out: ImageSwitchStatus = {
    ...s,
    ...change,
    message: change.message.slice(0, MAX_MESSAGE),
    lastTransitionTime: phaseChanges || change.turn !== undefined ? input.now.toISOString() : s.lastTransitionTime,
  };
  if (out.turn === undefined) delete out.turn;
  return out;
}

function union(xs: readonly string[] | undefined, name: string): string[] {
  return [...new Set([...(xs ?? []), name])].sort();
}

/** The one next step of this LB's part in the image switch. */
export function nextStep(input: PlanInput): Step {
  const s = input.imageSwitch;
  return s && IN_FLIGHT.has(s.phase) ? inFlight(input, s) : notInFlight(input, s);
}

function make<K extends StepKind>(
  input: PlanInput,
  kind: K,
  reason: string,
  extra: Omit<Extract<Step, { kind: K }>, keyof StepBase | "kind">,
  imageSwitch?: ImageSwitchStatus,
): Step {
  const status: StatusChange = {
    ...(imageSwitch ? { imageSwitch } : {}),
    self: selfReport(input.self, imageSwitch ?? input.imageSwitch),
  };
  return { kind, reason, status, ...extra } as Step;
}

const wait = (input: PlanInput, reason: string, idle = false): Step => make(input, "wait", reason, { idle });

/** No switch under way: nothing to do, wait for the pair to be ready, or claim the first turn. */
function notInFlight(input: PlanInput, s: ImageSwitchStatus | undefined): Step {
  const { self, peer, targetImage: target } = input;
  if (digestOf(target) === undefined) return wait(input, `target ${target} is not pinned by digest`, true);
  if (s?.phase === "Failed" && s.targetImage === target) {
    return wait(
      input,
      `the switch to ${target} failed on ${s.turn ?? "an LB"}: ${s.message ?? ""}; a new target starts a new switch`,
      true,
    );
  }
  if (runs(self.bootc.booted, target)) {
    return !peer || peerRuns(peer, target)
      ? wait(input, `runs ${target}`, true)
      : wait(input, `runs ${target}; ${peer.name} has yet to take its turn`);
  }
  if (!peer) return wait(input, "no peer reports in status: switching the only LB would stop serving");
  if (!peer.ready) return wait(input, `${peer.name} is not Ready: the pair must be redundant before a switch`);
  if (!self.servicesUp || self.vrrpState === "Fault")
    return wait(
      input,
      `${self.name} is not healthy (services ${self.servicesUp ? "up" : "down"}, VRRP ${self.vrrpState})`,
    );
  const peerDone = peerRuns(peer, target);
  if (self.vrrpState === "Master" && !peerDone)
    return wait(input, `${self.name} is MASTER: the BACKUP (${peer.name}) switches first`);
  return make(
    input,
    "claim-turn",
    `${self.name} takes the ${peerDone ? "second" : "first"} turn`,
    {},
    {
      targetImage: target,
      phase: "Switching",
      turn: self.name,
      completed: peerDone ? [peer.name] : [],
      message: `${self.name} switches to ${target}`,
      lastTransitionTime: input.now.toISOString(),
    },
  );
}

function inFlight(input: PlanInput, s: ImageSwitchStatus): Step {
  const { self } = input;
  if (s.turn !== self.name) return wait(input, `${s.turn ?? "nobody"} holds the turn (${s.phase} to ${s.targetImage})`);
  switch (s.phase) {
    case "Pending":
      return pending(input, s);
    case "Switching":
      return runs(self.bootc.booted, s.targetImage) ? rebooted(input, s) : switching(input, s);
    case "Verifying":
      return verifying(input, s);
    default:
      return rollingBack(input, s);
  }
}

/** The peer passed its turn to this LB. */
function pending(input: PlanInput, s: ImageSwitchStatus): Step {
  const { self, peer } = input;
  const target = s.targetImage;
  if (runs(self.bootc.booted, target) && self.servicesUp) {
    return make(
      input,
      "complete",
      `${self.name} already runs ${target}`,
      {},
      next(input, s, {
        phase: "Completed",
        turn: undefined,
        completed: union(s.completed, self.name),
        message: `both LBs run ${target}`,
      }),
    );
  }
  if (!peer || !peer.ready || !peerRuns(peer, target))
    return wait(input, `${peer?.name ?? "the peer"} must run ${target} and be Ready before ${self.name} switches`);
  if (!self.servicesUp) return wait(input, `${self.name}'s services are not up`);
  return make(
    input,
    "claim-turn",
    `${self.name} takes its turn`,
    {},
    next(input, s, { phase: "Switching", turn: self.name, message: `${self.name} switches to ${target}` }),
  );
}

/** Holding the turn, not yet rebooted: stage, resign, hand over, reboot. */
function switching(input: PlanInput, s: ImageSwitchStatus): Step {
  const { self, peer, now, timeouts } = input;
  const target = s.targetImage;
  const staged = runs(self.bootc.staged, target);
  const peerHolds = peer !== undefined && peer.ready && peer.vrrpState === "Master";
  if (elapsedMs(s, now) > timeouts.switchMs) {
    const why = !staged
      ? `bootc switch did not stage ${target}`
      : !peerHolds
        ? `${peer?.name ?? "the peer"} did not take over the VIPs (Ready and MASTER)`
        : "the reboot did not happen";
    // the staged deployment stays (bootc cannot discard it without queueing a rollback): see the driver's notes
    return make(
      input,
      "fail",
      `no reboot into the target within ${seconds(timeouts.switchMs)}`,
      { startKeepalived: !self.keepalivedActive },
      next(input, s, { phase: "Failed", message: `${self.name}: ${why} within ${seconds(timeouts.switchMs)}` }),
    );
  }
  if (!staged)
    return make(input, "switch-and-reboot", `stage ${target} while still serving`, {
      target,
      stage: true,
      reboot: false,
    });
  if (self.keepalivedActive && self.vrrpState === "Master") {
    if (!peer || !peer.ready || peer.vrrpState !== "Backup")
      return wait(input, `${self.name} is MASTER and resigns only to a Ready BACKUP peer`);
    return make(input, "resign", `${self.name} is MASTER: stop keepalived so ${peer.name} takes the VIPs`, {});
  }
  if (!peerHolds)
    return wait(input, `waiting for ${peer?.name ?? "the peer"} to be Ready and MASTER before the reboot`);
  return make(
    input,
    "switch-and-reboot",
    `reboot into ${target}`,
    { target, stage: false, reboot: true },
    next(input, s, { phase: "Verifying", message: `${self.name} staged ${target} and reboots into it` }),
  );
}

function verifying(input: PlanInput, s: ImageSwitchStatus): Step {
  const { self } = input;
  const target = s.targetImage;
  if (self.bootc.rollbackQueued) {
    // a rollback ran before its status write (killed in between): finish it
    return make(
      input,
      "rollback-and-reboot",
      "a rollback is queued",
      { runRollback: false },
      next(input, s, { phase: "RollingBack", message: `${self.name}: rollback of ${target} resumed` }),
    );
  }
  if (runs(self.bootc.booted, target)) return rebooted(input, s);
  if (runs(self.bootc.staged, target))
    return make(input, "switch-and-reboot", `${target} is staged, the reboot is still due`, {
      target,
      stage: false,
      reboot: true,
    });
  // Verifying is written just before the reboot: booting anything else means the target did not hold
  const why = `${self.name} booted ${pinnedRef(self.bootc.booted)} instead of ${target}: the target did not stay booted (rolled back at boot)`;
  if (!self.keepalivedActive) return awaitPeer(input, s, true);
  return make(input, "fail", why, { startKeepalived: false }, next(input, s, { phase: "Failed", message: why }));
}

/** Runs the target after the switch reboot: peer first, then the gate, then the turn moves on. */
function rebooted(input: PlanInput, s: ImageSwitchStatus): Step {
  const { self, peer, now, timeouts } = input;
  const target = s.targetImage;
  const late = elapsedMs(s, now) > timeouts.verifyMs;
  const rollback = (why: string): Step => {
    const to = self.bootc.rollback;
    if (!to) {
      return make(
        input,
        "fail",
        `${why}; no rollback deployment`,
        { startKeepalived: !self.keepalivedActive },
        next(input, s, { phase: "Failed", message: `${self.name}: ${why}; no rollback deployment to return to` }),
      );
    }
    return make(
      input,
      "rollback-and-reboot",
      why,
      { runRollback: true },
      next(input, s, { phase: "RollingBack", message: `${self.name}: ${why}; rolling back to ${pinnedRef(to)}` }),
    );
  };
  if (!self.keepalivedActive) {
    if (late)
      return rollback(
        `${target} did not see ${peer?.name ?? "the peer"} within ${seconds(timeouts.verifyMs)} (${peerMissing(input).join("; ")})`,
      );
    return awaitPeer(input, s, false);
  }
  if (self.gate === undefined) return make(input, "verify", "run the health gate", { probe: true, failures: [] });
  const failures = [
    ...(self.gate.ok ? [] : self.gate.failures.length > 0 ? self.gate.failures : ["the health gate failed"]),
  ];
  if (self.vrrpState !== "Backup") failures.push(`VRRP state is ${self.vrrpState}, not settled as BACKUP`);
  if (!peer || !peer.ready) failures.push(`${peer?.name ?? "the peer"} is not Ready`);
  else if (peer.vrrpState !== "Master")
    failures.push(`${peer.name} is not MASTER (${peer.vrrpState ?? "unknown"}): nobody would hold the VIPs`);
  if (failures.length > 0) {
    if (late)
      return rollback(`${target} failed the health gate within ${seconds(timeouts.verifyMs)}: ${failures.join("; ")}`);
    return make(input, "verify", `health gate not passed yet: ${failures.join("; ")}`, { probe: false, failures });
  }
  const completed = union(s.completed, self.name);
  if (peer && !completed.includes(peer.name)) {
    return make(
      input,
      "pass-turn",
      `${self.name} passed the health gate; ${peer.name}'s turn`,
      {},
      next(input, s, {
        phase: "Pending",
        turn: peer.name,
        completed,
        message: `${self.name} runs ${target} and passed the health gate; ${peer.name}'s turn`,
      }),
    );
  }
  return make(
    input,
    "complete",
    `${self.name} passed the health gate; both LBs run ${target}`,
    {},
    next(input, s, { phase: "Completed", turn: undefined, completed, message: `both LBs run ${target}` }),
  );
}

function rollingBack(input: PlanInput, s: ImageSwitchStatus): Step {
  const { self } = input;
  const target = s.targetImage;
  if (runs(self.bootc.booted, target)) {
    if (self.bootc.rollbackQueued)
      return make(input, "rollback-and-reboot", "the rollback is queued, the reboot is still due", {
        runRollback: false,
      });
    if (!self.bootc.rollback) {
      return make(
        input,
        "fail",
        "no rollback deployment",
        { startKeepalived: !self.keepalivedActive },
        next(input, s, { phase: "Failed", message: `${s.message ?? ""}; no rollback deployment to return to` }),
      );
    }
    return make(input, "rollback-and-reboot", "roll back", { runRollback: true });
  }
  if (!self.keepalivedActive) return awaitPeer(input, s, true);
  const message = `${s.message ?? `${self.name}: the switch to ${target} failed`}; ${self.name} runs ${pinnedRef(self.bootc.booted)} again`;
  return make(
    input,
    "fail",
    `rolled back from ${target}`,
    { startKeepalived: false },
    next(input, s, { phase: "Failed", message }),
  );
}

function peerMissing(input: PlanInput): string[] {
  const { peer, self } = input;
  const missing: string[] = [];
  if (!peer) missing.push("the peer has no status entry");
  else if (!peer.ready) missing.push(`${peer.name} is not Ready`);
  if (!self.peerAdvertsSeen) missing.push(`no VRRP adverts from ${peer?.name ?? "the peer"}`);
  return missing;
}

/** keepalived starts only once the peer is Ready and its adverts are seen; `alone`: after rejoinAloneMs, anyway. */
function awaitPeer(input: PlanInput, s: ImageSwitchStatus, previousImage: boolean): Step {
  const missing = peerMissing(input);
  if (missing.length === 0)
    return make(input, "await-peer", "the peer is Ready and its adverts are seen: start keepalived", {
      startKeepalived: true,
    });
  if (previousImage && elapsedMs(s, input.now) > input.timeouts.verifyMs + input.timeouts.rejoinAloneMs) {
    return make(
      input,
      "await-peer",
      `start keepalived without the peer (${missing.join("; ")}): the previous image is known good`,
      { startKeepalived: true },
    );
  }
  return make(input, "await-peer", `keepalived waits: ${missing.join("; ")}`, { startKeepalived: false });
}
