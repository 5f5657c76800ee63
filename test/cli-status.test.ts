/**
 * `edgepair status` against a real kube-apiserver (issue 21 item 5): the LoadBalancer's status as both LBs' agents
 * write it, read with the admin's kubeconfig and with the agent's own token; text and JSON; exit 0 only when the pair
 * is Redundant. The view is checked pure first.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runProgram } from "../cli/program";
import { formatPairStatus, pairStatusView } from "../k8s/pair-status";
import { MERGE, setUpAgentCluster, type AgentCluster } from "./fixtures/agent-cluster";
import { startKubeApiServer, type KubeApiServer } from "./fixtures/kube-apiserver";
import { devSpecRaw } from "./fixtures/variants";

const NOW = Date.parse("2026-12-07T05:00:00Z");
const at = (s: number) => new Date(NOW - s * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
const cond = (type: string, status: string, reason: string) => ({
  type,
  status,
  reason,
  message: `${type} ${status}`,
  lastTransitionTime: at(60),
});

function status(redundant: "True" | "False") {
  const pool = (addresses: string[]) => ({
    servers: addresses.map((a, i) => ({ name: `cp-${i}`, address: a, from: "spec" })),
    serverCount: addresses.length,
    leftOut: [],
    leftOutCount: 0,
  });
  return {
    loadBalancers: [
      {
        name: "lab-lb-2",
        role: "secondary",
        vrrpState: "Backup",
        rendererVersion: "0.4.0",
        bootedImage: `registry.example/edgepair/appliance@sha256:${"b".repeat(64)}`,
        heartbeat: at(40),
        conditions: [cond("Ready", "True", "Serving"), cond("Degraded", "False", "AsExpected")],
        backends: { api: pool(["192.168.100.10", "192.168.100.11"]) },
        lastError: "haproxy runtime API: connection refused",
      },
      {
        name: "lab-lb-1",
        role: "primary",
        vrrpState: "Master",
        rendererVersion: "0.4.0",
        bootedImage: `registry.example/edgepair/appliance@sha256:${"a".repeat(64)}`,
        heartbeat: at(2),
        conditions: [cond("Ready", "True", "Serving"), cond("Degraded", "False", "AsExpected")],
        backends: { api: pool(["192.168.100.10", "192.168.100.11", "192.168.100.12"]) },
      },
    ],
    conditions: [cond("Redundant", redundant, redundant === "True" ? "BothReady" : "HeartbeatStale")],
  };
}

describe("pair status view (pure)", () => {
  test("both LBs by role with their facts; Redundant first; a missing status is Unknown, not an error", () => {
    const v = pairStatusView({ metadata: { name: "lab", namespace: "edgepair-system" }, status: status("True") }, NOW);
    expect(v.redundant).toEqual({ status: "True", reason: "BothReady", message: "Redundant True" });
    expect(v.lbs.map((l) => [l.name, l.role, l.vrrpState, l.heartbeatAgeS, l.conditions.Ready])).toEqual([
      ["lab-lb-1", "primary", "Master", 2, "True (Serving)"],
      ["lab-lb-2", "secondary", "Backup", 40, "True (Serving)"],
    ]);
    const text = formatPairStatus(v);
    expect(text).toMatch(/^LoadBalancer edgepair-system\/lab: Redundant True \(BothReady\)/);
    expect(text).toContain("lab-lb-2: last error: haproxy runtime API: connection refused");
    expect(text).toContain("lab-lb-1 api: 192.168.100.10, 192.168.100.11, 192.168.100.12");
    expect(pairStatusView({ metadata: { name: "x", namespace: "y" } }, NOW).redundant.status).toBe("Unknown");
    expect(() => pairStatusView({ spec: {} }, NOW)).toThrow(/not a LoadBalancer/);
  });
});

const isRoot = process.getuid?.() === 0;
const suite = isRoot ? describe : describe.skip;

suite("edgepair status against a real API server", () => {
  let kube: KubeApiServer;
  let cluster: AgentCluster;
  let dir: string;
  const run = async (args: string[]) => {
    let text = "";
    const code = await runProgram(["status", ...args], [], (s) => (text += s));
    return { code, text };
  };

  beforeAll(async () => {
    kube = await startKubeApiServer();
    cluster = await setUpAgentCluster(kube, { name: "lab", spec: devSpecRaw() });
    dir = mkdtempSync(join(tmpdir(), "ep-status-"));
    writeFileSync(join(dir, "admin.kubeconfig"), kube.adminKubeConfig, { mode: 0o600 });
    writeFileSync(join(dir, "ca.pem"), kube.caPem);
    writeFileSync(join(dir, "token"), cluster.token, { mode: 0o600 });
  }, 180_000);

  afterAll(async () => {
    rmSync(dir, { recursive: true, force: true });
    await kube?.stop();
  });

  test("Redundant: exit 0, both LBs printed; with the agent's own token as well; the token is never printed", async () => {
    await cluster.must("PATCH", `${cluster.lbPath}/status`, { status: status("True") }, MERGE);
    const admin = await run(["--kubeconfig", join(dir, "admin.kubeconfig"), "--name", "lab"]);
    expect(admin.code).toBe(0);
    expect(admin.text).toMatch(/Redundant True \(BothReady\)/);
    expect(admin.text).toMatch(/lab-lb-1 +primary +Master/);
    const agent = await run([
      "--server",
      kube.server,
      "--ca",
      join(dir, "ca.pem"),
      "--token-file",
      join(dir, "token"),
      "--tls-server-name",
      "kubernetes.default.svc",
      "--name",
      "lab",
      "-o",
      "json",
    ]);
    expect(agent.code).toBe(0);
    const view = JSON.parse(agent.text) as { lbs: { name: string }[]; redundant: { status: string } };
    expect([view.redundant.status, view.lbs.map((l) => l.name)]).toEqual(["True", ["lab-lb-1", "lab-lb-2"]]);
    expect(agent.text + admin.text).not.toContain(cluster.token);
  }, 60_000);

  test("not Redundant: the view is printed and the exit is 1; bad input is 2; a missing LoadBalancer is 1", async () => {
    await cluster.must("PATCH", `${cluster.lbPath}/status`, { status: status("False") }, MERGE);
    const r = await run(["--kubeconfig", join(dir, "admin.kubeconfig"), "--name", "lab"]);
    expect(r.code).toBe(1);
    expect(r.text).toMatch(/Redundant False \(HeartbeatStale\)/);
    expect((await run(["--name", "lab"])).code).toBe(2);
    expect((await run(["--kubeconfig", join(dir, "admin.kubeconfig"), "--name", "lab", "-o", "yaml"])).code).toBe(2);
    expect((await run(["--kubeconfig", join(dir, "admin.kubeconfig"), "--name", "nope"])).code).toBe(1);
  }, 60_000);
});
