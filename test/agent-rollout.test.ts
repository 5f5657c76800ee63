/**
 * BACKUP first (issue 8 item 2) with the real daemons: `agent run` on BOTH LBs of the lab (real haproxy,
 * keepalived, conntrackd, firewalld in network namespaces), one real API server, each agent with its own status
 * entry (test/fixtures/agent-on-lab.ts). A client opens a new TLS connection to the public API VIP every 25 ms
 * while a change rolls out.
 * 1. A risky change (metrics.port: HAProxy's stats listener, the firewall's rich rule and keepalived's HAProxy
 *    check all move to a new port) goes live on the BACKUP first; the MASTER logs that it waits, and applies only
 *    once the BACKUP reports it applied and Ready. Both then serve the new port for real (through HAProxy AND the
 *    reloaded firewall), keepalived checks it (no VRRP transition), and no request fails.
 * 2. A risky change whose health gate fails (a health-check tuning with an API port no API server listens on:
 *    every be_api server goes DOWN) is applied by the BACKUP, reverted to byte-identical files and reported
 *    (lastError, Ready False, Degraded True); the MASTER never applies it; no request fails.
 * 3. The API port alone (it only rewrites haproxy.cfg's server lines) is a port change too: BACKUP first and gated.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { sha256 } from "../agent/apply";
import { readRequests, type RequestRecord } from "../lab/analysis";
import { stopProcess, type ProcessRecord } from "../lab/exec";
import { leftovers, type LbKey } from "../lab/lab";
import { renderAll } from "../render";
import { HAPROXY_CONFIG_PATH } from "../render/haproxy";
import { resolveSpec } from "../spec/resolve";
import { MERGE } from "./fixtures/agent-cluster";
import { startAgentOnLab, type AgentOnLab, type LabAgent } from "./fixtures/agent-on-lab";
import { devSpecRaw } from "./fixtures/variants";

jest.setTimeout(300_000);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const suite = process.getuid?.() === 0 ? describe : describe.skip;

type Condition = { type: string; status: string; reason: string; message: string };
type Entry = {
  name: string;
  configHashes?: Record<string, string>;
  lastError?: string;
  conditions?: Condition[];
  vrrpState?: string;
};
type Raw = Record<string, unknown>;

/** Polls `probe` every `everyMs` until it returns a value, at most `timeoutMs`; the error names what was awaited. */
async function until<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T | undefined> | T | undefined,
  everyMs = 100,
  context: () => string = () => "",
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}\n${context()}`);
    await sleep(everyMs);
  }
}

/** Log lines in order with repeats folded ("... (x41)"), so a waiting loop does not drown the rest. */
function folded(lines: readonly string[]): string {
  const out: { line: string; n: number }[] = [];
  for (const line of lines) {
    const last = out.at(-1);
    if (last?.line === line) last.n++;
    else out.push({ line, n: 1 });
  }
  return out.map((o) => `  ${o.line}${o.n > 1 ? ` (x${o.n})` : ""}`).join("\n");
}

const NEW_METRICS_PORT = 9404;
const DEAD_API_PORT = 7443;
const GATE_TIMEOUT_MS = 10_000;

suite("BACKUP first, health-gated: two agents on the live lab, one API server", () => {
  let h: AgentOnLab | undefined;
  let master: LabAgent;
  let backup: LabAgent;
  const lab = () => h!.lab;
  const figures: string[] = [];
  /** the spec in the LoadBalancer now (each test patches it further) */
  let spec: Raw = devSpecRaw();

  const entries = async (): Promise<Entry[]> => {
    const lb = (await h!.cluster.must("GET", h!.cluster.lbPath)).body as { status?: { loadBalancers?: Entry[] } };
    return lb.status?.loadBalancers ?? [];
  };
  const entry = async (a: LabAgent) => (await entries()).find((e) => e.name === a.hostname);
  const cond = (e: Entry | undefined, type: string) => e?.conditions?.find((c) => c.type === type);
  const live = (a: LabAgent, path: string) => readFileSync(join(lab().renderedRoot(a.key), path));
  const mtime = (a: LabAgent, path: string) => statSync(join(lab().renderedRoot(a.key), path)).mtimeMs;
  /** what this LB must run for `raw` (the cluster's Nodes are the lab's backends) */
  const rendered = (a: LabAgent, raw: Raw) =>
    renderAll({ spec: resolveSpec(raw), host: lab().state.hostFacts[a.key]!, backends: lab().plan.backends });
  /** every file of this LB's render as it is on disk now */
  const tree = (a: LabAgent): Map<string, string> =>
    new Map(rendered(a, spec).map((f) => [f.path, live(a, f.path).toString("base64")]));
  const runs = (a: LabAgent, raw: Raw) => rendered(a, raw).every((f) => live(a, f.path).toString("utf8") === f.content);
  const logs = () =>
    `MASTER ${master.key} log:\n${folded(master.log)}\nBACKUP ${backup.key} log:\n${folded(backup.log)}`;
  const firstEvent = (a: LabAgent, re: RegExp, from: number) => a.events.find((e) => e.at >= from && re.test(e.line));
  /** VRRP transitions since `t` that changed an LB's role (a keepalived reload re-announces the state it keeps) */
  const roleChangesSince = (t: number) =>
    [master, backup].flatMap((a) =>
      lab()
        .transitions(a.key)
        .filter((x) => x.at >= t && x.state !== (a === master ? "MASTER" : "BACKUP"))
        .map((x) => `${a.key} ${x.state} +${x.at - t} ms`),
    );
  /** keepalived's own words about its HAProxy check (the lab's daemon logs), to read a failure */
  const keepalivedScriptLog = () =>
    (["lb1", "lb2"] as LbKey[])
      .map((k) => {
        const file = join(lab().dir, "logs", `${k}-keepalived.log`);
        const lines = existsSync(file)
          ? readFileSync(file, "utf8")
              .split("\n")
              .filter((l) => /Script|Entering|FAULT|Reload/i.test(l))
          : [];
        return `${k} keepalived:\n    ${lines.slice(-12).join("\n    ")}`;
      })
      .join("\n");
  /** what both LBs did since `t` (ms after it), in order: to read a failure */
  const timeline = (t: number) =>
    [master, backup]
      .flatMap((a) => [
        ...a.reloadEvents
          .filter((r) => r.at >= t)
          .map((r) => ({ at: r.at, what: `${a.key} ${r.command} (${r.ms} ms)` })),
        ...a.events
          .filter((e) => e.at >= t && !e.line.startsWith("waiting"))
          .map((e) => ({ at: e.at, what: `${a.key} ${e.line.slice(0, 80)}` })),
        ...lab()
          .transitions(a.key)
          .filter((x) => x.at >= t)
          .map((x) => ({ at: x.at, what: `${a.key} VRRP ${x.state}` })),
      ])
      .sort((x, y) => x.at - y.at)
      .map((x) => `+${x.at - t} ms ${x.what}`);
  /** a JSON merge patch of the LoadBalancer's spec (null removes a field), mirrored in `spec` */
  const patchSpec = async (patch: Raw) => {
    const next: Raw = { ...spec };
    for (const [k, v] of Object.entries(patch)) {
      if (v === null) delete next[k];
      else next[k] = v;
    }
    spec = next;
    await h!.cluster.must("PATCH", h!.cluster.lbPath, { spec: patch }, MERGE);
  };

  let clients = 0;
  /** a new TLS connection to the public API VIP every 25 ms (bounded: 150 s at most); stop() returns what it saw */
  const startClient = () => {
    const name = `rollout-client-${++clients}`;
    const out = join(lab().dir, "logs", `${name}.jsonl`);
    const p: ProcessRecord = lab().startClient(
      name,
      `https://${lab().plan.targets.apiVipPublic}:${lab().state.spec.apiBackend.port}/who`,
      out,
      { intervalMs: 25, timeoutMs: 3000, maxMs: 150_000 },
    );
    return async (): Promise<RequestRecord[]> => {
      await lab()
        .stopClient(p)
        .catch(() => stopProcess(p, 2000));
      return readRequests(out);
    };
  };
  const clientSummary = (r: RequestRecord[]) => {
    const failed = r.filter((x) => !x.ok);
    return {
      total: r.length,
      failed: failed.length,
      errors: [...new Set(failed.map((x) => x.err ?? `status ${x.status}`))],
    };
  };
  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

  beforeAll(async () => {
    h = await startAgentOnLab({ both: true, waitPollMs: 500, gateTimeoutMs: GATE_TIMEOUT_MS });
    master = h.agents[h.key]!;
    backup = h.agents[lab().other(h.key)]!;
    // both report the bootstrap render (nothing to apply) before anything changes
    for (const a of [master, backup]) {
      await until(
        `${a.key} reports its render, Ready`,
        30_000,
        async () => {
          const e = await entry(a);
          return e?.configHashes?.all && cond(e, "Ready")?.status === "True" ? true : undefined;
        },
        200,
        logs,
      );
      expect(runs(a, spec)).toBe(true);
    }
    expect((await entry(master))?.vrrpState).toBe("Master");
    expect((await entry(backup))?.vrrpState).toBe("Backup");
    expect([...master.reloads, ...backup.reloads]).toEqual([]);
  }, 300_000);

  afterAll(async () => {
    if (!h) return;
    const state = { ...lab().state };
    await h.stop();
    if (figures.length > 0) process.stderr.write(`[agent-rollout]\n  ${figures.join("\n  ")}\n`);
    expect(await leftovers(state)).toEqual([]);
  }, 120_000);

  test("a risky change (metrics port: HAProxy, firewall, keepalived) goes to the BACKUP, then to the MASTER, which first hands the VIPs over for its firewall reload; no request fails", async () => {
    const oldPort = lab().state.spec.metrics.port;
    const before = {
      master: (await entry(master))?.configHashes?.all,
      backup: (await entry(backup))?.configHashes?.all,
    };
    const vipBefore = await lab().holders();
    const stopClient = startClient();
    let records: RequestRecord[] = [];
    let backupReportedAt = 0;
    let masterReportedAt = 0;
    let t0 = 0;
    try {
      await sleep(1000); // a baseline through the MASTER
      t0 = Date.now();
      await patchSpec({ metrics: { port: NEW_METRICS_PORT } });
      // the BACKUP runs the new render and reports it applied and Ready; the MASTER has not applied it then
      backupReportedAt = await until(
        "the BACKUP runs the new render and reports it applied and Ready",
        60_000,
        async () => {
          const e = await entry(backup);
          return runs(backup, spec) && e?.configHashes?.all !== before.backup && cond(e, "Ready")?.status === "True"
            ? Date.now()
            : undefined;
        },
        100,
        logs,
      );
      expect(runs(master, spec)).toBe(false);
      const lastAll: { master?: string; backup?: string } = {};
      masterReportedAt = await until(
        "the MASTER runs the new render and reports it applied and Ready",
        60_000,
        async () => {
          const [e, b] = [await entry(master), await entry(backup)];
          lastAll.master = e?.configHashes?.all;
          lastAll.backup = b?.configHashes?.all;
          return runs(master, spec) && e?.configHashes?.all !== before.master && cond(e, "Ready")?.status === "True"
            ? Date.now()
            : undefined;
        },
        100,
        () =>
          `${logs()}\nreported configHashes.all: ${master.hostname} ${lastAll.master}, ${backup.hostname} ${lastAll.backup}`,
      );
      await sleep(6000); // requests across the MASTER's reloads finish; keepalived's check (fall 3: ~2.6 s refused, ~5.5 s hung) had time to fail
    } finally {
      records = await stopClient();
    }

    // order: the MASTER waited for the BACKUP and applied only once the BACKUP was live and reported it
    const waited = firstEvent(master, new RegExp(`waiting for ${backup.hostname} to apply`), t0);
    const backupApplying = firstEvent(backup, /applying risky change/, t0);
    const masterApplying = firstEvent(master, /applying risky change/, t0);
    expect({ waited: !!waited, backupApplying: !!backupApplying, masterApplying: !!masterApplying }).toEqual({
      waited: true,
      backupApplying: true,
      masterApplying: true,
    });
    expect(masterApplying!.line).toContain(`${backup.hostname} applied it and is Ready`);
    // a switched file keeps the mtime of its staging (write, then rename after the checkers passed)
    const backupStaged = mtime(backup, HAPROXY_CONFIG_PATH);
    const masterStaged = mtime(master, HAPROXY_CONFIG_PATH);
    const haproxyReload = (a: LabAgent) =>
      a.reloadEvents.find((r) => r.at >= t0 && r.command === "systemctl reload haproxy.service")?.at ?? 0;
    expect(waited!.at).toBeLessThan(masterApplying!.at);
    expect(haproxyReload(backup)).toBeGreaterThan(0);
    expect(haproxyReload(backup)).toBeLessThan(masterApplying!.at);
    // the test polls every 100 ms: it saw the BACKUP's report at most a poll (plus a GET) after the MASTER's watch did
    expect(masterApplying!.at).toBeGreaterThan(backupReportedAt - 1000);
    expect(backupStaged).toBeLessThan(masterStaged);
    expect(haproxyReload(backup)).toBeLessThan(haproxyReload(master));
    // each LB reloaded HAProxy and firewalld once, with keepalived stopped around the firewall reload (its start reads
    // the new keepalived.conf, so no reload of it): firewalld drops every new packet while it rebuilds
    for (const a of [master, backup]) {
      const commands = a.reloadEvents.filter((r) => r.at >= t0).map((r) => r.command);
      expect([...commands].sort()).toEqual([
        "firewall-cmd --reload",
        "systemctl reload haproxy.service",
        "systemctl start keepalived.service",
        "systemctl stop keepalived.service",
      ]);
      expect(commands.indexOf("systemctl stop keepalived.service")).toBeLessThan(
        commands.indexOf("firewall-cmd --reload"),
      );
      expect(commands.indexOf("firewall-cmd --reload")).toBeLessThan(
        commands.indexOf("systemctl start keepalived.service"),
      );
    }
    expect(firstEvent(master, new RegExp(`MASTER: hands the VIPs to ${backup.hostname}`), t0)).toBeDefined();
    // what the MASTER waited for is what the BACKUP reports: the two entries agree once both run the change
    const after = {
      master: (await entry(master))?.configHashes?.all,
      backup: (await entry(backup))?.configHashes?.all,
    };
    expect(after.master).toBe(after.backup);

    // both run it for real: the new port answers through HAProxy and the reloaded firewall, the old one is gone
    const node = lab().ns("node");
    for (const k of ["lb1", "lb2"] as LbKey[]) {
      const addr = lab().lb(k).privateAddress;
      const now = await lab().curl(node, `http://${addr}:${NEW_METRICS_PORT}/healthz`, 2);
      expect({ k, ok: now.ok, error: now.error }).toEqual({ k, ok: true, error: "" });
      const old = await lab().curl(node, `http://${addr}:${oldPort}/healthz`, 2);
      expect({ k, ok: old.ok }).toEqual({ k, ok: false });
    }
    // no request failed, all went through the MASTER, the MASTER stayed MASTER and kept the VIPs (keepalived
    // checks the new port: it was reloaded, with the old check it would have gone FAULT).
    // Seen failing on a loaded machine, all from firewalld's reload, which drops every new connection (loopback too)
    // while it rebuilds (firewalld 1.3 nftables backend, the `firewalld_policy_drop` table): on the MASTER, new
    // client connections time out and keepalived's HAProxy check (then curl 1 s, fall 2; now 3 s, fall 3) fails -> failover; on the
    // BACKUP, the MASTER's unicast adverts are dropped -> it turns MASTER for a moment and serves (dual MASTER).
    const c = clientSummary(records.filter((r) => r.start >= t0));
    const via = [...new Set(records.map((r) => r.peer))];
    const changes = roleChangesSince(t0);
    if (c.failed > 0) {
      const failed = records
        .filter((r) => r.start >= t0 && !r.ok)
        .map((r) => `+${Math.round(r.start - t0)} ms ${r.err ?? r.status}`);
      const viaBackup = records
        .filter((r) => r.start >= t0 && r.peer === lab().lb(backup.key).privateAddress)
        .map((r) => `+${Math.round(r.start - t0)}`);
      process.stderr.write(
        `[agent-rollout] failed requests: ${failed.join(", ") || "none"}; served by the BACKUP: ${viaBackup.join(", ") || "none"}\n` +
          `since the change:\n  ${timeline(t0).join("\n  ")}\n${keepalivedScriptLog()}\n`,
      );
    }
    const firewalld = (a: LabAgent) =>
      a.reloadEvents.find((r) => r.at >= t0 && r.command === "firewall-cmd --reload")?.ms ?? 0;
    figures.push(
      `risky change (metrics.port ${oldPort} -> ${NEW_METRICS_PORT}): BACKUP ${backup.key} files staged after ${s(backupStaged - t0)}, ` +
        `firewall-cmd --reload took ${s(firewalld(backup))}, HAProxy reloaded after ${s(haproxyReload(backup) - t0)}, ` +
        `reported applied+Ready after ${s(backupReportedAt - t0)}; MASTER ${master.key} started after ${s(masterApplying!.at - t0)}, ` +
        `firewall-cmd --reload took ${s(firewalld(master))}, HAProxy reloaded after ${s(haproxyReload(master) - t0)}, ` +
        `reported applied+Ready after ${s(masterReportedAt - t0)} (whole rollout); ` +
        `client: ${c.total} requests, ${c.failed} failed; VRRP changes: ${changes.join(", ") || "none"}`,
    );
    expect(c.total).toBeGreaterThan(100);
    expect(c).toEqual({ total: c.total, failed: 0, errors: [] });
    // a planned failover: the former BACKUP (which ran the change already) took the VIPs and the next hop and keeps
    // them (nopreempt); the former MASTER came back as BACKUP. Both served, one after the other.
    expect(vipBefore).toEqual({ vip: [master.key], nextHop: [master.key] });
    expect(await lab().holders()).toEqual({ vip: [backup.key], nextHop: [backup.key] });
    expect(changes.some((x) => x.startsWith(`${backup.key} MASTER`))).toBe(true);
    expect(new Set(via)).toEqual(new Set([lab().lb(master.key).privateAddress, lab().lb(backup.key).privateAddress]));
    // the roles the next tests rely on
    [master, backup] = [backup, master];
  });

  /** Applies `patch`, waits for the BACKUP's gate to fail and the revert; asserts what both tests 2 and 3 need. */
  const failingGate = async (label: string, patch: Raw) => {
    const before = { master: tree(master), backup: tree(backup) };
    const backupAll = (await entry(backup))?.configHashes?.all;
    const masterMtime = mtime(master, HAPROXY_CONFIG_PATH);
    const reloadsBefore = { master: master.reloads.length, backup: backup.reloads.length };
    const vipBefore = await lab().holders();
    const stopClient = startClient();
    let records: RequestRecord[] = [];
    let t0 = 0;
    let sawApiDown = false;
    let gateFailedAt = 0;
    let servingAgainAt = 0;
    try {
      await sleep(1000);
      t0 = Date.now();
      await patchSpec(patch);
      // while the BACKUP runs the bad render, HAProxy there really marks every API server DOWN
      gateFailedAt = await until(
        "the BACKUP's health gate fails",
        GATE_TIMEOUT_MS + 30_000,
        async () => {
          const api = (
            await lab()
              .backendHealth(backup.key)
              .catch(() => [])
          ).filter((b) => b.backend === "be_api");
          if (api.length > 0 && api.every((b) => b.status.startsWith("DOWN"))) sawApiDown = true;
          return firstEvent(backup, /health gate failed/, t0)?.at;
        },
        100,
        logs,
      );
      await backup.agent.idle();
      // the reverted HAProxy serves again: every API server UP on the BACKUP
      servingAgainAt = await until(
        "every be_api server UP again on the BACKUP",
        20_000,
        async () => {
          const api = (
            await lab()
              .backendHealth(backup.key)
              .catch(() => [])
          ).filter((b) => b.backend === "be_api");
          return api.length > 0 && api.every((b) => b.status === "UP") ? Date.now() : undefined;
        },
        200,
      );
      await sleep(3000); // the MASTER keeps waiting (it looks again every 500 ms); requests in flight finish
    } finally {
      records = await stopClient();
    }
    const revertedAt =
      backup.reloadEvents.filter((r) => r.at >= t0 && r.command === "systemctl reload haproxy.service").at(-1)?.at ?? 0;

    expect(sawApiDown).toBe(true);
    // BACKUP: applied it (a reload), the gate failed, reverted (a second reload) to byte-identical files
    expect(backup.reloads.slice(reloadsBefore.backup)).toEqual([
      "systemctl reload haproxy.service",
      "systemctl reload haproxy.service",
    ]);
    expect(tree(backup)).toEqual(before.backup);
    // its status: the reason, not Ready, Degraded; the file hashes are those of what is live again
    const e = await until(
      "the BACKUP's entry reports the failed gate",
      10_000,
      async () => {
        const x = await entry(backup);
        return x?.lastError?.includes("health gate failed") ? x : undefined;
      },
      200,
      logs,
    );
    expect(cond(e, "Ready")).toMatchObject({ status: "False", reason: "ServicesDown" });
    expect(cond(e, "Degraded")).toMatchObject({ status: "True", reason: "ApplyFailed" });
    expect(cond(e, "Degraded")?.message).toContain("health gate failed");
    expect([backupAll, undefined]).toContain(e.configHashes?.all);
    expect({ haproxyCfgHash: e.configHashes?.[HAPROXY_CONFIG_PATH] }).toEqual({
      haproxyCfgHash: sha256(live(backup, HAPROXY_CONFIG_PATH)),
    });

    // MASTER: waited, never applied: same files, same mtime, no reload
    expect(firstEvent(master, new RegExp(`waiting for ${backup.hostname} to apply`), t0)).toBeDefined();
    expect(firstEvent(master, /applying/, t0)).toBeUndefined();
    expect(tree(master)).toEqual(before.master);
    expect(mtime(master, HAPROXY_CONFIG_PATH)).toBe(masterMtime);
    expect(master.reloads.length).toBe(reloadsBefore.master);

    // serving never stopped: no request failed, no VRRP role changed, the VIPs stayed
    const c = clientSummary(records.filter((r) => r.start >= t0));
    expect(c.total).toBeGreaterThan(100);
    expect(c).toEqual({ total: c.total, failed: 0, errors: [] });
    if (roleChangesSince(t0).length > 0)
      process.stderr.write(
        `[agent-rollout] VRRP role changed; since the change:\n  ${timeline(t0).join("\n  ")}\n${keepalivedScriptLog()}`,
      );
    expect(roleChangesSince(t0)).toEqual([]);
    expect(await lab().holders()).toEqual(vipBefore);

    figures.push(
      `failing gate (${label}): BACKUP gate failed after ${s(gateFailedAt - t0)} (bound ${s(GATE_TIMEOUT_MS)}), reverted (reload) after ${s(revertedAt - t0)}, ` +
        `every API server UP again after ${s(servingAgainAt - t0)}; MASTER unchanged; client: ${c.total} requests, ${c.failed} failed`,
    );
  };

  test("a risky change whose health gate fails: the BACKUP reverts to the last good files and reports it; the MASTER never applies it; no request fails", async () => {
    const backupLog = backup.log.length;
    await failingGate(`healthCheck.intervalSeconds 1 + apiBackend.port ${DEAD_API_PORT}`, {
      healthCheck: { intervalSeconds: 1 },
      apiBackend: { ...(spec.apiBackend as Raw), port: DEAD_API_PORT },
    });
    expect(backup.log.slice(backupLog).find((l) => l.startsWith("applying"))).toMatch(
      /^applying risky change \(\/etc\/haproxy\/haproxy\.cfg\): BACKUP: goes first, health-gated$/,
    );
  });

  test("the API port alone (only haproxy.cfg's server lines change) is a port change: BACKUP first, gated, reverted; the MASTER never applies it", async () => {
    // the LoadBalancer back to the last good spec first: nothing to do for either LB
    await patchSpec({
      healthCheck: null,
      apiBackend: { ...(spec.apiBackend as Raw), port: lab().state.spec.apiBackend.port },
    });
    await until(
      "both LBs idle on the last good spec",
      10_000,
      async () => {
        await Promise.all([master.agent.idle(), backup.agent.idle()]);
        return runs(master, spec) && runs(backup, spec) ? true : undefined;
      },
      200,
      logs,
    );
    const backupLog = backup.log.length;
    await failingGate(`apiBackend.port ${DEAD_API_PORT} alone`, {
      apiBackend: { ...(spec.apiBackend as Raw), port: DEAD_API_PORT },
    });
    expect(backup.log.slice(backupLog).find((l) => l.startsWith("applying"))).toMatch(/^applying risky change/);
  });
});
