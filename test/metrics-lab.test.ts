/**
 * A real Prometheus (Debian's package) scraping the lab's two LBs (issue 21 item 3): an agent on each LB of the
 * network-namespace lab (real haproxy, keepalived, conntrackd, firewalld) against a real API server; Prometheus runs
 * on the lab's cluster node, with the shipped scrape config (k8s/scrape-config.ts) and the shipped alert rules
 * (k8s/edgepair-alerts.rules.yaml) as they are. It scrapes through HAProxy's metrics listener with the password and
 * is refused without it; the VRRP series move when the active LB's links are cut; the split-brain and not-Redundant
 * alerts fire within a bounded time and resolve after. The times measured are printed. Needs root.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { exec, sleep, waitFor } from "../lab/exec";
import { inNetns, tail, type LbKey } from "../lab/lab";
import { scrapeConfig } from "../k8s/scrape-config";
import { runProgram } from "../cli/program";
import { LAB_METRICS_PASSWORD, startAgentOnLab, type AgentOnLab } from "./fixtures/agent-on-lab";

const suite = process.getuid?.() === 0 ? describe : describe.skip;

const PROMETHEUS_PORT = 19090;
/** the shipped rules, as a Prometheus without the operator loads them */
const ALERT_RULES_FILE = join(__dirname, "..", "k8s", "edgepair-alerts.rules.yaml");

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}
interface Alert {
  labels: Record<string, string>;
  state: "pending" | "firing";
}

