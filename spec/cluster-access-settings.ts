/**
 * The stack's way into the cluster (`edgepair:clusterAccess`, structured config like `edgepair:spec`, with the secret
 * `edgepair:kubeconfig`): where the agents reach the API server, and the optional monitoring objects. Both keys set,
 * the stack creates ClusterAccess (CRD, LoadBalancer, RBAC, token) and gives the LBs the cluster; neither, the pair
 * runs from the spec's static backends. Validated before anything is planned; errors name the key and the field.
 */
import { z } from "zod";
import { clusterAccessSchema } from "./agent-settings";
import { fromZodIssues, SpecError } from "./errors";

const labelValue = z.string().max(63);

export const clusterAccessSettingsSchema = z.strictObject({
  apiServers: clusterAccessSchema.shape.apiServers,
  tlsServerName: clusterAccessSchema.shape.tlsServerName,
  caCertificate: clusterAccessSchema.shape.caCertificate,
  namespace: clusterAccessSchema.shape.namespace.optional(),
  monitoring: z
    .strictObject({
      prometheusRule: z.boolean().optional(),
      serviceMonitor: z.boolean().optional(),
      namespace: clusterAccessSchema.shape.namespace.optional(),
      labels: z.record(z.string().min(1).max(253), labelValue).optional(),
      runbookBaseUrl: z
        .string()
        .refine((v) => /^https?:\/\/[^\s"'<>]+$/.test(v), { message: "must be an http(s) URL" })
        .optional(),
      scrapeInterval: z
        .string()
        .refine((v) => /^[1-9][0-9]*(s|m)$/.test(v), { message: "must be a duration such as 15s or 1m" })
        .optional(),
    })
    .optional(),
});

export type ClusterAccessSettingsInput = z.output<typeof clusterAccessSettingsSchema>;

/** The config key that enables ClusterAccess with the settings. */
export const KUBECONFIG_KEY = "edgepair:kubeconfig";

/**
 * Throws a SpecError whose lines start with `prefix` (e.g. "edgepair:clusterAccess"). One of the two keys without
 * the other is refused: settings without a kubeconfig would give the LBs a cluster nobody set up, and a kubeconfig
 * without settings leaves the agents no address to reach it.
 */
export function parseClusterAccessSettings(
  raw: unknown,
  kubeconfigSet: boolean,
  prefix: string,
): ClusterAccessSettingsInput | undefined {
  if (raw === undefined) {
    if (kubeconfigSet) throw new SpecError([{ path: prefix, rule: `is required when ${KUBECONFIG_KEY} is set` }]);
    return undefined;
  }
  const r = clusterAccessSettingsSchema.safeParse(raw);
  if (!r.success) throw new SpecError(fromZodIssues(r.error.issues, prefix));
  if (!kubeconfigSet) throw new SpecError([{ path: KUBECONFIG_KEY, rule: `is required when ${prefix} is set` }]);
  return r.data;
}
