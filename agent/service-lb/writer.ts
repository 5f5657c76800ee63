/**
 * The lease holder's writes on Services (lease.ts): the finalizer, the address in status.loadBalancer.ingress with
 * a condition saying why, an Event for every allocation, release and refusal, and the finalizer's removal once the
 * frontend is gone. planWrites() decides (pure); ServiceWriter runs the plan against the API.
 *
 * - The finalizer goes on before the address is recorded, so a Service deleted at any moment still waits for its
 *   frontend to leave the kernels before Kubernetes forgets it (and the address can be handed out again).
 * - The condition is the allocation's memory: an Event is sent when the condition changes, so a restarted or new
 *   writer sends none for what was already said, and a refusal is reported once, not on every pass.
 * - Released: this LB's applied table lacks every frontend of the Service, and the peer applied the same desired
 *   state (or is gone: stale heartbeat, no entry). Then the finalizer is removed; for a Service no longer ours
 *   (another class or type), the address and condition it got here are removed first.
 * Writes are guarded by resourceVersion where they replace lists; a conflict is retried on the next pass.
 */
import { poolHolds } from "../../spec/pools";
import type { ServiceLoadBalancers } from "../../spec/types";
import type { KubeClient } from "../kube/client";
import type { Assignment } from "./allocate";
import { postEvent, type EventNote } from "../kube/events";
import { FINALIZER, isOurs, type ServiceCondition, type ServiceView } from "./view";

export const CONDITION_TYPE = "edgepair.io/AddressAllocated";

export interface PeerApplied {
  appliedHash?: string;
  heartbeatAgeMs: number;
}

export interface WriterWorld {
  slb: ServiceLoadBalancers | undefined;
  /** every Service of type LoadBalancer or holding our finalizer */
  services: readonly ServiceView[];
  assignments: ReadonlyMap<string, Assignment>;
  /** what this LB's kernel forwards now: the Service keys of its applied table, and that render's desired hash */
  applied: { serviceKeys: ReadonlySet<string>; desiredHash?: string };
  /** the peer's entry; undefined when it has none */
  peer?: PeerApplied;
  /** the peer's status older than this is a peer that is gone */
  peerStaleMs: number;
}

export type Write =
  | { kind: "addFinalizer"; service: ServiceView }
  | {
      kind: "status";
      service: ServiceView;
      ingressIp?: string;
      condition: Omit<ServiceCondition, "lastTransitionTime">;
      event?: EventNote;
    }
  | { kind: "release"; service: ServiceView; clearStatus: boolean; event: EventNote };

function ourCondition(s: ServiceView): ServiceCondition | undefined {
  return s.conditions.find((c) => c.type === CONDITION_TYPE);
}

export function planWrites(w: WriterWorld): Write[] {
  const writes: Write[] = [];
  const peerSettled = !w.peer || w.peer.heartbeatAgeMs > w.peerStaleMs || w.peer.appliedHash === w.applied.desiredHash;
  for (const s of w.services) {
    const ours = isOurs(s, w.slb);
    const held = s.finalizers.includes(FINALIZER);
    if (ours && !s.deleting) {
      const a = w.assignments.get(s.key);
      if (!a) continue;
      if ("address" in a && !held) {
        writes.push({ kind: "addFinalizer", service: s });
        continue; // the status follows once the finalizer is on (the next pass sees it)
      }
      const condition =
        "address" in a
          ? {
              type: CONDITION_TYPE,
              status: "True" as const,
              reason: "Allocated",
              message: `${a.address} from pool ${a.pool}`,
            }
          : { type: CONDITION_TYPE, status: "False" as const, reason: a.refused.reason, message: a.refused.message };
      const ip = "address" in a ? a.address : undefined;
      const now = ourCondition(s);
      const sameCondition =
        now?.status === condition.status && now.reason === condition.reason && now.message === condition.message;
      const sameIngress = s.ingressIps.length === (ip ? 1 : 0) && (ip === undefined || s.ingressIps[0] === ip);
      if (sameCondition && sameIngress) continue;
      const event: EventNote | undefined = sameCondition
        ? undefined
        : "address" in a
          ? { type: "Normal", reason: "AddressAllocated", action: "Allocate", note: `${a.address} from pool ${a.pool}` }
          : { type: "Warning", reason: a.refused.reason, action: "Allocate", note: a.refused.message };
      writes.push({
        kind: "status",
        service: s,
        ...(ip !== undefined ? { ingressIp: ip } : {}),
        condition,
        ...(event ? { event } : {}),
      });
      continue;
    }
    if (!held) continue;
    if (w.applied.serviceKeys.has(s.key) || !peerSettled) continue; // its frontend may still forward somewhere
    writes.push({
      kind: "release",
      service: s,
      clearStatus: !ours && !s.deleting,
      event: {
        type: "Normal",
        reason: "AddressReleased",
        action: "Release",
        note: `${s.ingressIps.join(", ") || "no address"} released: the frontend is gone from both LBs`,
      },
    });
  }
  return writes;
}

