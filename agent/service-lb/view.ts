/**
 * What the agent keeps of a Service (Services of type LoadBalancer, issue 20), and which ones are this pair's.
 * Loose on purpose, as for Nodes (kube/backends.ts): one odd Service must never stop the others.
 */
import { z } from "zod";
import { canonical, parseCidr } from "../../spec/address";
import type { ServiceLoadBalancers } from "../../spec/types";

/** Requested addresses, comma-separated (as MetalLB's metallb.universe.tf/loadBalancerIPs). */
export const ANNOTATION_IPS = "edgepair.io/load-balancer-ips";
/** The pool to allocate from (its name in serviceLoadBalancers.pools). */
export const ANNOTATION_POOL = "edgepair.io/address-pool";
/** Services with the same key and distinct ports share one address. */
export const ANNOTATION_SHARED = "edgepair.io/allow-shared-ip";
/** Held while the Service has an address here: released only once its frontend and firewall rules are gone. */
export const FINALIZER = "edgepair.io/load-balancer";

export interface ServicePortView {
  name: string;
  protocol: string;
  port: number;
  nodePort?: number;
}

export interface ServiceView {
  /** namespace/name */
  key: string;
  namespace: string;
  name: string;
  uid: string;
  resourceVersion: string;
  creationTimestamp: string;
  type: string;
  loadBalancerClass?: string;
  annotations: Record<string, string>;
  loadBalancerIP?: string;
  ports: ServicePortView[];
  externalTrafficPolicy: "Cluster" | "Local";
  healthCheckNodePort?: number;
  allocateLoadBalancerNodePorts: boolean;
  loadBalancerSourceRanges: string[];
  ipFamilies: string[];
  deleting: boolean;
  finalizers: string[];
  /** status.loadBalancer.ingress[].ip, in order */
  ingressIps: string[];
  /** status.conditions as stored (written back whole) */
  conditions: ServiceCondition[];
}

export interface ServiceCondition {
  type: string;
  status: "True" | "False" | "Unknown";
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

const str = z.string().nullish();
const wireService = z.object({
  metadata: z.object({
    name: z.string().min(1),
    namespace: z.string().min(1),
    uid: str,
    resourceVersion: str,
    creationTimestamp: str,
    deletionTimestamp: str,
    annotations: z.record(z.string(), z.string()).nullish(),
    finalizers: z.array(z.string()).nullish(),
  }),
  spec: z
    .object({
      type: str,
      loadBalancerClass: str,
      loadBalancerIP: str,
      ports: z
        .array(
          z.object({
            name: str,
            protocol: str,
            port: z.number().int(),
            nodePort: z.number().int().nullish(),
          }),
        )
        .nullish(),
      externalTrafficPolicy: str,
      healthCheckNodePort: z.number().int().nullish(),
      allocateLoadBalancerNodePorts: z.boolean().nullish(),
      loadBalancerSourceRanges: z.array(z.string()).nullish(),
      ipFamilies: z.array(z.string()).nullish(),
    })
    .nullish(),
  status: z
    .object({
      loadBalancer: z.object({ ingress: z.array(z.object({ ip: str })).nullish() }).nullish(),
      conditions: z
        .array(
          z.object({
            type: z.string(),
            status: z.enum(["True", "False", "Unknown"]),
            reason: z.string(),
            message: z.string(),
            lastTransitionTime: z.string(),
            observedGeneration: z.number().nullish(),
          }),
        )
        .nullish(),
    })
    .nullish(),
});

/** A Service object as the API sends it -> ServiceView; undefined when it is not shaped like a Service. */
export function serviceView(obj: unknown): ServiceView | undefined {
  const r = wireService.safeParse(obj);
  if (!r.success) return undefined;
  const { metadata: m, spec: s, status } = r.data;
  return {
    key: `${m.namespace}/${m.name}`,
    namespace: m.namespace,
    name: m.name,
    uid: m.uid ?? "",
    resourceVersion: m.resourceVersion ?? "",
    creationTimestamp: m.creationTimestamp ?? "",
    type: s?.type ?? "ClusterIP",
    ...(s?.loadBalancerClass ? { loadBalancerClass: s.loadBalancerClass } : {}),
    annotations: { ...(m.annotations ?? {}) },
    ...(s?.loadBalancerIP ? { loadBalancerIP: s.loadBalancerIP } : {}),
    ports: (s?.ports ?? []).map((p) => ({
      name: p.name ?? "",
      protocol: p.protocol ?? "TCP",
      port: p.port,
      ...(p.nodePort ? { nodePort: p.nodePort } : {}),
    })),
    externalTrafficPolicy: s?.externalTrafficPolicy === "Local" ? "Local" : "Cluster",
    ...(s?.healthCheckNodePort ? { healthCheckNodePort: s.healthCheckNodePort } : {}),
    allocateLoadBalancerNodePorts: s?.allocateLoadBalancerNodePorts ?? true,
    loadBalancerSourceRanges: s?.loadBalancerSourceRanges ?? [],
    ipFamilies: s?.ipFamilies ?? [],
    deleting: !!m.deletionTimestamp,
    finalizers: m.finalizers ?? [],
    ingressIps: (status?.loadBalancer?.ingress ?? []).flatMap((i) => (i.ip ? [i.ip] : [])),
    conditions: (status?.conditions ?? []).map((c) => ({
      type: c.type,
      status: c.status,
      reason: c.reason,
      message: c.message,
      lastTransitionTime: c.lastTransitionTime,
      ...(c.observedGeneration !== undefined && c.observedGeneration !== null
        ? { observedGeneration: c.observedGeneration }
        : {}),
    })),
  };
}

/** This pair's: type LoadBalancer and its class, or no class when the pair is the default. Others are never touched. */
export function isOurs(s: ServiceView, slb: ServiceLoadBalancers | undefined): boolean {
  if (!slb || s.type !== "LoadBalancer") return false;
  return s.loadBalancerClass === undefined ? slb.defaultClass : s.loadBalancerClass === slb.loadBalancerClass;
}

/** loadBalancerSourceRanges the pair can apply: IPv4 CIDRs, canonical, sorted (the addresses are IPv4). */
export function ipv4SourceRanges(s: Pick<ServiceView, "loadBalancerSourceRanges">): string[] {
  const out = s.loadBalancerSourceRanges.flatMap((r) => {
    const c = parseCidr(r.trim());
    return c.ok && c.cidr.network.kind() === "ipv4" ? [`${canonical(c.cidr.network)}/${c.cidr.prefixLength}`] : [];
  });
  return [...new Set(out)].sort();
}
