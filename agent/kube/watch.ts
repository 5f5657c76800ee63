/**
 * Watches with resync: this pair's own LoadBalancer (by fieldSelector metadata.name=<name> in its namespace — the
 * only list/watch form its Role allows, k8s/rbac.ts) and all Nodes. client-node's ListWatch keeps the cache and
 * resumes from the last resourceVersion (a relist after 410 Gone); the transport is ours (ApiWatch below) so that
 * stop() can abort a watch still waiting for its response headers.
 *
 * On any API error the last state stays, and the watch retries forever with a bounded, jittered exponential
 * back-off; each watch is also ended by the server after a short timeoutSeconds and resumed, and a full relist
 * (resync) runs periodically, so a lost event or a silently dead connection cannot keep a stale state for long.
 * Events go to one callback: snapshots only when what the agent uses changed (coalesced per tick), errors,
 * recovery. stop() ends every request, watch and timer.
 */
import { z } from "zod";
import { GROUP, PLURAL, VERSION } from "../../k8s/names";
import { FINALIZER, serviceView, type ServiceView } from "../service-lb/view";
import { nodeView, type NodeView } from "./backends";
import { AbortedError, k8s, type K8s, type KubeClient } from "./client";

export interface LoadBalancerObject {
  metadata: { name: string; namespace: string; uid?: string; generation?: number; resourceVersion?: string };
  /** As stored; validated by spec/resolve.ts validateSpec, as every carrier does. */
  spec: unknown;
  status?: unknown;
}

export type WatchSource = "nodes" | "loadBalancer" | "services";

export type WatchEvent =
  /** Every Node the agent can use, sorted by name; sent when any of them changed. */
  | { type: "nodes"; nodes: NodeView[] }
  /** Every Service of type LoadBalancer (or holding our finalizer), sorted by key; only while Services are watched. */
  | { type: "services"; services: ServiceView[] }
  /** The LoadBalancer, or null when it does not exist; sent when its resourceVersion changed. */
  | { type: "loadBalancer"; object: LoadBalancerObject | null }
  /** A full list succeeded (first sync, resync, relist): the snapshot events before it are complete. */
  | { type: "synced"; source: WatchSource }
  | { type: "apiError"; source: WatchSource; message: string; attempt: number; retryInMs: number }
  | { type: "apiRecovered"; source: WatchSource; downMs: number };

export interface BackoffOptions {
  /** First delay. Default 500 ms. */
  initialMs?: number;
  /** Bound. Default 30 s. */
  maxMs?: number;
  /** [0, 1); injectable for tests. */
  random?: () => number;
}

/** Exponential with "equal jitter": half the step fixed, half random, so two LBs do not retry in lockstep. */
export class Backoff {
  private n = 0;
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly random: () => number;

  constructor(o: BackoffOptions = {}) {
    this.initialMs = o.initialMs ?? 500;
    this.maxMs = o.maxMs ?? 30_000;
    this.random = o.random ?? Math.random;
  }

  get attempts(): number {
    return this.n;
  }

  next(): number {
    const step = Math.min(this.maxMs, this.initialMs * 2 ** Math.min(this.n, 30));
    this.n++;
    return Math.round(step / 2 + (this.random() * step) / 2);
  }

  reset(): void {
    this.n = 0;
  }
}

export interface ClusterWatchOptions {
  /** Full relist period (jittered ±10 %). Default 5 min. */
  resyncMs?: number;
  /** The server ends each watch after this (jittered up to +50 %); it is resumed from its resourceVersion. Default 60 s. */
  watchTimeoutSeconds?: number;
  backoff?: BackoffOptions;
  /** Objects per page of a full list (limit + continue): a 10,000-Node list in one response could fail forever. Default 500. */
  listPageSize?: number;
}

interface KubeObject {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
}

/**
 * A Node as far as the agent reads it (backends.ts nodeView): a Node object also lists every image on the host,
 * attached volumes and managed fields, tens of kB each, which a 1000-Node cache would hold for nothing.
 */
