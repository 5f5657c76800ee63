/**
 * The identity of the LoadBalancer API and of one pair's agent in the cluster. The Pulumi stack, the agent and the
 * tests take every name from here, so a rename cannot leave one of them behind.
 */
import { DNS_LABEL } from "../spec/schema";
import { SpecError, type SpecProblem } from "../spec/errors";

export const GROUP = "edgepair.io";
export const VERSION = "v1alpha1";
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = "LoadBalancer";
export const LIST_KIND = "LoadBalancerList";
export const PLURAL = "loadbalancers";
export const SINGULAR = "loadbalancer";
export const SHORT_NAMES = ["eplb"];
export const CRD_NAME = `${PLURAL}.${GROUP}`;
export const DEFAULT_NAMESPACE = "edgepair-system";

/** Where one pair's LoadBalancer lives. */
export interface LoadBalancerRef {
  name: string;
  namespace?: string;
}

export interface ObjectMeta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** Any Kubernetes object in its wire form (what the API server reads as JSON). */
export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
}

/** The names of everything ClusterAccess creates for one LoadBalancer. */
export interface AgentNames {
  namespace: string;
  loadBalancer: string;
  serviceAccount: string;
  role: string;
  roleBinding: string;
  /** Cluster-scoped, so it carries the namespace too: two pairs with one name in two namespaces must not collide. */
  clusterRole: string;
  clusterRoleBinding: string;
  tokenSecret: string;
  /** coordination.k8s.io Lease: which of the two LBs writes Service addresses (agent/service-lb/lease.ts) */
  servicesLease: string;
  /** The user name the API server sees for the agent's tokens. */
  user: string;
  /** Monitoring, created only on request (alerts.ts, monitoring.ts): the alert rules and the scrape of both LBs. */
  prometheusRule: string;
  metricsService: string;
  metricsAuthSecret: string;
  serviceMonitor: string;
}

/**
 * Both names must be DNS labels: the name ends up in label values (<= 63) and in the names derived below; the
 * namespace is one by Kubernetes' own rule. Throws a SpecError naming the field.
 */
export function agentNames(ref: LoadBalancerRef): AgentNames {
  const namespace = ref.namespace ?? DEFAULT_NAMESPACE;
  const problems: SpecProblem[] = [];
  const rule =
    "must be a DNS label: 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit";
  if (!isDnsLabel(ref.name)) problems.push({ path: "metadata.name", rule });
  if (!isDnsLabel(namespace)) problems.push({ path: "metadata.namespace", rule });
  if (problems.length > 0) throw new SpecError(problems);
  const agent = `${ref.name}-agent`;
  const clusterScoped = `edgepair:${namespace}:${ref.name}:agent`;
  return {
    namespace,
    loadBalancer: ref.name,
    serviceAccount: agent,
    role: agent,
    roleBinding: agent,
    clusterRole: clusterScoped,
    clusterRoleBinding: clusterScoped,
    tokenSecret: `${agent}-token`,
    servicesLease: `${ref.name}-services`,
    user: `system:serviceaccount:${namespace}:${agent}`,
    prometheusRule: `${ref.name}-alerts`,
    metricsService: `${ref.name}-metrics`,
    metricsAuthSecret: `${ref.name}-metrics-auth`,
    serviceMonitor: `${ref.name}-metrics`,
  };
}

function isDnsLabel(s: string): boolean {
  return s.length >= 1 && s.length <= 63 && DNS_LABEL.test(s);
}

/**
 * The hostname of the pair's LB at `index` (0: primary, 1: secondary). EdgePair gives the VMs these names, the agent
 * reports itself under its hostname (status entries, the metrics' `lb` label), and the scrape targets carry the same.
 */
export function lbHostname(clusterName: string, index: number): string {
  return `${clusterName}-lb-${index + 1}`;
}

/** Labels every object of one pair carries, so `kubectl get -l app.kubernetes.io/instance=<name>` finds them all. */
export function pairLabels(name: string, component: string): Record<string, string> {
  return {
    "app.kubernetes.io/name": "edgepair",
    "app.kubernetes.io/instance": name,
    "app.kubernetes.io/component": component,
  };
}

/**
 * The server-side-apply field manager of one LB's agent. One per LB (not per pair): ownership of each
 * status.loadBalancers entry then follows the LB that writes it, and the two never conflict.
 */
export function statusFieldManager(lbName: string): string {
  return `edgepair-agent/${lbName}`;
}
