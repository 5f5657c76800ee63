/**
 * Backend membership through HAProxy's runtime API, without a reload: what runs (`show servers state`), what the
 * rendered haproxy.cfg says should run, the ordered commands between the two, and running them.
 *
 * The desired servers are read from the rendered haproxy.cfg itself (the same renderer output the agent writes for
 * restarts), so names, ports and check options cannot drift from render/haproxy.ts. Behaviour of HAProxy 2.6
 * checked on the real binary (test/agent-haproxy.test.ts):
 *   - `add server` creates the server in maintenance and ignores every `default-server` line, so the defaults'
 *     options are sent explicitly; with `check`, checks stay off until `enable health`.
 *   - leaving maintenance (`set server ... state ready`) puts a checked server UP at once (health = rise), so it
 *     takes requests within milliseconds; a dead one is marked DOWN after `fall` checks and `option redispatch`
 *     retries the connections it refused on another server meanwhile.
 *   - `del server` works on any server (also ones from the config) that is in maintenance and has no connection.
 */
import { EXPORTER_LISTENER, hostPort, METRICS_LISTENER, renderHaproxy } from "../../render/haproxy";
import type { RenderInput } from "../../render/types";
import { canonical, parseIp } from "../../spec/address";
import { RuntimeApiError, type RuntimeSocket } from "./runtime-socket";

// ------------------------------------------------------------------------------------------------ running state

export type AdminState = "ready" | "drain" | "maint";
export type OperState = "stopped" | "starting" | "running" | "stopping";

export interface ServerState {
  backend: string;
  name: string;
  address: string;
  port: number;
  adminState: AdminState;
  operState: OperState;
}

// srv_admin_state mask (management.txt, "show servers state"): forced, inherited, config, resolution maintenance;
// forced and inherited drain. 0x40 (FQDN set from the socket) is not a state.
const MAINT_BITS = 0x01 | 0x02 | 0x04 | 0x20;
const DRAIN_BITS = 0x08 | 0x10;
const OPER_STATES: readonly OperState[] = ["stopped", "starting", "running", "stopping"];
const COLUMNS = ["be_name", "srv_name", "srv_addr", "srv_port", "srv_op_state", "srv_admin_state"] as const;

/** Parses `show servers state` (format version 1): columns are found by the header line, not by position. */
export function parseServersState(text: string): ServerState[] {
  const lines = text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "");
  const version = lines[0];
  if (version !== "1") throw new Error(`show servers state: expected format version 1, got "${version ?? ""}"`);
  const header = (lines[1] ?? "").replace(/^#\s*/, "").split(/\s+/);
  const at = Object.fromEntries(COLUMNS.map((c) => [c, header.indexOf(c)])) as Record<(typeof COLUMNS)[number], number>;
  const missing = COLUMNS.filter((c) => at[c] < 0);
  if (missing.length > 0) throw new Error(`show servers state: header lacks ${missing.join(", ")}`);
  return lines
    .slice(2)
    .filter((l) => !l.startsWith("#"))
    .map((line) => {
      const f = line.split(/\s+/);
      const field = (c: (typeof COLUMNS)[number]): string => f[at[c]] ?? "";
      const admin = Number(field("srv_admin_state"));
      const oper = OPER_STATES[Number(field("srv_op_state"))];
      const port = Number(field("srv_port"));
      if (!Number.isInteger(admin) || oper === undefined || !Number.isInteger(port)) {
        throw new Error(`show servers state: unreadable line "${line}"`);
      }
      return {
        backend: field("be_name"),
        name: field("srv_name"),
        address: canonicalAddress(field("srv_addr")),
        port,
        adminState: (admin & MAINT_BITS) !== 0 ? "maint" : (admin & DRAIN_BITS) !== 0 ? "drain" : "ready",
        operState: oper,
      };
    });
}

export async function readServers(socket: RuntimeSocket): Promise<ServerState[]> {
  return parseServersState(await socket.run("show servers state", /^1\n/));
}

// ------------------------------------------------------------------------------------------------ desired state

