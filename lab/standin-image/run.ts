/**
 * Running the builder's commands: each one bounded in time, its output appended to the build log (debootstrap and
 * apt print thousands of lines), its whole process group killed on timeout (debootstrap and unshare have
 * children), and a failure reported with the command and the last lines of its output. Plus the progress lines.
 */
import { spawn } from "node:child_process";
import { appendFileSync } from "node:fs";

export interface RunOptions {
  /** The build log every line of output is appended to. */
  log: string;
  timeoutMs: number;
  env?: NodeJS.ProcessEnv;
  /** Capture stdout (it is logged as well) and return it. */
  capture?: boolean;
  /** Written to the command's standard input. */
  input?: string;
}

const TAIL_LINES = 25;
/** After SIGTERM (the scripts' traps unmount and detach loop devices), SIGKILL this much later. */
const KILL_GRACE_MS = 10_000;

export async function run(argv: readonly string[], o: RunOptions): Promise<string> {
  const [cmd, ...args] = argv;
  if (cmd === undefined) throw new Error("run: empty command");
  appendFileSync(o.log, `\n$ ${argv.join(" ")}\n`);
  const started = Date.now();
  const { code, stdout, tail, timedOut } = await new Promise<{
    code: number | null;
    stdout: string;
    tail: string[];
    timedOut: boolean;
  }>((resolve, reject) => {
    // detached: its own process group, so a timeout reaches every child
    const child = spawn(cmd, args, {
      stdio: [o.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
      detached: true,
      env: o.env ?? process.env,
    });
    let out = "";
    const tail: string[] = [];
    let timedOut = false;
    const signal = (s: NodeJS.Signals) => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, s);
      } catch {
        /* already gone */
      }
    };
    let killTimer: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      timedOut = true;
      signal("SIGTERM");
      killTimer = setTimeout(() => signal("SIGKILL"), KILL_GRACE_MS);
    }, o.timeoutMs);
    const onData = (isStdout: boolean) => (d: Buffer) => {
      const text = d.toString("utf8");
      appendFileSync(o.log, text);
      if (isStdout && o.capture) out += text;
      tail.push(...text.split("\n").filter((l) => l.trim() !== ""));
      if (tail.length > TAIL_LINES * 4) tail.splice(0, tail.length - TAIL_LINES);
    };
    child.stdout?.on("data", onData(true));
    child.stderr?.on("data", onData(false));
    child.on("error", (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        e.code === "ENOENT" ? new Error(`${cmd} is not installed: run tools/setup (tools/debian-packages.txt)`) : e,
      );
    });
    if (o.input !== undefined) child.stdin?.end(o.input);
    child.on("close", (code) => {
      clearTimeout(timer);
      if (killTimer) clearTimeout(killTimer);
      resolve({ code, stdout: out, tail: tail.slice(-TAIL_LINES), timedOut });
    });
  });
  appendFileSync(o.log, `# exit ${code ?? "signal"} after ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  if (timedOut || code !== 0) {
    const why = timedOut ? `timed out after ${Math.round(o.timeoutMs / 1000)} s` : `exited ${code ?? "on a signal"}`;
    throw new Error(
      `${argv.slice(0, 4).join(" ")}${argv.length > 4 ? " ..." : ""} ${why}; last output (full log: ${o.log}):\n${tail.join("\n")}`,
    );
  }
  return stdout;
}

/** "[standin 3/7 +2m05s] name": which step, and how long the build has been running. */
export class Progress {
  private readonly started = Date.now();
  private stepStarted = Date.now();
  private index = 0;

  constructor(
    private readonly total: number,
    private readonly out: (line: string) => void,
  ) {}

  step(name: string): void {
    this.index++;
    this.stepStarted = Date.now();
    this.out(`[standin ${this.index}/${this.total} +${formatSeconds(this.elapsedSeconds())}] ${name}`);
  }

  done(what: string): void {
    this.out(
      `[standin ${this.index}/${this.total} +${formatSeconds(this.elapsedSeconds())}] ${what} (${formatSeconds((Date.now() - this.stepStarted) / 1000)})`,
    );
  }

  elapsedSeconds(): number {
    return (Date.now() - this.started) / 1000;
  }
}

export function formatSeconds(s: number): string {
  const m = Math.floor(s / 60);
  const sec = Math.floor(s - m * 60);
  return m > 0 ? `${m}m${String(sec).padStart(2, "0")}s` : `${(Math.round(s * 10) / 10).toFixed(1)}s`;
}
