/**
 * The day-2 path of every secret an LB holds (DESIGN.md: late delivery and rotation, no VM replaced): the cluster
 * token and the agent's cluster settings (phase two of the two-phase flow, and rotation), the metrics password and the
 * registry credentials, which user-data only brings at first boot (it is create-only).
 *
 * One SSH command per LB. The secrets arrive on its stdin, one `name base64` line each, so a value is never part of a
 * command line, a log or a preview; the agent settings (public) are data in the script. Each file is replaced
 * atomically with mode 0600, and only when its content changed; then the services that read a changed file are
 * restarted (SECRET_USERS). EdgePair chains the LBs: the second LB's delivery runs only after the first one's ended.
 *
 * The cluster token is special: the agent replaces the delivered long-lived token in its file with short-lived ones
 * and keeps the delivered one beside it (spec/agent-settings.ts bootstrapTokenPath). So the token is unchanged when
 * it equals either copy (a delivery of other secrets must not undo a renewal and restart the agent), and a new one
 * replaces both: the old token is nowhere on the LB afterwards.
 */
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { stringify } from "yaml";
import type { BootstrapSecrets, SecretName } from "../cloud-init";
import { AGENT_SECRET_DEFAULTS, bootstrapTokenPath, type AgentSettingsInput } from "../spec/agent-settings";

export const AGENT_SETTINGS_PATH = "/etc/edgepair/agent.yaml";
const AGENT_UNIT = "edgepair-agent.service";

/**
 * Who reads each secret, and is restarted when it changes. The registry credentials are read by bootc and podman on
 * every pull, so nothing runs with an old copy; the metrics password has no reader on the LB yet.
 */
export const SECRET_USERS: Record<SecretName, readonly string[]> = {
  clusterToken: [AGENT_UNIT],
  metricsPassword: [],
  registryAuth: [],
};

const SECRET_ORDER: readonly SecretName[] = ["clusterToken", "metricsPassword", "registryAuth"];

export interface SecretDeliveryArgs {
  host: pulumi.Input<string>;
  user: pulumi.Input<string>;
  /** Secret: the SSH private key the stack uses to reach the LBs. */
  privateKey: pulumi.Input<string>;
  /** The agent settings, written as agent.yaml; they also say where each secret's file is. */
  agent: pulumi.Input<AgentSettingsInput>;
  /** Secret: the values to deliver (absent ones are left as they are on the LB). */
  secrets: pulumi.Input<BootstrapSecrets>;
}

/** POSIX-shell single quoting: paths and settings are data, never code. */
function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/** Where each secret lives on the LB, by the agent settings (their defaults otherwise). */
export function secretPaths(agent: AgentSettingsInput): Record<SecretName, string> {
  return {
    clusterToken: agent.cluster?.tokenFile ?? AGENT_SECRET_DEFAULTS.tokenFile,
    metricsPassword: agent.metricsPasswordFile ?? AGENT_SECRET_DEFAULTS.metricsPasswordFile,
    registryAuth: agent.registryAuthFile ?? AGENT_SECRET_DEFAULTS.registryAuthFile,
  };
}

/** The script the LB runs as root. It holds no secret: the values come on stdin (secretsStdin). */
export function deliveryScript(agent: AgentSettingsInput): string {
  const paths = secretPaths(agent);
  const kept = (name: SecretName) => (name === "clusterToken" ? bootstrapTokenPath(paths[name]) : "");
  const cases = SECRET_ORDER.map(
    (name) =>
      `    ${name}) file=${shellQuote(paths[name])}; kept=${shellQuote(kept(name))}; users=${shellQuote(SECRET_USERS[name].join(" "))} ;;`,
  );
  const settings = stringify(agent, { sortMapEntries: true });
  return [
    "set -eu",
    "umask 077",
    'restart=""',
    // replace "$2" by "$1" (a temp file beside it) only when the content differs; the users of a changed file restart
    "replace() {",
    '  if cmp -s "$1" "$2"; then rm -f "$1"; return 1; fi',
    '  chmod "$3" "$1" && mv -f "$1" "$2"',
    "}",
    "while IFS=' ' read -r name value; do",
    '  case "$name" in',
    ...cases,
    '    *) echo "edgepair delivery: unknown secret name" >&2; exit 2 ;;',
    "  esac",
    '  install -d -m 0700 "$(dirname "$file")"',
    '  tmp=$(mktemp "$file.XXXXXX")',
    '  printf \'%s\' "$value" | base64 -d >"$tmp"',
    // the agent's kept copy ends with a newline, the delivered value does not
    '  if [ -n "$kept" ] && [ -f "$kept" ] && { cat "$tmp"; echo; } | cmp -s - "$kept"; then rm -f "$tmp"; continue; fi',
    '  if replace "$tmp" "$file" 0600; then',
    '    restart="$restart $users"; echo "delivered: $name"',
    '    if [ -n "$kept" ]; then k=$(mktemp "$kept.XXXXXX"); { cat "$file"; echo; } >"$k"; chmod 0600 "$k"; mv -f "$k" "$kept"; fi',
    "  fi",
    "done",
    `tmp=$(mktemp ${shellQuote(`${AGENT_SETTINGS_PATH}.XXXXXX`)})`,
    `printf '%s' ${shellQuote(settings)} >"$tmp"`,
    `if replace "$tmp" ${shellQuote(AGENT_SETTINGS_PATH)} 0644; then restart="$restart ${AGENT_UNIT}"; echo "delivered: agent settings"; fi`,
    'for unit in $(printf \'%s\\n\' $restart | sort -u); do systemctl try-restart "$unit"; echo "restarted: $unit"; done',
  ].join("\n");
}

/** The command the LB runs (as the SSH user, through sudo); the secrets arrive on its stdin. */
export function deliveryCommand(agent: AgentSettingsInput): string {
  return `sudo sh -c ${shellQuote(deliveryScript(agent))}`;
}

/** stdin of the delivery command: `name base64` per secret given, in a fixed order. Secret. */
export function secretsStdin(secrets: BootstrapSecrets): string {
  return SECRET_ORDER.flatMap((name) => {
    const v = secrets[name];
    return v === undefined ? [] : [`${name} ${Buffer.from(v, "utf8").toString("base64")}\n`];
  }).join("");
}

export class SecretDelivery extends pulumi.ComponentResource {
  public readonly command: command.remote.Command;

  constructor(name: string, args: SecretDeliveryArgs, opts?: pulumi.ComponentResourceOptions) {
    super("edgepair:index:SecretDelivery", name, {}, opts);
    const stdin = pulumi.secret(pulumi.output(args.secrets).apply(secretsStdin));
    this.command = new command.remote.Command(
      `${name}-write`,
      {
        connection: { host: args.host, user: args.user, privateKey: pulumi.secret(args.privateKey) },
        create: pulumi.output(args.agent).apply(deliveryCommand),
        stdin,
        // a rotated secret or changed settings run the command again (it leaves unchanged files alone)
        triggers: [stdin, pulumi.output(args.agent).apply((a) => stringify(a, { sortMapEntries: true }))],
        logging: "none",
      },
      { parent: this, additionalSecretOutputs: ["stdout", "stderr"] },
    );
    this.registerOutputs({});
  }
}
