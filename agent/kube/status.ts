/**
 * This LB's status in its LoadBalancer, by server-side apply to the status subresource:
 * - its own `status.loadBalancers` entry (k8s/custom-resource.ts loadBalancerEntryApply) with its own field manager
 *   (statusFieldManager(lb)) and without force: the entry is a list-map item keyed by name, so the two LBs never
 *   conflict, and a conflict would mean two LBs report under one hostname — a misconfiguration to surface, not hide;
 * - when its VRRP state is Master, the pair-level `Redundant` condition, with force and a second field manager of
 *   its own (pairStatusFieldManager): force lets ownership follow the MASTER role, and a separate manager means the
 *   entry apply and the condition apply never drop each other's fields (an apply owns exactly what it sends).
 *
 * - an entry of another hostname with this LB's role is the VM this one replaced (`pulumi up --replace` with a new
 *   hostname): one entry per role, so this LB removes it (a JSON patch that tests the entry's name first, so it can
 *   only remove what it saw) and it never counts as the peer.
 *
 * A heartbeat every `heartbeatMs` (and at once on every change). `Redundant` is False when the peer's entry is
 * missing, not Ready, or its heartbeat has not changed for `staleAfterMs` — measured on this LB's clock from when
 * the change was seen, so clock skew between the two VMs cannot fake a live or a dead peer.
 *
 * lastError and condition messages are shown to anyone who may read the LoadBalancer: callers never put a secret
 * in them.
 */
import { HeartbeatClock } from "./heartbeat";
import { z } from "zod";
import { formatProblem, type SpecProblem } from "../../spec/errors";
import type { Role } from "../../spec/types";
import {
  API_VERSION,
  GROUP,
  KIND,
  loadBalancerEntryApply,
  loadBalancerStatusSchema,
  PLURAL,
  statusFieldManager,
  VERSION,
  type Condition,
  type LoadBalancerEntryStatus,
  type Manifest,
  MAX_STATUS_LEFT_OUT,
  MAX_STATUS_SERVERS,
  type PoolViewStatus,
} from "../../k8s";
import type { KubeClient } from "./client";
import type { PoolView } from "./backends";
import type { LoadBalancerObject } from "./watch";
import type { StatusVrrpState } from "../../render/vrrp-state";

type ConditionStatus = "True" | "False" | "Unknown";

/** What the rest of the agent knows about this LB; every field optional until known. */
export interface LbFacts {
  vrrpState?: StatusVrrpState;
  /** Rendered file path -> hash of the content in place. */
  configHashes?: Record<string, string>;
  rendererVersion?: string;
  bootedImage?: string;
  /** The last apply/validation failure; cleared with undefined. Never a secret. */
  lastError?: string;
  /** HAProxy and keepalived run the current config; undefined until checked. */
  servicesUp?: boolean;
  /** A change (config, image switch) is being applied. */
  applying?: boolean;
  /** The LoadBalancer spec is invalid (the last good one keeps running). */
  specProblems?: readonly SpecProblem[];
  /** metadata.generation of the spec this LB runs. */
  observedGeneration?: number;
  /** The image switch's own view of this LB (agent/switch plan.ts SelfReport); undefined: no switch concerns it. */
  imageSwitch?: { progressing?: ConditionText; degraded?: ConditionText };
  /** The backend pools of the selection this LB last applied: each server's source, the Nodes left out and why. */
  backends?: { api: PoolView; ingress?: PoolView };
}

/** A pool as status shows it: bounded lists, with the totals beside them. */
export function poolStatus(v: PoolView): PoolViewStatus {
  return {
    servers: v.servers.slice(0, MAX_STATUS_SERVERS).map((x) => ({
      name: x.name,
      address: x.address,
      from: x.from,
      ...(x.node !== undefined ? { node: x.node } : {}),
    })),
    serverCount: v.servers.length,
    leftOut: v.leftOut.slice(0, MAX_STATUS_LEFT_OUT).map((x) => ({ node: x.node, reason: x.reason.slice(0, 256) })),
    leftOutCount: v.leftOut.length,
  };
}

/** reason + message of a condition some part of the agent decides (the switch says why it progresses or failed). */
export interface ConditionText {
  reason: string;
  message: string;
}

