/**
 * "Does HAProxy serve?" as the health gates ask it (a risky change on the BACKUP, an LB after an image switch):
 * HAProxy answers on its admin socket and every backend that has servers has at least one of them running.
 */
import { RuntimeSocket } from "./runtime-socket";
import { readServers } from "./servers";

export interface BackendHealth {
  ok: boolean;
  /** One sentence per problem (status messages and logs). */
  failures: string[];
}

export async function backendsHealthy(socketPath: string): Promise<BackendHealth> {
  let servers;
  try {
    servers = await readServers(new RuntimeSocket(socketPath));
  } catch (e) {
    return { ok: false, failures: [`HAProxy's admin socket does not answer: ${e instanceof Error ? e.message : String(e)}`] };
  }
  const up = new Map<string, boolean>();
  for (const s of servers) up.set(s.backend, (up.get(s.backend) ?? false) || s.operState === "running");
  const failures = [...up].filter(([, anyUp]) => !anyUp).map(([backend]) => `HAProxy backend ${backend} has no server UP`);
  return { ok: failures.length === 0, failures };
}