function slimNode(o: KubeObject): KubeObject {
  const n = o as KubeObject & {
    metadata?: { labels?: unknown };
    spec?: { unschedulable?: unknown };
    status?: { conditions?: unknown; addresses?: unknown };
  };
  return {
    metadata: {
      name: n.metadata?.name,
      namespace: n.metadata?.namespace,
      resourceVersion: n.metadata?.resourceVersion,
      labels: n.metadata?.labels,
    },
    spec: { unschedulable: n.spec?.unschedulable },
    status: { conditions: n.status?.conditions, addresses: n.status?.addresses },
  } as KubeObject;
}

/**
 * A Service as far as the agent reads it (service-lb/view.ts): annotations other than ours (kubectl's
 * last-applied-configuration, often kilobytes) and managed fields are dropped.
 */
function slimService(o: KubeObject): KubeObject {
  const v = o as KubeObject & {
    metadata?: Record<string, unknown> & { annotations?: Record<string, string> };
    spec?: unknown;
    status?: unknown;
  };
  const m = v.metadata ?? {};
  const annotations = Object.fromEntries(
    Object.entries(m.annotations ?? {}).filter(([k]) => k.startsWith("edgepair.io/")),
  );
  return {
    metadata: {
      name: m.name,
      namespace: m.namespace,
      uid: m.uid,
      resourceVersion: m.resourceVersion,
      creationTimestamp: m.creationTimestamp,
      deletionTimestamp: m.deletionTimestamp,
      annotations,
      finalizers: m.finalizers,
    },
    spec: v.spec,
    status: v.status,
  } as KubeObject;
}

/** Ours to look at: type LoadBalancer, or our finalizer still on (a Service that changed type or class). */
function projectService(obj: unknown): ServiceView | undefined {
  const v = serviceView(obj);
  return v && (v.type === "LoadBalancer" || v.finalizers.includes(FINALIZER)) ? v : undefined;
}

/** A watch the server closes this soon after it opened is treated as an error, so it cannot spin. */
const MIN_WATCH_LIFE_MS = 1000;

/**
 * The transport ListWatch calls: a watch over KubeClient.stream, with timeoutSeconds and bookmarks added, that
 * close() can abort at any stage.
 */
class ApiWatch {
  private readonly live = new Set<AbortController>();
  private closed = false;

  constructor(
    private readonly client: KubeClient,
    private readonly timeoutSeconds: () => number,
    private readonly onConnected: () => void,
    private readonly slim: (o: KubeObject) => KubeObject,
  ) {}

  /** ListWatch's Watch has this member; ours never uses it (the client picks the API server). */
  get config(): K8s.KubeConfig {
    return this.client.kubeConfig;
  }

  async watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: KubeObject, watchObj?: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    const controller = new AbortController();
    if (this.closed) {
      controller.abort();
      return controller;
    }
    this.live.add(controller);
    const timeout = this.timeoutSeconds();
    const q = new URLSearchParams({ watch: "true", allowWatchBookmarks: "true", timeoutSeconds: String(timeout) });
    for (const [k, v] of Object.entries(queryParams)) if (v !== undefined && v !== "") q.set(k, String(v));
    const opened = Date.now();
    let events = 0;
    const finish = (err: Error | null) => {
      this.live.delete(controller);
      // an ERROR event (e.g. 410 Gone) ends a watch at once on purpose: ListWatch relists
      const early = err === null && events === 0 && Date.now() - opened < MIN_WATCH_LIFE_MS;
      done(early ? new Error(`the API server closed the watch on ${path} after ${Date.now() - opened} ms`) : err);
    };
    try {
      await this.client.stream(
        `${path}?${q}`,
        {
          onLine: (line) => {
            let data: { type?: unknown; object?: unknown };
            try {
              data = JSON.parse(line) as typeof data;
            } catch {
              controller.abort();
              finish(new Error(`malformed watch event on ${path}`));
              return;
            }
            if (typeof data.type !== "string" || typeof data.object !== "object" || data.object === null) return;
            if (data.type === "ERROR") {
              const status = data.object as { code?: unknown; message?: unknown };
              if (status.code !== 410) {
                // ListWatch would ignore it and re-watch at once from the same resourceVersion: back off instead
                controller.abort();
                finish(
                  new Error(`watch on ${path}: ${typeof status.message === "string" ? status.message : "error event"}`),
                );
                return;
              }
              events++;
              callback(data.type, data.object as KubeObject, data); // 410 Gone: ListWatch relists
              return;
            }
            events++;
            callback(data.type, this.slim(data.object as KubeObject), data);
          },
          done: finish,
        },
        { signal: controller.signal, idleTimeoutMs: (timeout + 30) * 1000 },
      );
      this.onConnected();
    } catch (e) {
      this.live.delete(controller);
      if (!(e instanceof AbortedError) && !controller.signal.aborted) done(e);
    }
    return controller;
  }

  close(): void {
    this.closed = true;
    for (const c of this.live) c.abort();
    this.live.clear();
  }
}

