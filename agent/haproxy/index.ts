/**
 * HAProxy backend membership without a reload: the agent renders haproxy.cfg (written to disk for restarts) and
 * brings the running servers to what that file declares through the runtime API.
 */
import { RuntimeSocket } from "./runtime-socket";
import {
  applyServerChanges,
  desiredServersFromConfig,
  planServerChanges,
  readServers,
  type ServerChangeOptions,
  type ApplyResult,
  type ServerAction,
  type ServerState,
} from "./servers";

export {
  backendsHealthy,
  haproxyWorkerPid,
  readServerHealth,
  serverHealth,
  type BackendHealth,
  type ServerHealth,
} from "./health";
export { DEFAULT_TIMEOUT_MS, RuntimeApiError, RuntimeSocket, type Expectation } from "./runtime-socket";
export {
  applyServerChanges,
  desiredServers,
  desiredServersFromConfig,
  parseServersState,
  planServerChanges,
  readServers,
  type AdminState,
  type AppliedAction,
  type ServerChangeOptions,
  type ApplyResult,
  type DesiredServer,
  type DesiredServers,
  type OperState,
  type ServerAction,
  type ServerState,
} from "./servers";

export interface SyncServersResult {
  before: ServerState[];
  plan: ServerAction[];
  result: ApplyResult;
}

/**
 * Reads what runs, plans against the servers `haproxyCfg` declares (every backend of the file is managed, also an
 * emptied one) and applies the plan. An empty plan sends nothing but `show servers state`.
 */
export async function syncServers(
  socket: RuntimeSocket | string,
  haproxyCfg: string,
  opts: ServerChangeOptions = {},
): Promise<SyncServersResult> {
  const api = typeof socket === "string" ? new RuntimeSocket(socket) : socket;
  const desired = desiredServersFromConfig(haproxyCfg);
  const before = await readServers(api);
  const plan = planServerChanges(before, desired.servers, desired.backends);
  const result = await applyServerChanges(api, plan, opts);
  return { before, plan, result };
}
