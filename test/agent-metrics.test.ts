/**
 * The agent's metrics (issue 21 item 1): conntrackd's text read as numbers, the series named as docs/metrics.md says
 * and clean under `promtool check metrics`, the endpoint behind the metrics password (401 and a counter for a wrong
 * one, rotation without a restart, 503 before the password is delivered), HAProxy's real exporter behind it, and a
 * scrape flood that costs one collection per interval. The full path (HAProxy's listener in an LB, Prometheus
 * scraping both LBs) is test/metrics-lab.test.ts.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConntrackdStats } from "../agent/metrics/conntrackd";
import { AgentMetrics, type Snapshot } from "../agent/metrics/registry";
import { MetricsServer } from "../agent/metrics/server";
import { METRICS_USER } from "../k8s/scrape-config";
import { waitFor } from "../lab/exec";

/** `conntrackd -s` of conntrack-tools 1.4.7 (Debian 12), taken from a lab LB with a few flows synced. */
const CONNTRACKD_S = `cache internal:
current active connections:	          12
connections created:		          40	failed:	           0
connections updated:		          80	failed:	           0
connections destroyed:		          28	failed:	           0

cache external:
current active connections:	           7
connections created:		           9	failed:	           0
connections updated:		           3	failed:	           0
connections destroyed:		           2	failed:	           0

traffic processed:
                   0 Bytes                         0 Pckts

UDP traffic (active device=eth1):
                9600 Bytes sent                 4800 Bytes recv
                 600 Pckts sent                  300 Pckts recv
                   2 Error send                    1 Error recv

message tracking:
                   3 Malformed msgs                    4 Lost msgs

`;

const snapshot = (over: Partial<Snapshot> = {}): Snapshot => ({
  ready: true,
  redundant: true,
  heartbeatAt: 1_700_000_000_000,
  rendererVersion: "0.5.0",
  configHash: "abc123",
  image: "registry.example/edgepair@sha256:" + "c".repeat(64),
  conntrackd: parseConntrackdStats(CONNTRACKD_S)!,
  servers: [
    { pool: "be_api", server: "cp-0", source: "node", up: true },
    { pool: "be_api", server: "192.168.100.12", source: "spec", up: false },
  ],
  imageSwitch: { phase: "Verifying", since: 1_700_000_100_000 },
  ...over,
});

function promtoolCheck(text: string): { status: number; output: string } {
  const r = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
  return { status: r.status ?? -1, output: `${r.stdout}${r.stderr}` };
}

/** like Prometheus and HAProxy's listener: a few connections, kept alive */
const httpAgent = new Agent({ keepAlive: true, maxSockets: 16 });