suite("Prometheus scrapes the lab pair and the alerts fire and resolve", () => {
  let env: AgentOnLab | undefined;
  let prometheus: ChildProcess | undefined;
  let dir: string;
  const timings: Record<string, number> = {};

  const nodeNs = () => env!.lab.ns("node");
  const api = async (path: string): Promise<unknown> => {
    const r = await env!.lab.curl(nodeNs(), `http://127.0.0.1:${PROMETHEUS_PORT}${path}`);
    if (!r.ok) throw new Error(`Prometheus ${path}: ${r.error}`);
    return (JSON.parse(r.body) as { data: unknown }).data;
  };
  const query = async (q: string): Promise<Sample[]> =>
    ((await api(`/api/v1/query?query=${encodeURIComponent(q)}`)) as { result: Sample[] }).result;
  const firing = async (name: string): Promise<Alert[]> =>
    ((await api("/api/v1/alerts")) as { alerts: Alert[] }).alerts.filter(
      (a) => a.labels.alertname === name && a.state === "firing",
    );
  const address = (k: LbKey) => {
    const l = env!.lab;
    return l.state.spec.network.lbAddresses[l.state.hostFacts[k]!.role === "primary" ? 0 : 1]!;
  };
  const target = (k: LbKey) => `${address(k)}:${env!.lab.state.spec.metrics.port}`;
  /** `edgepair status` as an on-call engineer runs it, with the admin's kubeconfig; its text is printed for the note */
  const status = async (when: string) => {
    let text = "";
    const code = await runProgram(
      ["status", "--kubeconfig", join(dir, "admin.kubeconfig"), "--namespace", env!.cluster.namespace, "--name", "lab"],
      [],
      (s) => (text += s),
    );
    process.stdout.write(`edgepair status (${when}): exit ${code}\n${text}\n`);
    return { code, text };
  };
  const masterOf = async (k: LbKey) =>
    (await query(`edgepair_vrrp_state{state="MASTER",instance="${target(k)}"}`))[0]?.value[1];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "edgepair-prometheus-"));
    env = await startAgentOnLab({ both: true });
    const passwordFile = join(dir, "metrics-password");
    writeFileSync(passwordFile, LAB_METRICS_PASSWORD, { mode: 0o600 });
    writeFileSync(join(dir, "admin.kubeconfig"), env.kube.adminKubeConfig, { mode: 0o600 });
    const keys: LbKey[] = ["lb1", "lb2"];
    const shipped = scrapeConfig({
      pair: {
        cluster: env.lab.state.spec.clusterName,
        port: env.lab.state.spec.metrics.port,
        lbs: keys.map((k) => ({ name: env!.lab.state.hostFacts[k]!.hostname, address: address(k) })),
      },
      passwordFile,
      scrapeInterval: "1s",
    });
    const config = {
      global: { scrape_interval: "1s", evaluation_interval: "1s", scrape_timeout: "900ms" },
      rule_files: [ALERT_RULES_FILE],
      scrape_configs: [
        shipped,
        // the same targets without the password: refused
        { job_name: "no-password", static_configs: [{ targets: keys.map(target) }] },
        {
          job_name: "wrong-password",
          basic_auth: { username: "edgepair", password: "not-the-password" },
          static_configs: [{ targets: [target("lb1")] }],
        },
      ],
    };
    writeFileSync(join(dir, "prometheus.yml"), stringify(config));
    const [cmd, ...args] = inNetns(nodeNs(), [
      "prometheus",
      `--config.file=${join(dir, "prometheus.yml")}`,
      `--storage.tsdb.path=${join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${PROMETHEUS_PORT}`,
      "--log.level=warn",
    ]);
    prometheus = spawn(cmd!, args, { stdio: "ignore" });
    await waitFor(
      "Prometheus scraping both LBs",
      async () => {
        const up = await query('up{job="edgepair"} == 1').catch(() => []);
        return up.length === 2 ? true : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );
  }, 300_000);

  afterAll(async () => {
    if (prometheus?.pid) prometheus.kill("SIGKILL");
    await env?.stop();
    rmSync(dir, { recursive: true, force: true });
    process.stdout.write(`metrics-lab timings (s): ${JSON.stringify(timings)}\n`);
  }, 120_000);

  it("scrapes both LBs with the password and is refused without it, counting the wrong password", async () => {
    const lab = env!.lab;
    const active = await lab.active();
    expect(await masterOf(active)).toBe("1");
    expect(await masterOf(lab.other(active))).toBe("0");
    // HAProxy's exporter arrives through the agent, per LB
    expect(await query('haproxy_process_nbthread{job="edgepair"}')).toHaveLength(2);
    expect(await query('edgepair_ready{job="edgepair"} == 1')).toHaveLength(2);
    expect((await query('edgepair_pool_servers{job="edgepair",pool="be_api",state="up"}')).length).toBe(2);
    await waitFor(
      "refused scrapes counted",
      async () => {
        const refused = await query('up{job=~"no-password|wrong-password"} == 0');
        const ok = await query('up{job=~"no-password|wrong-password"} == 1');
        const counted = await query(`edgepair_metrics_auth_failures_total{instance="${target("lb1")}"} > 2`);
        return refused.length === 3 && ok.length === 0 && counted.length === 1 ? true : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 500 },
    );
    // the monitor URI needs no password (keepalived's check, the ready gate); every other path does
    expect((await lab.curl(nodeNs(), `http://${target(active)}/healthz`)).ok).toBe(true);
    const plain = await lab.curl(nodeNs(), `http://${target(active)}/metrics`);
    expect(plain.ok).toBe(false);
    expect(plain.error).toMatch(/401/);
    const st = await status("both LBs up");
    expect(st.code).toBe(0);
    expect(st.text).toMatch(/Redundant True \(BothReady\)/);
  }, 60_000);

  it("keeps scraping while another cluster host floods the metrics port (per-source limits at HAProxy)", async () => {
    const lab = env!.lab;
    const active = await lab.active();
    const flood = await exec(
      inNetns(
        lab.ns("wk1"),
        lab.helperArgv("flood", "--url", `http://${target(active)}/metrics`, "--connections", "24", "--max-ms", "6000"),
      ),
      { timeoutMs: 40_000 },
    );
    const result = JSON.parse(flood.stdout.trim().split("\n").pop() ?? "{}") as {
      requests: number;
      statuses: Record<string, number>;
    };
    // the flood was refused by HAProxy (429 over the rate, resets over the connection count, 401 without a password)
    expect(result.requests).toBeGreaterThan(200);
    expect((result.statuses["200"] ?? 0) + (result.statuses["401"] ?? 0)).toBeLessThanOrEqual(6 * 20 + 20);
    // and Prometheus, on another host, missed no scrape of the flooded LB meanwhile
    const min = await query(`min_over_time(up{job="edgepair",instance="${target(active)}"}[6s])`);
    expect(min[0]?.value[1]).toBe("1");
  }, 60_000);

  it("fires the split-brain alert while VRRP between the LBs is cut, and resolves it after", async () => {
    const lab = env!.lab;
    const backup = lab.other(await lab.active());
    // Both LBs stop hearing each other's adverts (and only those), and both stay scrapeable. Cutting one direction
    // is not a split brain when the deaf LB has the higher priority: its adverts send the active one to BACKUP
    // (a CI run failed so, with the secondary active after nopreempt let it win the first election).
    const nss = [backup, lab.other(backup)].map((k) => lab.lb(k).ns);
    try {
      for (const ns of nss) {
        await lab.run(ns, ["nft", "add", "table", "inet", "eptest"]);
        await lab.run(ns, ["nft", "add chain inet eptest in { type filter hook input priority -300; policy accept; }"]);
        await lab.run(ns, ["nft", "add rule inet eptest in ip protocol vrrp drop"]);
      }
      const t0 = Date.now();
      await waitFor(
        "both LBs MASTER in Prometheus",
        async () => ((await masterOf(backup)) === "1" ? true : undefined),
        {
          timeoutMs: 20_000,
          intervalMs: 250,
        },
      );
      timings.splitBrainSeen = (Date.now() - t0) / 1000;
      await waitFor(
        "EdgepairSplitBrain firing",
        async () => ((await firing("EdgepairSplitBrain")).length > 0 ? true : undefined),
        { timeoutMs: 60_000, intervalMs: 250 },
      );
      timings.splitBrainFiring = (Date.now() - t0) / 1000;
    } finally {
      for (const ns of nss) await lab.run(ns, ["nft", "delete", "table", "inet", "eptest"], { allowFail: true });
    }
    const t1 = Date.now();
    await waitFor(
      "EdgepairSplitBrain resolved",
      async () => ((await firing("EdgepairSplitBrain")).length === 0 ? true : undefined),
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    timings.splitBrainResolved = (Date.now() - t1) / 1000;
    const masters = await query('edgepair_vrrp_state{job="edgepair",state="MASTER"} == 1');
    expect(masters).toHaveLength(1);
  }, 180_000);

  it("moves the series when the active LB's links are cut, fires not-Redundant, and resolves after the restore", async () => {
    const lab = env!.lab;
    const active = await lab.active();
    const peer = lab.other(active);
    const t0 = await lab.cut(active);
    try {
      await waitFor("the peer MASTER in Prometheus", async () => ((await masterOf(peer)) === "1" ? true : undefined), {
        timeoutMs: 30_000,
        intervalMs: 250,
      });
      timings.masterMovedSeen = (Date.now() - t0) / 1000;
      await waitFor(
        "the cut LB's scrape failing",
        async () =>
          (await query(`up{job="edgepair",instance="${target(active)}"} == 0`)).length === 1 ? true : undefined,
        { timeoutMs: 30_000, intervalMs: 250 },
      );
      await waitFor(
        "EdgepairPairNotRedundant firing",
        async () => ((await firing("EdgepairPairNotRedundant")).length > 0 ? true : undefined),
        { timeoutMs: 120_000, intervalMs: 500 },
      );
      timings.notRedundantFiring = (Date.now() - t0) / 1000;
      const st = await status(`${active} cut`);
      // the cut LB's own keepalived says which state it reported (a CI run once showed it Backup and Ready while cut)
      const cutLog = lab.proc(`${active}/keepalived`)?.log;
      expect([st.code, st.code === 1 ? "" : tail(cutLog ?? "", 30)]).toEqual([1, ""]);
      expect(st.text).toMatch(/Redundant False/);
      // a dead LB is not a split brain, whatever its last series said
      expect(await firing("EdgepairSplitBrain")).toHaveLength(0);
    } finally {
      await lab.restore(active);
    }
    const t1 = Date.now();
    await waitFor(
      "EdgepairPairNotRedundant resolved",
      async () => ((await firing("EdgepairPairNotRedundant")).length === 0 ? true : undefined),
      { timeoutMs: 120_000, intervalMs: 500 },
    );
    timings.notRedundantResolved = (Date.now() - t1) / 1000;
    await sleep(2000);
    expect(await query('up{job="edgepair"} == 1')).toHaveLength(2);
  }, 300_000);
});
