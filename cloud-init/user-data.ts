/**
 * The #cloud-config user-data of one LB VM. It carries only what DESIGN.md allows: the spec as written, the host
 * facts, the agent's bootstrap settings, secrets as 0600 files, SSH keys, the hostname, and the one command that
 * starts the agent's bootstrap. No service configuration: the agent renders that on the VM with the same renderers.
 * Pure: no I/O, no clock; same input, byte-identical text.
 */
import { stringify } from "yaml";
import {
  agentSettingsSpecProblems,
  validateAgentSettings,
  type AgentSettings,
  type AgentSettingsInput,
} from "../spec/agent-settings";
import { SpecError, type SpecProblem } from "../spec/errors";
import type { CheckedSpec } from "../spec/checked";
import { validateHostFacts } from "../spec/resolve";
import type { HostFacts, ResolvedSpec } from "../spec/types";

export const BOOTSTRAP_PATHS = {
  spec: "/etc/edgepair/spec.yaml",
  host: "/etc/edgepair/host.yaml",
  agent: "/etc/edgepair/agent.yaml",
} as const;

/** Exec form (no shell); --no-block so cloud-init's final stage does not wait for the whole bootstrap. */
export const BOOTSTRAP_COMMAND = ["systemctl", "start", "--no-block", "edgepair-bootstrap.service"] as const;

/**
 * Nova's API takes user_data base64-encoded and rejects more than 65535 characters of it
 * (nova/api/openstack/compute/schemas/user_data.py), which leaves 49149 bytes of document.
 */
export const OPENSTACK_USER_DATA_BASE64_LIMIT = 65535;
export const USER_DATA_BYTE_LIMIT = Math.floor(OPENSTACK_USER_DATA_BASE64_LIMIT / 4) * 3;

export interface BootstrapSecrets {
  clusterToken?: string;
  metricsPassword?: string;
  /** containers-auth.json text for /etc/ostree/auth.json (bootc pulls the image with it). */
  registryAuth?: string;
}

export type SecretName = keyof BootstrapSecrets;

export interface UserDataInput {
  /** The LoadBalancer spec, checked once by the caller; the user-data carries it as written (the agent resolves it
   *  with its own version). */
  spec: CheckedSpec;
  host: HostFacts;
  agent: AgentSettingsInput;
  sshAuthorizedKeys: readonly string[];
  /** Must equal host.hostname: the OS and the agent must not disagree on the machine's name. */
  hostname: string;
  secrets?: BootstrapSecrets;
}

/** A secret file a user-data writes, without its value: what a preview may show. */
export interface SecretFileRef {
  secret: SecretName;
  path: string;
  mode: number;
  owner: string;
}

/** The deliverable document. Its text holds secret values: pass it on only as a secret, never show it. */
export interface UserDataWithSecrets {
  textWithSecrets: string;
  secretFiles: SecretFileRef[];
}

interface Validated {
  spec: ResolvedSpec;
  host: HostFacts;
  agent: AgentSettings;
  secrets: BootstrapSecrets;
}

interface WriteFile {
  path: string;
  owner: string;
  permissions: string;
  content: string;
}

const OWNER = "root:root";
const SECRET_MODE = 0o600;
const PUBLIC_MODE = 0o644;

const SSH_KEY =
  /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) AAAA[A-Za-z0-9+/]+={0,3}( [^\r\n]*)?$/;

export function renderUserData(input: UserDataInput): UserDataWithSecrets {
  const v = validate(input);
  const textWithSecrets = compose(input, v, "reveal");
  enforceSizeLimit(textWithSecrets, input, v);
  return { textWithSecrets, secretFiles: secretFiles(v) };
}

/** The same document with every secret value replaced by a note: safe to show in a preview or a log. */
export function renderUserDataView(input: UserDataInput): string {
  return compose(input, validate(input), "redact");
}

/** Which secret files the user-data writes (path, mode, owner), no values. */
export function listSecretFiles(input: UserDataInput): SecretFileRef[] {
  return secretFiles(validate(input));
}

