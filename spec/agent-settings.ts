/**
 * What the on-VM agent needs at bootstrap besides the spec and the host facts: how to reach the cluster, which
 * image it runs, and where its secrets are. Secrets themselves are never here — only the paths of their 0600 files —
 * so this document can be shown.
 */
import { X509Certificate } from "node:crypto";
import { z } from "zod";
import { canonical, parseIp } from "./address";
import { DIGEST_PINNED_REF, DIGEST_PINNED_RULE } from "./image-ref";
import { fromZodIssues, SpecError, type SpecProblem } from "./errors";
import type { Validation } from "./resolve";
import type { ResolvedSpec } from "./types";

export const AGENT_SECRET_DEFAULTS = {
  tokenFile: "/etc/edgepair/secrets/cluster-token",
  metricsPasswordFile: "/etc/edgepair/secrets/metrics-password",
  registryAuthFile: "/etc/ostree/auth.json",
} as const;

/**
 * Where the agent keeps the long-lived token it was delivered once it has replaced tokenFile with a short-lived one
 * (agent/kube/token.ts); the secret delivery writes a new long-lived token to both.
 */
export function bootstrapTokenPath(tokenFile: string): string {
  return `${tokenFile}.bootstrap`;
}

const DNS_NAME = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** `https://HOST[:PORT]` with HOST a dotted-quad IPv4, a bracketed IPv6 or a DNS name; nothing after it. */
const API_URL = /^https:\/\/(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?\/?$/;
const API_URL_RULE =
  "must be an https URL of a control-plane address: https://HOST[:PORT], HOST an IP address or DNS name, no path";

/** Host part of an API server URL (brackets removed) when the URL is well formed; undefined otherwise. */
export function apiServerHost(url: string): string | undefined {
  const m = API_URL.exec(url);
  if (!m) return undefined;
  const host = m[1] as string;
  const port = m[2];
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) return undefined;
  if (host.startsWith("[")) {
    const inner = host.slice(1, -1);
    return parseIp(inner)?.kind() === "ipv6" ? inner : undefined;
  }
  if (parseIp(host)) return host;
  // A name whose last label is numeric would be read as a (malformed) IPv4 address by URL parsers.
  if (/^[\d.]+$/.test(host) || !DNS_NAME.test(host.toLowerCase())) return undefined;
  return host;
}

/** A string rule with our own wording (fromZodIssues words regex failures generically; custom issues keep theirs). */
const matching = (re: RegExp, message: string) => z.string().refine((v) => re.test(v), { message });

const apiServerUrl = z.string().refine((v) => apiServerHost(v) !== undefined, { message: API_URL_RULE });

const absolutePath = z
  .string()
  .refine((p) => /^(\/[A-Za-z0-9._@+-]+)+$/.test(p) && !p.split("/").includes("..") && !p.split("/").includes("."), {
    message: "must be an absolute file path (letters, digits, . _ @ + -; no . or .. segments)",
  });

function pemCertificatesValid(pem: string): boolean {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g);
  if (!blocks || pem.replace(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g, "").trim() !== "") {
    return false;
  }
  try {
    for (const b of blocks) new X509Certificate(b);
    return true;
  } catch {
    return false;
  }
}

export const clusterAccessSchema = z.strictObject({
  /** Control-plane addresses, reached directly so a broken local HAProxy cannot lock the agent out. */
  apiServers: z.array(apiServerUrl).min(1),
  /** The name the API certificate is issued for (the URLs hold IPs, so TLS verification needs it). */
  tlsServerName: matching(DNS_NAME, "must be a DNS name such as api.lab.example.com"),
  caCertificate: z
    .string()
    .refine(pemCertificatesValid, { message: "must be one or more PEM certificates (-----BEGIN CERTIFICATE-----)" })
    .optional(),
  namespace: matching(DNS_LABEL, "must be a Kubernetes namespace name (DNS label)"),
  loadBalancerName: matching(DNS_NAME, "must be a Kubernetes object name (DNS subdomain)"),
  tokenFile: absolutePath.default(AGENT_SECRET_DEFAULTS.tokenFile),
});

export const agentSettingsSchema = z.strictObject({
  /** Absent in the two-phase flow: the VMs run from the spec's static backends until the cluster answers. */
  cluster: clusterAccessSchema.optional(),
  imageRef: matching(DIGEST_PINNED_REF, DIGEST_PINNED_RULE),
  metricsPasswordFile: absolutePath.default(AGENT_SECRET_DEFAULTS.metricsPasswordFile),
  registryAuthFile: absolutePath.default(AGENT_SECRET_DEFAULTS.registryAuthFile),
});

export type AgentSettingsInput = z.input<typeof agentSettingsSchema>;
/** Defaults applied: every file path explicit, so the agent reads no default of its own. */
export type AgentSettings = z.output<typeof agentSettingsSchema>;
export type ClusterAccess = z.output<typeof clusterAccessSchema>;

export function validateAgentSettings(raw: unknown): Validation<AgentSettings> {
  const parsed = agentSettingsSchema.safeParse(raw, { reportInput: true });
  if (!parsed.success) return { ok: false, problems: fromZodIssues(parsed.error.issues) };
  const problems = secretPathProblems(parsed.data);
  return problems.length > 0 ? { ok: false, problems } : { ok: true, value: parsed.data };
}

export function parseAgentSettings(raw: unknown): AgentSettings {
  const r = validateAgentSettings(raw);
  if (!r.ok) throw new SpecError(r.problems);
  return r.value;
}

/** Two secrets written to one path would silently overwrite each other. */
function secretPathProblems(s: AgentSettings): SpecProblem[] {
  const paths: [string, string][] = [
    ["metricsPasswordFile", s.metricsPasswordFile],
    ["registryAuthFile", s.registryAuthFile],
    ...(s.cluster ? [["cluster.tokenFile", s.cluster.tokenFile] as [string, string]] : []),
  ];
  const seen = new Map<string, string>();
  const out: SpecProblem[] = [];
  for (const [field, path] of paths) {
    const other = seen.get(path);
    if (other) out.push({ path: field, rule: `must differ from ${other}` });
    else seen.set(path, field);
  }
  return out;
}

/**
 * The agent must reach the API without its own VIPs: an API server URL naming an address the pair holds (a VIP,
 * the gateway VIP, an LB's own address) would make cluster access depend on the local HAProxy.
 */
export function agentSettingsSpecProblems(settings: AgentSettings, spec: ResolvedSpec): SpecProblem[] {
  if (!settings.cluster) return [];
  const held = new Set<string>([
    ...spec.derived.privateVips.map((v) => v.address),
    ...spec.derived.publicVips.map((v) => v.address),
    ...spec.network.lbAddresses,
    ...spec.platform.publicNetwork.lbAddresses,
    ...(spec.platform.publicNetwork.nextHop ? [spec.platform.publicNetwork.nextHop] : []),
  ]);
  const out: SpecProblem[] = [];
  settings.cluster.apiServers.forEach((url, i) => {
    const host = apiServerHost(url);
    const ip = host ? parseIp(host) : undefined;
    if (ip && held.has(canonical(ip))) {
      out.push({
        path: `cluster.apiServers[${i}]`,
        rule: "must be a control-plane address, not an address the load balancers hold",
      });
    }
  });
  return out;
}
