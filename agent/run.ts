/**
 * `edgepair agent run`: the day-2 loop on one LB. It composes the parts and decides nothing they decide:
 * - cluster side (kube/): desired state (last good spec + backends from Nodes), status, token;
 * - VRRP side (vrrp/): transitions from keepalived's notify FIFO, the floating-IP re-assert loop;
 * - each desired state is rendered (render/, the same renderers as the Pulumi program) and classified (changes.ts):
 *   backend membership goes through HAProxy's runtime API without a reload (and is written for restarts); other
 *   changes are applied atomically and validated (apply/), risky ones BACKUP first (rollout.ts) behind a health
 *   gate, reverted to the last good render when the gate fails.
 * One reconcile runs at a time; a newer desired state replaces a queued one. Nothing here ever logs a secret.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { renderAll, RENDERER_VERSION } from "../render";
import { HAPROXY_CONFIG_PATH, METRICS_LISTENER } from "../render/haproxy";
import type { RenderedFile } from "../render/types";
import { SERVICES } from "../render/services";
import { statusVrrpState, type AgentVrrpState, type KeepalivedState, type StatusVrrpState } from "../render/vrrp-state";
import type { AgentSettings } from "../spec/agent-settings";
import type { BackendSets, HostFacts, ResolvedSpec } from "../spec/types";
import { applyFiles, readApplyState, type ApplyReport, type CommandRunner, type Validator } from "./apply";
import { classifyChanges, desiredStateHash } from "./changes";
import { backendsHealthy, haproxyWorkerPid, syncServers } from "./haproxy";
import {
  APPLIED_HASH_KEY,
  Backoff,
  ClusterSide,
  type BackoffOptions,
  type ClusterSideEvent,
  type ClusterSideOptions,
  type DesiredState,
} from "./kube";
import { PEER_STALE_MS, rolloutDecision } from "./rollout";
import { ServiceHealth, type Prober } from "./service-lb/health";
import { EventRecorder, type EventNote, type EventRecorderOptions } from "./kube/events";
import { hasPrivateServiceAddresses, kernelServices, privateServiceAddresses } from "../render/service-lb";
import { syncServiceAddresses } from "./service-lb/addresses";
import {
  ImageSwitchLoop,
  keepalivedHeld,
  kubeImageSwitchStore,
  type SwitchHost,
  type SwitchOutcome,
  type SwitchTimeouts,
} from "./switch";
import { statusFieldManager } from "../k8s";
import { detectVrrpState, listenVrrpFifo, startReassert, type FifoListener, type Reasserter } from "./vrrp";
import { AgentMetrics, type ApplyResult, type PoolServerState, type Snapshot } from "./metrics/registry";
import { MetricsServer, type MetricsServerStats } from "./metrics/server";
import { readConntrackdStats } from "./metrics/conntrackd";
import { readServerHealth } from "./haproxy";
import { vrrpInstanceName } from "../render/keepalived";

export interface AgentRunOptions {
  /** "/" on the VM. */
  root: string;
  stateDir: string;
  settings: AgentSettings;
  host: HostFacts;
  /** The spec the VM booted with (desired state until the LoadBalancer is read). */
  bootstrapSpec: ResolvedSpec;
  runner: CommandRunner;
  validators?: readonly Validator[];
  /** HAProxy's admin socket as this process reaches it. */
  haproxySocket: string;
  /** keepalived's notify FIFO as this process reaches it. */
  fifoPath: string;
  log: (line: string) => void;
  /** Health gate after a risky change: how long HAProxy may take to serve again. Default 20 s. */
  gateTimeoutMs?: number;
  /** While waiting for the peer (BACKUP first), how often to look again. Default 2 s. */
  waitPollMs?: number;
  /**
   * The image switch (issue 8 item 5): the effects on this LB (switch/host.ts lbSwitchHost on a VM; stand-ins in
   * tests). Absent: this agent never switches images (tests of other parts, machines without bootc).
   */
  imageSwitch?: {
    host: SwitchHost;
    pollMs?: number;
    idleRecheckMs?: number;
    timeouts?: Partial<SwitchTimeouts>;
    peerStaleAfterMs?: number;
    onOutcome?: (target: string, outcome: SwitchOutcome) => void;
  };
  /** Passed to the cluster side (tests shorten heartbeats and back-off). */
  cluster?: Pick<ClusterSideOptions, "client" | "watch" | "status" | "token" | "services">;
  /** After a reconcile failed (e.g. HAProxy's runtime API away while it restarts): back-off of the retries. */
  retry?: BackoffOptions;
  /**
   * How often the VRRP state is looked at besides the notify FIFO (keepalived running? holding the VIPs?): a
   * keepalived that crashed writes no transition. Default 10 s.
   */
  vrrpRecheckMs?: number;
  /** How Service backends are probed (default: from this process, which on the VM is in the LB's namespace). */
  serviceProber?: Prober;
  /** Event deduplication and rate (tests shorten them). */
  events?: Pick<EventRecorderOptions, "dedupeMs" | "burst" | "refillMs">;
  /**
   * The metrics endpoint (metrics/server.ts): where the agent listens (the socket HAProxy's metrics listener hands
   * scrapes to) and HAProxy's exporter socket, both as this process reaches them. Absent: no metrics served.
   */
  metrics?: { listen: string | { host: string; port: number }; exporterSocket: string; minIntervalMs?: number };
}

