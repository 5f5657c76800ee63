/**
 * The libvirtd fixture's own clean-up when a run dies without stop() (SIGKILL, or SIGTERM to jest: no exit handler
 * runs): its daemons stay, daemonized; the next fixture's start finds its registry entry dead and stops what its
 * directory records. Needs root and libvirt (tools/setup); skipped otherwise.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { alive } from "./fixtures/libvirtd-registry";
import { firewallSnapshot, startLibvirtd } from "./fixtures/libvirtd";
import { DEAD_RUN_BRIDGE } from "./fixtures/libvirtd-dead-run";

const isRoot = process.getuid?.() === 0 && fs.existsSync("/usr/sbin/libvirtd");
const live = isRoot ? describe : describe.skip;
const REPO = path.resolve(__dirname, "..");

interface DeadRun {
  pid: number;
  dir: string;
  libvirtd: number;
  virtlogd: number;
  dnsmasq: number;
}

/** Starts the dead-run child and returns what it printed, bounded in time; the caller kills it. */
function startChild(args: string[]): Promise<{ run: DeadRun; kill: () => Promise<void> }> {
  const child = spawn(
    path.join(REPO, "node_modules", ".bin", "ts-node"),
    ["--swc", path.join(__dirname, "fixtures", "libvirtd-dead-run.ts"), ...args],
    {
      cwd: REPO,
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const kill = async () => {
    child.kill("SIGKILL");
    await exited;
  };
  let out = "";
  let err = "";
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => void kill().then(() => reject(new Error(`dead-run child printed nothing in 60 s: ${err}`))),
      60_000,
    );
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      if (!out.includes("\n")) return;
      clearTimeout(timer);
      resolve({ run: JSON.parse(out.split("\n")[0]!) as DeadRun, kill });
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      if (!out.includes("\n")) reject(new Error(`dead-run child exited ${code}: ${err}`));
    });
  });
}

live("libvirtd fixture: a run that ends without stop()", () => {
  test.each([
    ["killed (SIGKILL: no exit handler runs)", []],
    ["detached and exited (EDGEPAIR_E2E_KEEP)", ["--detach-and-exit"]],
  ])(
    "%s: its daemons, dnsmasq and bridge outlive it; the next fixture's start removes them and the last stop restores the firewall",
    async (_how, args) => {
      const forwardBefore = fs.readFileSync("/proc/sys/net/ipv4/ip_forward", "utf8").trim();
      const fwBefore = firewallSnapshot();
      const { run, kill } = await startChild(args);
      let reaped: string[] = [];
      try {
        await kill();
        // what the fix is for: neither way of ending ran the fixture's clean-up, so all of it is still there
        for (const pid of [run.libvirtd, run.virtlogd, run.dnsmasq]) expect(alive(pid)).toBe(true);
        expect(fs.existsSync(`/sys/class/net/${DEAD_RUN_BRIDGE}`)).toBe(true);

        const lv = await startLibvirtd();
        reaped = lv.reapedDeadRuns;
        // ...and libvirt's firewall rules for the dead run's network, before this run adds its own: left, they sat
        // beside a later run's rules, and a test that looks for its networks' rules failed on them
        const stale = firewallSnapshot();
        expect(
          [stale.iptables, stale.ip6tables]
            .join("\n")
            .split("\n")
            .filter((l) => l.includes(DEAD_RUN_BRIDGE)),
        ).toEqual([]);
        const report = await lv.stop();
        // other dead runs may be named too (a run killed earlier on this machine): this one is named once
        const ours = reaped.filter((r) => r.startsWith(`run of PID ${run.pid} (${run.dir})`));
        expect(ours).toHaveLength(1);
        for (const part of [
          `libvirtd ${run.libvirtd}`,
          `virtlogd ${run.virtlogd}`,
          `process ${run.dnsmasq} (dnsmasq)`,
          `bridge ${DEAD_RUN_BRIDGE}`,
        ]) {
          expect(ours[0]).toContain(part);
        }
        for (const pid of [run.libvirtd, run.virtlogd, run.dnsmasq]) expect(alive(pid)).toBe(false);
        expect(fs.existsSync(`/sys/class/net/${DEAD_RUN_BRIDGE}`)).toBe(false);
        expect(fs.existsSync(run.dir)).toBe(false);
        if (report.restoredBaseline && reaped.filter((r) => r.startsWith("run of PID")).length === 1) {
          // no other fixture ran or had died: the dead run's chains and forwarding are gone too (another dead run's
          // rules were in the before snapshot, and the baseline rightly removes them as well)
          expect(firewallSnapshot()).toEqual(fwBefore);
          expect(fs.readFileSync("/proc/sys/net/ipv4/ip_forward", "utf8").trim()).toBe(forwardBefore);
        }
      } finally {
        await kill().catch(() => undefined);
        // the assertions failed before a fixture reaped the run: one does it now, so its entry does not stay behind
        if (fs.existsSync(run.dir)) await (await startLibvirtd()).stop().catch(() => undefined);
        // and should even that fail, nothing of the dead run stays running
        for (const pid of [run.libvirtd, run.virtlogd, run.dnsmasq]) if (alive(pid)) process.kill(pid, "SIGKILL");
        if (fs.existsSync(`/sys/class/net/${DEAD_RUN_BRIDGE}`)) spawn("ip", ["link", "del", DEAD_RUN_BRIDGE]);
      }
    },
    120_000,
  );
});
