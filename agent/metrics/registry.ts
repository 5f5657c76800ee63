/**
 * The agent's Prometheus series (docs/metrics.md is their contract): one place that names them. The agent's parts
 * record what happened (a transition, an apply); what is merely current (Ready, the heartbeat, conntrackd's counters,
 * HAProxy's servers) is read when a scrape asks, through `Snapshot`, at most once a second (server.ts).
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { IMAGE_SWITCH_PHASES } from "../../k8s/custom-resource";
import type { ConntrackdStats } from "./conntrackd";

export const VRRP_STATES = ["MASTER", "BACKUP", "FAULT", "STOP", "INIT"] as const;
export type MetricsVrrpState = (typeof VRRP_STATES)[number];
/** Idle: the LoadBalancer shows no image switch. */
export const SWITCH_PHASES = ["Idle", ...IMAGE_SWITCH_PHASES] as const;
export type MetricsSwitchPhase = (typeof SWITCH_PHASES)[number];
export type ApplyResult = "applied" | "failed" | "reverted";
export const RECONCILE_ERROR_REASONS = [
  "rejected",
  "reload",
  "health_gate",
  "runtime_api",
  "api",
  "invalid_spec",
  "other",
] as const;
export type ReconcileErrorReason = (typeof RECONCILE_ERROR_REASONS)[number];

/** One server of a HAProxy backend as the agent sees it: HAProxy's check and where the server came from. */
export interface PoolServerState {
  pool: string;
  server: string;
  source: "spec" | "node";
  up: boolean;
}

/** What is current when a scrape asks. */
export interface Snapshot {
  ready: boolean;
  redundant: boolean;
  /** epoch ms of the last status write the API server accepted */
  heartbeatAt?: number;
  rendererVersion: string;
  configHash: string;
  image: string;
  /** undefined: `conntrackd -s` did not answer */
  conntrackd?: ConntrackdStats;
  /** undefined: HAProxy's admin socket did not answer (the last known servers are not repeated) */
  servers?: PoolServerState[];
  /** epoch ms when the agent's token expires; undefined: unknown, or a token without expiry (the bootstrap one) */
  tokenExpiresAt?: number;
  /** the pair's image switch (status.imageSwitch); undefined: none yet */
  imageSwitch?: { phase: string; since: number };
}

export class AgentMetrics {
  readonly registry = new Registry();
  private vrrpState: MetricsVrrpState = "INIT";
  private readonly info: Gauge;
  private readonly ready: Gauge;
  private readonly redundant: Gauge;
  private readonly heartbeat: Gauge;
  private readonly vrrp: Gauge;
  private readonly transitions: Counter;
  private readonly lastTransition: Gauge;
  private readonly conntrackdUp: Gauge;
  private readonly syncMessages: Counter;
  private readonly syncErrors: Counter;
  private readonly cacheEntries: Gauge;
  private readonly serverUp: Gauge;
  private readonly poolServers: Gauge;
  private readonly applies: Counter;
  private readonly applyDuration: Histogram;
  private readonly reconcileErrors: Counter;
  private readonly phase: Gauge;
  private readonly waiting: Gauge;
  private readonly phaseStart: Gauge;
  private readonly tokenExpiry: Gauge;
  readonly authFailures: Counter;
  readonly exporterUp: Gauge;

