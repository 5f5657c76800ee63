/**
 * Running programs for the lab: short commands with a hard time limit (async, so signal handlers still run while
 * they wait), long-lived daemons started detached and recorded by PID and start time (a PID is only ever signalled
 * while it still names the process the lab started), and bounded waiting.
 */
import { spawn } from "node:child_process";
import { closeSync, openSync, readFileSync } from "node:fs";

export interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  input?: string;
  timeoutMs?: number;
  /** When false (default) a non-zero exit throws with the program's output. */
  allowFail?: boolean;
}

export async function exec(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const [cmd, ...args] = argv;
  if (cmd === undefined) throw new Error("exec: empty command");
  const timeoutMs = opts.timeoutMs ?? 20_000;
  const r = await new Promise<ExecResult>((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: [opts.input === undefined ? "ignore" : "pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.stdout?.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr?.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.on("error", (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        e.code === "ENOENT" ? new Error(`${cmd} is not installed: run tools/setup (see tools/debian-packages.txt)`) : e,
      );
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({
        code: timedOut ? null : code,
        stdout,
        stderr: timedOut ? `${stderr}(killed after ${timeoutMs} ms)` : stderr,
      });
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
  if (!opts.allowFail && r.code !== 0) {
    throw new Error(`${argv.join(" ")} exited ${r.code ?? "on timeout"}: ${(r.stderr || r.stdout).trim()}`);
  }
  return r;
}

/** A process the lab started and must stop: the start time tells a live PID apart from a reused one. */
export interface ProcessRecord {
  name: string;
  ns: string;
  pid: number;
  startTime: string;
  argv: string[];
  log: string;
}

export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // comm (field 2) may contain spaces and parentheses: the fields after the last ")" are fixed.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return rest[19]; // field 22, starttime
  } catch {
    return undefined;
  }
}

export function isAlive(p: Pick<ProcessRecord, "pid" | "startTime">): boolean {
  const st = processStartTime(p.pid);
  if (st === undefined || st !== p.startTime) return false;
  // a zombie has exited; only its parent's wait is missing
  try {
    return !/^\d+ \(.*\) Z /s.test(readFileSync(`/proc/${p.pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

/** Starts a long-lived program detached from this process (its own session), output appended to `log`. */
export function startDetached(name: string, ns: string, argv: string[], log: string): ProcessRecord {
  const [cmd, ...args] = argv;
  if (cmd === undefined) throw new Error("startDetached: empty command");
  const fd = openSync(log, "a");
  try {
    const child = spawn(cmd, args, { detached: true, stdio: ["ignore", fd, fd] });
    child.on("error", () => undefined); // reported through the liveness checks of the caller
    child.unref();
    const pid = child.pid;
    if (pid === undefined) throw new Error(`${name}: could not start ${cmd}`);
    const startTime = processStartTime(pid) ?? "";
    return { name, ns, pid, startTime, argv, log };
  } finally {
    closeSync(fd);
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; only while the PID is still the recorded process. */
export async function stopProcess(p: ProcessRecord, graceMs = 3000): Promise<void> {
  if (!isAlive(p)) return;
  signal(p, "SIGTERM");
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && isAlive(p)) await sleep(25);
  if (isAlive(p)) {
    signal(p, "SIGKILL");
    const hard = Date.now() + 2000;
    while (Date.now() < hard && isAlive(p)) await sleep(25);
  }
}

export function signal(p: Pick<ProcessRecord, "pid" | "startTime">, sig: NodeJS.Signals): boolean {
  if (!isAlive(p)) return false;
  try {
    process.kill(p.pid, sig);
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether the process takes `signalNumber`: a handler installed (SigCgt) or the signal blocked for a signalfd
 * (SigBlk; keepalived reads its signals that way). A daemon signalled before that (SIGUSR1's default action is to
 * terminate) would die instead of answering.
 */
export function catches(p: Pick<ProcessRecord, "pid" | "startTime">, signalNumber: number): boolean {
  if (!isAlive(p)) return false;
  try {
    const status = readFileSync(`/proc/${p.pid}/status`, "utf8");
    const bit = (field: string) => {
      const m = new RegExp(`^${field}:\\s*([0-9a-f]+)`, "m").exec(status);
      return m ? (BigInt(`0x${m[1]}`) >> BigInt(signalNumber - 1)) % 2n === 1n : false;
    };
    return bit("SigCgt") || bit("SigBlk");
  } catch {
    return false;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Thrown by a probe when waiting longer cannot help (the awaited process exited): waitFor gives up at once. */
export class GaveUp extends Error {}

/**
 * Polls `probe` until it returns a value other than undefined, at most `timeoutMs` and `maxTries` times.
 * Throws naming what was awaited and the last probe's note.
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  {
    timeoutMs = 30_000,
    intervalMs = 100,
    maxTries = 10_000,
  }: { timeoutMs?: number; intervalMs?: number; maxTries?: number } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError = "";
  for (let i = 0; i < maxTries && Date.now() < deadline; i++) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (e) {
      if (e instanceof GaveUp) throw new Error(`${what}: ${e.message}`);
      lastError = e instanceof Error ? e.message : String(e);
    }
    await sleep(intervalMs);
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${lastError})` : ""}`,
  );
}