export const PAIR_CONDITION_SUFFIX = "/pair";
/** configHashes key of the hash over every rendered file (agent/changes.ts renderHash): what the peer waits for. */
export const APPLIED_HASH_KEY = "all";

/** The field manager of the pair-level conditions written by one LB (see the module comment). */
export function pairStatusFieldManager(lbName: string): string {
  return `${statusFieldManager(lbName)}${PAIR_CONDITION_SUFFIX}`;
}

export interface ConditionInput {
  type: string;
  status: ConditionStatus;
  reason: string;
  message: string;
}

const MAX_MESSAGE = 32_768;
const MAX_LAST_ERROR = 4096;

/** Seconds precision, like metav1.Time. */
export function kubeTime(d: Date): string {
  return d.toISOString().replace(/\.\d+Z$/, "Z");
}

/** What a new condition needs of the one it replaces. */
export type PriorCondition = Pick<Condition, "type" | "status" | "lastTransitionTime">;

/** The condition with lastTransitionTime kept from `previous` when the status did not change. */
export function withTransition(
  c: ConditionInput,
  previous: readonly PriorCondition[] | undefined,
  now: Date,
  observedGeneration?: number,
): Condition {
  const prev = previous?.find((p) => p.type === c.type);
  return {
    type: c.type,
    status: c.status,
    ...(observedGeneration !== undefined ? { observedGeneration } : {}),
    lastTransitionTime: prev && prev.status === c.status ? prev.lastTransitionTime : kubeTime(now),
    reason: c.reason,
    message: c.message.slice(0, MAX_MESSAGE),
  };
}

/** Ready / Degraded / Progressing of one LB, from its facts. */
export function lbConditionInputs(f: LbFacts): ConditionInput[] {
  const fault = f.vrrpState === "Fault";
  const ready: ConditionInput = fault
    ? {
        type: "Ready",
        status: "False",
        reason: "VrrpFault",
        message: "keepalived holds the VRRP instance in FAULT (a tracked check fails)",
      }
    : f.servicesUp === false
      ? {
          type: "Ready",
          status: "False",
          reason: "ServicesDown",
          message: f.lastError ?? "the load-balancing services are not running",
        }
      : f.servicesUp === undefined
        ? { type: "Ready", status: "Unknown", reason: "Starting", message: "the services have not been checked yet" }
        : { type: "Ready", status: "True", reason: "Serving", message: "" };
  const problems = f.specProblems ?? [];
  const switchFailed = f.imageSwitch?.degraded;
  const switching = f.imageSwitch?.progressing;
  // a failed image switch stands until a new target, so it outranks a passing apply error; an invalid spec outranks
  // both because nothing else can be applied until it is fixed
  const degraded: ConditionInput =
    problems.length > 0
      ? {
          type: "Degraded",
          status: "True",
          reason: "InvalidSpec",
          message: `the last valid spec keeps running: ${problems.map(formatProblem).join("; ")}`,
        }
      : switchFailed
        ? { type: "Degraded", status: "True", reason: switchFailed.reason, message: switchFailed.message }
        : f.lastError !== undefined
          ? { type: "Degraded", status: "True", reason: "ApplyFailed", message: f.lastError }
          : fault
            ? {
                type: "Degraded",
                status: "True",
                reason: "VrrpFault",
                message: "keepalived holds the VRRP instance in FAULT",
              }
            : { type: "Degraded", status: "False", reason: "AsExpected", message: "" };
  const progressing: ConditionInput = switching
    ? { type: "Progressing", status: "True", reason: switching.reason, message: switching.message }
    : f.applying
      ? { type: "Progressing", status: "True", reason: "Applying", message: "a change is being applied" }
      : { type: "Progressing", status: "False", reason: "Reconciled", message: "" };
  return [ready, degraded, progressing];
}

/** What the MASTER knows of one peer entry. */
export interface PeerHeartbeat {
  name: string;
  ready: boolean;
  /** Time since its heartbeat was last seen to change (this LB's clock). */
  heartbeatAgeMs: number;
}

