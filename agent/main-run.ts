/**
 * `edgepair agent run` as a process: reads the same three files as bootstrap, runs the loop (run.ts) until SIGTERM
 * or SIGINT, then stops every watch, timer and listener and exits 0 (systemd's `Restart=always` restarts it after a
 * crash; the state is rebuilt from disk and the cluster).
 */
import { join } from "node:path";
import { AGENT_METRICS_SOCKET, HAPROXY_EXPORTER_SOCKET, HAPROXY_STATS_SOCKET } from "../render/haproxy";
import { VRRP_FIFO_PATH } from "../render/notify";
import { spawnRunner } from "./apply";
import { readAgentConfig } from "./config";
import { AgentRun } from "./run";
import { lbSwitchHost, readBootcStatus } from "./switch";

export interface RunCommandOptions {
  root: string;
  stateDir?: string;
  out: (line: string) => void;
  /** false: no image switch (a machine without bootc). Default: bootc and systemd on the VM. */
  imageSwitch?: false;
}

/** The image switch runs only where bootc manages the host: elsewhere (a lab, a package install) it stays off, said once. */
async function onBootcHost(o: RunCommandOptions, log: (line: string) => void): Promise<boolean> {
  if (o.imageSwitch === false) return false;
  try {
    await readBootcStatus(spawnRunner, { statusTimeoutMs: 30_000 });
    return true;
  } catch (e) {
    log(
      `image switch off: this host is not booted by bootc (${e instanceof Error ? e.message.split("\n")[0] : String(e)})`,
    );
    return false;
  }
}

export type RunOutcome =
  | { outcome: "bad-input"; problems: string[] }
  | { outcome: "stopped"; signal: string }
  /** Phase one of the two-phase flow: nothing to watch yet. Not an error: the LB serves the spec's static backends,
   *  and a new agent.yaml (the token delivery) starts the agent again (edgepair-agent.path). */
  | { outcome: "no-cluster"; message: string };

export async function runAgentCommand(o: RunCommandOptions): Promise<RunOutcome> {
  const reading = await readAgentConfig(o.root);
  if (!reading.ok) return { outcome: "bad-input", problems: reading.problems };
  const { spec, host, settings } = reading.config;
  if (!settings.cluster) {
    return {
      outcome: "no-cluster",
      message:
        "agent.yaml has no cluster access yet: serving the spec's static backends until it arrives (a new agent.yaml starts the agent again)",
    };
  }
  const log = (line: string) => o.out(`${new Date().toISOString()} ${line}\n`);
  const stateDir = o.stateDir ?? join(o.root, "var/lib/edgepair");
  const haproxySocket = join(o.root, HAPROXY_STATS_SOCKET);
  const peerIndex = host.role === "primary" ? 1 : 0;
  const imageSwitch = !(await onBootcHost(o, log))
    ? undefined
    : {
        host: lbSwitchHost({
          runner: spawnRunner,
          stateDir,
          vrrpState: () => agent.vrrpStateNow(),
          peerAddress: spec.network.lbAddresses[peerIndex],
          advertIntervalSeconds: spec.vrrp.advertIntervalSeconds,
          haproxySocket,
        }),
      };
  const agent: AgentRun = new AgentRun({
    root: o.root,
    stateDir,
    settings,
    host,
    bootstrapSpec: spec,
    runner: spawnRunner,
    haproxySocket,
    fifoPath: join(o.root, VRRP_FIFO_PATH),
    log,
    metrics: { listen: join(o.root, AGENT_METRICS_SOCKET), exporterSocket: join(o.root, HAPROXY_EXPORTER_SOCKET) },
    ...(imageSwitch ? { imageSwitch } : {}),
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
