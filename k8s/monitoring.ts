/**
 * The scrape of one pair by the Prometheus operator, as plain manifests (ClusterAccess creates them on request):
 * the LBs are outside the cluster, so a Service without selector and its Endpoints list their private addresses on
 * the metrics port, and a ServiceMonitor scrapes them with basic auth from a Secret. Same scrape as scrape-config.ts:
 * job `edgepair` (the Service's app.kubernetes.io/name label, via jobLabel), `cluster` and `lb` on every target.
 *
 * Endpoints rather than an EndpointSlice: a ServiceMonitor discovers Endpoints unless its Prometheus is set to
 * EndpointSlice, and Kubernetes mirrors the Endpoints of a selector-less Service into EndpointSlices, so both work.
 */
import { agentNames, pairLabels, type AgentNames, type LoadBalancerRef, type Manifest, type ObjectMeta } from "./names";
import { DEFAULT_SCRAPE_INTERVAL, METRICS_PATH, type ScrapePair } from "./scrape-config";

/** The Service's and the Endpoints' port name, which the ServiceMonitor selects. */
export const METRICS_PORT_NAME = "metrics";
/** Keys of the basic-auth Secret (type kubernetes.io/basic-auth). */
export const METRICS_AUTH_KEYS = { username: "username", password: "password" } as const;

interface Port {
  name: string;
  port: number;
  protocol: "TCP";
}

export interface ServiceManifest extends Manifest {
  spec: { clusterIP: "None"; ports: (Port & { targetPort: number })[] };
}

export interface EndpointsManifest extends Manifest {
  subsets: { addresses: { ip: string; hostname: string }[]; ports: Port[] }[];
}

export interface Relabeling {
  sourceLabels?: string[];
  separator?: string;
  regex?: string;
  targetLabel: string;
  replacement: string;
  action: "replace";
}

export interface ServiceMonitorManifest extends Manifest {
  spec: {
    jobLabel: string;
    selector: { matchLabels: Record<string, string> };
    namespaceSelector: { matchNames: string[] };
    endpoints: {
      port: string;
      path: string;
      scheme: "http";
      interval: string;
      honorLabels: boolean;
      basicAuth: { username: { name: string; key: string }; password: { name: string; key: string } };
      relabelings: Relabeling[];
    }[];
  };
}

/** The Secret without its data: the password is a secret input, filled in by the caller. */
export interface MetricsAuthSecretManifest extends Manifest {
  type: "kubernetes.io/basic-auth";
}

const metadata = (
  ref: LoadBalancerRef,
  name: (n: AgentNames) => string,
  extra: Record<string, string> = {},
): ObjectMeta => {
  const n = agentNames(ref);
  return { name: name(n), namespace: n.namespace, labels: { ...extra, ...pairLabels(n.loadBalancer, "metrics") } };
};

/** The Service's and its Endpoints' (one name: that is how Endpoints belong to a Service). */
export function metricsServiceMetadata(ref: LoadBalancerRef): ObjectMeta {
  return metadata(ref, (n) => n.metricsService);
}

const metricsPort = (port: number) => ({ name: METRICS_PORT_NAME, port, protocol: "TCP" as const });

export function metricsService(ref: LoadBalancerRef, port: number): ServiceManifest {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: metricsServiceMetadata(ref),
    // headless: nothing in the cluster connects through it, it only names the targets
    spec: { clusterIP: "None", ports: [{ ...metricsPort(port), targetPort: port }] },
  };
}

export function metricsEndpoints(ref: LoadBalancerRef, pair: ScrapePair): EndpointsManifest {
  return {
    apiVersion: "v1",
    kind: "Endpoints",
    metadata: metricsServiceMetadata(ref),
    // hostname: the LB's name, which the ServiceMonitor turns into the `lb` label
    subsets: [
      { addresses: pair.lbs.map((lb) => ({ ip: lb.address, hostname: lb.name })), ports: [metricsPort(pair.port)] },
    ],
  };
}

export interface ServiceMonitorOptions {
  /** The pair's LoadBalancer (names the objects) and the namespace they go to. */
  ref: LoadBalancerRef;
  cluster: string;
  /** Extra labels, e.g. what a Prometheus' serviceMonitorSelector picks. */
  labels?: Record<string, string>;
  scrapeInterval?: string;
}

export function metricsServiceMonitor(options: ServiceMonitorOptions): ServiceMonitorManifest {
  const n = agentNames(options.ref);
  return {
    apiVersion: "monitoring.coreos.com/v1",
    kind: "ServiceMonitor",
    metadata: metadata(options.ref, (x) => x.serviceMonitor, options.labels),
    spec: {
      // app.kubernetes.io/name is "edgepair": the job the alerts select
      jobLabel: "app.kubernetes.io/name",
      selector: { matchLabels: pairLabels(n.loadBalancer, "metrics") },
      namespaceSelector: { matchNames: [n.namespace] },
      endpoints: [
        {
          port: METRICS_PORT_NAME,
          path: METRICS_PATH,
          scheme: "http",
          interval: options.scrapeInterval ?? DEFAULT_SCRAPE_INTERVAL,
          // the agent's own cluster and lb labels stay as they are (not exported_*): see scrape-config.ts
          honorLabels: true,
          basicAuth: {
            username: { name: n.metricsAuthSecret, key: METRICS_AUTH_KEYS.username },
            password: { name: n.metricsAuthSecret, key: METRICS_AUTH_KEYS.password },
          },
          relabelings: [
            {
              // one of the two is set, depending on whether Prometheus discovers Endpoints or EndpointSlices
              sourceLabels: [
                "__meta_kubernetes_endpoint_hostname",
                "__meta_kubernetes_endpointslice_endpoint_hostname",
              ],
              separator: "",
              regex: "(.+)",
              targetLabel: "lb",
              replacement: "$1",
              action: "replace",
            },
            { targetLabel: "cluster", replacement: options.cluster, action: "replace" },
          ],
        },
      ],
    },
  };
}

export function metricsAuthSecret(ref: LoadBalancerRef): MetricsAuthSecretManifest {
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: metadata(ref, (n) => n.metricsAuthSecret),
    type: "kubernetes.io/basic-auth",
  };
}
