import { spawnSync } from "node:child_process";

/** What every checker answers: accepted or not, and the program's own words. */
export interface CheckResult {
  ok: boolean;
  output: string;
}

export interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
  /** stdout and stderr together, for assertions on a checker's message */
  output: string;
}

/** Runs a program to completion with a hard time limit; never throws on a non-zero exit. */
export function run(
  cmd: string,
  args: readonly string[],
  opts: { input?: string; timeoutMs?: number; cwd?: string } = {},
): RunResult {
  const r = spawnSync(cmd, args, {
    input: opts.input,
    cwd: opts.cwd,
    encoding: "utf8",
    timeout: opts.timeoutMs ?? 20_000,
    killSignal: "SIGKILL",
  });
  if (r.error && (r.error as NodeJS.ErrnoException).code === "ENOENT") {
    throw new Error(`${cmd} is not installed: run .ci/run (or apt-get install the package that provides it)`);
  }
  const stdout = r.stdout ?? "";
  const stderr = r.stderr ?? "";
  return { status: r.status, stdout, stderr, output: `${stdout}${stderr}` };
}

/** Like run, but throws with the program's output when it exits non-zero. */
export function must(
  cmd: string,
  args: readonly string[],
  opts: { input?: string; timeoutMs?: number } = {},
): RunResult {
  const r = run(cmd, args, opts);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} exited ${r.status}: ${r.output}`);
  return r;
}
