/**
 * The cluster side of `edgepair agent run`: the client (client.ts), the watches (watch.ts), desired state from them
 * (backends.ts), this LB's status (status.ts) and its token (token.ts), wired together. It decides nothing about
 * files or services: it hands the rest of the agent desired-state events and takes LB facts for the status.
 *
 * - A valid spec becomes the last good one; an invalid one is reported with its field errors (and in status as
 *   Degraded/InvalidSpec) while the last good one stays. A spec that changes what the running pair cannot change
 *   (spec/immutable.ts, against the spec the VM booted with) is invalid too.
 * - Desired state is sent once the Nodes were listed (before that, "no Node matches" would briefly mean the static
 *   addresses), then on every change of the spec or of the backends it yields.
 * - API errors are passed on; the watches keep their last state and retry by themselves.
 */
import type { AgentSettings } from "../../spec/agent-settings";
import { agentSettingsSpecProblems } from "../../spec/agent-settings";
import { SpecError, type SpecProblem } from "../../spec/errors";
import type { ResolvedSpec, Role } from "../../spec/types";
import { immutableChanges } from "../../spec/immutable";
import { validateSpec } from "../../spec/resolve";
import { agentNames } from "../../k8s/names";
import type { KernelService } from "../../render/service-lb";
import { PEER_STALE_MS } from "../rollout";
import { allocate, type Assignment } from "../service-lb/allocate";
import { serviceFrontends } from "../service-lb/frontends";
import { ServicesLease } from "../service-lb/lease";
import { isOurs, type ServiceView } from "../service-lb/view";
import { planWrites, ServiceWriter } from "../service-lb/writer";
import { selectBackends, type BackendSelection, type NodeView } from "./backends";
import { loadBalancerRegarding, type Regarding } from "./events";
import { KubeClient, type KubeClientOptions } from "./client";
import { StatusReporter, type StatusReporterOptions } from "./status";
import { TokenKeeper, type TokenKeeperOptions } from "./token";
import {
  ClusterWatch,
  type ClusterWatchOptions,
  type LoadBalancerObject,
  type WatchEvent,
  type WatchSource,
} from "./watch";

export interface DesiredState {
  /** metadata.generation of the LoadBalancer the spec came from; undefined for the bootstrap spec. */
  generation?: number;
  spec: ResolvedSpec;
  selection: BackendSelection;
  /** the cluster's Services of type LoadBalancer the kernel forwards (service-lb/frontends.ts), by chain */
  services: KernelService[];
}

/** The Services (namespace/name) a desired state forwards. */
export function serviceKeysOf(state: Pick<DesiredState, "services">): Set<string> {
  return new Set(state.services.map((f) => f.name.slice(0, f.name.lastIndexOf(":"))));
}

export type ClusterSideEvent =
  | { type: "desired"; cause: "spec" | "nodes" | "services"; state: DesiredState }
  /** The Service writer's trouble (lease, status, finalizer, Event writes): retried on its next pass. */
  | { type: "servicesError"; message: string }
  /** The LoadBalancer's spec is invalid; the last good desired state stays. */
  | { type: "invalidSpec"; generation?: number; problems: SpecProblem[] }
  /** The LoadBalancer does not exist (any more); the last good desired state stays. */
  | { type: "loadBalancerMissing" }
  | { type: "apiError"; source: WatchSource; message: string; attempt: number; retryInMs: number }
  | { type: "apiRecovered"; source: WatchSource; downMs: number }
  | { type: "statusError"; message: string }
  | { type: "tokenRenewed"; expiresAt: Date }
  | { type: "tokenError"; message: string };

export interface ClusterSideOptions {
  settings: AgentSettings;
  host: { hostname: string; role: Role };
  /** The spec the VM booted with: desired state until the LoadBalancer is read; also checks apiServers against it. */
  bootstrapSpec?: ResolvedSpec;
  onEvent: (e: ClusterSideEvent) => void;
  client?: KubeClientOptions;
  watch?: ClusterWatchOptions;
  status?: Pick<StatusReporterOptions, "heartbeatMs" | "staleAfterMs" | "now">;
  /** false: no TokenRequest rotation (the token file is managed elsewhere). */
  token?: TokenKeeperOptions | false;
  /** The Service writer (tests shorten the lease and the pass period). */
  services?: { leaseDurationMs?: number; renewMs?: number; passMs?: number; peerStaleMs?: number };
}

export class ClusterSide {
  readonly client: KubeClient;
  readonly watch: ClusterWatch;
  readonly status: StatusReporter;
  readonly token: TokenKeeper | undefined;
  private good: DesiredState | undefined;
  private lastSpecText: string | undefined;
  private nodes: NodeView[] = [];
  private nodesSynced = false;
  private lastSelectionText: string | undefined;
  private lbMissing = false;
  private lbUid: string | undefined;
  private readonly settings: AgentSettings & { cluster: NonNullable<AgentSettings["cluster"]> };
  private services: ServiceView[] = [];
  private servicesSynced = false;
  private lease: ServicesLease | undefined;
  private readonly writer: ServiceWriter;
  private passTimer: NodeJS.Timeout | undefined;
  private passRunning: Promise<void> | undefined;
  private passAgain = false;
  private appliedServices: { serviceKeys: ReadonlySet<string>; desiredHash?: string } = { serviceKeys: new Set() };
  private stopped = false;

