/**
 * What one pair's agent may do in the cluster, and nothing more: read Nodes (backends), read its own LoadBalancer,
 * write that LoadBalancer's status (including the image-switch coordination), renew its own token, record Events.
 * With serviceLoadBalancers (issue 20): read Services, write their status (addresses) and finalizers (patch: a
 * finalizer is added and removed with a strategic merge patch, never a full update), record Events on them in any
 * namespace, and hold one Lease that says which LB writes.
 * No wildcard, no Secrets. resourceNames pins every rule whose request names an object; list/watch honour them only
 * when the request selects that name (`fieldSelector=metadata.name=<name>`), which is how the agent must watch its
 * LoadBalancer. Events are the exception: a create carries no name to check, so that rule is namespace-wide.
 */
import { agentNames, GROUP, pairLabels, PLURAL, type LoadBalancerRef, type Manifest, type ObjectMeta } from "./names";

export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  resourceNames?: string[];
  verbs: string[];
}

export interface Subject {
  kind: "ServiceAccount";
  name: string;
  namespace: string;
}

export interface RoleRef {
  apiGroup: "rbac.authorization.k8s.io";
  kind: "Role" | "ClusterRole";
  name: string;
}

export interface RoleManifest extends Manifest {
  rules: PolicyRule[];
}

export interface BindingManifest extends Manifest {
  roleRef: RoleRef;
  subjects: Subject[];
}

export interface TokenSecretManifest extends Manifest {
  type: "kubernetes.io/service-account-token";
}

export interface AgentRbacOptions extends LoadBalancerRef {
  /** Also create the Namespace (false when it exists already or another stack owns it). Default false. */
  createNamespace?: boolean;
  /** The spec has serviceLoadBalancers: the agent serves Services of type LoadBalancer. Default false. */
  services?: boolean;
}

export interface AgentRbac {
  namespace?: Manifest;
  serviceAccount: Manifest;
  /** Cluster scope: read Nodes only. */
  clusterRole: RoleManifest;
  clusterRoleBinding: BindingManifest;
  role: RoleManifest;
  roleBinding: BindingManifest;
  /**
   * SECRET once the cluster fills it: the controller manager writes a long-lived token for the ServiceAccount into
   * this Secret's data.token. The manifest itself holds nothing secret; whatever reads the token back (the stack,
   * to deliver it to the LBs) must treat it as a secret. The agent then keeps itself on short-lived TokenRequest
   * tokens.
   */
  tokenSecret: TokenSecretManifest;
}

const RBAC_GROUP = "rbac.authorization.k8s.io";

export function agentRbac(options: AgentRbacOptions): AgentRbac {
  const n = agentNames(options);
  const labels = pairLabels(n.loadBalancer, "agent");
  const inNamespace = (name: string): ObjectMeta => ({ name, namespace: n.namespace, labels });
  const subjects: Subject[] = [{ kind: "ServiceAccount", name: n.serviceAccount, namespace: n.namespace }];
  return {
    ...(options.createNamespace
      ? {
          namespace: {
            apiVersion: "v1",
            kind: "Namespace",
            metadata: { name: n.namespace, labels: pairLabels(n.loadBalancer, "namespace") },
          },
        }
      : {}),
    serviceAccount: { apiVersion: "v1", kind: "ServiceAccount", metadata: inNamespace(n.serviceAccount) },
    clusterRole: {
      apiVersion: `${RBAC_GROUP}/v1`,
      kind: "ClusterRole",
      metadata: { name: n.clusterRole, labels },
      rules: [
        { apiGroups: [""], resources: ["nodes"], verbs: ["get", "list", "watch"] },
        ...(options.services
          ? [
              { apiGroups: [""], resources: ["services"], verbs: ["get", "list", "watch", "patch"] },
              { apiGroups: [""], resources: ["services/status"], verbs: ["patch"] },
              // on the Service, in its namespace: a create names no object, so this cannot be narrowed further
              { apiGroups: ["events.k8s.io"], resources: ["events"], verbs: ["create"] },
            ]
          : []),
      ],
    },
    clusterRoleBinding: {
      apiVersion: `${RBAC_GROUP}/v1`,
      kind: "ClusterRoleBinding",
      metadata: { name: n.clusterRoleBinding, labels },
      roleRef: { apiGroup: RBAC_GROUP, kind: "ClusterRole", name: n.clusterRole },
      subjects,
    },
    role: {
      apiVersion: `${RBAC_GROUP}/v1`,
      kind: "Role",
      metadata: inNamespace(n.role),
      rules: [
        { apiGroups: [GROUP], resources: [PLURAL], resourceNames: [n.loadBalancer], verbs: ["get", "list", "watch"] },
        // update as well as patch: the image-switch turn is taken with a resourceVersion-guarded update
        {
          apiGroups: [GROUP],
          resources: [`${PLURAL}/status`],
          resourceNames: [n.loadBalancer],
          verbs: ["get", "patch", "update"],
        },
        { apiGroups: [""], resources: ["serviceaccounts/token"], resourceNames: [n.serviceAccount], verbs: ["create"] },
        { apiGroups: ["events.k8s.io"], resources: ["events"], verbs: ["create"] },
        ...(options.services
          ? [
              // a create names no object (the first writer creates it); every other verb names the one Lease
              { apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["create"] },
              {
                apiGroups: ["coordination.k8s.io"],
                resources: ["leases"],
                resourceNames: [n.servicesLease],
                verbs: ["get", "update"],
              },
            ]
          : []),
      ],
    },
    roleBinding: {
      apiVersion: `${RBAC_GROUP}/v1`,
      kind: "RoleBinding",
      metadata: inNamespace(n.roleBinding),
      roleRef: { apiGroup: RBAC_GROUP, kind: "Role", name: n.role },
      subjects,
    },
    tokenSecret: {
      apiVersion: "v1",
      kind: "Secret",
      metadata: {
        ...inNamespace(n.tokenSecret),
        annotations: { "kubernetes.io/service-account.name": n.serviceAccount },
      },
      type: "kubernetes.io/service-account-token",
    },
  };
}

/** Every object in the order it must be created (the Namespace first, the token Secret after its ServiceAccount). */
export function agentRbacManifests(rbac: AgentRbac): Manifest[] {
  return [
    ...(rbac.namespace ? [rbac.namespace] : []),
    rbac.serviceAccount,
    rbac.clusterRole,
    rbac.clusterRoleBinding,
    rbac.role,
    rbac.roleBinding,
    rbac.tokenSecret,
  ];
}