function validate(input: UserDataInput): Validated {
  const problems: SpecProblem[] = [];
  const prefixed = (prefix: string, ps: SpecProblem[]) =>
    problems.push(...ps.map((p) => ({ path: p.path ? `${prefix}.${p.path}` : prefix, rule: p.rule })));

  const spec = input.spec.resolved;
  const host = validateHostFacts(input.host);
  if (!host.ok) prefixed("host", host.problems);
  const agent = validateAgentSettings(input.agent);
  if (!agent.ok) prefixed("agent", agent.problems);
  if (agent.ok) prefixed("agent", agentSettingsSpecProblems(agent.value, spec));

  if (host.ok && input.hostname !== host.value.hostname)
    problems.push({ path: "hostname", rule: "must equal host.hostname" });
  if (!Array.isArray(input.sshAuthorizedKeys)) problems.push({ path: "sshAuthorizedKeys", rule: "must be a list" });
  else {
    input.sshAuthorizedKeys.forEach((k, i) => {
      if (typeof k !== "string" || !SSH_KEY.test(k)) {
        problems.push({
          path: `sshAuthorizedKeys[${i}]`,
          rule: "must be one OpenSSH public key line: TYPE BASE64 [COMMENT]",
        });
      }
    });
  }
  const secrets = input.secrets ?? {};
  problems.push(...secretProblems(secrets, agent.ok ? agent.value : undefined));

  if (problems.length > 0 || !host.ok || !agent.ok) throw new SpecError(problems);
  return { spec, host: host.value, agent: agent.value, secrets };
}

/** Rules never quote the value: an error message must not leak a secret. */
function secretProblems(s: BootstrapSecrets, agent: AgentSettings | undefined): SpecProblem[] {
  const out: SpecProblem[] = [];
  const known: SecretName[] = ["clusterToken", "metricsPassword", "registryAuth"];
  for (const k of Object.keys(s)) {
    if (!(known as string[]).includes(k)) out.push({ path: `secrets.${k}`, rule: "unknown field" });
  }
  if (s.clusterToken !== undefined) {
    if (typeof s.clusterToken !== "string" || !/^[\x21-\x7e]+$/.test(s.clusterToken)) {
      out.push({ path: "secrets.clusterToken", rule: "must be a non-empty token without spaces or line breaks" });
    } else if (agent && !agent.cluster) {
      out.push({
        path: "secrets.clusterToken",
        rule: "needs agent.cluster (the token is only used to reach the cluster)",
      });
    }
  }
  if (
    s.metricsPassword !== undefined &&
    (typeof s.metricsPassword !== "string" || !/^[^\x00-\x1f\x7f]+$/.test(s.metricsPassword))
  ) {
    out.push({ path: "secrets.metricsPassword", rule: "must be a non-empty single line without control characters" });
  }
  if (s.registryAuth !== undefined && !isContainersAuth(s.registryAuth)) {
    out.push({
      path: "secrets.registryAuth",
      rule: 'must be containers-auth.json text: a JSON object with an "auths" mapping',
    });
  }
  return out;
}

function isContainersAuth(text: unknown): boolean {
  if (typeof text !== "string") return false;
  try {
    const v: unknown = JSON.parse(text);
    if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
    const auths = (v as Record<string, unknown>).auths;
    return typeof auths === "object" && auths !== null && !Array.isArray(auths);
  } catch {
    return false;
  }
}

function secretFiles(v: Validated): SecretFileRef[] {
  const paths: Record<SecretName, string | undefined> = {
    clusterToken: v.agent.cluster?.tokenFile,
    metricsPassword: v.agent.metricsPasswordFile,
    registryAuth: v.agent.registryAuthFile,
  };
  return (["clusterToken", "metricsPassword", "registryAuth"] as const)
    .filter((k) => v.secrets[k] !== undefined)
    .map((k) => ({ secret: k, path: paths[k] as string, mode: SECRET_MODE, owner: OWNER }));
}

