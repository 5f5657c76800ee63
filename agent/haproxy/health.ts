/**
 * "Does HAProxy serve?" as the health gates ask it (a risky change on the BACKUP, an LB after an image switch):
 * HAProxy answers on its admin socket and every backend that has servers has at least one of them running on a
 * check that passed. A freshly started worker counts its servers as running before their first check (the check
 * result is still unknown then), and right after a reload the previous worker may still answer: neither may pass.
 */
import { RuntimeSocket } from "./runtime-socket";
import { parseServersState } from "./servers";

export interface BackendHealth {
  ok: boolean;
  /** One sentence per problem (status messages and logs). */
  failures: string[];
}

// `show servers state`: srv_check_state bit CHK_ST_CONFIGURED; srv_check_result CHK_RES_PASSED / CHK_RES_CONDPASS
const CHECK_CONFIGURED = 0x2;
const CHECK_PASSED = new Set([3, 4]);

/** The PID of the worker answering on the admin socket (a reload starts a new one); undefined when none answers. */
export async function haproxyWorkerPid(socketPath: string): Promise<number | undefined> {
  try {
    const m = /^Pid:\s*(\d+)\s*$/m.exec(await new RuntimeSocket(socketPath).run("show info", /^Name: HAProxy/));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** `notWorker`: the worker from before a reload; while it still answers, HAProxy is not healthy yet. */
export async function backendsHealthy(socketPath: string, opts: { notWorker?: number } = {}): Promise<BackendHealth> {
  let text: string;
  try {
    if (opts.notWorker !== undefined && (await haproxyWorkerPid(socketPath)) === opts.notWorker) {
      return {
        ok: false,
        failures: [`HAProxy's previous worker (${opts.notWorker}) still answers: the reload has not taken over`],
      };
    }
    text = await new RuntimeSocket(socketPath).run("show servers state", /^1\n/);
  } catch (e) {
    return {
      ok: false,
      failures: [`HAProxy's admin socket does not answer: ${e instanceof Error ? e.message : String(e)}`],
    };
  }
  const up = new Map<string, boolean>();
  for (const s of serverHealth(text)) up.set(s.backend, (up.get(s.backend) ?? false) || s.up);
  const failures = [...up]
    .filter(([, anyUp]) => !anyUp)
    .map(([backend]) => `HAProxy backend ${backend} has no server UP on a passed check`);
  return { ok: failures.length === 0, failures };
}

/** One server of `show servers state` and whether it serves: running, and its check (if any) passed. */
export interface ServerHealth {
  backend: string;
  name: string;
  up: boolean;
}

export function serverHealth(showServersState: string): ServerHealth[] {
  const checks = checkColumns(showServersState);
  return parseServersState(showServersState).map((s, i) => {
    const c = checks[i];
    const checked = !c || (c.state & CHECK_CONFIGURED) === 0 || CHECK_PASSED.has(c.result);
    return { backend: s.backend, name: s.name, up: s.operState === "running" && checked };
  });
}

/** Every server's health, from HAProxy's admin socket. */
export async function readServerHealth(socketPath: string): Promise<ServerHealth[]> {
  return serverHealth(await new RuntimeSocket(socketPath).run("show servers state", /^1\n/));
}

/** srv_check_state and srv_check_result per server line, in parseServersState's order (found by the header). */
function checkColumns(text: string): ({ state: number; result: number } | undefined)[] {
  const lines = text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "");
  const header = (lines[1] ?? "").replace(/^#\s*/, "").split(/\s+/);
  const st = header.indexOf("srv_check_state");
  const res = header.indexOf("srv_check_result");
  return lines
    .slice(2)
    .filter((l) => !l.startsWith("#"))
    .map((l) => {
      const f = l.split(/\s+/);
      return st < 0 || res < 0 ? undefined : { state: Number(f[st]), result: Number(f[res]) };
    });
}