interface ResourceWatchSpec<V> {
  source: WatchSource;
  path: string;
  fieldSelector?: string;
  /** What the agent keeps of an object; undefined drops it. */
  project(obj: unknown): V | undefined;
  /** What ListWatch's cache keeps (it holds every object): at least metadata.name/namespace/resourceVersion. */
  slim?(obj: KubeObject): KubeObject;
  /** Called (once per tick at most) when the set of projections changed. */
  changed(views: ReadonlyMap<string, V>): void;
}

/** One collection: a ListWatch with back-off, resync and a clean stop. */
class ResourceWatch<V> {
  private readonly views = new Map<string, V>();
  private readonly keys = new Map<string, string>();
  private lw: K8s.ListWatch<KubeObject> | undefined;
  private transport: ApiWatch | undefined;
  private listAbort = new AbortController();
  private generation = 0;
  private stopped = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private failingSince: number | undefined;
  private dirty = false;
  private syncPending = false;
  private readonly backoff: Backoff;
  private readonly pending = new Set<Promise<unknown>>();

  constructor(
    private readonly client: KubeClient,
    private readonly spec: ResourceWatchSpec<V>,
    private readonly emit: (e: WatchEvent) => void,
    private readonly options: Required<
      Pick<ClusterWatchOptions, "resyncMs" | "watchTimeoutSeconds" | "listPageSize">
    > & { backoff: BackoffOptions },
  ) {
    this.backoff = new Backoff(options.backoff);
  }

  get snapshot(): ReadonlyMap<string, V> {
    return this.views;
  }

