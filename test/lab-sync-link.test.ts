/**
 * The dev pair with spec.syncNetwork, in network namespaces with the real daemons: VRRP and conntrackd's sync run on
 * a link only the two LBs share (render/peer-link.ts). On the cluster network a host can forge the peer's address and
 * make the active LB yield (lab.test.ts shows it); here the same adverts change nothing, and the pair still fails over
 * with its egress flows, whose states came over the sync link. Needs root; skipped otherwise.
 */
import { readFileSync } from "node:fs";
import { flowsReady, startFlows, stopFlows } from "../lab/flows";
import { isAlive, sleep } from "../lab/exec";
import { Lab, leftovers } from "../lab/lab";
import { newPrefix, planLab, PORTS } from "../lab/topology";
import { variants } from "./fixtures/variants";

const spec = variants.find((v) => v.name === "sync-link")!.spec;
const sync = spec.syncNetwork!;

describe("lab plan with a sync link", () => {
  test("each LB gets eth2 on a segment of its own; without syncNetwork there is none", () => {
    const plan = planLab(spec, newPrefix());
    expect(plan.lbs.map((l) => [l.syncLink?.name, l.syncLink?.segment])).toEqual([
      ["eth2", "sync"],
      ["eth2", "sync"],
    ]);
    expect(
      [...plan.hosts, plan.router, plan.rogue].flatMap((h) => h.links).filter((l) => l.segment === "sync"),
    ).toEqual([]);
    const dev = planLab(variants.find((v) => v.name === "dev")!.spec, newPrefix());
    expect(dev.lbs.map((l) => l.syncLink)).toEqual([undefined, undefined]);
  });
});

const isRoot = process.getuid?.() === 0;
const suite = isRoot ? describe : describe.skip;

suite("lab: the pair with VRRP and conntrackd on a sync link", () => {
  let lab: Lab;

  beforeAll(async () => {
    lab = await Lab.started(spec);
  }, 240_000);

  afterAll(async () => {
    if (lab) await lab.down();
  }, 60_000);

  test("up: one MASTER; the peer's adverts arrive on the sync link, from its sync address, and are accepted there", async () => {
    const rows = await lab.status();
    expect(rows.map((r) => r.vrrp).sort()).toEqual(["BACKUP", "MASTER"]);
    const active = await lab.active();
    const backup = lab.other(active);
    // the MASTER advertises; the BACKUP's firewall takes them in the edgepair-sync zone
    const from = sync.lbAddresses[active === "lb1" ? 0 : 1];
    const verdicts = await lab.firewallVerdicts(backup, from, 1500);
    expect(verdicts.length).toBeGreaterThanOrEqual(5);
    expect(verdicts.filter((v) => !/accept/.test(v))).toEqual([]);
    expect((await lab.smoke()).filter((r) => !r.ok)).toEqual([]);
  }, 60_000);

  test("forged adverts from the cluster network change nothing: with the peer's private address or its sync address", async () => {
    const active = await lab.active();
    const backup = lab.other(active);
    const i = (k: string) => (k === "lb1" ? 0 : 1);
    const attempts = [
      // what takes the VIPs without a sync link (lab.test.ts)
      { forge: lab.lb(backup).privateAddress, to: [lab.lb(active).privateAddress] },
      // the peer's address on the link itself, sent to the active LB's sync address (routed there by the gateway VIP)
      { forge: sync.lbAddresses[i(backup)], to: [sync.lbAddresses[i(active)]] },
    ];
    for (const attempt of attempts) {
      const t = Date.now();
      const rogue = await lab.startRogue(attempt);
      try {
        await sleep(1000);
        // from the cluster network only: the peer's genuine sync traffic arrives on the sync link with that source too
        const verdicts = await lab.firewallVerdicts(active, attempt.forge, 2000, {
          iifname: lab.lb(active).privateLink.name,
          protocol: "vrrp",
        });
        expect(verdicts.length).toBeGreaterThanOrEqual(5);
        // the private address: firewalld's internal zone takes no VRRP at all; the sync address: dropped by the guard
        // before conntrack, which would otherwise take it as the reply to this LB's own adverts (established)
        expect(verdicts.filter((x) => !/(reject|drop) .*\(verdict drop\)$/.test(x))).toEqual([]);
        expect(
          verdicts.some((x) =>
            (attempt.forge.startsWith("172.31.255.") ? /^rule iifname != "eth2" ip saddr/ : /^rule reject/).test(x),
          ),
        ).toBe(true);
        await sleep(1000);
        expect(readFileSync(rogue.log, "utf8")).toMatch(/Entering MASTER STATE/); // it did send adverts
        expect(await lab.active()).toBe(active);
        expect([attempt.forge, lab.transitions(active).filter((x) => x.at >= t)]).toEqual([attempt.forge, []]);
      } finally {
        await lab.stopRogue();
        await lab.run(lab.plan.rogue.ns, ["ip", "addr", "del", `${attempt.forge}/32`, "dev", "eth0"], {
          allowFail: true,
        });
      }
      expect(isAlive(rogue)).toBe(false);
    }
  }, 90_000);

  test("unclean failover (every link of the active LB cut, the sync link too): the peer takes over, egress flows survive", async () => {
    const flows = startFlows(lab, "sync/flows", "node", `${lab.plan.targets.internet}:${PORTS.echo}`, {
      tcp: 10,
      udp: 3,
    });
    let report: Awaited<ReturnType<Lab["failover"]>>;
    let figures: Awaited<ReturnType<typeof stopFlows>>;
    try {
      await flowsReady(flows);
      await sleep(1500); // conntrackd sends the new states to the peer over the sync link
      report = await lab.failover({ restore: true, settleMs: 4000 });
      expect(report.vipMovedMs).toBeDefined();
      expect(report.vipMovedMs!).toBeLessThan(3000);
      expect(report.duringCut).toEqual({ vip: [report.to], nextHop: [report.to] });
      expect(report.restored?.returningState).toBe("BACKUP");
    } finally {
      figures = await stopFlows(lab, flows);
    }
    expect(figures.failures).toEqual([]);
    expect(figures.survived).toBe(13);
    process.stdout.write(
      `sync link, unclean failover: VIPs moved in ${report.vipMovedMs} ms; egress flows ${figures.survived}/${figures.total}, longest echo gap ${figures.maxGapMs} ms\n`,
    );
  }, 120_000);

  test("teardown leaves nothing", async () => {
    await lab.down();
    expect(await leftovers(lab.state)).toEqual([]);
  }, 60_000);
});
