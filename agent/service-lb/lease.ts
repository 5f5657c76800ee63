/**
 * Which of the two LBs writes Service addresses: the holder of one coordination.k8s.io Lease in the agent's namespace
 * (k8s/rbac.ts grants exactly that Lease). Both LBs watch and render the same Services; only the holder allocates and
 * writes statuses, finalizers and Events, so one address is never handed to two Services by two writers.
 *
 * The holder renews every renewMs; another LB takes it over only once it has seen the lease unchanged for a whole
 * leaseDuration on its own clock (client-go's rule: no comparison of two machines' clocks). Every write is guarded by
 * resourceVersion, so two LBs racing for an expired lease cannot both win. A lease that expires while its holder
 * reboots costs only new allocations for a few seconds: the data path never waits for it.
 */
import { z } from "zod";
import { KubeApiError, type KubeClient } from "../kube/client";
import { microTime } from "../kube/events";

export interface LeaseOptions {
  namespace: string;
  name: string;
  holder: string;
  /** Default 15 s. */
  leaseDurationMs?: number;
  /** Default 5 s. */
  renewMs?: number;
  now?: () => number;
  onChange?: (leader: boolean) => void;
  onError?: (message: string) => void;
}

const leaseSchema = z.object({
  metadata: z.object({ resourceVersion: z.string() }),
  spec: z
    .object({
      holderIdentity: z.string().nullish(),
      renewTime: z.string().nullish(),
      acquireTime: z.string().nullish(),
      leaseDurationSeconds: z.number().nullish(),
      leaseTransitions: z.number().nullish(),
    })
    .nullish(),
});

export class ServicesLease {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private leaderNow = false;
  /** the last record seen and when (our clock) it was first seen */
  private observed: { record: string; at: number } | undefined;
  private readonly durationMs: number;
  private readonly renewMs: number;
  private readonly now: () => number;
  private running: Promise<void> | undefined;

  constructor(
    private readonly client: KubeClient,
    private readonly o: LeaseOptions,
  ) {
    this.durationMs = o.leaseDurationMs ?? 15_000;
    this.renewMs = o.renewMs ?? 5000;
    this.now = o.now ?? Date.now;
  }

  get leader(): boolean {
    return this.leaderNow;
  }

  start(): void {
    this.tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  private tick(): void {
    if (this.stopped) return;
    this.running = this.attempt()
      .catch((e: unknown) => {
        this.set(false);
        this.o.onError?.(`services lease: ${e instanceof Error ? e.message : String(e)}`);
      })
      .finally(() => {
        this.running = undefined;
        if (!this.stopped) this.timer = setTimeout(() => this.tick(), this.renewMs);
      });
  }

  private set(leader: boolean): void {
    if (leader === this.leaderNow) return;
    this.leaderNow = leader;
    this.o.onChange?.(leader);
  }

  private path(name = true): string {
    const base = `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(this.o.namespace)}/leases`;
    return name ? `${base}/${encodeURIComponent(this.o.name)}` : base;
  }

  private spec(transitions: number): Record<string, unknown> {
    const t = microTime(this.now());
    return {
      holderIdentity: this.o.holder,
      leaseDurationSeconds: Math.ceil(this.durationMs / 1000),
      acquireTime: t,
      renewTime: t,
      leaseTransitions: transitions,
    };
  }

  private async attempt(): Promise<void> {
    let current: z.infer<typeof leaseSchema> | undefined;
    try {
      current = leaseSchema.parse(await this.client.request("GET", this.path()));
    } catch (e) {
      if (!isStatus(e, 404)) throw e;
    }
    if (!current) {
      try {
        await this.client.request("POST", this.path(false), {
          body: {
            apiVersion: "coordination.k8s.io/v1",
            kind: "Lease",
            metadata: { name: this.o.name, namespace: this.o.namespace },
            spec: this.spec(0),
          },
        });
        this.set(true);
      } catch (e) {
        if (!isStatus(e, 409)) throw e;
        this.set(false); // the peer created it first
      }
      return;
    }
    const s = current.spec ?? {};
    const record = `${s.holderIdentity ?? ""} ${s.renewTime ?? ""}`;
    const now = this.now();
    if (this.observed?.record !== record) this.observed = { record, at: now };
    const mine = s.holderIdentity === this.o.holder;
    const expired = !s.holderIdentity || now - this.observed.at > this.durationMs;
    if (!mine && !expired) {
      this.set(false);
      return;
    }
    const transitions = (s.leaseTransitions ?? 0) + (mine ? 0 : 1);
    try {
      await this.client.request("PUT", this.path(), {
        body: {
          apiVersion: "coordination.k8s.io/v1",
          kind: "Lease",
          metadata: {
            name: this.o.name,
            namespace: this.o.namespace,
            resourceVersion: current.metadata.resourceVersion,
          },
          spec:
            mine && s.acquireTime ? { ...this.spec(transitions), acquireTime: s.acquireTime } : this.spec(transitions),
        },
      });
      this.set(true);
    } catch (e) {
      if (!isStatus(e, 409)) throw e;
      this.set(false);
    }
  }
}

function isStatus(e: unknown, code: number): boolean {
  return e instanceof KubeApiError && e.statusCode === code;
}