  start(): void {
    this.fresh();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.resyncTimer);
    this.retire();
    await Promise.allSettled([...this.pending]);
  }

  private track<T>(p: Promise<T>): void {
    const settled = p.then(
      () => undefined,
      () => undefined,
    );
    this.pending.add(settled);
    void settled.then(() => this.pending.delete(settled));
  }

  /** Ends the current ListWatch: its requests are aborted and its late callbacks ignored. */
  private retire(): void {
    this.generation++;
    this.listAbort.abort();
    this.transport?.close();
    const lw = this.lw;
    this.lw = undefined;
    if (lw) this.track(lw.stop());
  }

  /** A new ListWatch, starting with a full list (the first sync, and every resync). */
  private fresh(): void {
    if (this.stopped) return;
    this.retire();
    clearTimeout(this.retryTimer);
    const gen = this.generation;
    const current = () => gen === this.generation && !this.stopped;
    this.listAbort = new AbortController();
    const listSignal = this.listAbort.signal;
    const slim = this.spec.slim ?? ((o: KubeObject) => o);
    this.transport = new ApiWatch(
      this.client,
      () => this.timeoutSeconds(),
      () => current() && this.recovered(),
      slim,
    );
    const list = async (): Promise<K8s.KubernetesListObject<KubeObject>> => {
      // in pages: each is a bounded request; together they are one consistent snapshot (the first page's
      // resourceVersion), so the state is replaced only once the last page arrived
      const items: KubeObject[] = [];
      let token: string | undefined;
      let resourceVersion = "";
      for (let page = 0; ; page++) {
        const q = new URLSearchParams({
          limit: String(this.options.listPageSize),
          ...(this.spec.fieldSelector ? { fieldSelector: this.spec.fieldSelector } : {}),
          ...(token ? { continue: token } : {}),
        });
        const listPath = `${this.spec.path}?${q}`;
        const body = await this.client.request("GET", listPath, { signal: listSignal, timeoutMs: 60_000 });
        if (!current()) throw new AbortedError(`GET ${listPath}`);
        const parsed = listSchema.safeParse(body);
        if (!parsed.success) throw new Error(`GET ${this.spec.path}: not a list (page ${page + 1})`);
        items.push(...(parsed.data.items as KubeObject[]).map(slim));
        resourceVersion = parsed.data.metadata?.resourceVersion ?? resourceVersion;
        token = parsed.data.metadata?.continue || undefined;
        if (!token) break;
      }
      this.replaceAll(items);
      this.recovered();
      return { metadata: { resourceVersion }, items };
    };
    const lw = new k8s.ListWatch<KubeObject>(
      this.spec.path,
      this.transport,
      list,
      false,
      undefined,
      this.spec.fieldSelector,
    );
    lw.on("add", (o) => current() && this.upsert(o));
    lw.on("update", (o) => current() && this.upsert(o));
    lw.on("delete", (o) => current() && this.remove(o));
    lw.on("error", (err) => current() && this.failed(err));
    this.lw = lw;
    this.track(lw.start());
    this.resyncTimer = setTimeout(() => this.fresh(), jitter(this.options.resyncMs, 0.1));
  }

  private timeoutSeconds(): number {
    const t = this.options.watchTimeoutSeconds;
    return Math.max(1, Math.round(t + Math.random() * t * 0.5));
  }

  private failed(err: unknown): void {
    if (err instanceof AbortedError) return;
    this.failingSince ??= Date.now();
    const retryInMs = this.backoff.next();
    this.emit({
      type: "apiError",
      source: this.spec.source,
      message: messageOf(err),
      attempt: this.backoff.attempts,
      retryInMs,
    });
    clearTimeout(this.retryTimer);
    const lw = this.lw;
    this.retryTimer = setTimeout(() => {
      // resumes from the last resourceVersion when it has one, lists otherwise
      if (!this.stopped && lw === this.lw && lw) this.track(lw.start());
    }, retryInMs);
  }

  private recovered(): void {
    this.backoff.reset();
    if (this.failingSince !== undefined) {
      this.emit({ type: "apiRecovered", source: this.spec.source, downMs: Date.now() - this.failingSince });
      this.failingSince = undefined;
    }
  }

  private keyOf(o: KubeObject): string {
    return `${o.metadata?.namespace ?? ""}/${o.metadata?.name ?? ""}`;
  }

  /** A full list: the state becomes exactly these items; the snapshot is sent even when unchanged, then "synced". */
  private replaceAll(items: unknown[]): void {
    this.syncPending = true;
    this.markDirty();
    const seen = new Set<string>();
    for (const o of items) {
      const key = this.keyOf(o as KubeObject);
      seen.add(key);
      this.set(key, o);
    }
    for (const key of [...this.views.keys()]) {
      if (!seen.has(key)) {
        this.views.delete(key);
        this.keys.delete(key);
        this.markDirty();
      }
    }
  }

  private upsert(o: KubeObject): void {
    this.set(this.keyOf(o), o);
  }

  private remove(o: KubeObject): void {
    const key = this.keyOf(o);
    if (this.views.delete(key)) {
      this.keys.delete(key);
      this.markDirty();
    }
  }

  private set(key: string, o: unknown): void {
    const view = this.spec.project(o);
    if (view === undefined) {
      if (this.views.delete(key)) this.markDirty();
      this.keys.delete(key);
      return;
    }
    const text = JSON.stringify(view);
    if (this.keys.get(key) === text) return;
    this.views.set(key, view);
    this.keys.set(key, text);
    this.markDirty();
  }

  private markDirty(): void {
    if (this.dirty) return;
    this.dirty = true;
    // one event per burst (a list delivers every object in one synchronous run)
    queueMicrotask(() => {
      this.dirty = false;
      const synced = this.syncPending;
      this.syncPending = false;
      if (this.stopped) return;
      this.spec.changed(this.views);
      if (synced) this.emit({ type: "synced", source: this.spec.source });
    });
  }
}