/** What a VRRP transition the agent saw says on the LoadBalancer. */
function transitionEvent(state: KeepalivedState): EventNote {
  switch (state) {
    case "MASTER":
      return { type: "Normal", reason: "BecameMaster", action: "Failover", note: "this LB holds the VIPs now" };
    case "BACKUP":
      return { type: "Normal", reason: "BecameBackup", action: "Failover", note: "this LB is the backup now" };
    case "FAULT":
      return {
        type: "Warning",
        reason: "VrrpFault",
        action: "Failover",
        note: "keepalived is in FAULT: a tracked NIC or HAProxy failed; the peer takes over",
      };
    default:
      return {
        type: "Warning",
        reason: "VrrpStopped",
        action: "Failover",
        note: "keepalived is not running on this LB",
      };
  }
}

const KEEPALIVED_RELOAD = "systemctl reload keepalived.service";
const RUNTIME_API_FAILURE = "haproxy runtime API";

export class AgentRun {
  private cluster: ClusterSide | undefined;
  private fifo: FifoListener | undefined;
  private reassert: Reasserter | undefined;
  private vrrp: AgentVrrpState = "INIT";
  private queued: DesiredState | undefined;
  private running: Promise<void> | undefined;
  private waitTimer: NodeJS.Timeout | undefined;
  /** the desired state held back for the peer (BACKUP first), retried on a timer and on every transition */
  private waiting: DesiredState | undefined;
  private stopped = false;
  /** the render that last passed (or needed no) health gate: what a failed gate reverts to */
  private lastGood: RenderedFile[] | undefined;
  private switchLoop: ImageSwitchLoop | undefined;
  /** the spec of the files that run now (the boot spec until a reconcile applied or confirmed another) */
  private appliedSpec: ResolvedSpec | undefined;
  /** the newest desired state handed in: what a retry after a failed reconcile applies */
  private latest: DesiredState | undefined;
  private readonly retries: Backoff;
  private retryTimer: NodeJS.Timeout | undefined;
  private vrrpTimer: NodeJS.Timeout | undefined;
  private readonly health: ServiceHealth;
  private events: EventRecorder | undefined;
  readonly metrics: AgentMetrics;
  private metricsServer: MetricsServer | undefined;

  constructor(private readonly o: AgentRunOptions) {
    this.retries = new Backoff({ initialMs: 1000, maxMs: 30_000, ...o.retry });
    this.metrics = new AgentMetrics(
      { cluster: o.bootstrapSpec.clusterName, lb: o.host.hostname },
      vrrpInstanceName(o.bootstrapSpec.clusterName),
    );
    this.health = new ServiceHealth({
      healthCheck: o.bootstrapSpec.healthCheck,
      runner: o.runner,
      log: o.log,
      ...(o.serviceProber ? { prober: o.serviceProber } : {}),
    });
  }

