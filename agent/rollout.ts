/**
 * BACKUP first (issue 8 item 2): whether this LB may apply a change now. Pure; the run loop feeds it this LB's VRRP
 * state and the peer's status entry (the render hash it reports under configHashes.all, its Ready condition and
 * heartbeat), and applies, waits, or applies alone when there is no peer to go first.
 */
import type { AgentVrrpState } from "../render/vrrp-state";
import type { ChangeSet } from "./changes";

export interface PeerView {
  name: string;
  /** the render hash the peer reports as applied (status configHashes.all) */
  appliedHash?: string;
  ready: boolean;
  heartbeatAgeMs: number;
}

export type RolloutDecision =
  { action: "nothing" } | { action: "apply"; gate: boolean; reason: string } | { action: "wait"; reason: string };

/** A peer silent for longer than this is gone for the rollout: the MASTER does not wait for it forever. */
export const PEER_STALE_MS = 60_000;

export function rolloutDecision(me: AgentVrrpState, change: ChangeSet, peer: PeerView | undefined): RolloutDecision {
  switch (change.kind) {
    case "none":
      return { action: "nothing" };
    case "servers-only":
      return { action: "apply", gate: false, reason: "backend membership: runtime API, no reload" };
    case "safe":
      return { action: "apply", gate: false, reason: "cannot break serving" };
    case "risky":
      break;
  }
  if (me !== "MASTER") return { action: "apply", gate: true, reason: `${me}: goes first, health-gated` };
  if (!peer || peer.heartbeatAgeMs > PEER_STALE_MS) {
    return {
      action: "apply",
      gate: true,
      reason: `no live peer to go first${peer ? ` (${peer.name} silent for ${Math.round(peer.heartbeatAgeMs / 1000)} s)` : ""}: applying alone, health-gated`,
    };
  }
  if (peer.appliedHash === change.desiredHash && peer.ready)
    return { action: "apply", gate: true, reason: `${peer.name} applied it and is Ready` };
  return {
    action: "wait",
    reason: `waiting for ${peer.name} to apply ${change.desiredHash.slice(0, 12)} and be Ready (${changedSummary(change)})`,
  };
}

function changedSummary(change: ChangeSet): string {
  return change.risky.join(", ");
}
