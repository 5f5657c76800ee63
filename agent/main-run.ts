/**
 * `edgepair agent run` as a process: reads the same three files as bootstrap, runs the loop (run.ts) until SIGTERM
 * or SIGINT, then stops every watch, timer and listener and exits 0 (systemd's `Restart=always` restarts it after a
 * crash; the state is rebuilt from disk and the cluster).
 */
import { join } from "node:path";
import { HAPROXY_STATS_SOCKET } from "../render/haproxy";
import { VRRP_FIFO_PATH } from "../render/notify";
import { spawnRunner } from "./apply";
import { readAgentConfig } from "./config";
import { AgentRun } from "./run";

export interface RunCommandOptions {
  root: string;
  stateDir?: string;
  out: (line: string) => void;
}

export type RunOutcome = { outcome: "bad-input"; problems: string[] } | { outcome: "stopped"; signal: string };

export async function runAgentCommand(o: RunCommandOptions): Promise<RunOutcome> {
  const reading = await readAgentConfig(o.root);
  if (!reading.ok) return { outcome: "bad-input", problems: reading.problems };
  const { spec, host, settings } = reading.config;
  if (!settings.cluster) {
    return { outcome: "bad-input", problems: ["agent.yaml: cluster: is required for `agent run` (the token and API addresses arrive with the cluster access)"] };
  }
  const log = (line: string) => o.out(`${new Date().toISOString()} ${line}\n`);
  const agent = new AgentRun({
    root: o.root,
    stateDir: o.stateDir ?? join(o.root, "var/lib/edgepair"),
    settings,
    host,
    bootstrapSpec: spec,
    runner: spawnRunner,
    haproxySocket: join(o.root, HAPROXY_STATS_SOCKET),
    fifoPath: join(o.root, VRRP_FIFO_PATH),
    log,
  });
  await agent.start();
  log(`running for ${spec.clusterName} as ${host.role} ${host.hostname}`);
  const signal = await new Promise<string>((resolve) => {
    process.once("SIGTERM", () => resolve("SIGTERM"));
    process.once("SIGINT", () => resolve("SIGINT"));
  });
  log(`${signal}: stopping`);
  await agent.stop();
  return { outcome: "stopped", signal };
}