  async start(): Promise<void> {
    const o = this.o;
    const initial = await detectVrrpState(o.bootstrapSpec, o.host, o.runner);
    if (initial) {
      this.vrrp = initial;
      this.metrics.setVrrp(initial);
      this.startReassert(initial);
    }
    if (o.metrics) await this.startMetrics(o.metrics);
    this.fifo = listenVrrpFifo(
      o.fifoPath,
      (t) => void this.onTransition(t.state),
      (line) => o.log(`vrrp fifo: ignored "${line}"`),
    );
    this.vrrpTimer = setInterval(() => void this.recheckVrrp(), o.vrrpRecheckMs ?? 10_000);
    this.vrrpTimer.unref?.();
    const cluster = (this.cluster = new ClusterSide({
      settings: o.settings,
      host: { hostname: o.host.hostname, role: o.host.role },
      bootstrapSpec: o.bootstrapSpec,
      onEvent: (e) => this.onCluster(e),
      ...o.cluster,
    }));
    this.events = new EventRecorder(cluster.client, {
      reportingInstance: o.host.hostname,
      regarding: () => cluster.regarding(),
      onError: (m) => o.log(m),
      ...o.events,
    });
    this.cluster.status.update({
      rendererVersion: RENDERER_VERSION,
      ...(initial ? { vrrpState: statusVrrpState(initial) } : {}),
    });
    if (o.imageSwitch) this.switchLoop = this.imageSwitchLoop(this.cluster, o.imageSwitch);
    // Nothing is applied until the cluster answers: bootstrap applied the boot spec already, and the cluster
    // side sends its first desired state only once the Nodes are listed (before that, "no Node matches" would
    // briefly turn into the static addresses). With the API away, what is on disk keeps serving.
    await this.cluster.start();
  }

  /** Resolves once every Event recorded so far was sent (tests). */
  async eventsSent(): Promise<void> {
    await this.events?.flush();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.metricsServer?.stop();
    if (this.waitTimer) clearTimeout(this.waitTimer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.vrrpTimer) clearInterval(this.vrrpTimer);
    await this.health.stop();
    this.fifo?.close();
    this.reassert?.stop();
    await this.switchLoop?.stop();
    await this.running?.catch(() => undefined);
    await this.cluster?.stop();
  }

  /** How the metrics endpoint has been asked (requests, refusals, collections); undefined when not serving. */
  get metricsStats(): MetricsServerStats | undefined {
    return this.metricsServer?.stats;
  }

  /** True while this LB's agent holds the Services lease (it allocates and writes Service addresses). */
  get servicesWriter(): boolean {
    return this.cluster?.servicesWriter ?? false;
  }

