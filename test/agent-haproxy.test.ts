/**
 * agent/haproxy: backend membership through HAProxy's runtime API, no reload. The pure parts (parsing, the desired
 * servers read from the rendered haproxy.cfg, planning) run anywhere; the live part runs the real haproxy 2.6 in
 * master-worker mode on the dev stack's rendered config in a throwaway network namespace (bench/propagation.ts
 * LiveHaproxy: VIPs on its loopback, API backends lab/helper.ts `serve` on 127.0.0.x answering their own name, a
 * client opening a new connection to the API VIP every 2 ms). Needs root for the namespace; skipped otherwise.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  applyServerChanges,
  desiredServers,
  desiredServersFromConfig,
  parseServersState,
  planServerChanges,
  readServers,
  RuntimeApiError,
  RuntimeSocket,
  syncServers,
  type DesiredServer,
  type ServerState,
} from "../agent/haproxy/index";
import { readRequests, type RequestRecord } from "../lab/analysis";
import { isAlive, sleep, waitFor } from "../lab/exec";
import { servers as rendererServers } from "../render/haproxy";
import type { Backend, BackendSets } from "../spec/types";
import { firstServedBy, LiveHaproxy, nowMs, timedSync, type RequestLog } from "../bench/propagation";
import { devResolved, primaryHost } from "./fixtures/resolved";
import { readSpec } from "../spec/files";
import { DEFAULT_SPEC } from "../lab/cli";

const GOLDEN_CFG = join(__dirname, "golden", "dev-lb1", "etc", "haproxy", "haproxy.cfg");

// Captured from haproxy 2.6.12 (`show servers state be_api`): cp-2 dynamic and in maintenance, IPv6 cp-3 draining.
const SHOW_SERVERS_STATE = `1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port
3 be_api 1 cp-0 127.0.0.11 2 0 1 1 5 6 3 11 6 0 0 0 - 6443 - 0 0 - - 0
3 be_api 2 cp-1 127.0.0.12 0 0 1 1 3 8 2 0 6 0 0 0 - 6443 - 0 0 - - 0
3 be_api 3 cp-2 127.0.0.13 0 1 1 1 1 1 0 0 2 0 0 0 - 6443 - 0 0 - - 0
3 be_api 4 cp-3 2001:db8:0:0::10 2 8 1 1 1 1 0 0 2 0 0 0 - 6443 - 0 0 - - 0
`;

const state = (
  backend: string,
  name: string,
  address: string,
  port: number,
  adminState: ServerState["adminState"] = "ready",
): ServerState => ({ backend, name, address, port, adminState, operState: "running" });
const want = (backend: string, name: string, address: string, port: number): DesiredServer => ({
  backend,
  name,
  address,
  port,
  options: ["check"],
});
const kinds = (plan: { kind: string; backend: string; name: string }[]): string[] =>
  plan.map((a) => `${a.kind} ${a.backend}/${a.name}`);

describe("show servers state", () => {
  test("columns by header; admin mask to ready/drain/maint; IPv6 canonical", () => {
    expect(parseServersState(SHOW_SERVERS_STATE)).toEqual([
      { backend: "be_api", name: "cp-0", address: "127.0.0.11", port: 6443, adminState: "ready", operState: "running" },
      { backend: "be_api", name: "cp-1", address: "127.0.0.12", port: 6443, adminState: "ready", operState: "stopped" },
      { backend: "be_api", name: "cp-2", address: "127.0.0.13", port: 6443, adminState: "maint", operState: "stopped" },
      {
        backend: "be_api",
        name: "cp-3",
        address: "2001:db8::10",
        port: 6443,
        adminState: "drain",
        operState: "running",
      },
    ]);
  });

  test("counter-cases: another format version, a header without the needed columns, an unreadable line", () => {
    expect(() => parseServersState(SHOW_SERVERS_STATE.replace(/^1\n/, "2\n"))).toThrow(/format version 1, got "2"/);
    expect(() => parseServersState(SHOW_SERVERS_STATE.replace("srv_admin_state", "srv_admin"))).toThrow(
      /lacks srv_admin_state/,
    );
    expect(() => parseServersState(SHOW_SERVERS_STATE.replace("cp-0 127.0.0.11 2 0", "cp-0 127.0.0.11 9 0"))).toThrow(
      /unreadable line/,
    );
  });
});

describe("desired servers come from the rendered haproxy.cfg", () => {
  test("the golden dev config: names, addresses, ports and the defaults' options that `add server` ignores", () => {
    const d = desiredServersFromConfig(readFileSync(GOLDEN_CFG, "utf8"));
    // the metrics listener's one server is the agent's socket: never managed through the runtime API
    expect(d.backends).toEqual(["be_api", "be_ingress_http", "be_ingress_https"]);
    expect(d.servers.map((s) => [s.backend, s.name, s.address, s.port])).toEqual([
      ["be_api", "192.168.100.10", "192.168.100.10", 6443],
      ["be_api", "192.168.100.11", "192.168.100.11", 6443],
      ["be_api", "192.168.100.12", "192.168.100.12", 6443],
    ]);
    expect(d.servers[0]?.options).toEqual(["inter", "2000ms", "rise", "2", "fall", "3", "check"]);
  });

  test("names follow the renderer's servers() (collisions, IPv6), ingress ports and check options follow the spec", () => {
    const api: Backend[] = [
      { name: "cp", address: "192.168.100.10" },
      { name: "cp", address: "2001:db8::a" },
      { name: "node/x", address: "192.168.100.12" },
    ];
    const ingress: Backend[] = [{ name: "w-0", address: "192.168.100.20" }];
    const d = desiredServers({ spec: devResolved, host: primaryHost, backends: { api, ingress } });
    const apiServers = d.servers.filter((s) => s.backend === "be_api");
    expect(apiServers.map((s) => ({ name: s.name, address: s.address }))).toEqual(rendererServers(api));
    expect(apiServers.map((s) => s.name)).toEqual(["cp_192.168.100.10", "node_x", "cp_2001:db8::a"]);
    const ib = devResolved.ingressBackend;
    expect(d.servers.filter((s) => s.backend !== "be_api")).toEqual([
      {
        backend: "be_ingress_http",
        name: "w-0",
        address: "192.168.100.20",
        port: ib?.httpPort,
        options: ["inter", "2000ms", "rise", "2", "fall", "3", "check", "port", String(ib?.healthPort)],
      },
      {
        backend: "be_ingress_https",
        name: "w-0",
        address: "192.168.100.20",
        port: ib?.httpsPort,
        options: ["inter", "2000ms", "rise", "2", "fall", "3", "check", "port", String(ib?.healthPort)],
      },
    ]);
  });

  test("counter-case: a server line without ADDRESS:PORT names its line", () => {
    expect(() => desiredServersFromConfig("backend be_api\n    server a 10.0.0.1 check\n")).toThrow(
      /line 2: expected "server NAME ADDRESS:PORT/,
    );
  });
});

describe("planServerChanges", () => {
  const current = [
    state("be_api", "a", "10.0.0.1", 6443),
    state("be_api", "b", "10.0.0.2", 6443),
    state("be_x", "keep", "10.0.0.9", 1),
  ];

  test("new servers are added, enabled and readied before anything leaves; leaving ones drain together, then go", () => {
    const plan = planServerChanges(
      [...current, state("be_api", "c", "10.0.0.3", 6443)],
      [want("be_api", "a", "10.0.0.1", 6443), want("be_api", "d", "10.0.0.4", 6443)],
    );
    expect(kinds(plan)).toEqual([
      "add be_api/d",
      "enable-health be_api/d",
      "ready be_api/d",
      "drain be_api/b",
      "drain be_api/c",
      "wait-drained be_api/b",
      "maint be_api/b",
      "shutdown-sessions be_api/b",
      "delete be_api/b",
      "wait-drained be_api/c",
      "maint be_api/c",
      "shutdown-sessions be_api/c",
      "delete be_api/c",
    ]);
    expect(plan[0]).toEqual({
      kind: "add",
      backend: "be_api",
      name: "d",
      address: "10.0.0.4",
      port: 6443,
      options: ["check"],
    });
  });

  test("an address or port change is a removal then an add under the same name; the unmanaged backend is untouched", () => {
    const plan = planServerChanges(current, [
      want("be_api", "a", "10.0.0.1", 6444),
      want("be_api", "b", "10.0.0.22", 6443),
    ]);
    expect(kinds(plan)).toEqual([
      "drain be_api/a",
      "drain be_api/b",
      "wait-drained be_api/a",
      "maint be_api/a",
      "shutdown-sessions be_api/a",
      "delete be_api/a",
      "wait-drained be_api/b",
      "maint be_api/b",
      "shutdown-sessions be_api/b",
      "delete be_api/b",
      "add be_api/a",
      "enable-health be_api/a",
      "ready be_api/a",
      "add be_api/b",
      "enable-health be_api/b",
      "ready be_api/b",
    ]);
  });

  test("leftovers of an interrupted run: a wanted server in drain/maint is readied; an unwanted one in maint is not drained again", () => {
    const plan = planServerChanges(
      [state("be_api", "a", "10.0.0.1", 6443, "drain"), state("be_api", "b", "10.0.0.2", 6443, "maint")],
      [want("be_api", "a", "10.0.0.1", 6443)],
    );
    expect(kinds(plan)).toEqual([
      "ready be_api/a",
      "wait-drained be_api/b",
      "maint be_api/b",
      "shutdown-sessions be_api/b",
      "delete be_api/b",
    ]);
  });

  test("idempotent: nothing to do when what runs is what is wanted (IPv6 written differently included)", () => {
    const running = [...current, state("be_api", "v6", "2001:db8::10", 6443)];
    const desired = [
      want("be_api", "a", "10.0.0.1", 6443),
      want("be_api", "b", "10.0.0.2", 6443),
      want("be_api", "v6", "2001:db8:0::10", 6443),
    ];
    expect(planServerChanges(running, desired)).toEqual([]);
  });

  test("an emptied backend is managed when named; counter-cases: a duplicate or an unmanaged desired server", () => {
    expect(kinds(planServerChanges(current, [], ["be_api"])).filter((k) => k.startsWith("delete"))).toEqual([
      "delete be_api/a",
      "delete be_api/b",
    ]);
    expect(planServerChanges(current, [])).toEqual([]); // no backend named: nothing managed
    expect(() =>
      planServerChanges(current, [want("be_api", "a", "10.0.0.1", 1), want("be_api", "a", "10.0.0.2", 1)]),
    ).toThrow(/be_api\/a is listed twice/);
    expect(() => planServerChanges(current, [want("be_api", "a", "10.0.0.1", 1)], ["be_x"])).toThrow(/not managed/);
  });
});

describe("RuntimeSocket counter-cases", () => {
  test("a missing socket: the error names the command and the path", async () => {
    const s = new RuntimeSocket("/nonexistent/edgepair/admin.sock", 500);
    await expect(s.run("show servers state")).rejects.toThrow(
      /"show servers state" could not be sent to \/nonexistent\/edgepair\/admin\.sock \(ENOENT\)/,
    );
  });

  test("a second command smuggled in by ';' or a newline is refused before anything is sent", async () => {
    const s = new RuntimeSocket("/nonexistent/edgepair/admin.sock", 500);
    await expect(s.send("set server be_api/a state ready; shutdown sessions server be_api/a")).rejects.toThrow(
      /one command per call/,
    );
    await expect(s.send("show info\nshow stat")).rejects.toThrow(/one command per call/);
  });
});

// ------------------------------------------------------------------------------------------------ live

const isRoot = process.getuid?.() === 0;
const live = isRoot ? describe : describe.skip;

live("live haproxy (master-worker, rendered dev config) in a network namespace", () => {
  const spec = readSpec(DEFAULT_SPEC);
  const port = spec.apiBackend.port;
  const node = (name: string, address: string): Backend => ({ name, address });
  const cp0 = node("cp-0", "127.0.0.10");
  const cp1 = node("cp-1", "127.0.0.11");
  const cp2 = node("cp-2", "127.0.0.12");
  const cp1Moved = node("cp-1", "127.0.0.21");
  const worker = node("w-0", "127.0.0.30");
  const sets = (api: Backend[], ingress: Backend[] = []): BackendSets => ({ api, ingress });
  // each backend process answers with its label; the moved cp-1 answers differently from the old one
  const label = (b: Backend): string => `${b.name}@${b.address}`;

  let lb: LiveHaproxy;
  let log: RequestLog;
  let pids: { master: number; worker: number };
  let current: BackendSets;

  const served = (): RequestRecord[] => log.refresh();
  const sync = async (backends: BackendSets, drainTimeoutMs = 5000) => {
    const r = await timedSync(lb, backends, { drainTimeoutMs });
    current = backends;
    return r;
  };

  beforeAll(async () => {
    lb = await LiveHaproxy.start(spec, sets([cp0, cp1]));
    for (const b of [cp0, cp1, cp2, cp1Moved]) await lb.startBackend(label(b), b.address, [port]);
    await lb.startBackend(label(worker), worker.address, [
      spec.ingressBackend?.httpPort ?? 0,
      spec.ingressBackend?.httpsPort ?? 0,
    ]);
    current = sets([cp0, cp1]);
    log = lb.startClient(`http://${spec.derived.frontends.api[0]?.address}:6443/`).log;
    for (const b of [cp0, cp1]) expect(await firstServedBy(log, label(b), 0, 5000)).toBeDefined();
    pids = await lb.pids();
  }, 60_000);

  afterAll(async () => {
    await lb?.stop();
  }, 30_000);

  test("adding a server: no reload, the new backend answers within 1 s of the change", async () => {
    const { t0, sync: r } = await sync(sets([cp0, cp1, cp2]));
    expect(kinds(r.plan)).toEqual(["add be_api/cp-2", "enable-health be_api/cp-2", "ready be_api/cp-2"]);
    expect(r.result.applied[0]?.command).toBe(
      `add server be_api/cp-2 127.0.0.12:${port} inter 2000ms rise 2 fall 3 check`,
    );
    const first = await firstServedBy(log, label(cp2), t0, 1000);
    expect(first).toBeDefined();
    const ms = (first?.end ?? Infinity) - t0;
    console.log(`add -> first response from the new backend: ${ms.toFixed(1)} ms`);
    expect(ms).toBeLessThanOrEqual(1000);
    expect(await lb.pids()).toEqual(pids);
    expect((await readServers(lb.socket)).find((s) => s.name === "cp-2")).toMatchObject({
      address: "127.0.0.12",
      port,
      adminState: "ready",
    });
  });

  test("counter-case for the measurement: a server added but left in maintenance gets no request", async () => {
    const stray = node("cp-9", "127.0.0.19");
    await lb.startBackend(label(stray), stray.address, [port]);
    const t0 = nowMs();
    const r = await applyServerChanges(lb.socket, [
      { kind: "add", backend: "be_api", name: "cp-9", address: stray.address, port, options: ["check"] },
    ]);
    expect(r.failed).toBeUndefined();
    expect(await firstServedBy(log, label(stray), t0, 500)).toBeUndefined();
    // the next sync removes it: already in maintenance, so no drain step
    const { sync: cleanup } = await sync(current);
    expect(kinds(cleanup.plan)).toEqual([
      "wait-drained be_api/cp-9",
      "maint be_api/cp-9",
      "shutdown-sessions be_api/cp-9",
      "delete be_api/cp-9",
    ]);
  });

  /** Puts a keep-alive session on `target` (the others drained while it connects) and returns its log file. */
  async function sessionOn(
    target: string,
    others: string[],
    count: number,
  ): Promise<{ out: string; done: () => boolean }> {
    for (const o of others) await lb.socket.run(`set server be_api/${o} state drain`);
    const session = lb.startSession(`http://${spec.derived.frontends.api[0]?.address}:6443/`, count, 100);
    try {
      await waitFor(
        "the session's first answer",
        async () => (readRequests(session.out).length > 0 ? true : undefined),
        { timeoutMs: 5000, intervalMs: 10 },
      );
    } finally {
      for (const o of others) await lb.socket.run(`set server be_api/${o} state ready`);
    }
    const stat = await lb.socket.run(`show stat be_api 4 -1`, /^# pxname/);
    expect(stat).toMatch(new RegExp(`^be_api,${target},\\d+,\\d+,[1-9]`, "m")); // scur >= 1: the session is there
    return { out: session.out, done: () => !isAlive(session.process) };
  }

  test("removing a server: drained first, no request fails, an in-flight keep-alive session completes", async () => {
    const session = await sessionOn("cp-2", ["cp-0", "cp-1"], 15); // ~1.5 s of requests on one connection
    const { sync: r } = await sync(sets([cp0, cp1]));
    expect(kinds(r.plan)).toEqual([
      "drain be_api/cp-2",
      "wait-drained be_api/cp-2",
      "maint be_api/cp-2",
      "shutdown-sessions be_api/cp-2",
      "delete be_api/cp-2",
    ]);
    const drained = r.result.applied.find((a) => a.action.kind === "drain");
    const waited = r.result.applied.find((a) => a.action.kind === "wait-drained");
    expect(waited?.note).toBeUndefined(); // drained by itself, not cut at the timeout
    expect((waited?.finishedAt ?? 0) - (waited?.startedAt ?? 0)).toBeGreaterThan(500); // it did wait for the session
    await waitFor("the session to end", async () => (session.done() ? true : undefined), {
      timeoutMs: 5000,
      intervalMs: 20,
    });
    const s = readRequests(session.out);
    expect(s).toHaveLength(15);
    expect(s.every((x) => x.ok)).toBe(true);
    expect(s.every((x) => (x as RequestRecord & { sockets?: number }).sockets === 1)).toBe(true); // never reconnected
    await sleep(100);
    const after = served().filter((x) => x.start > (drained?.finishedAt ?? Infinity) + 5);
    expect(after.length).toBeGreaterThan(50);
    expect(after.filter((x) => x.server === label(cp2))).toEqual([]);
    expect(served().filter((x) => !x.ok)).toEqual([]);
    expect((await readServers(lb.socket)).map((x) => x.name).filter((n) => n.startsWith("cp-"))).toEqual([
      "cp-0",
      "cp-1",
    ]);
    expect(await lb.pids()).toEqual(pids);
  });

  test("counter-case: a drain timeout shorter than the session cuts it, and says so", async () => {
    await sync(sets([cp0, cp1, cp2]));
    const session = await sessionOn("cp-2", ["cp-0", "cp-1"], 15);
    const { sync: r } = await sync(sets([cp0, cp1]), 200);
    expect(r.result.applied.find((a) => a.action.kind === "wait-drained")?.note).toMatch(
      /drain timed out after 200 ms with [1-9]\d* sessions/,
    );
    await waitFor("the session to end", async () => (session.done() ? true : undefined), {
      timeoutMs: 8000,
      intervalMs: 20,
    });
    // cut: a request failed, or the client had to open a second connection (the helper's session stops there)
    const s = readRequests(session.out) as (RequestRecord & { sockets?: number })[];
    expect(s.some((x) => !x.ok || (x.sockets ?? 0) > 1)).toBe(true);
    expect(s.length).toBeLessThan(15);
  });

  test("an address change: the old address drains and goes, the same name comes back on the new one", async () => {
    const { t0, sync: r } = await sync(sets([cp0, cp1Moved]));
    expect(kinds(r.plan)).toEqual([
      "drain be_api/cp-1",
      "wait-drained be_api/cp-1",
      "maint be_api/cp-1",
      "shutdown-sessions be_api/cp-1",
      "delete be_api/cp-1",
      "add be_api/cp-1",
      "enable-health be_api/cp-1",
      "ready be_api/cp-1",
    ]);
    const first = await firstServedBy(log, label(cp1Moved), t0, 1000);
    expect(first).toBeDefined();
    const drainedAt = r.result.applied.find((a) => a.action.kind === "drain")?.finishedAt ?? Infinity;
    await sleep(200);
    expect(served().filter((x) => x.start > drainedAt + 5 && x.server === label(cp1))).toEqual([]);
    expect((await readServers(lb.socket)).find((s) => s.name === "cp-1")).toMatchObject({
      address: "127.0.0.21",
      port,
      adminState: "ready",
    });
  });

  test("ingress workers land in both ingress backends with the renderer's check options, accepted by haproxy 2.6", async () => {
    const { sync: r } = await sync(sets([cp0, cp1Moved], [worker]));
    const ib = spec.ingressBackend;
    expect(r.result.applied.filter((a) => a.action.kind === "add").map((a) => a.command)).toEqual([
      `add server be_ingress_http/w-0 127.0.0.30:${ib?.httpPort} inter 2000ms rise 2 fall 3 check port ${ib?.healthPort}`,
      `add server be_ingress_https/w-0 127.0.0.30:${ib?.httpsPort} inter 2000ms rise 2 fall 3 check port ${ib?.healthPort}`,
    ]);
    const running = await readServers(lb.socket);
    expect(running.filter((s) => s.name === "w-0").map((s) => [s.backend, s.port, s.adminState])).toEqual([
      ["be_ingress_http", ib?.httpPort, "ready"],
      ["be_ingress_https", ib?.httpsPort, "ready"],
    ]);
  });

  test("idempotent: planning against the resulting state yields no actions, and a second sync sends no change", async () => {
    const cfg = lb.config(current);
    const desired = desiredServersFromConfig(cfg);
    expect(planServerChanges(await readServers(lb.socket), desired.servers, desired.backends)).toEqual([]);
    const again = await syncServers(lb.socket, cfg);
    expect(again.plan).toEqual([]);
    expect(again.result).toEqual({ applied: [] });
  });

  test("counter-case: a command against an unknown backend fails with the command and HAProxy's answer; nothing after it runs", async () => {
    await expect(lb.socket.run("set server be_nope/cp-0 state drain")).rejects.toThrow(
      new RuntimeApiError("set server be_nope/cp-0 state drain", "No such backend.", "failed"),
    );
    await expect(lb.socket.run("set server be_nope/cp-0 state drain")).rejects.toThrow(
      /"set server be_nope\/cp-0 state drain" failed: No such backend\./,
    );
    const r = await applyServerChanges(lb.socket, [
      { kind: "add", backend: "be_nope", name: "x", address: "127.0.0.40", port, options: [] },
      { kind: "ready", backend: "be_nope", name: "x" },
    ]);
    expect(r.applied).toEqual([]);
    expect(r.failed?.action.kind).toBe("add");
    expect(r.failed?.error).toBe(
      'haproxy runtime API: "add server be_nope/x 127.0.0.40:6443" failed: No such backend.',
    );
  });

  test("through all of it: no request failed, and HAProxy never reloaded (same master and worker)", async () => {
    expect(served().filter((x) => !x.ok)).toEqual([]);
    expect(served().length).toBeGreaterThan(500);
    expect(await lb.pids()).toEqual(pids);
  });
});