/**
 * YAML the agent reads back with the same `yaml` package. Keys sorted so object key order never shows; quoted by
 * YAML 1.1 rules so that other readers (PyYAML, an operator's tools) do not turn a MAC like 52:54:00:12:34:56 into a
 * sexagesimal number.
 */
function dataFile(comment: string, value: unknown): string {
  return `# ${comment}\n${stringify(value, { version: "1.1", sortMapEntries: true, lineWidth: 0, aliasDuplicateObjects: false })}`;
}

function writeFile(path: string, mode: number, content: string): WriteFile {
  return { path, owner: OWNER, permissions: `0${mode.toString(8)}`, content };
}

function bootstrapFiles(input: UserDataInput, v: Validated): WriteFile[] {
  return [
    writeFile(
      BOOTSTRAP_PATHS.spec,
      PUBLIC_MODE,
      dataFile(
        "edgepair: the LoadBalancer spec as written when this VM was created; day-2 changes arrive through the LoadBalancer resource",
        input.spec.written,
      ),
    ),
    writeFile(BOOTSTRAP_PATHS.host, PUBLIC_MODE, dataFile("edgepair: facts about this VM (role, NICs)", v.host)),
    writeFile(
      BOOTSTRAP_PATHS.agent,
      PUBLIC_MODE,
      dataFile("edgepair: agent bootstrap settings (secrets are referenced by path)", v.agent),
    ),
  ];
}

function compose(input: UserDataInput, v: Validated, secrets: "reveal" | "redact"): string {
  const secretWrites = secretFiles(v).map((f) =>
    writeFile(
      f.path,
      f.mode,
      secrets === "reveal" ? (v.secrets[f.secret] as string) : `<secret ${f.secret}: value not shown>\n`,
    ),
  );
  const doc = {
    hostname: v.host.hostname,
    preserve_hostname: false,
    ssh_pwauth: false,
    disable_root: true,
    ...(input.sshAuthorizedKeys.length > 0 ? { ssh_authorized_keys: [...input.sshAuthorizedKeys] } : {}),
    write_files: [...bootstrapFiles(input, v), ...secretWrites],
    runcmd: [[...BOOTSTRAP_COMMAND]],
  };
  // cloud-init reads this with PyYAML (YAML 1.1): serialising as 1.1 quotes "yes", "on", "0600", "1:20" and the like,
  // which 1.1 would otherwise turn into booleans and numbers.
  return `#cloud-config\n${stringify(doc, { version: "1.1", lineWidth: 0, aliasDuplicateObjects: false })}`;
}

function enforceSizeLimit(text: string, input: UserDataInput, v: Validated): void {
  const bytes = Buffer.byteLength(text, "utf8");
  if (bytes <= USER_DATA_BYTE_LIMIT) return;
  const parts = [
    ...bootstrapFiles(input, v).map((f) => ({ what: f.path, bytes: Buffer.byteLength(f.content, "utf8") })),
    ...secretFiles(v).map((f) => ({ what: f.path, bytes: Buffer.byteLength(v.secrets[f.secret] as string, "utf8") })),
    {
      what: "ssh_authorized_keys",
      bytes: input.sshAuthorizedKeys.reduce((n, k) => n + Buffer.byteLength(k, "utf8"), 0),
    },
  ].sort((a, b) => b.bytes - a.bytes || a.what.localeCompare(b.what));
  const largest = parts
    .slice(0, 3)
    .map((p) => `${p.what} ${p.bytes} bytes`)
    .join(", ");
  throw new SpecError([
    {
      path: "user-data",
      rule:
        `must be at most ${USER_DATA_BYTE_LIMIT} bytes (OpenStack accepts ${OPENSTACK_USER_DATA_BASE64_LIMIT} base64 characters), ` +
        `is ${bytes} bytes; largest parts: ${largest}`,
    },
  ]);
}