  constructor(
    labels: { cluster: string; lb: string },
    private readonly vrrpInstance: string,
  ) {
    const r = [this.registry];
    this.registry.setDefaultLabels(labels);
    this.info = new Gauge({
      name: "edgepair_info",
      help: "What runs on this LB: renderer version, desired-state hash last applied, booted image (always 1).",
      labelNames: ["renderer_version", "config_hash", "image"],
      registers: r,
    });
    this.ready = gauge(r, "edgepair_ready", "1 while this LB's Ready condition is True.");
    this.redundant = gauge(r, "edgepair_pair_redundant", "1 while the pair is Redundant as this LB sees it.");
    this.heartbeat = gauge(
      r,
      "edgepair_heartbeat_timestamp_seconds",
      "When the API server last accepted this LB's status (Unix time).",
    );
    this.vrrp = new Gauge({
      name: "edgepair_vrrp_state",
      help: "1 for the VRRP state keepalived is in on this LB.",
      labelNames: ["vrrp_instance", "state"],
      registers: r,
    });
    this.transitions = new Counter({
      name: "edgepair_vrrp_transitions_total",
      help: "VRRP transitions the agent saw, by the state entered.",
      labelNames: ["vrrp_instance", "state"],
      registers: r,
    });
    this.lastTransition = new Gauge({
      name: "edgepair_vrrp_last_transition_timestamp_seconds",
      help: "When the agent last saw a VRRP transition (Unix time).",
      labelNames: ["vrrp_instance"],
      registers: r,
    });
    this.conntrackdUp = gauge(r, "edgepair_conntrackd_up", "1 when `conntrackd -s` answered at the last look.");
    this.syncMessages = new Counter({
      name: "edgepair_conntrackd_sync_messages_total",
      help: "conntrackd's sync messages (its own counters: they restart with it).",
      labelNames: ["direction"],
      registers: r,
    });
    this.syncErrors = new Counter({
      name: "edgepair_conntrackd_sync_errors_total",
      help: "conntrackd's sync errors by kind (its own counters: they restart with it).",
      labelNames: ["kind"],
      registers: r,
    });
    this.cacheEntries = new Gauge({
      name: "edgepair_conntrackd_cache_entries",
      help: "Flows in conntrackd's caches: internal (this LB's), external (sent by the peer).",
      labelNames: ["cache"],
      registers: r,
    });
    this.serverUp = new Gauge({
      name: "edgepair_pool_server_up",
      help: "1 while HAProxy holds the server UP on a passed check; source: the spec's static address or a Node.",
      labelNames: ["pool", "server", "source"],
      registers: r,
    });
    this.poolServers = new Gauge({
      name: "edgepair_pool_servers",
      help: "Servers per HAProxy backend and state.",
      labelNames: ["pool", "state"],
      registers: r,
    });
    this.applies = new Counter({
      name: "edgepair_applies_total",
      help: "Applies of a changed service's files, by result.",
      labelNames: ["service", "result"],
      registers: r,
    });
    this.applyDuration = new Histogram({
      name: "edgepair_apply_duration_seconds",
      help: "From writing a service's files to the end of the health gate.",
      labelNames: ["service"],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 60],
      registers: r,
    });
    this.reconcileErrors = new Counter({
      name: "edgepair_reconcile_errors_total",
      help: "Reconciles that did not reach the desired state, by reason.",
      labelNames: ["reason"],
      registers: r,
    });
    this.phase = new Gauge({
      name: "edgepair_image_switch_phase",
      help: "1 for the image switch phase this LB's agent is in (Idle: no switch).",
      labelNames: ["phase"],
      registers: r,
    });
    this.waiting = gauge(
      r,
      "edgepair_rollout_waiting",
      "1 while a risky change waits for its turn (the BACKUP applies first, the MASTER after it).",
    );
    this.phaseStart = gauge(
      r,
      "edgepair_image_switch_phase_start_timestamp_seconds",
      "When the current image switch phase began (Unix time).",
    );
    this.tokenExpiry = gauge(
      r,
      "edgepair_token_expiry_timestamp_seconds",
      "When the agent's cluster token expires (Unix time); renewed well before.",
    );
    this.authFailures = new Counter({
      name: "edgepair_metrics_auth_failures_total",
      help: "Scrapes refused for a wrong or missing metrics password.",
      registers: r,
    });
    this.exporterUp = gauge(r, "edgepair_haproxy_exporter_up", "1 when HAProxy's exporter answered the last read.");
    // every label combination exists from the start: a counter that appears only on its first increment hides its
    // first increase from rate() and increase()
    for (const s of VRRP_STATES) this.transitions.inc({ vrrp_instance: vrrpInstance, state: s }, 0);
    for (const reason of RECONCILE_ERROR_REASONS) this.reconcileErrors.inc({ reason }, 0);
    this.authFailures.inc(0);
    this.setVrrp("INIT");
    this.waiting.set(0);
    this.setPhase("Idle");
  }

  vrrpTransition(state: MetricsVrrpState, at = Date.now()): void {
    this.transitions.inc({ vrrp_instance: this.vrrpInstance, state });
    this.lastTransition.set({ vrrp_instance: this.vrrpInstance }, at / 1000);
    this.setVrrp(state);
  }

  /** The state as first detected (no transition seen). */
  setVrrp(state: MetricsVrrpState): void {
    this.vrrpState = state;
    for (const s of VRRP_STATES) this.vrrp.set({ vrrp_instance: this.vrrpInstance, state: s }, s === state ? 1 : 0);
  }

  get currentVrrp(): MetricsVrrpState {
    return this.vrrpState;
  }

  applied(services: readonly string[], result: ApplyResult, seconds: number): void {
    for (const service of services) {
      this.applies.inc({ service, result });
      this.applyDuration.observe({ service }, seconds);
    }
  }

  rolloutWaiting(waiting: boolean): void {
    this.waiting.set(waiting ? 1 : 0);
  }

  reconcileError(reason: ReconcileErrorReason): void {
    this.reconcileErrors.inc({ reason });
  }

  /** The pair's image switch as the LoadBalancer shows it; since: when the phase began (epoch ms). */
  private setPhase(phase: MetricsSwitchPhase, since?: number): void {
    for (const p of SWITCH_PHASES) this.phase.set({ phase: p }, p === phase ? 1 : 0);
    if (since !== undefined && Number.isFinite(since)) this.phaseStart.set(since / 1000);
    else this.phaseStart.reset();
  }

  /** What is current, set just before the registry is read. */
  observe(s: Snapshot): void {
    this.info.reset();
    this.info.set({ renderer_version: s.rendererVersion, config_hash: s.configHash, image: s.image }, 1);
    const phase = SWITCH_PHASES.find((p) => p === s.imageSwitch?.phase);
    this.setPhase(phase ?? "Idle", phase ? s.imageSwitch?.since : undefined);
    this.ready.set(s.ready ? 1 : 0);
    if (s.tokenExpiresAt !== undefined) this.tokenExpiry.set(s.tokenExpiresAt / 1000);
    else this.tokenExpiry.reset();
    this.redundant.set(s.redundant ? 1 : 0);
    if (s.heartbeatAt !== undefined) this.heartbeat.set(s.heartbeatAt / 1000);
    this.conntrackdUp.set(s.conntrackd ? 1 : 0);
    if (s.conntrackd) {
      const c = s.conntrackd;
      setCounter(this.syncMessages, { direction: "sent" }, c.messagesSent);
      setCounter(this.syncMessages, { direction: "received" }, c.messagesReceived);
      setCounter(this.syncErrors, { kind: "send" }, c.sendErrors);
      setCounter(this.syncErrors, { kind: "receive" }, c.receiveErrors);
      setCounter(this.syncErrors, { kind: "malformed" }, c.malformed);
      setCounter(this.syncErrors, { kind: "lost" }, c.lost);
      this.cacheEntries.set({ cache: "internal" }, c.internalEntries);
      this.cacheEntries.set({ cache: "external" }, c.externalEntries);
    }
    if (s.servers) {
      // servers come and go with Nodes: a gone server's series must go too
      this.serverUp.reset();
      this.poolServers.reset();
      const counts = new Map<string, { up: number; down: number }>();
      for (const x of s.servers) {
        this.serverUp.set({ pool: x.pool, server: x.server, source: x.source }, x.up ? 1 : 0);
        const c = counts.get(x.pool) ?? { up: 0, down: 0 };
        if (x.up) c.up++;
        else c.down++;
        counts.set(x.pool, c);
      }
      for (const [pool, c] of counts) {
        this.poolServers.set({ pool, state: "up" }, c.up);
        this.poolServers.set({ pool, state: "down" }, c.down);
      }
    }
  }
}

function gauge(registers: Registry[], name: string, help: string): Gauge {
  return new Gauge({ name, help, registers });
}

/**
 * conntrackd keeps its own totals; a counter follows them (a lower value means conntrackd restarted, which a
 * Prometheus counter reset expresses the same way).
 */
function setCounter(c: Counter, labels: Record<string, string>, value: number): void {
  c.remove(labels);
  c.inc(labels, value);
}
