/**
 * Many keep-alive HTTP(S) sessions from one of the lab's hosts (lab/helper.ts `sessions`), as the load bench and
 * its CI test use them around a planned failover: started, ready once every session has its first answer, stopped
 * (the helper writes its report on SIGTERM) and read back.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { ProcessRecord } from "./exec";
import { helperReady } from "./flows";
import type { Lab } from "./lab";

export interface SessionReport {
  id: number;
  localPort?: number;
  requests: number;
  answered: number;
  /** the session broke: a failed request (error, timeout, status) or a second connection; epoch ms of that request */
  err?: string;
  errAt?: number;
  /** the longest time between two answers (ms) */
  longestGapMs: number;
}

export interface SessionsDoc {
  start: number;
  stoppedAt: number;
  gapMs: number;
  sessions: SessionReport[];
}

export interface SessionsRun {
  proc: ProcessRecord;
  out: string;
  count: number;
}

export function startSessions(
  lab: Lab,
  name: string,
  hostKey: string,
  url: string,
  o: { count: number; gapMs: number; timeoutMs?: number; maxMs?: number },
): SessionsRun {
  const out = join(lab.dir, "logs", `${name.replace(/\//g, "-")}.json`);
  const proc = lab.startHelper(name, hostKey, [
    "sessions",
    "--url",
    url,
    "--out",
    out,
    "--count",
    String(o.count),
    "--gap-ms",
    String(o.gapMs),
    "--timeout-ms",
    String(o.timeoutMs ?? 3000),
    "--max-ms",
    String(o.maxMs ?? 600_000),
  ]);
  return { proc, out, count: o.count };
}

export async function sessionsReady(run: SessionsRun, timeoutMs: number): Promise<void> {
  await helperReady(run.proc, "every session's first answer", timeoutMs);
}

export async function stopSessions(lab: Lab, run: SessionsRun): Promise<SessionsDoc> {
  await lab.stopClient(run.proc);
  return JSON.parse(readFileSync(run.out, "utf8")) as SessionsDoc;
}