/** The pair-level Redundant condition. */
export function redundantInput(
  self: { name: string; ready: boolean },
  peers: readonly PeerHeartbeat[],
  staleAfterMs: number,
): ConditionInput {
  const base = { type: "Redundant" } as const;
  if (!self.ready) return { ...base, status: "False", reason: "NotReady", message: `${self.name} is not Ready` };
  if (peers.length === 0)
    return {
      ...base,
      status: "False",
      reason: "PeerMissing",
      message: `only ${self.name} reports; the second LB has no status entry`,
    };
  const fresh = peers.filter((p) => p.heartbeatAgeMs <= staleAfterMs);
  if (fresh.length === 0) {
    const p = peers[0] as PeerHeartbeat;
    return {
      ...base,
      status: "False",
      reason: "HeartbeatStale",
      message: `${p.name} last reported ${Math.round(p.heartbeatAgeMs / 1000)} s ago (bound ${Math.round(staleAfterMs / 1000)} s)`,
    };
  }
  if (!fresh.some((p) => p.ready))
    return {
      ...base,
      status: "False",
      reason: "PeerNotReady",
      message: `${fresh.map((p) => p.name).join(", ")} is not Ready`,
    };
  return {
    ...base,
    status: "True",
    reason: "BothReady",
    message: `${self.name} and ${fresh.find((p) => p.ready)?.name} are Ready`,
  };
}

export interface StatusReporterOptions {
  namespace: string;
  loadBalancerName: string;
  /** This LB's hostname: the key of its entry. */
  lbName: string;
  role: Role;
  /** Default 10 s. */
  heartbeatMs?: number;
  /** A peer whose heartbeat has not changed this long is stale. Default 3 heartbeats + 5 s. */
  staleAfterMs?: number;
  /** Failed writes (the next heartbeat retries). */
  onError?: (message: string) => void;
  now?: () => Date;
}

/** Writes this LB's entry (and, as MASTER, Redundant) on every change and every heartbeat. */
export class StatusReporter {
  private facts: LbFacts = {};
  private conditions: PriorCondition[] | undefined;
  private redundant: Condition | undefined;
  private readonly heartbeats = new HeartbeatClock();
  private peers: { name: string; ready: boolean; appliedHash?: string }[] = [];
  /** entries of other hostnames with this LB's role (the VMs it replaced) and where the last watch saw them */
  private predecessors: { name: string; index: number }[] = [];
  private observedConditions: PriorCondition[] | undefined;
  private observedSwitch: { phase: string; since: number } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> | undefined;
  private again = false;
  private running = false;
  private readonly heartbeatMs: number;
  private readonly staleAfterMs: number;
  private readonly now: () => Date;
  private lastWritten: LoadBalancerEntryStatus | undefined;

  constructor(
    private readonly client: KubeClient,
    private readonly o: StatusReporterOptions,
  ) {
    this.heartbeatMs = o.heartbeatMs ?? 10_000;
    this.staleAfterMs = o.staleAfterMs ?? 3 * this.heartbeatMs + 5000;
    this.now = o.now ?? (() => new Date());
  }

  /** The entry last written successfully. */
  get written(): LoadBalancerEntryStatus | undefined {
    return this.lastWritten;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.kick();
  }

  /** Merges facts (an explicit undefined clears one) and writes at once. */
  update(facts: Partial<LbFacts>): void {
    this.facts = { ...this.facts, ...facts };
    this.kick();
  }

  /** The latest LoadBalancer seen by the watch: the peer's entry, and the conditions to carry transition times from. */
  observe(lb: LoadBalancerObject | null): void {
    const status = readStatus(lb?.status);
    const nowMs = this.now().getTime();
    const entries = status.loadBalancers;
    this.peers = [];
    this.predecessors = [];
    for (const e of entries) {
      const ready = e.conditions.find((c) => c.type === "Ready")?.status === "True";
      if (e.name === this.o.lbName) {
        this.conditions ??= e.conditions; // after a restart: keep the transition times
        continue;
      }
      if (e.role === this.o.role) {
        this.predecessors.push({ name: e.name, index: e.index });
        continue;
      }
      this.peers.push({ name: e.name, ready, ...(e.appliedHash ? { appliedHash: e.appliedHash } : {}) });
      this.heartbeats.observe(e.name, e.heartbeat, nowMs);
    }
    this.heartbeats.keepOnly(entries.map((e) => e.name));
    this.observedConditions = status.conditions;
    this.observedSwitch = status.imageSwitch;
  }

