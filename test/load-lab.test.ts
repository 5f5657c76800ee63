/**
 * The small version of `npm run bench -- load` (issue 23) that CI runs, in the lab with the real daemons:
 * - 100 egress flows (80 TCP, 20 UDP) from the cluster node through the pair's NAT, across an unclean failover and
 *   a fail-back (bench/load.ts egressLoadRun). It fails when one flow is lost; the BACKUP must have held every flow
 *   before the cut and the new MASTER's kernel table must hold them all after it.
 * - 100 keep-alive sessions (80 through the ingress VIP, 20 through the API VIP) across a planned failover and a
 *   fail-back (bench/load-sessions.ts sessionsLoadRun). It fails when one session breaks, and when the handoff did
 *   not carry them (its counter saw no packet).
 * - throughput (bench/load-throughput.ts throughputRun, 1 s per test): every path carries data, the bare path
 *   bypasses the pair (no LB's conntrack table ever sees it) while the NAT path goes through the MASTER's, HAProxy
 *   served the proxied tests (nothing else answers iperf3 on the VIP's port 443), and the ingress backend and
 *   haproxy.cfg are exactly as before afterwards. How fast is the bench's business, not this test's.
 * - VRRP under load (bench/load-vrrp.ts saturate, 20 s at the rendered advert interval): iperf3 both ways through
 *   the NAT and the DESIGN client keep both LBs busy; not one VRRP transition may happen, and the client gets through.
 * Needs root; skipped otherwise.
 */
import { egressLoadRun } from "../bench/load";
import { sessionsLoadRun } from "../bench/load-sessions";
import { backendServers, throughputRun } from "../bench/load-throughput";
import { saturate } from "../bench/load-vrrp";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { HAPROXY_CONFIG_PATH } from "../render/haproxy";
import { BARE_PATH } from "../lab/topology";
import { DEFAULT_SPEC } from "../lab/cli";
import { Lab } from "../lab/lab";
import { readSpec } from "../spec/files";

const suite = process.getuid?.() === 0 ? describe : describe.skip;

suite("the pair under (small) load: egress flows and keep-alive sessions across failovers and fail-backs", () => {
  let lab: Lab;

  beforeAll(async () => {
    lab = await Lab.started(readSpec(DEFAULT_SPEC));
  }, 240_000);

  afterAll(async () => {
    if (lab) await lab.down();
  }, 60_000);

  test("100 flows: none lost, every one synced before the cut and committed after it", async () => {
    const lines: string[] = [];
    const r = await egressLoadRun(lab, "ci", { tcp: 80, udp: 20, intervalMs: 200 }, (l) => lines.push(l));
    console.log(`${lines.join("\n")}\n${JSON.stringify(r)}`);
    expect(r.lost).toEqual([]);
    expect(r.survived).toBe(100);
    expect(r.syncMs).not.toBeNull();
    expect(r.takeoverMs).not.toBeNull();
    // conntrackd did the work: the CPU it spent is measured, not assumed
    expect(r.conntrackdCpuS.lb1 + r.conntrackdCpuS.lb2).toBeGreaterThan(0);
    // the flows ended with a reset: no port of the cluster node waits in TIME_WAIT for the next run (the bench's
    // runs follow each other within TIME_WAIT's minute; with 10,000 flows they crawled through the port range)
    const timeWait = await lab.run(lab.ns("node"), ["ss", "-Htan", "state", "time-wait"]);
    expect(timeWait.stdout.trim().split("\n").filter(Boolean)).toEqual([]);
  }, 300_000);

  test("100 keep-alive sessions: none broken by a planned failover and a fail-back, carried by the handoff", async () => {
    const lines: string[] = [];
    const r = await sessionsLoadRun(lab, "ci", { ingress: 80, api: 20, gapMs: 500, windowMs: 3000 }, (l) =>
      lines.push(l),
    );
    console.log(`${lines.join("\n")}\n${JSON.stringify(r)}`);
    expect(r.brokenSample).toEqual([]);
    expect(r.broken).toEqual({ ingress: 0, api: 0 });
    expect(r.sessions).toEqual({ ingress: 80, api: 20 });
    // the sessions were used throughout: about one request per 500 ms each, not just at the start
    expect(r.requests).toBeGreaterThan(100 * 10);
    // the new MASTER handed their packets back to the LB that holds them; none before the move
    expect(r.handoffPackets).toBeGreaterThan(0);
    expect(r.before.handoffPps).toBe(0);
  }, 300_000);

  test("throughput: every path carries data, the bare path bypasses the pair, the backend is put back", async () => {
    const active = await lab.active();
    const cfg = () => readFileSync(join(lab.renderedRoot(active), HAPROXY_CONFIG_PATH), "utf8");
    const [cfg0, servers0] = [cfg(), await backendServers(lab, active)];
    for (const k of ["lb1", "lb2"] as const) await lab.run(lab.lb(k).ns, ["conntrack", "-F"], { allowFail: true });
    const lines: string[] = [];
    const r = await throughputRun(lab, { seconds: 1 }, (l) => lines.push(l));
    console.log(`${lines.join("\n")}\n${JSON.stringify(r)}`);
    for (const v of Object.values(r.tcpMbps)) expect(v).toBeGreaterThan(0);
    // the rendered haproxy.cfg splices bulk transfers (pipes taken); the copy path beside it takes none
    expect(r.pipes.spliced).toBeGreaterThan(0);
    expect(r.pipes.copy).toBe(0);
    for (const u of Object.values(r.udp)) {
      expect(u.mbps).toBeGreaterThan(0);
      expect(u.lostPct).toBeLessThan(100);
    }
    const entries = async (k: "lb1" | "lb2", dst: string) =>
      (await lab.run(lab.lb(k).ns, ["conntrack", "-L", "-d", dst], { allowFail: true })).stdout.trim();
    for (const k of ["lb1", "lb2"] as const) expect(await entries(k, BARE_PATH.internet)).toBe("");
    expect(await entries(active, lab.plan.targets.internet)).toContain("dport=5201");
    expect(await backendServers(lab, active)).toEqual(servers0);
    expect(cfg()).toBe(cfg0);
  }, 300_000);

  test("VRRP under load: no spurious transition while both LBs are kept busy", async () => {
    const lines: string[] = [];
    const r = await saturate(lab, 20, (l) => lines.push(l));
    console.log(`${lines.join("\n")}\n${JSON.stringify(r)}`);
    expect(r.transitions).toEqual([]);
    expect(r.spurious).toBe(0);
    // the load was there: iperf3 moved data and the client's requests went through
    expect(r.iperfMbps).toBeGreaterThan(0);
    expect(r.requests).toBeGreaterThan(100);
    expect(r.failedRequests).toBe(0);
  }, 120_000);

  test("counter-case: a transition while the LBs are busy is counted", async () => {
    const active = await lab.active();
    const counted = saturate(lab, 8, () => undefined);
    await new Promise((r) => setTimeout(r, 3000));
    await lab.stopKeepalived(active);
    await lab.startKeepalived(active);
    const r = await counted;
    expect(r.spurious).toBeGreaterThanOrEqual(1);
    expect(r.transitions.map((t) => t.state)).toContain("MASTER");
    await lab.waitVrrp(active, "BACKUP", 30_000);
  }, 120_000);
});