export interface DesiredServer {
  backend: string;
  name: string;
  address: string;
  port: number;
  /** server options for `add server`, the defaults' default-server options first (HAProxy ignores them on add) */
  options?: readonly string[];
}

export interface DesiredServers {
  /** every backend (and listen section) of the config, also those without servers: their servers are managed */
  backends: string[];
  servers: DesiredServer[];
}

/**
 * The servers a haproxy.cfg declares. Only what render/haproxy.ts emits is understood: `defaults` with a
 * `default-server` line, `backend`/`listen` sections with `server NAME ADDR:PORT OPTIONS...` lines.
 */
export function desiredServersFromConfig(content: string): DesiredServers {
  const backends: string[] = [];
  const servers: DesiredServer[] = [];
  let section: { kind: string; name: string } | undefined;
  let defaultsOptions: string[] = [];
  let sectionOptions: string[] = [];
  content.split("\n").forEach((raw, i) => {
    const line = raw.replace(/\s+$/, "");
    if (line.trim() === "" || line.trim().startsWith("#")) return;
    const words = line.trim().split(/\s+/);
    const [keyword = "", ...rest] = words;
    if (!/^\s/.test(line)) {
      section = { kind: keyword, name: rest[0] ?? "" };
      sectionOptions = [];
      if (keyword === "defaults") defaultsOptions = [];
      if ((keyword === "backend" || keyword === "listen") && !unmanaged(section.name)) backends.push(section.name);
      return;
    }
    if (keyword === "default-server") {
      if (section?.kind === "defaults") defaultsOptions = rest;
      else sectionOptions = rest;
      return;
    }
    if (keyword !== "server" || (section?.kind !== "backend" && section?.kind !== "listen")) return;
    if (unmanaged(section.name)) return;
    const [name, target, ...options] = rest;
    const address = target === undefined ? undefined : splitHostPort(target);
    if (name === undefined || address === undefined) {
      throw new Error(`haproxy.cfg line ${i + 1}: expected "server NAME ADDRESS:PORT ...", got "${line.trim()}"`);
    }
    servers.push({
      backend: section.name,
      name,
      ...address,
      options: [...defaultsOptions, ...sectionOptions, ...options],
    });
  });
  return { backends, servers };
}

/** The metrics listeners serve the agent's socket and HAProxy's exporter: nothing the runtime API adds or removes. */
function unmanaged(section: string): boolean {
  return section === METRICS_LISTENER || section === EXPORTER_LISTENER;
}

/** The desired servers for a render input, through the renderer itself. */
export function desiredServers(input: RenderInput): DesiredServers {
  const [cfg] = renderHaproxy(input);
  if (!cfg) throw new Error("renderHaproxy rendered no haproxy.cfg");
  return desiredServersFromConfig(cfg.content);
}

function splitHostPort(text: string): { address: string; port: number } | undefined {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:]+):(\d+)$/.exec(text);
  if (!m?.[1] || !m[2]) return undefined;
  return { address: canonicalAddress(m[1]), port: Number(m[2]) };
}

function canonicalAddress(text: string): string {
  const ip = parseIp(text);
  return ip ? canonical(ip) : text;
}

// ------------------------------------------------------------------------------------------------ plan

interface ServerRef {
  backend: string;
  name: string;
}

export type ServerAction =
  | ({ kind: "add"; address: string; port: number; options: readonly string[] } & ServerRef)
  | ({ kind: "enable-health" } & ServerRef)
  | ({ kind: "ready" } & ServerRef)
  | ({ kind: "drain" } & ServerRef)
  | ({ kind: "wait-drained" } & ServerRef)
  | ({ kind: "maint" } & ServerRef)
  | ({ kind: "shutdown-sessions" } & ServerRef)
  | ({ kind: "delete" } & ServerRef);

const key = (s: ServerRef): string => `${s.backend}/${s.name}`;

/**
 * The commands that turn `current` into `desired`, in order: new servers first (capacity before anything leaves),
 * then every leaving server drained at once (they drain in parallel), then each one waited for, put in maintenance,
 * its remaining sessions shut down and deleted, and last the servers whose address changed added back under their
 * name (HAProxy names are unique per backend, so the old one must be gone first). Servers of backends outside
 * `managedBackends` (default: the backends named in `desired`) are left alone.
 */
