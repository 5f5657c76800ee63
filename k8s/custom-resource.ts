/**
 * The LoadBalancer custom resource: `spec` is the spec as users write it (spec/schema.ts); `status` is modelled here,
 * once, in zod, so that the CRD's status schema (crd.ts) and the agent's types come from the same definition.
 *
 * Who writes what in status (issue 8):
 * - `loadBalancers[]`: each LB server-side-applies only its own entry (keyed by `name`, its hostname) with its own
 *   field manager (names.ts statusFieldManager); the list is a list-map, so the two entries have separate owners and
 *   the two LBs never conflict.
 * - `conditions[]` (pair level, e.g. Redundant): written by the LB that is VRRP MASTER, applied with force so that
 *   ownership follows the MASTER role.
 * - `imageSwitch`: the coordination of an image switch, one LB at a time. It lives in status rather than in a Lease
 *   because a Lease expires while its holder reboots, which is exactly when the other LB must keep waiting. Writers
 *   change it with an update carrying resourceVersion (compare-and-swap), so two LBs cannot both take the turn.
 */
import { z } from "zod";
import { fromZodIssues, SpecError } from "../spec/errors";
import type { CheckedSpec } from "../spec/checked";
import { DNS_LABEL, type LoadBalancerSpecInput } from "../spec/schema";
import { agentNames, API_VERSION, KIND, pairLabels, type LoadBalancerRef, type Manifest } from "./names";
import { STATUS_VRRP_STATES } from "../render/vrrp-state";

export const LB_CONDITION_TYPES = ["Ready", "Degraded", "Progressing"] as const;
export const PAIR_CONDITION_TYPES = ["Redundant"] as const;
/** keepalived's VRRP instance states, in Kubernetes enum style. */
export const IMAGE_SWITCH_PHASES = ["Pending", "Switching", "Verifying", "Completed", "RollingBack", "Failed"] as const;

const dateTime = z.iso.datetime();
const lbName = z.string().min(1).max(63).regex(DNS_LABEL);

/** metav1.Condition exactly as Kubernetes defines it (same fields, bounds and patterns), so standard tooling reads it. */
const condition = z.strictObject({
  type: z
    .string()
    .max(316)
    .regex(
      /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$/,
    ),
  status: z.enum(["True", "False", "Unknown"]),
  observedGeneration: z.number().int().min(0).optional(),
  lastTransitionTime: dateTime,
  reason: z
    .string()
    .min(1)
    .max(1024)
    .regex(/^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/),
  message: z.string().max(32768),
});

const conditions = z
  .array(condition)
  .max(16)
  .meta({ "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"] });

/** Servers listed per pool in status; a pool of more is counted, not listed (status stays far below etcd's limit). */
export const MAX_STATUS_SERVERS = 256;
export const MAX_STATUS_LEFT_OUT = 32;

/** One pool as the LB's agent selected it (agent/kube/backends.ts): each server's source, the Nodes left out and why. */
const poolView = z.strictObject({
  servers: z
    .array(
      z.strictObject({
        name: z.string().min(1).max(253),
        address: z.string().min(1).max(45),
        /** spec: a static address of the spec (stays until the spec removes it); node: added by a matching Node */
        from: z.enum(["spec", "node"]),
        /** the Node at this address, when one matches the pool */
        node: z.string().max(253).optional(),
      }),
    )
    .max(MAX_STATUS_SERVERS),
  serverCount: z.number().int().min(0),
  leftOut: z
    .array(z.strictObject({ node: z.string().min(1).max(253), reason: z.string().max(256) }))
    .max(MAX_STATUS_LEFT_OUT),
  leftOutCount: z.number().int().min(0),
});

const loadBalancerEntry = z.strictObject({
  /** The LB's hostname (host facts). */
  name: lbName,
  role: z.enum(["primary", "secondary"]),
  vrrpState: z.enum(STATUS_VRRP_STATES).optional(),
  /** Rendered file path -> hash of the content the LB runs. */
  configHashes: z.record(z.string(), z.string()).optional(),
  rendererVersion: z.string().max(128).optional(),
  /** The digest-pinned image the LB booted (bootc status). */
  bootedImage: z.string().max(512).optional(),
  /** Never carries a secret: status is readable by anyone who may read the LoadBalancer. */
  lastError: z.string().max(4096).optional(),
  heartbeat: dateTime,
  observedGeneration: z.number().int().min(0).optional(),
  conditions: conditions.optional(),
  /** The backend pools this LB serves (its last applied selection). */
  backends: z.strictObject({ api: poolView, ingress: poolView.optional() }).optional(),
});

const imageSwitch = z.strictObject({
  targetImage: z
    .string()
    .max(512)
    .regex(/^[^@\s]+@sha256:[0-9a-f]{64}$/),
  phase: z.enum(IMAGE_SWITCH_PHASES),
  /** The one LB allowed to switch now; absent when none may. */
  turn: lbName.optional(),
  /** LBs that already run targetImage and passed the health gate. */
  completed: z.array(lbName).max(2).meta({ "x-kubernetes-list-type": "set" }).optional(),
  message: z.string().max(32768).optional(),
  lastTransitionTime: dateTime,
});

export const loadBalancerStatusSchema = z.strictObject({
  // two LBs, plus room for a replaced LB's new hostname beside its predecessor's entry until the agent of the new
  // one removes it (agent/kube/status.ts: one entry per role)
  loadBalancers: z
    .array(loadBalancerEntry)
    .max(4)
    .meta({ "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"] })
    .optional(),
  conditions: conditions.optional(),
  imageSwitch: imageSwitch.optional(),
});

export type LoadBalancerStatus = z.input<typeof loadBalancerStatusSchema>;
export type LoadBalancerEntryStatus = z.input<typeof loadBalancerEntry>;
export type Condition = z.input<typeof condition>;
export type PoolViewStatus = z.input<typeof poolView>;
export type ImageSwitchStatus = z.input<typeof imageSwitch>;

export interface LoadBalancerResource extends Manifest {
  spec: LoadBalancerSpecInput;
  status?: LoadBalancerStatus;
}

/**
 * The LoadBalancer carrying the spec exactly as written (defaults stay implicit, so the agent and the program resolve
 * them with the same code), checked by the caller (spec/checked.ts).
 */
export function loadBalancerResource(spec: CheckedSpec, ref: LoadBalancerRef): LoadBalancerResource {
  const names = agentNames(ref);
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: {
      name: names.loadBalancer,
      namespace: names.namespace,
      labels: pairLabels(names.loadBalancer, "loadbalancer"),
    },
    // a JSON copy: the spec is JSON data, and structuredClone makes arrays of another realm under jest, which
    // Pulumi's serializer (instanceof Array) would send as objects
    spec: JSON.parse(JSON.stringify(spec.written)) as LoadBalancerSpecInput,
  };
}

/**
 * The server-side-apply body with which one LB reports itself: only its own entry, so the apply (with
 * statusFieldManager(entry.name), to the status subresource) owns nothing of the peer's.
 */
export function loadBalancerEntryApply(
  ref: LoadBalancerRef,
  entry: LoadBalancerEntryStatus,
): Manifest & { status: LoadBalancerStatus } {
  const names = agentNames(ref);
  const parsed = loadBalancerEntry.safeParse(entry, { reportInput: true });
  if (!parsed.success) throw new SpecError(fromZodIssues(parsed.error.issues, "status.loadBalancers[0]"));
  const checked: LoadBalancerEntryStatus = parsed.data;
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name: names.loadBalancer, namespace: names.namespace },
    status: { loadBalancers: [checked] },
  };
}