const STRATEGIC = "application/strategic-merge-patch+json";
const MERGE = "application/merge-patch+json";

/** Runs a plan; each write on its own (one Service's failure never stops the others), bounded per pass. */
export class ServiceWriter {
  constructor(
    private readonly client: KubeClient,
    private readonly o: { hostname: string; now?: () => number; maxWritesPerPass?: number; concurrency?: number },
  ) {}

  /** A few writes in flight at once (each Service's own steps stay in order): 500 new Services are 1,500 requests. */
  async run(
    writes: readonly Write[],
    slb: ServiceLoadBalancers | undefined,
  ): Promise<{ done: number; errors: string[] }> {
    const errors: string[] = [];
    let done = 0;
    const queue = writes.slice(0, this.o.maxWritesPerPass ?? 200);
    const worker = async () => {
      for (let w = queue.shift(); w; w = queue.shift()) {
        try {
          await this.one(w, slb);
          done++;
        } catch (e) {
          errors.push(`${w.kind} ${w.service.key}: ${e instanceof Error ? e.message : String(e)}`);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.o.concurrency ?? 8, queue.length) }, worker));
    return { done, errors };
  }

  private servicePath(s: ServiceView): string {
    return `/api/v1/namespaces/${encodeURIComponent(s.namespace)}/services/${encodeURIComponent(s.name)}`;
  }

  private async one(w: Write, slb: ServiceLoadBalancers | undefined): Promise<void> {
    const s = w.service;
    switch (w.kind) {
      case "addFinalizer":
        await this.client.request("PATCH", this.servicePath(s), {
          body: { metadata: { finalizers: [FINALIZER] } },
          contentType: STRATEGIC,
        });
        return;
      case "status": {
        const now = ourCondition(s);
        const changed = now?.status !== w.condition.status || now.reason !== w.condition.reason;
        const condition: ServiceCondition = {
          ...w.condition,
          lastTransitionTime:
            !changed && now ? now.lastTransitionTime : new Date(this.now()).toISOString().replace(/\.\d{3}Z$/, "Z"),
        };
        await this.client.request("PATCH", `${this.servicePath(s)}/status`, {
          body: {
            metadata: { resourceVersion: s.resourceVersion },
            status: {
              loadBalancer: { ingress: w.ingressIp ? [{ ip: w.ingressIp, ipMode: "VIP" }] : [] },
              conditions: [...s.conditions.filter((c) => c.type !== CONDITION_TYPE), condition],
            },
          },
          contentType: MERGE,
        });
        if (w.event) await this.event(s, w.event);
        return;
      }
      case "release": {
        if (w.clearStatus) {
          const ours = (ip: string) => !!slb?.pools.some((pool) => poolHolds(pool, ip));
          await this.client.request("PATCH", `${this.servicePath(s)}/status`, {
            body: {
              metadata: { resourceVersion: s.resourceVersion },
              status: {
                loadBalancer: { ingress: s.ingressIps.filter((ip) => !ours(ip)).map((ip) => ({ ip })) },
                conditions: s.conditions.filter((c) => c.type !== CONDITION_TYPE),
              },
            },
            contentType: MERGE,
          });
        }
        await this.client.request("PATCH", this.servicePath(s), {
          body: { metadata: { "$deleteFromPrimitiveList/finalizers": [FINALIZER] } },
          contentType: STRATEGIC,
        });
        await this.event(s, w.event);
        return;
      }
    }
  }

  private now(): number {
    return (this.o.now ?? Date.now)();
  }

  /** An Event on the Service, in its namespace. Never carries a secret: addresses and reasons only. */
  private async event(s: ServiceView, e: EventNote): Promise<void> {
    await postEvent(
      this.client,
      this.o.hostname,
      { apiVersion: "v1", kind: "Service", namespace: s.namespace, name: s.name, uid: s.uid },
      e,
      this.now(),
    );
  }
}
