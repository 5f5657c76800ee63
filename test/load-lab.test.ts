/**
 * The small version of `npm run bench -- load` (issue 23) that CI runs: 100 egress flows (80 TCP, 20 UDP) from the
 * cluster node through the pair's NAT, across an unclean failover and a fail-back, in the lab with the real daemons
 * (bench/load.ts egressLoadRun). It fails when one flow is lost; the BACKUP must have held every flow before the
 * cut and the new MASTER's kernel table must hold them all after it. Needs root; skipped otherwise.
 */
import { egressLoadRun } from "../bench/load";
import { DEFAULT_SPEC } from "../lab/cli";
import { Lab } from "../lab/lab";
import { readSpec } from "../spec/files";

const suite = process.getuid?.() === 0 ? describe : describe.skip;

suite("egress flows at (small) scale across an unclean failover and a fail-back", () => {
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
  }, 300_000);
});