export function planServerChanges(
  current: readonly ServerState[],
  desired: readonly DesiredServer[],
  managedBackends: readonly string[] = [...new Set(desired.map((d) => d.backend))],
): ServerAction[] {
  const managed = new Set(managedBackends);
  const wanted = new Map<string, DesiredServer>();
  for (const d of desired) {
    if (!managed.has(d.backend)) throw new Error(`desired server ${key(d)} is in a backend that is not managed`);
    if (wanted.has(key(d))) throw new Error(`desired server ${key(d)} is listed twice`);
    wanted.set(key(d), d);
  }
  const running = new Map(current.filter((c) => managed.has(c.backend)).map((c) => [key(c), c]));

  const adds: ServerAction[] = [];
  const readies: ServerAction[] = [];
  const leaving: ServerState[] = [];
  const readds: ServerAction[] = [];
  for (const d of wanted.values()) {
    const c = running.get(key(d));
    if (!c) adds.push(...addSteps(d));
    else if (c.address !== canonicalAddress(d.address) || c.port !== d.port) {
      leaving.push(c);
      readds.push(...addSteps(d));
    } else if (c.adminState !== "ready") readies.push({ kind: "ready", backend: d.backend, name: d.name });
  }
  for (const c of running.values()) if (!wanted.has(key(c))) leaving.push(c);

  const ref = (c: ServerState): ServerRef => ({ backend: c.backend, name: c.name });
  return [
    ...adds,
    ...readies,
    // a server already in maintenance takes no new connection: drain would take it out of maintenance
    ...leaving.filter((c) => c.adminState === "ready").map((c): ServerAction => ({ kind: "drain", ...ref(c) })),
    ...leaving.flatMap((c): ServerAction[] => [
      { kind: "wait-drained", ...ref(c) },
      { kind: "maint", ...ref(c) },
      { kind: "shutdown-sessions", ...ref(c) },
      { kind: "delete", ...ref(c) },
    ]),
    ...readds,
  ];
}

function addSteps(d: DesiredServer): ServerAction[] {
  const options = d.options ?? [];
  const ref = { backend: d.backend, name: d.name };
  return [
    { kind: "add", ...ref, address: canonicalAddress(d.address), port: d.port, options },
    ...(options.includes("check") ? [{ kind: "enable-health", ...ref } as const] : []),
    { kind: "ready", ...ref },
  ];
}

// ------------------------------------------------------------------------------------------------ apply

export interface ServerChangeOptions {
  /**
   * How long a leaving server keeps its sessions before they are shut down. Kubernetes API watches never end on
   * their own (timeout tunnel is 24h), so the wait is bounded; a cut watch is re-established by its client.
   */
  drainTimeoutMs?: number;
  pollIntervalMs?: number;
}

export interface AppliedAction {
  action: ServerAction;
  /** the runtime API command sent last for this action (wait-drained sends `show stat`) */
  command: string;
  /** epoch ms (Date.now()), so callers can relate them to request logs */
  startedAt: number;
  finishedAt: number;
  /** e.g. sessions left when a drain timed out */
  note?: string;
}

export interface ApplyResult {
  applied: AppliedAction[];
  /** the first action that failed; nothing after it was attempted (the next plan starts from what runs) */
  failed?: { action: ServerAction; error: string };
}

const DEFAULT_DRAIN_TIMEOUT_MS = 10_000;
const DEFAULT_POLL_MS = 25; // a leaving server is deleted within a poll of its last session ending
const DELETE_WAIT_MS = 2000; // shut-down sessions close asynchronously; `del server` refuses until they have

