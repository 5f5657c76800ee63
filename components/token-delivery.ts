/**
 * Late delivery of the cluster access to a running LB (the two-phase flow: the VMs start from static backends
 * before the cluster exists; once it answers, a later `pulumi up` brings the token and the agent's cluster
 * settings). One SSH command per LB writes /etc/edgepair/agent.yaml (public) and the token file (0600, from stdin,
 * so the token is never part of a command line, a log or a preview), then restarts the agent if it runs.
 */
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { stringify } from "yaml";
import { AGENT_SECRET_DEFAULTS, type AgentSettingsInput } from "../spec/agent-settings";

export interface TokenDeliveryArgs {
  host: pulumi.Input<string>;
  user: pulumi.Input<string>;
  /** Secret: the SSH private key the stack uses to reach the LBs. */
  privateKey: pulumi.Input<string>;
  agent: pulumi.Input<AgentSettingsInput>;
  /** Secret. */
  token: pulumi.Input<string>;
}

/** POSIX-shell single quoting: the agent settings are data, never code. */
function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

export function deliveryScript(agent: AgentSettingsInput): string {
  const tokenFile = agent.cluster?.tokenFile ?? AGENT_SECRET_DEFAULTS.tokenFile;
  const settings = stringify(agent, { sortMapEntries: true });
  return [
    "set -eu",
    "umask 077",
    `install -d -m 0700 "$(dirname ${shellQuote(tokenFile)})"`,
    `tmp=$(mktemp ${shellQuote(`${tokenFile}.XXXXXX`)})`,
    'cat >"$tmp"',
    `chmod 0600 "$tmp" && mv -f "$tmp" ${shellQuote(tokenFile)}`,
    `printf '%s' ${shellQuote(settings)} >/etc/edgepair/agent.yaml.new`,
    "chmod 0644 /etc/edgepair/agent.yaml.new && mv -f /etc/edgepair/agent.yaml.new /etc/edgepair/agent.yaml",
    "systemctl try-restart edgepair-agent.service",
  ].join("\n");
}

/** The command the LB runs (as the SSH user, through sudo); the token arrives on its stdin. */
export function deliveryCommand(agent: AgentSettingsInput): string {
  return `sudo sh -c ${shellQuote(deliveryScript(agent))}`;
}

export class TokenDelivery extends pulumi.ComponentResource {
  public readonly command: command.remote.Command;

  constructor(name: string, args: TokenDeliveryArgs, opts?: pulumi.ComponentResourceOptions) {
    super("edgepair:index:TokenDelivery", name, {}, opts);
    this.command = new command.remote.Command(`${name}-write`, {
      connection: { host: args.host, user: args.user, privateKey: pulumi.secret(args.privateKey) },
      create: pulumi.output(args.agent).apply(deliveryCommand),
      stdin: pulumi.secret(args.token),
      // a rotated token or changed settings run the command again
      triggers: [pulumi.secret(args.token), pulumi.output(args.agent).apply((a) => stringify(a, { sortMapEntries: true }))],
      logging: "none",
    }, { parent: this, additionalSecretOutputs: ["stdout", "stderr"] });
    this.registerOutputs({});
  }
}
