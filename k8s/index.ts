/**
 * Plain Kubernetes manifests for ClusterAccess: the LoadBalancer CRD, its custom resource and the agent's RBAC; and
 * the pair's monitoring: alert rules, the operator's scrape, a plain scrape config, a Grafana dashboard.
 */
export * from "./names";
export * from "./crd";
export * from "./custom-resource";
export * from "./rbac";
export * from "./alerts";
export * from "./monitoring";
export * from "./scrape-config";
export * from "./dashboard";