  /** The pair's image switch as the LoadBalancer last showed it: phase and when it began (epoch ms). */
  get imageSwitchSeen(): { phase: string; since: number } | undefined {
    return this.observedSwitch;
  }

  /** The peer as the BACKUP-first rollout needs it (agent/rollout.ts): its applied render hash, Ready, heartbeat age. */
  peerView(): { name: string; ready: boolean; appliedHash?: string; heartbeatAgeMs: number } | undefined {
    const nowMs = this.now().getTime();
    // two entries of the peer's role: its replacement reports beside the old VM's entry until it removes that one
    const aged = this.peers.map((p) => ({ ...p, heartbeatAgeMs: this.heartbeats.ageMs(p.name, nowMs) }));
    return aged.sort((a, b) => a.heartbeatAgeMs - b.heartbeatAgeMs)[0];
  }

  /** Redundant as this LB would write it now. */
  redundantNow(): ConditionInput {
    const nowMs = this.now().getTime();
    const selfReady = lbConditionInputs(this.facts)[0]?.status === "True";
    const peers = this.peers.map((p) => ({ ...p, heartbeatAgeMs: this.heartbeats.ageMs(p.name, nowMs) }));
    return redundantInput({ name: this.o.lbName, ready: selfReady }, peers, this.staleAfterMs);
  }

  /** Writes now (after a write in flight); rejects with the write's error. */
  async flush(): Promise<void> {
    if (this.writing) await this.writing.catch(() => undefined);
    await this.write();
  }

  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.writing?.catch(() => undefined);
  }

  private kick(): void {
    if (!this.running) return;
    if (this.writing) {
      this.again = true;
      return;
    }
    clearTimeout(this.timer);
    this.writing = this.write()
      .catch((e: unknown) => this.o.onError?.(e instanceof Error ? e.message : String(e)))
      .finally(() => {
        this.writing = undefined;
        if (!this.running) return;
        if (this.again) {
          this.again = false;
          this.kick();
        } else {
          this.timer = setTimeout(() => this.kick(), this.heartbeatMs);
        }
      });
  }

  /** The LoadBalancer's status subresource; with a manager, the query of a server-side apply. */
  private statusPath(manager?: string, force = false): string {
    const path = `/apis/${GROUP}/${VERSION}/namespaces/${encodeURIComponent(this.o.namespace)}/${PLURAL}/${encodeURIComponent(this.o.loadBalancerName)}/status`;
    if (manager === undefined) return path;
    return `${path}?${new URLSearchParams({ fieldManager: manager, ...(force ? { force: "true" } : {}) })}`;
  }

  private async write(): Promise<void> {
    const now = this.now();
    const f = this.facts;
    const conditions = lbConditionInputs(f).map((c) => withTransition(c, this.conditions, now, f.observedGeneration));
    this.conditions = conditions;
    const entry: LoadBalancerEntryStatus = {
      name: this.o.lbName,
      role: this.o.role,
      ...(f.vrrpState ? { vrrpState: f.vrrpState } : {}),
      ...(f.configHashes ? { configHashes: f.configHashes } : {}),
      ...(f.rendererVersion ? { rendererVersion: f.rendererVersion } : {}),
      ...(f.bootedImage ? { bootedImage: f.bootedImage } : {}),
      ...(f.lastError !== undefined ? { lastError: f.lastError.slice(0, MAX_LAST_ERROR) } : {}),
      heartbeat: now.toISOString(),
      ...(f.observedGeneration !== undefined ? { observedGeneration: f.observedGeneration } : {}),
      conditions,
      ...(f.backends
        ? {
            backends: {
              api: poolStatus(f.backends.api),
              ...(f.backends.ingress ? { ingress: poolStatus(f.backends.ingress) } : {}),
            },
          }
        : {}),
    };
    const ref = { name: this.o.loadBalancerName, namespace: this.o.namespace };
    await this.client.request("PATCH", this.statusPath(statusFieldManager(this.o.lbName), false), {
      body: loadBalancerEntryApply(ref, entry),
      contentType: "application/apply-patch+yaml",
    });
    this.lastWritten = entry;
    // highest index first: removing one does not move the others
    for (const p of [...this.predecessors].sort((a, b) => b.index - a.index)) await this.removeEntry(p);
    this.predecessors = [];
    if (f.vrrpState !== "Master") return;
    this.redundant = withTransition(
      this.redundantNow(),
      this.redundant ? [this.redundant] : this.observedConditions,
      now,
    );
    await this.client.request("PATCH", this.statusPath(pairStatusFieldManager(this.o.lbName), true), {
      body: pairConditionsApply(ref, [this.redundant]),
      contentType: "application/apply-patch+yaml",
    });
  }

  /**
   * Removes a predecessor's entry where the watch saw it; the test op makes the patch fail, removing nothing, if the
   * list changed since (the next write tries again from a newer view).
   */
  private async removeEntry(p: { name: string; index: number }): Promise<void> {
    await this.client.request("PATCH", this.statusPath(), {
      body: [
        { op: "test", path: `/status/loadBalancers/${p.index}/name`, value: p.name },
        { op: "remove", path: `/status/loadBalancers/${p.index}` },
      ],
      contentType: "application/json-patch+json",
    });
  }
}

