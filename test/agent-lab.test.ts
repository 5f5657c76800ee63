/**
 * `agent run` (agent/run.ts) on a live LB of the lab (real haproxy, keepalived, conntrackd, firewalld in network
 * namespaces) against the real API server fixture, with the agent's least-privilege token only:
 * - a Node added or removed in the cluster shows up in HAProxy's runtime server list (no reload) and in the file;
 * - a LoadBalancer whose spec is invalid changes nothing on disk, and the LB reports it;
 * - every request the agent made was allowed by its Role.
 * systemd does not run here: the runner turns `systemctl reload haproxy.service` into the lab's own reload (SIGUSR2
 * to HAProxy's master, what systemd does for `haproxy -Ws`) and runs everything else inside the LB's namespace.
 */
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnRunner, type CommandRunner } from "../agent/apply";
import { readServers, RuntimeSocket } from "../agent/haproxy";
import { type ResponseRecord } from "../agent/kube";
import { AgentRun } from "../agent/run";
import { readSpec } from "../cli/inputs";
import { DEFAULT_SPEC } from "../lab/cli";
import { Lab } from "../lab/lab";
import { parseAgentSettings } from "../spec/agent-settings";
import { MERGE, setUpAgentCluster, type AgentCluster } from "./fixtures/agent-cluster";
import { startKubeApiServer, type KubeApiServer } from "./fixtures/kube-apiserver";
import { devSpecRaw } from "./fixtures/variants";

jest.setTimeout(240_000);

const CP = { "node-role.kubernetes.io/control-plane": "" };
const WORKER = { "node-role.kubernetes.io/worker": "" };
const KEY = "lb1" as const;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const suite = process.getuid?.() === 0 ? describe : describe.skip;