export async function applyServerChanges(
  socket: RuntimeSocket,
  actions: readonly ServerAction[],
  opts: ServerChangeOptions = {},
): Promise<ApplyResult> {
  const applied: AppliedAction[] = [];
  // the drain timeout counts from each server's drain, so N leaving servers wait at most one timeout, not N
  const drainedAt = new Map<string, number>();
  for (const action of actions) {
    const startedAt = Date.now();
    try {
      const { command, note } = await applyOne(socket, action, opts, drainedAt.get(key(action)) ?? startedAt);
      if (action.kind === "drain") drainedAt.set(key(action), Date.now());
      applied.push({ action, command, startedAt, finishedAt: Date.now(), ...(note ? { note } : {}) });
    } catch (e) {
      return { applied, failed: { action, error: e instanceof Error ? e.message : String(e) } };
    }
  }
  return { applied };
}

async function applyOne(
  socket: RuntimeSocket,
  a: ServerAction,
  opts: ServerChangeOptions,
  drainStart: number,
): Promise<{ command: string; note?: string }> {
  const srv = `${a.backend}/${a.name}`;
  const run = async (command: string, expect?: RegExp): Promise<{ command: string }> => {
    await socket.run(command, expect);
    return { command };
  };
  switch (a.kind) {
    case "add":
      return run(
        `add server ${srv} ${hostPort(a.address, a.port)}${a.options.map((o) => ` ${o}`).join("")}`,
        /^New server registered\.$/,
      );
    case "enable-health":
      return run(`enable health ${srv}`);
    case "ready":
    case "drain":
    case "maint":
      return run(`set server ${srv} state ${a.kind}`);
    case "shutdown-sessions":
      return run(`shutdown sessions server ${srv}`);
    case "wait-drained":
      return waitDrained(
        socket,
        a,
        drainStart,
        opts.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS,
        opts.pollIntervalMs ?? DEFAULT_POLL_MS,
      );
    case "delete":
      return deleteServer(socket, srv, opts.pollIntervalMs ?? DEFAULT_POLL_MS);
  }
}

async function waitDrained(
  socket: RuntimeSocket,
  s: ServerRef,
  since: number,
  timeoutMs: number,
  pollMs: number,
): Promise<{ command: string; note?: string }> {
  const command = `show stat ${s.backend} 4 -1`;
  const deadline = since + timeoutMs;
  for (let i = 0; i < 100_000; i++) {
    const sessions = sessionsOf(await socket.run(command, /^# pxname,/), s);
    if (sessions === 0) return { command };
    if (Date.now() >= deadline)
      return { command, note: `drain timed out after ${timeoutMs} ms with ${sessions} sessions (shut down next)` };
    await sleep(Math.min(pollMs, Math.max(0, deadline - Date.now())));
  }
  return { command, note: "drain wait stopped after too many polls" };
}

/** Current sessions plus queued requests of one server in `show stat` CSV; 0 when the server is not listed. */
function sessionsOf(csv: string, s: ServerRef): number {
  const [head = "", ...rows] = csv.split("\n").filter((l) => l.trim() !== "");
  const cols = head.replace(/^#\s*/, "").split(",");
  const at = (c: string): number => {
    const i = cols.indexOf(c);
    // a missing column must not read as "no sessions" and let a busy server be cut
    if (i < 0) throw new Error(`show stat: header lacks ${c}`);
    return i;
  };
  const [px, sv, scur, qcur] = [at("pxname"), at("svname"), at("scur"), at("qcur")];
  for (const row of rows) {
    const f = row.split(",");
    if (f[px] === s.backend && f[sv] === s.name) return Number(f[scur] || 0) + Number(f[qcur] || 0);
  }
  return 0;
}

async function deleteServer(socket: RuntimeSocket, srv: string, pollMs: number): Promise<{ command: string }> {
  const command = `del server ${srv}`;
  const deadline = Date.now() + DELETE_WAIT_MS;
  for (let i = 0; ; i++) {
    const answer = (await socket.send(command)).trim();
    if (answer === "Server deleted.") return { command };
    const busy = /still has connections/i.test(answer);
    if (!busy || Date.now() >= deadline || i >= 1000) {
      throw new RuntimeApiError(command, answer, busy ? `failed for ${DELETE_WAIT_MS} ms` : "failed");
    }
    await sleep(Math.min(pollMs, 50));
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