  constructor(private readonly o: ClusterSideOptions) {
    const cluster = o.settings.cluster;
    if (!cluster) throw new SpecError([{ path: "cluster", rule: "is required to watch the cluster" }]);
    this.settings = { ...o.settings, cluster };
    if (o.bootstrapSpec) {
      const problems = agentSettingsSpecProblems(o.settings, o.bootstrapSpec);
      if (problems.length > 0) throw new SpecError(problems);
      this.good = { spec: o.bootstrapSpec, selection: selectBackends(o.bootstrapSpec, []), services: [] };
    }
    this.client = new KubeClient(cluster, o.client);
    this.writer = new ServiceWriter(this.client, { hostname: o.host.hostname });
    this.watch = new ClusterWatch(this.client, cluster, (e) => this.onWatch(e), o.watch);
    this.status = new StatusReporter(this.client, {
      namespace: cluster.namespace,
      loadBalancerName: cluster.loadBalancerName,
      lbName: o.host.hostname,
      role: o.host.role,
      ...o.status,
      onError: (message) => o.onEvent({ type: "statusError", message }),
    });
    this.token =
      o.token === false
        ? undefined
        : new TokenKeeper(this.client, {
            ...o.token,
            onRenewed: (info) => {
              o.onEvent({ type: "tokenRenewed", expiresAt: info.expiresAt });
              if (o.token) o.token.onRenewed?.(info);
            },
            onError: (message) => {
              o.onEvent({ type: "tokenError", message });
              if (o.token) o.token.onError?.(message);
            },
          });
  }

  /** The last good desired state (the bootstrap spec's until the LoadBalancer was read). */
  current(): DesiredState | undefined {
    return this.good;
  }

  async start(): Promise<void> {
    this.watch.start();
    this.status.start();
    if (this.good) this.servicesFor(this.good.spec);
    await this.token?.start();
  }

  /** Ends every watch, request and timer of the cluster side. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.passTimer);
    await Promise.all([
      this.watch.stop(),
      this.status.stop(),
      this.token?.stop(),
      this.lease?.stop(),
      this.passRunning,
    ]);
  }

  /** The LoadBalancer as Events regard it (its uid once the watch saw it). */
  regarding(): Regarding {
    return loadBalancerRegarding(this.settings.cluster.namespace, this.settings.cluster.loadBalancerName, this.lbUid);
  }

  /** True while this LB holds the Services lease (it writes addresses). */
  get servicesWriter(): boolean {
    return this.lease?.leader ?? false;
  }

  /** What this LB's kernel forwards now (agent run, after an apply passed): the writer releases by it. */
  applied(state: DesiredState, desiredHash: string): void {
    this.appliedServices = { serviceKeys: serviceKeysOf(state), desiredHash };
    this.pass();
  }

  /** Services are watched, and the lease taken part in, exactly while the spec has serviceLoadBalancers. */
  private servicesFor(spec: ResolvedSpec): void {
    const on = spec.serviceLoadBalancers !== undefined;
    this.watch.watchServices(on);
    if (on && !this.lease) {
      const names = agentNames({
        name: this.settings.cluster.loadBalancerName,
        namespace: this.settings.cluster.namespace,
      });
      this.lease = new ServicesLease(this.client, {
        namespace: names.namespace,
        name: names.servicesLease,
        holder: this.o.host.hostname,
        ...(this.o.services?.leaseDurationMs !== undefined ? { leaseDurationMs: this.o.services.leaseDurationMs } : {}),
        ...(this.o.services?.renewMs !== undefined ? { renewMs: this.o.services.renewMs } : {}),
        onChange: () => this.pass(),
        onError: (message) => this.o.onEvent({ type: "servicesError", message }),
      });
      this.lease.start();
      this.passTimer = setInterval(() => this.pass(), this.o.services?.passMs ?? 5000);
      this.passTimer.unref?.();
    } else if (!on && this.lease) {
      const lease = this.lease;
      this.lease = undefined;
      clearInterval(this.passTimer);
      void lease.stop();
      this.servicesSynced = false;
    }
  }

  /** One writer pass at a time; a pass asked for while one runs runs again after it. */
  private pass(): void {
    if (this.stopped || !this.lease?.leader) return;
    if (this.passRunning) {
      this.passAgain = true;
      return;
    }
    this.passRunning = this.writerPass().finally(() => {
      this.passRunning = undefined;
      if (this.passAgain) {
        this.passAgain = false;
        this.pass();
      }
    });
  }

