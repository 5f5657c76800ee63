/** Plain Kubernetes manifests for ClusterAccess: the LoadBalancer CRD, its custom resource and the agent's RBAC. */
export * from "./names";
export * from "./crd";
export * from "./custom-resource";
export * from "./rbac";
