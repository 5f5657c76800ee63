/**
 * Running programs (checkers and reload commands) and planning the reloads of one apply.
 * Programs are run from argv, never through a shell, with a hard time limit; a program that cannot be run or
 * times out is a failed result, never an exception, so one broken service cannot abort the rest of an apply.
 */
import { spawn } from "node:child_process";
import type { ReloadAction, ServiceName } from "../../render/types";

export interface RunOptions {
  timeoutMs: number;
  /** written to the program's stdin (nmcli --offline reads the keyfile there) */
  input?: string;
}

export interface CommandResult {
  /** null when the program could not start or was killed */
  exitCode: number | null;
  timedOut: boolean;
  /** stdout and stderr interleaved, cut at OUTPUT_LIMIT */
  output: string;
}

/** Runs argv[0] with argv[1..]; must resolve (never reject) within about opts.timeoutMs. */
export type CommandRunner = (argv: readonly string[], opts: RunOptions) => Promise<CommandResult>;

/** Enough for any checker's complaint; a runaway program cannot fill the agent's memory or the CR status. */
const OUTPUT_LIMIT = 64 * 1024;
/** After SIGKILL, how long to wait for the pipes to close (a grandchild may still hold them). */
const KILL_GRACE_MS = 1000;

export const spawnRunner: CommandRunner = (argv, opts) =>
  new Promise<CommandResult>((resolve) => {
    const [cmd, ...args] = argv;
    if (cmd === undefined) {
      resolve({ exitCode: null, timedOut: false, output: "empty command" });
      return;
    }
    let output = "";
    let timedOut = false;
    let settled = false;
    let grace: NodeJS.Timeout | undefined;
    const collect = (chunk: Buffer): void => {
      if (output.length < OUTPUT_LIMIT) output += chunk.toString("utf8").slice(0, OUTPUT_LIMIT - output.length);
    };
    const finish = (exitCode: number | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(grace);
      resolve({ exitCode, timedOut, output });
    };
    // Its own process group, so a timeout kills whatever the command started too.
    const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"], detached: true });
    const timer = setTimeout(() => {
      timedOut = true;
      output += `\n${cmd}: killed after ${opts.timeoutMs} ms`;
      try {
        if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
      } catch {
        // already gone
      }
      grace = setTimeout(() => finish(null), KILL_GRACE_MS);
    }, opts.timeoutMs);
    child.stdout.on("data", collect);
    child.stderr.on("data", collect);
    child.on("error", (err) => {
      output += `${cmd}: ${err.message}`;
      finish(null);
    });
    child.on("close", (code) => finish(timedOut ? null : code));
    // A program that exits without reading its stdin must not crash the agent with EPIPE.
    child.stdin.on("error", () => undefined);
    child.stdin.end(opts.input ?? "");
  });

export interface ReloadPlan {
  service: ServiceName;
  commands: (readonly string[])[];
}

export interface ReloadResult {
  service: ServiceName;
  commands: (readonly string[])[];
  ok: boolean;
  output: string;
}

/**
 * One entry per service, in the order the services first appear (for the reload actions of switched files in
 * renderAll's order, that is RENDERERS': kernel and links before the firewall before the daemons), each command
 * once. The caller passes the switched files' actions only, so an unchanged NetworkManager profile is not
 * reapplied.
 */
export function planReloads(actions: readonly ReloadAction[]): ReloadPlan[] {
  const plans = new Map<ServiceName, { plan: ReloadPlan; seen: Set<string> }>();
  for (const action of actions) {
    if (action.service === "none") continue;
    let entry = plans.get(action.service);
    if (!entry) {
      entry = { plan: { service: action.service, commands: [] }, seen: new Set() };
      plans.set(action.service, entry);
    }
    for (const argv of action.commands) {
      const key = JSON.stringify(argv);
      if (entry.seen.has(key)) continue;
      entry.seen.add(key);
      entry.plan.commands.push(argv);
    }
  }
  return [...plans.values()].map((e) => e.plan);
}

/**
 * Runs each plan's commands in order, stopping a service at its first failing command (a profile that did not
 * load must not be reapplied). Failures are results: the caller marks the LB Degraded.
 */
export async function runReloads(
  plans: readonly ReloadPlan[],
  runner: CommandRunner,
  timeoutMs: number,
): Promise<ReloadResult[]> {
  const results: ReloadResult[] = [];
  for (const plan of plans) {
    const outputs: string[] = [];
    let ok = true;
    for (const argv of plan.commands) {
      let r: CommandResult;
      try {
        r = await runner(argv, { timeoutMs });
      } catch (err) {
        r = { exitCode: null, timedOut: false, output: err instanceof Error ? err.message : String(err) };
      }
      outputs.push(
        `$ ${argv.join(" ")}\n${r.output}${r.exitCode === 0 ? "" : `\nexit ${r.exitCode ?? (r.timedOut ? "timeout" : "none")}`}`,
      );
      if (r.exitCode !== 0) {
        ok = false;
        break;
      }
    }
    results.push({ service: plan.service, commands: plan.commands, ok, output: outputs.join("\n") });
  }
  return results;
}