  private async writerPass(): Promise<void> {
    const good = this.good;
    if (!good || !this.servicesSynced) return;
    const slb = good.spec.serviceLoadBalancers;
    const peer = this.status.peerView();
    const writes = planWrites({
      slb,
      services: this.services,
      assignments: this.assignments(good.spec),
      applied: this.appliedServices,
      ...(peer
        ? {
            peer: {
              heartbeatAgeMs: peer.heartbeatAgeMs,
              ...(peer.appliedHash ? { appliedHash: peer.appliedHash } : {}),
            },
          }
        : {}),
      peerStaleMs: this.o.services?.peerStaleMs ?? PEER_STALE_MS,
    });
    if (writes.length === 0) return;
    const r = await this.writer.run(writes, slb);
    for (const e of r.errors) this.o.onEvent({ type: "servicesError", message: e });
  }

  private assignments(spec: ResolvedSpec): Map<string, Assignment> {
    const slb = spec.serviceLoadBalancers;
    if (!slb) return new Map();
    return allocate(
      slb,
      this.services.filter((s) => isOurs(s, slb)),
      spec.extraServices,
    );
  }

  private frontendsOf(spec: ResolvedSpec, selection: BackendSelection): KernelService[] {
    const slb = spec.serviceLoadBalancers;
    if (!slb) return [];
    const ours = this.services.filter((s) => isOurs(s, slb));
    return serviceFrontends(ours, this.assignments(spec), selection.backends.serviceNodes ?? []);
  }

  /** Desired state goes out once what it is made of was listed: Nodes, and Services when the spec has pools. */
  private ready(spec: ResolvedSpec): boolean {
    return this.nodesSynced && (spec.serviceLoadBalancers === undefined || this.servicesSynced);
  }

  private onWatch(e: WatchEvent): void {
    switch (e.type) {
      case "nodes":
        this.nodes = e.nodes;
        if (this.nodesSynced) this.reselect("nodes", false);
        return;
      case "services":
        this.services = e.services;
        if (this.servicesSynced) this.reselect("services", false);
        this.pass();
        return;
      case "synced":
        if (e.source === "nodes" && !this.nodesSynced) {
          this.nodesSynced = true;
          this.reselect("nodes", true);
        }
        if (e.source === "services" && !this.servicesSynced) {
          this.servicesSynced = true;
          this.reselect("services", true);
          this.pass();
        }
        return;
      case "loadBalancer":
        this.onLoadBalancer(e.object);
        return;
      case "apiError":
      case "apiRecovered":
        this.o.onEvent(e);
        return;
    }
  }

  private onLoadBalancer(lb: LoadBalancerObject | null): void {
    this.status.observe(lb);
    if (!lb) {
      if (!this.lbMissing) this.o.onEvent({ type: "loadBalancerMissing" });
      this.lbMissing = true;
      this.lastSpecText = undefined;
      return;
    }
    this.lbMissing = false;
    this.lbUid = lb.metadata.uid;
    const text = JSON.stringify(lb.spec);
    if (text === this.lastSpecText) return; // a status write (heartbeats), not a spec change
    this.lastSpecText = text;
    const generation = lb.metadata.generation;
    const r = validateSpec(lb.spec);
    const problems = r.ok
      ? [
          ...(this.o.bootstrapSpec ? immutableChanges(this.o.bootstrapSpec, r.value) : []),
          ...agentSettingsSpecProblems(this.settings, r.value),
        ]
      : r.problems;
    if (!r.ok || problems.length > 0) {
      this.status.update({ specProblems: problems });
      this.o.onEvent({ type: "invalidSpec", ...(generation !== undefined ? { generation } : {}), problems });
      return;
    }
    this.status.update({ specProblems: [] });
    const selection = selectBackends(r.value, this.nodes);
    this.good = {
      ...(generation !== undefined ? { generation } : {}),
      spec: r.value,
      selection,
      services: this.frontendsOf(r.value, selection),
    };
    this.lastSelectionText = JSON.stringify([this.good.selection, this.good.services]);
    this.servicesFor(r.value);
    if (this.ready(r.value)) this.o.onEvent({ type: "desired", cause: "spec", state: this.good });
    this.pass();
  }

  private reselect(cause: "nodes" | "services", always: boolean): void {
    if (!this.good || !this.ready(this.good.spec)) return;
    const selection = selectBackends(this.good.spec, this.nodes);
    const services = this.frontendsOf(this.good.spec, selection);
    const text = JSON.stringify([selection, services]);
    if (!always && text === this.lastSelectionText) return;
    this.lastSelectionText = text;
    this.good = { ...this.good, selection, services };
    this.o.onEvent({ type: "desired", cause, state: this.good });
  }
}

/** A started ClusterSide. */
export async function startClusterSide(options: ClusterSideOptions): Promise<ClusterSide> {
  const side = new ClusterSide(options);
  await side.start();
  return side;
}