  private async startMetrics(m: NonNullable<AgentRunOptions["metrics"]>): Promise<void> {
    const server = new MetricsServer({
      listen: m.listen,
      exporterSocket: m.exporterSocket,
      passwordFile: this.o.settings.metricsPasswordFile,
      metrics: this.metrics,
      snapshot: () => this.metricsSnapshot(),
      log: this.o.log,
      ...(m.minIntervalMs !== undefined ? { minIntervalMs: m.minIntervalMs } : {}),
    });
    try {
      await server.start();
      this.metricsServer = server;
    } catch (e) {
      // the LB serves without its metrics: never a reason to stop the agent
      this.o.log(`metrics: cannot listen: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /** What a scrape shows as current: this LB's status as last written, conntrackd's counters, HAProxy's servers. */
  private async metricsSnapshot(): Promise<Snapshot> {
    const status = this.cluster?.status;
    const written = status?.written;
    const [conntrackd, servers] = await Promise.all([
      readConntrackdStats(this.o.runner).catch(() => undefined),
      this.poolServers().catch(() => undefined),
    ]);
    const heartbeatAt = written ? Date.parse(written.heartbeat) : undefined;
    const imageSwitch = status?.imageSwitchSeen;
    const tokenExpiresAt = this.cluster?.token?.expiresAt?.getTime();
    return {
      ready: written?.conditions?.find((c) => c.type === "Ready")?.status === "True",
      redundant: status?.redundantNow().status === "True",
      ...(heartbeatAt !== undefined && Number.isFinite(heartbeatAt) ? { heartbeatAt } : {}),
      rendererVersion: RENDERER_VERSION,
      configHash: written?.configHashes?.[APPLIED_HASH_KEY] ?? "",
      image: written?.bootedImage ?? "",
      ...(conntrackd ? { conntrackd } : {}),
      ...(servers ? { servers } : {}),
      ...(imageSwitch ? { imageSwitch } : {}),
      ...(tokenExpiresAt !== undefined ? { tokenExpiresAt } : {}),
    };
  }

  /** HAProxy's servers with their check state, and whether each came from the spec or from a Node. */
  private async poolServers(): Promise<PoolServerState[]> {
    const health = await readServerHealth(this.o.haproxySocket);
    const pools = this.cluster?.status.written?.backends;
    const fromNode = new Set(
      [...(pools?.api.servers ?? []), ...(pools?.ingress?.servers ?? [])]
        .filter((s) => s.from === "node")
        .map((s) => s.name),
    );
    return health
      .filter((h) => h.backend !== METRICS_LISTENER)
      .map((h) => ({
        pool: h.backend,
        server: h.name,
        source: fromNode.has(h.name) ? "node" : "spec",
        up: h.up,
      }));
  }

  /** The spec of the files that run now. */
  private runningSpec(): ResolvedSpec {
    return this.appliedSpec ?? this.o.bootstrapSpec;
  }

  /** keepalived's state as the image switch reads it while keepalived runs (the FIFO's last word, else the VIPs). */
  async vrrpStateNow(): Promise<StatusVrrpState> {
    if (this.vrrp !== "INIT") return statusVrrpState(this.vrrp);
    const seen = await detectVrrpState(this.runningSpec(), this.o.host, this.o.runner);
    return seen ? statusVrrpState(seen) : "Backup";
  }

  /** Resolves once every queued desired state was handled (tests). */
  async idle(): Promise<void> {
    while (this.running) await this.running.catch(() => undefined);
  }

  private async onTransition(state: KeepalivedState): Promise<void> {
    this.vrrp = state;
    this.metrics.vrrpTransition(state);
    this.o.log(`vrrp: ${state}`);
    this.events?.record(transitionEvent(state));
    this.cluster?.status.update({ vrrpState: statusVrrpState(state) });
    if (this.reassert) await this.reassert.transition(state);
    else this.startReassert(state);
    // a change waiting for the peer may go now (e.g. this LB just became BACKUP)
    if (this.waiting) this.enqueue(this.waiting);
  }

  /**
   * The FIFO's word checked against what is: keepalived not running is STOP whatever was last written (a crash
   * writes nothing), and a running keepalived holding the first private VIP is MASTER. FAULT holds no VIP, so it is
   * not taken for BACKUP.
   */
  private async recheckVrrp(): Promise<void> {
    if (this.stopped || this.vrrp === "INIT") return;
    const o = this.o;
    const active = await o.runner(["systemctl", "is-active", "--quiet", "keepalived.service"], { timeoutMs: 5000 });
    const seen: KeepalivedState | undefined =
      active.exitCode !== 0
        ? "STOP"
        : this.vrrp === "FAULT"
          ? undefined
          : await detectVrrpState(this.runningSpec(), o.host, o.runner);
    if (!seen || seen === this.vrrp || this.stopped) return;
    o.log(
      `vrrp: keepalived ${seen === "STOP" ? "is not running" : `holds the VIPs as ${seen}`}, not ${this.vrrp} as last notified: taken as ${seen}`,
    );
    await this.onTransition(seen);
  }

  private imageSwitchLoop(cluster: ClusterSide, sw: NonNullable<AgentRunOptions["imageSwitch"]>): ImageSwitchLoop {
    const o = this.o;
    const lb = o.host.hostname;
    const clusterSettings = o.settings.cluster;
    if (!clusterSettings) throw new Error("agent.yaml: cluster: is required for the image switch");
    const store = kubeImageSwitchStore(cluster.client, {
      namespace: clusterSettings.namespace,
      loadBalancerName: clusterSettings.loadBalancerName,
      fieldManager: `${statusFieldManager(lb)}/switch`,
    });
    return new ImageSwitchLoop({
      log: o.log,
      ...(sw.idleRecheckMs !== undefined ? { idleRecheckMs: sw.idleRecheckMs } : {}),
      ...(sw.onOutcome ? { onOutcome: sw.onOutcome } : {}),
      deps: (targetImage, signal) => ({
        self: { name: lb, role: o.host.role },
        targetImage,
        store,
        host: sw.host,
        report: (r) =>
          cluster.status.update({
            bootedImage: r.bootedImage,
            imageSwitch: {
              ...(r.progressing ? { progressing: r.progressing } : {}),
              ...(r.degraded ? { degraded: r.degraded } : {}),
            },
          }),
        signal,
        onStep: (step) => {
          if (step.kind === "wait") return;
          o.log(`image switch: ${step.kind}: ${step.reason}`);
          this.events?.record({
            type: "Normal",
            reason: "ImageSwitch",
            action: "Switch",
            note: `${step.kind}: ${step.reason}`,
          });
        },
        ...(sw.pollMs !== undefined ? { pollMs: sw.pollMs } : {}),
        ...(sw.timeouts ? { timeouts: sw.timeouts } : {}),
        ...(sw.peerStaleAfterMs !== undefined ? { peerStaleAfterMs: sw.peerStaleAfterMs } : {}),
      }),
      // a hold no plan will release (the switch it belonged to is over, e.g. its status was reset): keepalived
      // must not stay down for good
      onIdle: async () => {
        if (!keepalivedHeld(o.stateDir)) return;
        o.log("image switch: idle with keepalived held: starting it");
        await sw.host.keepalived.start();
      },
    });
  }

  private startReassert(state: KeepalivedState): void {
    this.reassert = startReassert(state, {
      spec: () => this.runningSpec(),
      host: this.o.host,
      runner: this.o.runner,
      onResult: (r) => {
        if (!r.ok) this.o.log(`floating IPs: ${r.error}`);
      },
    });
  }

  private onCluster(e: ClusterSideEvent): void {
    switch (e.type) {
      case "desired":
        // a valid spec ends the Degraded/InvalidSpec report; a Nodes change under an invalid spec does not
        if (e.cause === "spec") this.cluster?.status.update({ specProblems: undefined });
        // the image is the switch's business, not the render's: it never waits for (or holds back) a config change
        this.switchLoop?.setTarget(e.state.spec.image ?? this.o.settings.imageRef);
        this.enqueue(e.state);
        return;
      case "invalidSpec":
        this.o.log(
          `LoadBalancer spec invalid, keeping the last good one: ${e.problems.map((p) => `${p.path}: ${p.rule}`).join("; ")}`,
        );
        this.events?.record({
          type: "Warning",
          reason: "InvalidSpec",
          action: "Validate",
          note: `refused, the last good spec stays: ${e.problems.map((p) => `${p.path}: ${p.rule}`).join("; ")}`,
        });
        this.cluster?.status.update({ specProblems: e.problems });
        this.metrics.reconcileError("invalid_spec");
        return;
      case "apiError":
        this.o.log(`API (${e.source}): ${e.message}; retry in ${e.retryInMs} ms`);
        this.metrics.reconcileError("api");
        return;

      case "servicesError":
        this.o.log(`services: ${e.message}`);
        return;
      default:
        return;
    }
  }

  private enqueue(state: DesiredState): void {
    if (this.stopped) return;
    this.latest = state;
    this.queued = state;
    if (!this.running) this.running = this.drain().finally(() => (this.running = undefined));
  }

  private async drain(): Promise<void> {
    while (this.queued && !this.stopped) {
      const next = this.queued;
      this.queued = undefined;
      try {
        await this.reconcile(next);
        this.retries.reset();
      } catch (e) {
        const message = e instanceof Error ? e.message : String(e);
        // what runs differs from what is desired until a reconcile passes: try again, with back-off, unless a newer
        // desired state is already queued (it goes next)
        const retryInMs = this.queued ? undefined : this.retryLaterAfterFailure();
        this.o.log(`reconcile failed: ${message}${retryInMs !== undefined ? `; retry in ${retryInMs} ms` : ""}`);
        this.metrics.reconcileError(message.startsWith(RUNTIME_API_FAILURE) ? "runtime_api" : "other");
        this.cluster?.status.update({ lastError: message, applying: false });
      }
    }
  }

  private liveFiles(files: readonly RenderedFile[]): Map<string, { content: string; mode: number }> {
    const live = new Map<string, { content: string; mode: number }>();
    for (const f of files) {
      try {
        live.set(f.path, { content: readFileSync(join(this.o.root, f.path), "utf8"), mode: f.mode });
      } catch {
        // not written yet
      }
    }
    return live;
  }

  private async reconcile(state: DesiredState): Promise<void> {
    const o = this.o;
    const backends: BackendSets = state.selection.backends;
    const files = renderAll({ spec: state.spec, host: o.host, backends, services: state.services });
    // the rollout key is the desired state's hash, not the render's: the peer's render differs from this one's
    const change = classifyChanges(
      files,
      this.liveFiles(files),
      desiredStateHash(state.spec, backends, state.services),
    );
    const decision = rolloutDecision(this.vrrp, change, this.cluster?.status.peerView());
    if (decision.action === "nothing") {
      this.lastGood ??= files;
      this.appliedSpec = state.spec;
      // what is live is what the last apply (bootstrap's included) recorded
      this.report(state, { hashes: (await readApplyState(o.stateDir)).hashes, desiredHash: change.desiredHash });
      await this.afterApply(state, change.desiredHash);
      return;
    }
    this.waiting = undefined;
    this.metrics.rolloutWaiting(decision.action === "wait");
    if (decision.action === "wait") {
      this.waiting = state;
      o.log(decision.reason);
      this.cluster?.status.update({ applying: true });
      this.retryLater();
      return;
    }
    o.log(`applying ${change.kind} change (${change.changed.join(", ")}): ${decision.reason}`);
    this.cluster?.status.update({ applying: true });
    let runner = o.runner;
    if (change.kind === "servers-only") {
      const cfg = files.find((f) => f.path === HAPROXY_CONFIG_PATH);
      if (cfg) {
        const t0 = Date.now();
        const sync = await syncServers(o.haproxySocket, cfg.content);
        if (sync.result.failed) throw new Error(`${RUNTIME_API_FAILURE}: ${sync.result.failed.error}`);
        o.log(`haproxy runtime API: ${sync.plan.length} action(s) in ${Date.now() - t0} ms`);
        // the servers run already: the file is written for restarts, without a reload
        const reloads = new Set(cfg.reload.commands.map((c) => c.join(" ")));
        runner = (argv, opts) =>
          reloads.has(argv.join(" "))
            ? Promise.resolve({ exitCode: 0, timedOut: false, output: "" })
            : o.runner(argv, opts);
      }
    }
    const quiet = this.keepalivedQuietFor(files, change);
    if (quiet) {
      o.log(
        `stopping keepalived while firewalld reloads (${quiet}): firewalld drops every new packet, VRRP adverts included, while it rebuilds its rules`,
      );
      await this.systemctlKeepalived("stop");
      // keepalived, stopped, needs no reload: its start reads the files as they are then
      const inner = runner;
      runner = (argv, opts) =>
        argv.join(" ") === KEEPALIVED_RELOAD
          ? Promise.resolve({ exitCode: 0, timedOut: false, output: "" })
          : inner(argv, opts);
    }
    try {
      await this.applyGated(
        state,
        files,
        change.desiredHash,
        decision.gate,
        change.changed,
        runner,
        `${change.kind} change of ${change.changed.join(", ")}`,
      );
    } finally {
      if (quiet) await this.systemctlKeepalived("start");
    }
  }

  /**
   * Why keepalived must be stopped around this apply, or undefined. A firewalld reload drops every new packet for
   * seconds (measured 1.7-4.8 s in the lab): on the MASTER that is every new client connection, and on either LB the
   * peer's adverts (a BACKUP that misses them takes the VIPs too). So the MASTER hands the VIPs to its peer first, as
   * in a planned failover (only when the peer already runs this change and is Ready), and a BACKUP simply stops
   * advertising for the moment; both come back as BACKUP (nopreempt).
   */
  private keepalivedQuietFor(
    files: readonly RenderedFile[],
    change: { changed: string[]; desiredHash: string },
  ): string | undefined {
    if (!files.some((f) => SERVICES[f.reload.service].reloadStallsTraffic && change.changed.includes(f.path)))
      return undefined;
    if (this.vrrp === "BACKUP") return "BACKUP: stops advertising for the moment";
    if (this.vrrp !== "MASTER") return undefined;
    const peer = this.cluster?.status.peerView();
    if (!peer || !peer.ready || peer.appliedHash !== change.desiredHash || peer.heartbeatAgeMs > PEER_STALE_MS)
      return undefined;
    return `MASTER: hands the VIPs to ${peer.name}, which runs this change already`;
  }

  private async systemctlKeepalived(verb: "stop" | "start"): Promise<void> {
    const r = await this.o.runner(["systemctl", verb, "keepalived.service"], { timeoutMs: 90_000 });
    if (r.exitCode !== 0)
      this.o.log(`systemctl ${verb} keepalived.service: exit ${r.exitCode ?? "none"}: ${r.output.trim().slice(-300)}`);
  }

  /** Applies, then (risky changes) the health gate, reverting to the last good files when it fails. */
  private async applyGated(
    state: DesiredState,
    files: RenderedFile[],
    desiredHash: string,
    gate: boolean,
    changed: readonly string[],
    runner: CommandRunner,
    summary: string,
  ): Promise<void> {
    const o = this.o;
    const haproxyChanged = changed.includes(HAPROXY_CONFIG_PATH);
    const started = Date.now();
    const services = [...new Set(files.filter((f) => changed.includes(f.path)).map((f) => f.reload.service))].sort();
    const count = (result: ApplyResult) => this.metrics.applied(services, result, (Date.now() - started) / 1000);
    // a reloaded HAProxy is judged by its new worker, never by the one it replaces
    const workerBefore = gate && haproxyChanged ? await haproxyWorkerPid(o.haproxySocket) : undefined;
    const report = await applyFiles(files, {
      root: o.root,
      stateDir: o.stateDir,
      runner,
      ...(o.validators ? { validators: o.validators } : {}),
    });
    const problem = applyProblem(report);
    if (problem) {
      count("failed");
      this.metrics.reconcileError(report.rejected.length > 0 ? "rejected" : "reload");
      this.report(state, { hashes: report.hashes, lastError: problem });
      this.events?.record({ type: "Warning", reason: "ApplyFailed", action: "Apply", note: `${summary}: ${problem}` });
      return;
    }
    if (gate && !(await this.healthGate(workerBefore))) {
      const reason = "health gate failed after a risky change: reverted to the last good configuration";
      o.log(reason);
      count("reverted");
      this.metrics.reconcileError("health_gate");
      const reverted = this.lastGood
        ? await applyFiles(this.lastGood, {
            root: o.root,
            stateDir: o.stateDir,
            runner,
            ...(o.validators ? { validators: o.validators } : {}),
          })
        : undefined;
      const revertProblem = reverted && applyProblem(reverted);
      // the hashes of what is live again, not of the render that failed
      this.report(state, {
        hashes: reverted?.hashes ?? report.hashes,
        lastError: revertProblem ? `${reason}; the revert failed: ${revertProblem}` : reason,
      });
      this.events?.record({
        type: "Warning",
        reason: "Reverted",
        action: "Apply",
        note: `${summary}: ${revertProblem ? `${reason}; the revert failed: ${revertProblem}` : reason}`,
      });
      return;
    }
    count("applied");
    this.lastGood = files;
    this.appliedSpec = state.spec;
    this.report(state, { hashes: report.hashes, desiredHash });
    this.events?.record({ type: "Normal", reason: "Applied", action: "Apply", note: summary });
    await this.afterApply(state, desiredHash);
  }

  /** `state` runs now: the Service writer may release what it no longer forwards; backend health goes on its maps. */
  private async afterApply(state: DesiredState, desiredHash: string): Promise<void> {
    this.cluster?.applied(state, desiredHash);
    const frontends = kernelServices(state.spec, state.selection.backends.extra, state.services);
    if (hasPrivateServiceAddresses(state.spec)) {
      const dev = this.o.host.privateInterface.name;
      const r = await syncServiceAddresses(
        this.o.runner,
        state.spec,
        dev,
        privateServiceAddresses(state.spec, frontends),
      );
      if (r.error) this.o.log(`service addresses: ${r.error}`);
      else if (r.add.length + r.remove.length > 0)
        this.o.log(`service addresses on ${dev}: +${r.add.join(", ") || "-"} -${r.remove.join(", ") || "-"}`);
    }
    await this.health.applied(frontends, state.spec.healthCheck);
  }

  /** What `state`'s reconcile left live; its backend pools only when it passed (a failure leaves the last view). */
  private report(
    state: DesiredState,
    r: { hashes: Record<string, string>; desiredHash?: string; lastError?: string },
  ): void {
    const status = this.cluster?.status;
    if (!status) return;
    status.update({
      applying: false,
      lastError: r.lastError,
      servicesUp: r.lastError === undefined,
      ...(Object.keys(r.hashes).length > 0 || r.desiredHash
        ? { configHashes: { ...r.hashes, ...(r.desiredHash ? { [APPLIED_HASH_KEY]: r.desiredHash } : {}) } }
        : {}),
      ...(state.generation !== undefined ? { observedGeneration: state.generation } : {}),
      ...(r.lastError === undefined ? { backends: state.selection.pools } : {}),
    });
  }

  /** Schedules the newest desired state again after a failed reconcile; returns the delay. */
  private retryLaterAfterFailure(): number {
    const ms = this.retries.next();
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (!this.queued && this.latest) this.enqueue(this.latest);
    }, ms);
    this.retryTimer.unref?.();
    return ms;
  }

  private retryLater(): void {
    if (this.waitTimer) clearTimeout(this.waitTimer);
    this.waitTimer = setTimeout(() => {
      if (!this.queued && this.waiting) this.enqueue(this.waiting);
    }, this.o.waitPollMs ?? 2000);
    this.waitTimer.unref?.();
  }

  /** HAProxy answers on its admin socket and every backend with servers has one UP, within the gate's time. */
  private async healthGate(notWorker: number | undefined): Promise<boolean> {
    const deadline = Date.now() + (this.o.gateTimeoutMs ?? 20_000);
    while (Date.now() < deadline && !this.stopped) {
      // HAProxy reloading answers "no socket" for a moment: ask again
      if (
        this.vrrp !== "FAULT" &&
        (await backendsHealthy(this.o.haproxySocket, notWorker !== undefined ? { notWorker } : {})).ok
      )
        return true;
      await new Promise((r) => setTimeout(r, 250));
    }
    return false;
  }
}

function applyProblem(report: ApplyReport): string | undefined {
  if (report.rejected.length > 0)
    return `rejected: ${report.rejected.map((r) => `${r.path} (${r.checker}): ${r.output.split("\n")[0]}`).join("; ")}`;
  const failed = report.reloads.filter((r) => !r.ok);
  if (failed.length > 0)
    return `reload failed: ${failed.map((r) => `${r.service}: ${r.output.split("\n")[0]}`).join("; ")}`;
  return undefined;
}
