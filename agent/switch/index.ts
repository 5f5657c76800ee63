/**
 * The image switch: moving the pair to a new digest-pinned image one LB at a time (plan.ts says how, driver.ts
 * does it, bootc.ts talks to bootc, host.ts holds the other effects on a real LB, loop.ts keeps a driver running
 * inside `agent run`). This file also holds the LoadBalancer status store over the agent's KubeClient.
 */
import { z } from "zod";
import { GROUP, loadBalancerStatusSchema, PLURAL, VERSION, type ImageSwitchStatus } from "../../k8s";
import { STATUS_VRRP_STATES } from "../../render/vrrp-state";
import { KubeApiError, type KubeClient } from "../kube/client";
import type { ImageSwitchSnapshot, ImageSwitchStore, StatusEntryView } from "./driver";

export * from "./bootc";
export * from "./driver";
export * from "./host";
export * from "./loop";
export * from "./peer-adverts";
export * from "./plan";

export interface ImageSwitchStoreOptions {
  namespace: string;
  loadBalancerName: string;
  /** The field manager of the update (the LB's own, e.g. `${statusFieldManager(lb)}/switch`). */
  fieldManager: string;
}

const imageSwitchOnly = loadBalancerStatusSchema.pick({ imageSwitch: true });

// Entries are read loosely: a peer running another agent version may write what this one does not model, and that
// must not read as "no peer".
const looseEntry = z.object({
  name: z.string().min(1),
  vrrpState: z.enum(STATUS_VRRP_STATES).optional().catch(undefined),
  bootedImage: z.string().optional().catch(undefined),
  heartbeat: z.string().optional().catch(undefined),
  conditions: z
    .array(z.object({ type: z.string(), status: z.string() }).loose())
    .optional()
    .catch(undefined),
});

interface RawObject {
  metadata: { resourceVersion: string; managedFields?: unknown } & Record<string, unknown>;
  status?: Record<string, unknown>;
  [k: string]: unknown;
}

function asRawObject(body: unknown): RawObject {
  const o = body as Partial<RawObject> | undefined;
  if (!o || typeof o.metadata !== "object" || o.metadata === null || typeof o.metadata.resourceVersion !== "string") {
    throw new Error("LoadBalancer status: the API answered without metadata.resourceVersion");
  }
  return o as RawObject;
}

function entriesOf(status: Record<string, unknown> | undefined): StatusEntryView[] {
  const xs = Array.isArray(status?.loadBalancers) ? (status.loadBalancers as unknown[]) : [];
  return xs.flatMap((x) => {
    const r = looseEntry.safeParse(x);
    if (!r.success) return [];
    const e = r.data;
    return [
      {
        name: e.name,
        ready: e.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false,
        ...(e.vrrpState ? { vrrpState: e.vrrpState } : {}),
        ...(e.bootedImage ? { bootedImage: e.bootedImage } : {}),
        ...(e.heartbeat ? { heartbeat: e.heartbeat } : {}),
      },
    ];
  });
}

/**
 * status.imageSwitch through the status subresource: a GET, and an update (PUT) of the object as read with only
 * imageSwitch replaced, carrying the resourceVersion it was read at — so it is a compare-and-swap (409 when anyone
 * wrote in between, including the peer's heartbeat). The entries it sends back are byte for byte what it read, so
 * their server-side-apply owners stay theirs; managedFields is left out, which keeps the server's.
 * Needs get + update on loadbalancers/status (k8s/rbac.ts).
 */
export function kubeImageSwitchStore(client: KubeClient, o: ImageSwitchStoreOptions): ImageSwitchStore {
  const path = `/apis/${GROUP}/${VERSION}/namespaces/${encodeURIComponent(o.namespace)}/${PLURAL}/${encodeURIComponent(o.loadBalancerName)}/status`;
  let last: RawObject | undefined;
  return {
    async read(): Promise<ImageSwitchSnapshot> {
      const raw = asRawObject(await client.request("GET", path));
      last = raw;
      const parsed = imageSwitchOnly.safeParse({ imageSwitch: raw.status?.imageSwitch }, { reportInput: true });
      if (!parsed.success) {
        const i = parsed.error.issues[0];
        throw new Error(`status.${i ? i.path.join(".") : "imageSwitch"}: ${i?.message ?? "invalid"}`);
      }
      return {
        resourceVersion: raw.metadata.resourceVersion,
        ...(parsed.data.imageSwitch ? { imageSwitch: parsed.data.imageSwitch } : {}),
        entries: entriesOf(raw.status),
      };
    },
    async write(next: ImageSwitchStatus, resourceVersion: string): Promise<boolean> {
      const checked = imageSwitchOnly.safeParse({ imageSwitch: next }, { reportInput: true });
      if (!checked.success) {
        const i = checked.error.issues[0];
        throw new Error(`status.${i ? i.path.join(".") : "imageSwitch"}: ${i?.message ?? "invalid"}`);
      }
      // only the object read at this resourceVersion may be sent back; anything else is a conflict by definition
      if (!last || last.metadata.resourceVersion !== resourceVersion) return false;
      const { managedFields: _, ...metadata } = last.metadata;
      const body = { ...last, metadata, status: { ...(last.status ?? {}), imageSwitch: checked.data.imageSwitch } };
      try {
        await client.request("PUT", `${path}?fieldManager=${encodeURIComponent(o.fieldManager)}`, { body });
        return true;
      } catch (e) {
        if (e instanceof KubeApiError && e.statusCode === 409) return false;
        throw e;
      }
    },
  };
}
