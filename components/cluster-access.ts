/**
 * ClusterAccess: what the agent needs inside the cluster — the LoadBalancer CRD, the CR carrying the spec (the
 * day-2 carrier: a spec change reaches both LBs through it, never through a VM replacement), a ServiceAccount with
 * least privilege (k8s/rbac.ts) and its token, a Pulumi secret. On request, the pair's monitoring for the Prometheus
 * operator: its alert rules (k8s/alerts.ts) and the scrape of both LBs (k8s/monitoring.ts).
 */
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import {
  agentNames,
  agentRbac,
  lbHostname,
  loadBalancerCrd,
  loadBalancerResource,
  METRICS_AUTH_KEYS,
  METRICS_USER,
  metricsAuthSecret,
  metricsEndpoints,
  metricsService,
  metricsServiceMetadata,
  metricsServiceMonitor,
  prometheusRule,
  type JsonValue,
  type LoadBalancerRef,
} from "../k8s";
import type { CheckedSpec } from "../spec/checked";
import type { LoadBalancerSpecInput } from "../spec/schema";
import { checkedSpecOf } from "./spec-errors";

export interface ClusterAccessArgs {
  /** The spec as written, or checked already (spec/checked.ts); the CR carries it unchanged (but for `image`). */
  spec: LoadBalancerSpecInput | CheckedSpec;
  /**
   * The digest-pinned appliance image the pair should run (BootcImage's ref). It becomes the CR's spec.image, so a
   * new image reaches the running agents as a spec change and they switch one LB at a time; the VMs, whose
   * user-data is create-only, are not replaced for it. Absent: spec.image as written, if any.
   */
  image?: pulumi.Input<string>;
  /** Secret: a kubeconfig with the rights to create the CRD and RBAC (used by this stack only, never on the LBs). */
  kubeconfig: pulumi.Input<string>;
  /** Default edgepair-system. */
  namespace?: string;
  /** Create the namespace. Default true. */
  createNamespace?: boolean;
  /** The pair's monitoring through the Prometheus operator (its CRDs must exist). Default: none of it. */
  monitoring?: ClusterAccessMonitoring;
}

export interface ClusterAccessMonitoring {
  /** A PrometheusRule with the alerts, scoped to this pair's cluster. Default false. */
  prometheusRule?: boolean;
  /**
   * A Service without selector, its Endpoints (both LBs' private addresses on the metrics port) and a ServiceMonitor
   * scraping them with basic auth from a Secret holding the metrics password. Default false.
   */
  serviceMonitor?: boolean;
  /** Where these objects go. Default: ClusterAccess's namespace. Another one must exist already. */
  namespace?: string;
  /** Extra labels on the PrometheusRule and the ServiceMonitor: what the Prometheus' rule and monitor selectors pick. */
  labels?: Record<string, string>;
  /** Where the README's Runbook lives (alerts' runbook_url). Default the project's repository. */
  runbookBaseUrl?: string;
  /** Default 15s. */
  scrapeInterval?: string;
  /** Secret: the pair's metrics password (EdgePair passes its own). Required with serviceMonitor. */
  metricsPassword?: pulumi.Input<string>;
  /** The LBs: hostname (the `lb` label) and private address. Default: lbHostname() and the spec's lbAddresses. */
  lbs?: { name: pulumi.Input<string>; address: pulumi.Input<string> }[];
  /** Default: the spec's metrics.port. */
  port?: pulumi.Input<number>;
}

/** The typed CRD arguments spell `x-kubernetes-*` keys with underscores; the provider maps them back. */
export function typedSchemaKeys(value: JsonValue): JsonValue {
  if (Array.isArray(value)) return value.map(typedSchemaKeys);
  if (value === null || typeof value !== "object") return value;
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => [
      k.startsWith("x-kubernetes-") ? k.replace(/-/g, "_") : k,
      typedSchemaKeys(v),
    ]),
  );
}

export class ClusterAccess extends pulumi.ComponentResource {
  public readonly namespace: string;
  public readonly loadBalancerName: string;
  /** Secret: the agent's long-lived bootstrap token (the agent moves to TokenRequest tokens itself). */
  public readonly token: pulumi.Output<string>;