/** The server-side-apply body of the pair-level conditions (validated by the same zod model as the CRD). */
export function pairConditionsApply(
  ref: { name: string; namespace: string },
  conditions: Condition[],
): Manifest & { status: { conditions: Condition[] } } {
  const checked = loadBalancerStatusSchema.parse({ conditions });
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name: ref.name, namespace: ref.namespace },
    status: { conditions: checked.conditions ?? [] },
  };
}

/**
 * What this LB reads of the status, loosely: a peer running another agent version may write fields or reasons this
 * version does not know, and that must not turn into "the peer is missing". Conditions that do not carry what a
 * transition time can be kept from are skipped.
 */
const priorCondition = z.object({ type: z.string(), status: z.string(), lastTransitionTime: z.iso.datetime() });
const looseEntry = z.object({
  name: z.string().min(1),
  role: z.string().nullish(),
  heartbeat: z.string(),
  conditions: z.array(z.unknown()).nullish(),
  configHashes: z.record(z.string(), z.unknown()).nullish(),
});

const looseSwitch = z.object({ phase: z.string(), lastTransitionTime: z.string() });

function priorConditions(xs: readonly unknown[] | null | undefined): PriorCondition[] {
  return (xs ?? []).flatMap((x) => {
    const r = priorCondition.safeParse(x);
    return r.success
      ? [
          {
            type: r.data.type,
            status: r.data.status as PriorCondition["status"],
            lastTransitionTime: r.data.lastTransitionTime,
          },
        ]
      : [];
  });
}

function readStatus(raw: unknown): {
  loadBalancers: {
    name: string;
    role?: string;
    index: number;
    heartbeat: string;
    conditions: PriorCondition[];
    appliedHash?: string;
  }[];
  conditions: PriorCondition[];
  imageSwitch?: { phase: string; since: number };
} {
  const s =
    typeof raw === "object" && raw !== null
      ? (raw as { loadBalancers?: unknown; conditions?: unknown; imageSwitch?: unknown })
      : {};
  const sw = looseSwitch.safeParse(s.imageSwitch);
  const entries = Array.isArray(s.loadBalancers) ? s.loadBalancers : [];
  return {
    loadBalancers: entries.flatMap((e, index) => {
      const r = looseEntry.safeParse(e);
      if (!r.success) return [];
      const all = r.data.configHashes?.[APPLIED_HASH_KEY];
      return [
        {
          name: r.data.name,
          ...(r.data.role ? { role: r.data.role } : {}),
          index,
          heartbeat: r.data.heartbeat,
          conditions: priorConditions(r.data.conditions),
          ...(typeof all === "string" ? { appliedHash: all } : {}),
        },
      ];
    }),
    conditions: priorConditions(Array.isArray(s.conditions) ? s.conditions : []),
    ...(sw.success ? { imageSwitch: { phase: sw.data.phase, since: Date.parse(sw.data.lastTransitionTime) } } : {}),
  };
}
