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
import { selectBackends, type BackendSelection, type NodeView } from "./backends";
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
}

export type ClusterSideEvent =
  | { type: "desired"; cause: "spec" | "nodes"; state: DesiredState }
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
  private readonly settings: AgentSettings & { cluster: NonNullable<AgentSettings["cluster"]> };

  constructor(private readonly o: ClusterSideOptions) {
    const cluster = o.settings.cluster;
    if (!cluster) throw new SpecError([{ path: "cluster", rule: "is required to watch the cluster" }]);
    this.settings = { ...o.settings, cluster };
    if (o.bootstrapSpec) {
      const problems = agentSettingsSpecProblems(o.settings, o.bootstrapSpec);
      if (problems.length > 0) throw new SpecError(problems);
      this.good = { spec: o.bootstrapSpec, selection: selectBackends(o.bootstrapSpec, []) };
    }
    this.client = new KubeClient(cluster, o.client);
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
    await this.token?.start();
  }

  /** Ends every watch, request and timer of the cluster side. */
  async stop(): Promise<void> {
    await Promise.all([this.watch.stop(), this.status.stop(), this.token?.stop()]);
  }

  private onWatch(e: WatchEvent): void {
    switch (e.type) {
      case "nodes":
        this.nodes = e.nodes;
        if (this.nodesSynced) this.reselect("nodes", false);
        return;
      case "synced":
        if (e.source === "nodes" && !this.nodesSynced) {
          this.nodesSynced = true;
          this.reselect("nodes", true);
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
    this.good = {
      ...(generation !== undefined ? { generation } : {}),
      spec: r.value,
      selection: selectBackends(r.value, this.nodes),
    };
    this.lastSelectionText = JSON.stringify(this.good.selection);
    if (this.nodesSynced) this.o.onEvent({ type: "desired", cause: "spec", state: this.good });
  }

  private reselect(cause: "nodes", always: boolean): void {
    if (!this.good) return;
    const selection = selectBackends(this.good.spec, this.nodes);
    const text = JSON.stringify(selection);
    if (!always && text === this.lastSelectionText) return;
    this.lastSelectionText = text;
    this.good = { ...this.good, selection };
    this.o.onEvent({ type: "desired", cause, state: this.good });
  }
}

/** A started ClusterSide. */
export async function startClusterSide(options: ClusterSideOptions): Promise<ClusterSide> {
  const side = new ClusterSide(options);
  await side.start();
  return side;
}