function get(
  port: number,
  path: string,
  auth?: string,
): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        agent: httpAgent,
        path,
        headers: auth === undefined ? {} : { Authorization: `Basic ${Buffer.from(auth).toString("base64")}` },
        timeout: 10_000,
      },
      (res) => {
        let body = "";
        res.on("data", (c: Buffer) => (body += c.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

describe("conntrackd -s", () => {
  it("reads the caches and the sync link's counters", () => {
    expect(parseConntrackdStats(CONNTRACKD_S)).toEqual({
      internalEntries: 12,
      externalEntries: 7,
      messagesSent: 600,
      messagesReceived: 300,
      sendErrors: 2,
      receiveErrors: 1,
      malformed: 3,
      lost: 4,
    });
  });

  it("refuses a layout it does not know instead of reading zeros", () => {
    expect(parseConntrackdStats("")).toBeUndefined();
    expect(parseConntrackdStats(CONNTRACKD_S.replace("message tracking:", "messages:"))).toBeUndefined();
    expect(parseConntrackdStats(CONNTRACKD_S.replace(/UDP traffic[^\n]*\n/, ""))).toBeUndefined();
  });
});

describe("the agent's series", () => {
  const render = async (m: AgentMetrics) => m.registry.metrics();

  it("carry the contract's names and labels, and promtool finds nothing to say", async () => {
    const m = new AgentMetrics({ cluster: "c1", lb: "c1-lb-0" }, "c1");
    m.vrrpTransition("MASTER", 1_700_000_000_000);
    m.applied(["haproxy", "keepalived"], "applied", 0.4);
    m.applied(["haproxy"], "reverted", 21);
    m.reconcileError("health_gate");
    m.observe(snapshot({ tokenExpiresAt: 1_700_086_400_000 }));
    const text = await render(m);
    const check = promtoolCheck(text);
    expect(check.output).toBe("");
    expect(check.status).toBe(0);
    const documented = [
      ...readFileSync(join(__dirname, "..", "docs", "metrics.md"), "utf8").matchAll(/`(edgepair_[a-z_]+)`/g),
    ]
      .map((x) => x[1]!)
      .filter((n) => n !== "edgepair_");
    const exported = new Set([...text.matchAll(/^# TYPE (\S+)/gm)].map((x) => x[1]!));
    for (const name of documented) expect(exported).toContain(name);
    for (const name of exported) expect(documented).toContain(name);
    expect(text).toContain('edgepair_vrrp_state{vrrp_instance="c1",state="MASTER",cluster="c1",lb="c1-lb-0"} 1');
    expect(text).toContain('edgepair_vrrp_state{vrrp_instance="c1",state="BACKUP",cluster="c1",lb="c1-lb-0"} 0');
    expect(text).toContain(
      'edgepair_vrrp_transitions_total{vrrp_instance="c1",state="MASTER",cluster="c1",lb="c1-lb-0"} 1',
    );
    // a counter exists at 0 before its first increase, so rate() sees that increase
    expect(text).toContain(
      'edgepair_vrrp_transitions_total{vrrp_instance="c1",state="FAULT",cluster="c1",lb="c1-lb-0"} 0',
    );
    expect(text).toContain('edgepair_applies_total{service="haproxy",result="reverted",cluster="c1",lb="c1-lb-0"} 1');
    expect(text).toContain('edgepair_reconcile_errors_total{reason="health_gate",cluster="c1",lb="c1-lb-0"} 1');
    expect(text).toContain('edgepair_conntrackd_sync_errors_total{kind="lost",cluster="c1",lb="c1-lb-0"} 4');
    expect(text).toContain('edgepair_conntrackd_cache_entries{cache="external",cluster="c1",lb="c1-lb-0"} 7');
    expect(text).toContain(
      'edgepair_pool_server_up{pool="be_api",server="cp-0",source="node",cluster="c1",lb="c1-lb-0"} 1',
    );
    expect(text).toContain('edgepair_pool_servers{pool="be_api",state="down",cluster="c1",lb="c1-lb-0"} 1');
    expect(text).toContain('edgepair_image_switch_phase{phase="Verifying",cluster="c1",lb="c1-lb-0"} 1');
    expect(text).toContain('edgepair_image_switch_phase{phase="Idle",cluster="c1",lb="c1-lb-0"} 0');
    expect(text).toContain('edgepair_token_expiry_timestamp_seconds{cluster="c1",lb="c1-lb-0"} 1700086400');
    expect(text).toContain('edgepair_heartbeat_timestamp_seconds{cluster="c1",lb="c1-lb-0"} 1700000000');
  });

  it("follow what is current: a gone server's series goes, a restarted conntrackd's counters fall back", async () => {
    const m = new AgentMetrics({ cluster: "c1", lb: "c1-lb-0" }, "c1");
    m.observe(snapshot());
    m.observe(
      snapshot({
        servers: [{ pool: "be_api", server: "cp-0", source: "node", up: true }],
        conntrackd: { ...parseConntrackdStats(CONNTRACKD_S)!, messagesSent: 5 },
        imageSwitch: undefined,
      }),
    );
    const text = await render(m);
    expect(text).not.toContain('server="192.168.100.12"');
    expect(text).toContain('edgepair_conntrackd_sync_messages_total{direction="sent",cluster="c1",lb="c1-lb-0"} 5');
    expect(text).toContain('edgepair_image_switch_phase{phase="Idle",cluster="c1",lb="c1-lb-0"} 1');
    m.observe(snapshot({ conntrackd: undefined }));
    expect(await render(m)).toContain('edgepair_conntrackd_up{cluster="c1",lb="c1-lb-0"} 0');
  });

  it("promtool rejects what breaks Prometheus' conventions (the checker's counter-case)", () => {
    const bad = "# HELP edgepair_applies counted\n# TYPE edgepair_applies counter\nedgepair_applies 1\n";
    const r = promtoolCheck(bad);
    expect(r.output).toMatch(/_total/);
    expect(promtoolCheck("edgepair_x{a=} 1\n").status).not.toBe(0);
  });
});

const suite = spawnSync("haproxy", ["-v"]).status === 0 ? describe : describe.skip;

suite("the metrics endpoint, with HAProxy's real exporter behind it", () => {
  let dir: string;
  let haproxy: ChildProcess;
  let server: MetricsServer;
  let metrics: AgentMetrics;
  let passwordFile: string;
  let snapshots = 0;
  const port = () => server.port!;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "edgepair-metrics-"));
    const exporterSocket = join(dir, "exporter.sock");
    writeFileSync(
      join(dir, "haproxy.cfg"),
      [
        "global",
        "    maxconn 100",
        "defaults",
        "    timeout client 5s",
        "    timeout server 5s",
        "    timeout connect 1s",
        "listen exporter",
        `    bind ${exporterSocket} mode 600`,
        "    mode http",
        "    http-request use-service prometheus-exporter if { path /metrics }",
        "    stats enable",
        "    stats uri /stats",
        "",
      ].join("\n"),
    );
    haproxy = spawn("haproxy", ["-db", "-f", join(dir, "haproxy.cfg")], { stdio: "ignore" });
    passwordFile = join(dir, "metrics-password");
    writeFileSync(passwordFile, "s3cret-'$#\"\n", { mode: 0o600 });
    metrics = new AgentMetrics({ cluster: "c1", lb: "c1-lb-0" }, "c1");
    server = new MetricsServer({
      listen: { host: "127.0.0.1", port: 0 },
      passwordFile,
      exporterSocket,
      metrics,
      snapshot: async () => {
        snapshots++;
        return snapshot();
      },
      log: () => {},
      minIntervalMs: 1000,
    });
    await server.start();
    await waitFor("HAProxy's exporter socket", async () => {
      try {
        readFileSync(exporterSocket);
      } catch (e) {
        return (e as NodeJS.ErrnoException).code === "ENXIO" || (e as NodeJS.ErrnoException).code === "EOPNOTSUPP"
          ? true
          : undefined;
      }
      return true;
    });
  });

  afterAll(async () => {
    httpAgent.destroy();
    await server?.stop();
    haproxy?.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });

  const right = `${METRICS_USER}:s3cret-'$#"`;

  it("answers with the agent's series and HAProxy's, and promtool accepts the whole text", async () => {
    const r = await get(port(), "/metrics", right);
    expect(r.status).toBe(200);
    expect(r.body).toContain('edgepair_ready{cluster="c1",lb="c1-lb-0"} 1');
    expect(r.body).toMatch(/^haproxy_process_nbthread /m);
    expect(r.body).toContain('edgepair_haproxy_exporter_up{cluster="c1",lb="c1-lb-0"} 1');
    // the whole text parses; the only complaints are about HAProxy's own names (2.6 exports
    // haproxy_process_failed_resolutions, a counter, without _total), none about ours
    const check = promtoolCheck(r.body);
    const complaints = check.output.split("\n").filter(Boolean);
    expect(complaints.every((l) => l.startsWith("haproxy_"))).toBe(true);
    expect(check.output).not.toMatch(/error|parse/i);
    // the password never appears in what is served
    expect(r.body).not.toContain("s3cret");
  });

  it("refuses a missing, wrong or other user's password with 401, and counts each", async () => {
    const failures = async () =>
      Number(/^edgepair_metrics_auth_failures_total\{[^}]*\} (\d+)/m.exec(await metrics.registry.metrics())?.[1]);
    const before = await failures();
    for (const auth of [undefined, `${METRICS_USER}:wrong`, `admin:s3cret-'$#"`, `${METRICS_USER}`, "::"]) {
      const r = await get(port(), "/metrics", auth);
      expect(r.status).toBe(401);
      expect(String(r.headers["www-authenticate"])).toMatch(/^Basic realm=/);
      expect(r.body).not.toContain("edgepair_");
    }
    expect(await failures()).toBe(before + 5);
    expect((await get(port(), "/stats", "x:y")).status).toBe(401);
  });

  it("serves HAProxy's stats page behind the same password", async () => {
    const r = await get(port(), "/stats", right);
    expect(r.status).toBe(200);
    expect(r.body).toMatch(/Statistics Report/);
    expect((await get(port(), "/other", right)).status).toBe(404);
  });

  it("takes a rotated password without a restart; before any password, nothing is served", async () => {
    writeFileSync(passwordFile, "rotated\n", { mode: 0o600 });
    await new Promise((r) => setTimeout(r, 1100)); // the file is looked at again after a second
    expect((await get(port(), "/metrics", right)).status).toBe(401);
    expect((await get(port(), "/metrics", `${METRICS_USER}:rotated`)).status).toBe(200);
    rmSync(passwordFile);
    await new Promise((r) => setTimeout(r, 1100));
    const none = await get(port(), "/metrics", `${METRICS_USER}:rotated`);
    expect(none.status).toBe(503);
    expect(none.body).toMatch(/not been delivered/);
    writeFileSync(passwordFile, "", { mode: 0o600 });
    await new Promise((r) => setTimeout(r, 1100));
    // an empty password file is no password: the empty password must not open the endpoint
    expect((await get(port(), "/metrics", `${METRICS_USER}:`)).status).toBe(503);
    writeFileSync(passwordFile, "s3cret-'$#\"\n", { mode: 0o600 });
    await new Promise((r) => setTimeout(r, 1100));
  });

  it("collects once per interval however many scrapes arrive at once", async () => {
    await new Promise((r) => setTimeout(r, 1100));
    const before = server.stats.collections;
    const beforeSnapshots = snapshots;
    const answers = await Promise.all(Array.from({ length: 300 }, () => get(port(), "/metrics", right)));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    // 300 scrapes within well under the interval's two windows: at most two collections
    expect(server.stats.collections - before).toBeLessThanOrEqual(2);
    expect(snapshots - beforeSnapshots).toBeLessThanOrEqual(2);
  });
});