  constructor(name: string, args: ClusterAccessArgs, opts?: pulumi.ComponentResourceOptions) {
    super("edgepair:index:ClusterAccess", name, {}, opts);
    const checked = checkedSpecOf(args.spec, this);
    const ref = { name: checked.resolved.clusterName, namespace: args.namespace ?? "edgepair-system" };
    const n = agentNames(ref);
    this.namespace = n.namespace;
    this.loadBalancerName = n.loadBalancer;
    const provider = new k8s.Provider(`${name}-k8s`, { kubeconfig: pulumi.secret(args.kubeconfig) }, { parent: this });
    const child = (dependsOn: pulumi.Resource[] = []): pulumi.CustomResourceOptions => ({
      parent: this,
      provider,
      dependsOn,
    });

    const crd = loadBalancerCrd();
    const crdRes = new k8s.apiextensions.v1.CustomResourceDefinition(
      `${name}-crd`,
      {
        metadata: crd.metadata,
        spec: typedSchemaKeys(
          crd.spec as unknown as JsonValue,
        ) as unknown as k8s.types.input.apiextensions.v1.CustomResourceDefinitionSpec,
      },
      child(),
    );
    const rbac = agentRbac({
      ...ref,
      createNamespace: args.createNamespace ?? true,
      services: checked.resolved.serviceLoadBalancers !== undefined,
    });
    const ns = rbac.namespace
      ? new k8s.core.v1.Namespace(`${name}-namespace`, { metadata: rbac.namespace.metadata }, child())
      : undefined;
    const inNs = ns ? [ns] : [];
    const sa = new k8s.core.v1.ServiceAccount(`${name}-sa`, { metadata: rbac.serviceAccount.metadata }, child(inNs));
    const clusterRole = new k8s.rbac.v1.ClusterRole(
      `${name}-nodes-reader`,
      { metadata: rbac.clusterRole.metadata, rules: rbac.clusterRole.rules },
      child(),
    );
    new k8s.rbac.v1.ClusterRoleBinding(
      `${name}-nodes-reader`,
      {
        metadata: rbac.clusterRoleBinding.metadata,
        roleRef: rbac.clusterRoleBinding.roleRef,
        subjects: rbac.clusterRoleBinding.subjects,
      },
      child([clusterRole, sa]),
    );
    const role = new k8s.rbac.v1.Role(
      `${name}-role`,
      { metadata: rbac.role.metadata, rules: rbac.role.rules },
      child(inNs),
    );
    new k8s.rbac.v1.RoleBinding(
      `${name}-role`,
      { metadata: rbac.roleBinding.metadata, roleRef: rbac.roleBinding.roleRef, subjects: rbac.roleBinding.subjects },
      child([role, sa]),
    );
    const cr = loadBalancerResource(checked, ref);
    const spec =
      args.image === undefined ? cr.spec : pulumi.output(args.image).apply((image) => ({ ...cr.spec, image }));
    new k8s.apiextensions.CustomResource(
      `${name}-loadbalancer`,
      { apiVersion: cr.apiVersion, kind: cr.kind, metadata: cr.metadata, spec },
      child([crdRes, ...inNs]),
    );
    const tokenSecret = new k8s.core.v1.Secret(
      `${name}-token`,
      {
        metadata: rbac.tokenSecret.metadata,
        type: rbac.tokenSecret.type,
      },
      { ...child([sa]), additionalSecretOutputs: ["data", "stringData"] },
    );
    this.token = pulumi.secret(tokenSecret.data.apply((d) => Buffer.from(d?.token ?? "", "base64").toString("utf8")));
    const monitoringNs = args.monitoring?.namespace ?? n.namespace;
    this.monitoring(name, args.monitoring ?? {}, checked, { name: ref.name, namespace: monitoringNs }, (extra) =>
      child([...(monitoringNs === n.namespace ? inNs : []), ...extra]),
    );
    this.registerOutputs({ namespace: this.namespace, loadBalancerName: this.loadBalancerName, token: this.token });
  }

  private monitoring(
    name: string,
    m: ClusterAccessMonitoring,
    checked: CheckedSpec,
    ref: LoadBalancerRef,
    child: (dependsOn: pulumi.Resource[]) => pulumi.CustomResourceOptions,
  ): void {
    const cluster = checked.resolved.clusterName;
    if (m.prometheusRule) {
      const rule = prometheusRule({
        ref,
        cluster,
        ...(m.labels ? { labels: m.labels } : {}),
        ...(m.runbookBaseUrl ? { runbookBaseUrl: m.runbookBaseUrl } : {}),
      });
      new k8s.apiextensions.CustomResource(
        `${name}-alerts`,
        { apiVersion: rule.apiVersion, kind: rule.kind, metadata: rule.metadata, spec: rule.spec },
        child([]),
      );
    }
    if (!m.serviceMonitor) return;
    if (m.metricsPassword === undefined) {
      throw new pulumi.ResourceError("monitoring.metricsPassword: required with monitoring.serviceMonitor", this, true);
    }
    const lbs =
      m.lbs ?? checked.resolved.network.lbAddresses.map((address, i) => ({ name: lbHostname(cluster, i), address }));
    const port = pulumi.output(m.port ?? checked.resolved.metrics.port);
    // the addresses may be known only once the platform created the LBs' ports
    const pair = pulumi
      .all([port, pulumi.all(lbs.map((lb) => pulumi.all([lb.name, lb.address])))])
      .apply(([p, known]) => ({
        cluster,
        port: p,
        lbs: known.map(([lbName, address]) => ({ name: lbName, address })),
      }));
    const auth = metricsAuthSecret(ref);
    const secret = new k8s.core.v1.Secret(
      `${name}-metrics-auth`,
      {
        metadata: auth.metadata,
        type: auth.type,
        stringData: pulumi.secret(
          pulumi.output(m.metricsPassword).apply((password) => ({
            [METRICS_AUTH_KEYS.username]: METRICS_USER,
            [METRICS_AUTH_KEYS.password]: password,
          })),
        ),
      },
      { ...child([]), additionalSecretOutputs: ["data", "stringData"] },
    );
    const serviceMetadata = metricsServiceMetadata(ref);
    const service = new k8s.core.v1.Service(
      `${name}-metrics`,
      { metadata: serviceMetadata, spec: port.apply((p) => metricsService(ref, p).spec) },
      child([]),
    );
    const endpoints = new k8s.core.v1.Endpoints(
      `${name}-metrics`,
      { metadata: serviceMetadata, subsets: pair.apply((p) => metricsEndpoints(ref, p).subsets) },
      child([service]),
    );
    const monitor = metricsServiceMonitor({
      ref,
      cluster,
      ...(m.labels ? { labels: m.labels } : {}),
      ...(m.scrapeInterval ? { scrapeInterval: m.scrapeInterval } : {}),
    });
    new k8s.apiextensions.CustomResource(
      `${name}-service-monitor`,
      { apiVersion: monitor.apiVersion, kind: monitor.kind, metadata: monitor.metadata, spec: monitor.spec },
      child([secret, endpoints]),
    );
  }
}