const listSchema = z.object({
  metadata: z.object({ resourceVersion: z.string().optional(), continue: z.string().optional() }).optional(),
  items: z.array(z.object({ metadata: z.object({ name: z.string() }).loose() }).loose()),
});

const lbSchema = z.object({
  metadata: z.object({
    name: z.string(),
    namespace: z.string(),
    uid: z.string().optional(),
    generation: z.number().int().optional(),
    resourceVersion: z.string().optional(),
  }),
  spec: z.unknown(),
  status: z.unknown().optional(),
});

export interface LoadBalancerWatchRef {
  namespace: string;
  loadBalancerName: string;
}

/** The watches the agent needs (Services only while the spec has serviceLoadBalancers); events to `onEvent`. */
export class ClusterWatch {
  private readonly nodes: ResourceWatch<NodeView>;
  private readonly lb: ResourceWatch<LoadBalancerObject>;
  private services: ResourceWatch<ServiceView> | undefined;
  private started = false;
  private stopped = false;
  private readonly options: ConstructorParameters<typeof ResourceWatch<ServiceView>>[3];

  constructor(
    private readonly client: KubeClient,
    ref: LoadBalancerWatchRef,
    private readonly onEvent: (e: WatchEvent) => void,
    options: ClusterWatchOptions = {},
  ) {
    const o = {
      resyncMs: options.resyncMs ?? 300_000,
      watchTimeoutSeconds: options.watchTimeoutSeconds ?? 60,
      backoff: options.backoff ?? {},
      listPageSize: options.listPageSize ?? 500,
    };
    this.options = o;
    this.nodes = new ResourceWatch<NodeView>(
      client,
      {
        source: "nodes",
        path: "/api/v1/nodes",
        project: nodeView,
        slim: slimNode,
        changed: (views) =>
          onEvent({
            type: "nodes",
            nodes: [...views.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
          }),
      },
      onEvent,
      o,
    );
    this.lb = new ResourceWatch<LoadBalancerObject>(
      client,
      {
        source: "loadBalancer",
        path: `/apis/${GROUP}/${VERSION}/namespaces/${encodeURIComponent(ref.namespace)}/${PLURAL}`,
        fieldSelector: `metadata.name=${ref.loadBalancerName}`,
        project: (obj) => {
          const r = lbSchema.safeParse(obj);
          return r.success && r.data.metadata.name === ref.loadBalancerName
            ? (r.data as LoadBalancerObject)
            : undefined;
        },
        changed: (views) => onEvent({ type: "loadBalancer", object: [...views.values()][0] ?? null }),
      },
      onEvent,
      o,
    );
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    this.lb.start();
    this.nodes.start();
    this.services?.start();
  }

  /** Starts or stops the Services watch; stopping it forgets every Service (an empty snapshot is sent). */
  watchServices(on: boolean): void {
    if (this.stopped || on === (this.services !== undefined)) return;
    if (!on) {
      const w = this.services;
      this.services = undefined;
      void w?.stop();
      this.onEvent({ type: "services", services: [] });
      return;
    }
    this.services = new ResourceWatch<ServiceView>(
      this.client,
      {
        source: "services",
        path: "/api/v1/services",
        project: projectService,
        slim: slimService,
        changed: (views) =>
          this.onEvent({
            type: "services",
            services: [...views.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)),
          }),
      },
      this.onEvent,
      this.options,
    );
    if (this.started) this.services.start();
  }

  get nodeViews(): NodeView[] {
    return [...this.nodes.snapshot.values()];
  }

  get loadBalancer(): LoadBalancerObject | null {
    return [...this.lb.snapshot.values()][0] ?? null;
  }

  /** Ends every request, watch and timer; resolves when nothing of them is left. */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all([this.lb.stop(), this.nodes.stop(), this.services?.stop()]);
  }
}

function jitter(ms: number, fraction: number): number {
  return Math.max(1, Math.round(ms * (1 - fraction + Math.random() * 2 * fraction)));
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
