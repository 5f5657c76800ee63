/**
 * The agent's Kubernetes identity (k8s/rbac.ts agentRbac) may read Nodes, read and report on its own
 * LoadBalancer, renew its own token and record Events; nothing else. Judged on every Role, ClusterRole and
 * binding labelled as an edgepair agent's (app.kubernetes.io/name=edgepair, component=agent): no wildcard
 * anywhere, no Secrets cluster-wide, in its namespace only its own token Secret by name, and bindings only to the
 * agent's own roles (binding it to cluster-admin or edit would be a wildcard by another name).
 */
import type { ResourceValidationPolicy } from "@pulumi/policy";
import { agentNames } from "../k8s/names";
import { TYPES } from "./lib/types";
import { list, record, str, strings } from "./lib/values";

const RBAC_TYPES: string[] = [TYPES.role, TYPES.clusterRole, TYPES.roleBinding, TYPES.clusterRoleBinding];

/** The LoadBalancer (pair) name and namespace an object belongs to, when it is labelled as an agent's. */
function agentOf(props: unknown): { name: string; namespace?: string } | undefined {
  const metadata = record(props, "metadata");
  const labels = record(metadata, "labels");
  if (str(labels, "app.kubernetes.io/name") !== "edgepair" || str(labels, "app.kubernetes.io/component") !== "agent")
    return undefined;
  const name = str(labels, "app.kubernetes.io/instance");
  if (name === undefined) return undefined;
  const namespace = str(metadata, "namespace");
  return { name, ...(namespace !== undefined ? { namespace } : {}) };
}

function ruleProblems(rule: unknown, i: number, clusterScoped: boolean, ownTokenSecret: string): string[] {
  const problems: string[] = [];
  const where = `rules[${i}]`;
  for (const field of ["apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"]) {
    const wild = strings(rule, field).filter((v) => v === "*" || v.endsWith("/*"));
    if (wild.length > 0) problems.push(`${where}.${field} has the wildcard ${wild.join(", ")}`);
  }
  const groups = strings(rule, "apiGroups");
  const resources = strings(rule, "resources");
  const touchesSecrets =
    (groups.includes("") || groups.includes("*")) &&
    resources.some((r) => r === "secrets" || r.startsWith("secrets/") || r === "*");
  if (!touchesSecrets) return problems;
  if (clusterScoped) {
    problems.push(
      `${where} grants access to Secrets cluster-wide; the agent may only read its own token Secret, in its namespace`,
    );
    return problems;
  }
  const names = strings(rule, "resourceNames");
  const others = names.filter((n) => n !== ownTokenSecret);
  if (names.length === 0)
    problems.push(
      `${where} grants access to every Secret of the namespace; pin it with resourceNames: [${ownTokenSecret}]`,
    );
  else if (others.length > 0)
    problems.push(
      `${where} grants access to Secrets ${others.join(", ")}, which are not the agent's own (${ownTokenSecret})`,
    );
  return problems;
}

export const agentRbacLeastPrivilege: ResourceValidationPolicy = {
  name: "agent-rbac-least-privilege",
  description:
    "The edgepair agent's roles hold no wildcard (apiGroups, resources, verbs, resourceNames) and no access to Secrets other than its own token Secret; its bindings point only at its own Role and ClusterRole.",
  enforcementLevel: "mandatory",
  severity: "critical",
  validateResource: (args, report) => {
    if (!RBAC_TYPES.includes(args.type)) return;
    const agent = agentOf(args.props);
    if (!agent) return;
    let names: ReturnType<typeof agentNames>;
    try {
      names = agentNames({ name: agent.name, ...(agent.namespace ? { namespace: agent.namespace } : {}) });
    } catch (e) {
      report(
        `labelled as the agent of "${agent.name}" in "${agent.namespace ?? "(default namespace)"}", which are not valid names: ${e instanceof Error ? e.message : String(e)}`,
      );
      return;
    }
    if (args.type === TYPES.role || args.type === TYPES.clusterRole) {
      const clusterScoped = args.type === TYPES.clusterRole;
      const rules = list(args.props, "rules");
      rules.forEach((rule, i) => {
        for (const p of ruleProblems(rule, i, clusterScoped, names.tokenSecret)) report(p);
      });
      return;
    }
    const roleRef = record(args.props, "roleRef");
    const kind = str(roleRef, "kind");
    const refName = str(roleRef, "name");
    if (kind === undefined || refName === undefined) return;
    const own = kind === "ClusterRole" ? names.clusterRole : names.role;
    if (refName !== own) report(`roleRef is ${kind} ${refName}; the agent is bound only to its own ${kind} ${own}`);
  },
};
