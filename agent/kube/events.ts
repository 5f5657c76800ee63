/**
 * Events (events.k8s.io/v1) the agent records: on the LoadBalancer for what changes the pair (an apply and its revert,
 * a VRRP transition it saw, each image-switch step, a refused spec), and on Services for their addresses
 * (service-lb/writer.ts). What an on-call engineer reads in `kubectl describe`, so:
 * - deduplicated: the same reason and note again within dedupeMs is not sent again (a flapping apply or a spec that
 *   stays invalid says so once, not on every pass);
 * - rate-limited: a token bucket (burst, then one per refillMs); what it drops is counted, never queued without bound;
 * - never a secret: notes are built from the agent's own messages (field paths, rules, file paths, states) and cut
 *   at 1 kB; nothing here reads a secret file.
 * Sending never blocks the caller: record() queues, one request at a time.
 */
import { API_VERSION, KIND } from "../../k8s/names";
import type { KubeClient } from "./client";

export const REPORTING_CONTROLLER = "edgepair.io/agent";

export interface EventNote {
  type: "Normal" | "Warning";
  reason: string;
  action: string;
  note: string;
}

export interface Regarding {
  apiVersion: string;
  kind: string;
  namespace: string;
  name: string;
  uid?: string;
}

/** RFC 3339 with microseconds, as MicroTime fields take it. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

/** One Event, posted in the namespace of what it regards. */
export async function postEvent(
  client: KubeClient,
  reportingInstance: string,
  regarding: Regarding,
  e: EventNote,
  now = Date.now(),
): Promise<void> {
  await client.request("POST", `/apis/events.k8s.io/v1/namespaces/${encodeURIComponent(regarding.namespace)}/events`, {
    body: {
      apiVersion: "events.k8s.io/v1",
      kind: "Event",
      metadata: {
        name: `${regarding.name}.${now.toString(16)}${Math.floor(Math.random() * 0xffff).toString(16)}`,
        namespace: regarding.namespace,
      },
      eventTime: microTime(now),
      reportingController: REPORTING_CONTROLLER,
      reportingInstance,
      action: e.action,
      reason: e.reason,
      note: e.note.slice(0, 1000),
      type: e.type,
      regarding,
    },
  });
}

/** The LoadBalancer an agent reports on. */
export function loadBalancerRegarding(namespace: string, name: string, uid?: string): Regarding {
  return { apiVersion: API_VERSION, kind: KIND, namespace, name, ...(uid ? { uid } : {}) };
}

export interface EventRecorderOptions {
  reportingInstance: string;
  /** what the Events regard; undefined while it is not known (no Event is sent then) */
  regarding: () => Regarding | undefined;
  /** Default 10 min. */
  dedupeMs?: number;
  /** Default 10. */
  burst?: number;
  /** One more token every refillMs. Default 10 s. */
  refillMs?: number;
  now?: () => number;
  onError?: (message: string) => void;
}

export class EventRecorder {
  private readonly sent = new Map<string, number>();
  private readonly queue: { e: EventNote; at: number }[] = [];
  private tokens: number;
  private lastRefill: number;
  private sending: Promise<void> | undefined;
  private droppedCount = 0;
  private readonly now: () => number;

  constructor(
    private readonly client: KubeClient,
    private readonly o: EventRecorderOptions,
  ) {
    this.now = o.now ?? Date.now;
    this.tokens = o.burst ?? 10;
    this.lastRefill = this.now();
  }

  /** Events not sent: over the rate, or with nothing to regard yet. */
  get dropped(): number {
    return this.droppedCount;
  }

  record(e: EventNote): void {
    const now = this.now();
    const key = `${e.type}\u0000${e.reason}\u0000${e.note}`;
    const last = this.sent.get(key);
    if (last !== undefined && now - last < (this.o.dedupeMs ?? 600_000)) return;
    this.refill(now);
    if (this.tokens < 1) {
      this.droppedCount++;
      return;
    }
    this.tokens--;
    this.sent.set(key, now);
    if (this.sent.size > 1000) this.sent.delete(this.sent.keys().next().value as string);
    this.queue.push({ e, at: now });
    this.sending ??= this.drain().finally(() => (this.sending = undefined));
  }

  /** Resolves once everything recorded so far was sent or given up. */
  async flush(): Promise<void> {
    while (this.sending) await this.sending;
  }

  private refill(now: number): void {
    const refillMs = this.o.refillMs ?? 10_000;
    const earned = Math.floor((now - this.lastRefill) / refillMs);
    if (earned <= 0) return;
    this.tokens = Math.min(this.o.burst ?? 10, this.tokens + earned);
    this.lastRefill += earned * refillMs;
  }

  private async drain(): Promise<void> {
    for (let next = this.queue.shift(); next; next = this.queue.shift()) {
      const regarding = this.o.regarding();
      if (!regarding) {
        this.droppedCount++;
        continue;
      }
      try {
        await postEvent(this.client, this.o.reportingInstance, regarding, next.e, next.at);
      } catch (err) {
        this.o.onError?.(`event ${next.e.reason}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  }
}