suite("agent run on a live LB of the lab, against a real API server", () => {
  let kube: KubeApiServer | undefined;
  let cluster: AgentCluster;
  let lab: Lab | undefined;
  let agent: AgentRun | undefined;
  let dir = "";
  const responses: ResponseRecord[] = [];
  const reloads: string[] = [];
  const log: string[] = [];

  const haproxyPid = () => lab!.proc(`${KEY}/haproxy`)!.pid;
  // the agent's own client: it reads the whole dump (lab.haproxyCommand half-closes and may get only a part)
  const runtimeServers = async () => (await readServers(new RuntimeSocket(`/proc/${haproxyPid()}/root/run/haproxy/admin.sock`))).map((s) => `${s.backend} ${s.name}`);
  const haproxyCfg = () => readFileSync(join(lab!.renderedRoot(KEY), "etc/haproxy/haproxy.cfg"), "utf8");
  const treeHash = () => {
    const h = createHash("sha256");
    for (const p of ["etc/haproxy/haproxy.cfg", "etc/keepalived/keepalived.conf", "etc/edgepair/handoff.nft", "etc/NetworkManager/system-connections/edgepair-fip.nmconnection"]) {
      h.update(readFileSync(join(lab!.renderedRoot(KEY), p)));
    }
    return h.digest("hex");
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "edgepair-agent-lab-"));
    kube = await startKubeApiServer();
    cluster = await setUpAgentCluster(kube, { name: "lab", spec: devSpecRaw() });
    lab = Lab.create(readSpec(DEFAULT_SPEC), () => {});
    try {
      await lab.up();
    } catch (e) {
      await lab.down();
      lab = undefined;
      throw e;
    }
    // the cluster's Nodes are the lab's backends, under the names the static render already uses
    for (const b of lab.plan.backends.api) await cluster.putNode(b.name, CP, b.address);
    for (const b of lab.plan.backends.ingress) await cluster.putNode(b.name, WORKER, b.address);

    // the apply resolves owners like the VM does (ROOT/etc/passwd); the lab's tree has none, so give it one that
    // maps the rendered owners to root (the lab runs every daemon as root)
    for (const [f, line] of [["passwd", "root:x:0:0::/root:/bin/sh\nhaproxy:x:0:0::/:/sbin/nologin"], ["group", "root:x:0:\nhaproxy:x:0:"]] as const) {
      writeFileSync(join(lab.renderedRoot(KEY), "etc", f), `${line}\n`);
    }
    const ns = lab.lb(KEY).ns;
    const runner: CommandRunner = async (argv, opts) => {
      if (argv[0] === "systemctl") {
        reloads.push(argv.join(" "));
        if (argv.join(" ") === "systemctl reload haproxy.service") lab!.reloadHaproxy(KEY);
        return { exitCode: 0, timedOut: false, output: "" };
      }
      return spawnRunner(["ip", "netns", "exec", ns, ...argv], opts);
    };
    mkdirSync(join(dir, "secrets"), { mode: 0o700 });
    const tokenFile = join(dir, "secrets", "cluster-token");
    writeFileSync(tokenFile, cluster.token, { mode: 0o600 });
    const settings = parseAgentSettings({
      cluster: { apiServers: [kube.server], tlsServerName: "kubernetes.default.svc", caCertificate: kube.caPem, namespace: cluster.namespace, loadBalancerName: "lab", tokenFile },
      imageRef: `registry.example/edgepair/appliance@sha256:${"c".repeat(64)}`,
    });
    agent = new AgentRun({
      root: lab.renderedRoot(KEY),
      stateDir: join(dir, "state"),
      settings,
      host: lab.state.hostFacts[KEY]!,
      bootstrapSpec: lab.state.spec,
      runner,
      haproxySocket: `/proc/${haproxyPid()}/root/run/haproxy/admin.sock`,
      fifoPath: join(dir, "vrrp.fifo"),
      log: (l) => log.push(l),
      cluster: {
        client: { requestTimeoutMs: 5000, onResponse: (r) => responses.push(r) },
        watch: { resyncMs: 10_000, watchTimeoutSeconds: 5, backoff: { initialMs: 100, maxMs: 1000 } },
        status: { heartbeatMs: 500, staleAfterMs: 5000 },
        token: false,
      },
    });
    await agent.start();
  }, 300_000);

  afterAll(async () => {
    await agent?.stop();
    await lab?.down();
    await kube?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 120_000);

  test("the first desired state equals the bootstrap render: nothing written, nothing reloaded; the LB reports itself", async () => {
    for (let i = 0; i < 100; i++) {
      const lb = (await cluster.must("GET", cluster.lbPath)).body as { status?: { loadBalancers?: { name: string; configHashes?: Record<string, string>; vrrpState?: string }[] } };
      const me = lb.status?.loadBalancers?.find((e) => e.name === lab!.state.hostFacts[KEY]!.hostname);
      if (me?.configHashes?.all) {
        expect(["Master", "Backup"]).toContain(me.vrrpState);
        break;
      }
      if (i === 99) throw new Error(`no status entry with configHashes.all; agent log:\n${log.join("\n")}`);
      await sleep(100);
    }
    expect(reloads).toEqual([]);
  });

  test("a Node added reaches HAProxy's runtime server list without a reload; removed, it leaves again", async () => {
    const pid = haproxyPid();
    // an address no lab host answers on: the runtime list is what is judged, not the health check
    const t0 = Date.now();
    await cluster.putNode("cp-extra", CP, "192.168.100.13");
    let addedMs = -1;
    for (let i = 0; i < 200 && addedMs < 0; i++) {
      if ((await runtimeServers()).some((l) => l === "be_api cp-extra")) addedMs = Date.now() - t0;
      else await sleep(50);
    }
    expect({ addedMs: addedMs >= 0, log: addedMs >= 0 ? "" : `${log.join("\n")}\n${(await runtimeServers()).join("\n")}` }).toEqual({ addedMs: true, log: "" });
    process.stderr.write(`[agent-lab] Node added -> in HAProxy's runtime list: ${addedMs} ms\n`);
    expect(addedMs).toBeLessThan(5000);
    await agent!.idle();
    expect(haproxyCfg()).toMatch(/server cp-extra /);
    expect(haproxyPid()).toBe(pid);
    expect(reloads).toEqual([]);

    await cluster.deleteNode("cp-extra");
    let gone = false;
    for (let i = 0; i < 200 && !gone; i++) {
      gone = !(await runtimeServers()).some((l) => l.endsWith(" cp-extra"));
      if (!gone) await sleep(50);
    }
    expect(gone).toBe(true);
    await agent!.idle();
    expect(haproxyCfg()).not.toMatch(/server cp-extra /);
    expect(reloads).toEqual([]);
  });

  test("an invalid LoadBalancer spec changes nothing on disk; the LB reports it and keeps the last good one", async () => {
    const before = treeHash();
    await cluster.must("PATCH", cluster.lbPath, { spec: { virtualAddresses: { api: [{ address: "10.99.0.1", type: "private" }] } } }, MERGE);
    let reported = false;
    for (let i = 0; i < 100 && !reported; i++) {
      reported = log.some((l) => l.includes("LoadBalancer spec invalid") && l.includes("virtualAddresses.api[0].address"));
      if (!reported) await sleep(50);
    }
    expect(reported).toBe(true);
    await agent!.idle();
    expect(treeHash()).toBe(before);
    const lb = (await cluster.must("GET", cluster.lbPath)).body as { status?: { loadBalancers?: { name: string; conditions?: { type: string; status: string; reason: string }[] }[] } };
    const me = lb.status?.loadBalancers?.find((e) => e.name === lab!.state.hostFacts[KEY]!.hostname);
    expect(me?.conditions?.find((c) => c.type === "Degraded")).toMatchObject({ status: "True" });
    // back to the good spec
    await cluster.must("PATCH", cluster.lbPath, { spec: { virtualAddresses: (devSpecRaw() as { virtualAddresses: unknown }).virtualAddresses } }, MERGE);
  });

  test("every request the agent made was allowed by its Role", () => {
    expect(responses.length).toBeGreaterThan(3);
    expect(responses.filter((r) => r.status === 401 || r.status === 403)).toEqual([]);
  });
});
