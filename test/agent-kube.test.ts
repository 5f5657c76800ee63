/**
 * The agent's cluster side (agent/kube/) against a REAL kube-apiserver (test/fixtures/kube-apiserver.ts, started once
 * for the file), with the CRD, the agent's RBAC and the LoadBalancer from k8s/, and the agent running on its
 * least-privilege token only (the ServiceAccount token Secret the controller manager fills, then TokenRequest tokens).
 * The admin identity only plays the cluster: it creates, labels, cordons and deletes Nodes and edits the spec.
 *
 * Figures (Node change -> desired-state event, API outage -> recovery) are printed on stderr with their min/median/max.
 */
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer, connect, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  AbortedError,
  Backoff,
  ClusterSide,
  jwtTimes,
  KubeApiError,
  KubeClient,
  KubeUnreachableError,
  lbConditionInputs,
  nodeView,
  pairStatusFieldManager,
  redundantInput,
  selectBackends,
  StatusReporter,
  withTransition,
  writeSecretFileAtomic,
  type ClusterSideEvent,
  type NodeView,
  type ResponseRecord,
} from "../agent/kube";
import {
  agentNames,
  DEFAULT_NAMESPACE,
  GROUP,
  loadBalancerResource,
  PLURAL,
  statusFieldManager,
  VERSION,
} from "../k8s";
import { bootstrapTokenPath, parseAgentSettings, type AgentSettings } from "../spec/agent-settings";
import { resolveSpec, validateSpec } from "../spec/resolve";
import { selectorMatches } from "../spec/selector";
import { setUpAgentCluster, type AgentCluster, type Reply } from "./fixtures/agent-cluster";
import { startKubeApiServer, type KubeApiServer } from "./fixtures/kube-apiserver";
import { freeLoopbackPorts } from "./fixtures/kube/daemon";
import { createPki } from "./fixtures/kube/pki";
import { devSpecRaw } from "./fixtures/variants";
import { checkSpec } from "../spec/checked";

jest.setTimeout(120_000);

const NS = DEFAULT_NAMESPACE;
const LAB = "lab";
const names = agentNames({ name: LAB });
const TLS_NAME = "kubernetes.default.svc";
const IMAGE = `registry.example/edgepair@sha256:${"a".repeat(64)}`;
const lbPath = `/apis/${GROUP}/${VERSION}/namespaces/${NS}/${PLURAL}/${LAB}`;
const MERGE = "application/merge-patch+json";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------------------------
// pure parts

const node = (
  name: string,
  labels: Record<string, string>,
  ip: string | string[],
  more: Partial<NodeView> = {},
): NodeView => ({
  name,
  labels,
  ready: true,
  unschedulable: false,
  internalIPs: [ip].flat(),
  ...more,
});
const CP = { "node-role.kubernetes.io/control-plane": "" };
const WORKER = { "node-role.kubernetes.io/worker": "" };

describe("agent/kube, pure", () => {
  const spec = resolveSpec(devSpecRaw());

  test("selectorMatches: matchLabels AND every expression, Kubernetes semantics (empty matches all)", () => {
    const labels = { a: "1", b: "2" };
    expect(selectorMatches({}, labels)).toBe(true);
    expect(selectorMatches({ matchLabels: { a: "1" } }, labels)).toBe(true);
    expect(selectorMatches({ matchLabels: { a: "1", b: "3" } }, labels)).toBe(false);
    expect(selectorMatches({ matchExpressions: [{ key: "a", operator: "In", values: ["0", "1"] }] }, labels)).toBe(
      true,
    );
    expect(selectorMatches({ matchExpressions: [{ key: "c", operator: "In", values: ["1"] }] }, labels)).toBe(false);
    expect(selectorMatches({ matchExpressions: [{ key: "a", operator: "NotIn", values: ["1"] }] }, labels)).toBe(false);
    expect(selectorMatches({ matchExpressions: [{ key: "c", operator: "NotIn", values: ["1"] }] }, labels)).toBe(true);
    expect(selectorMatches({ matchExpressions: [{ key: "b", operator: "Exists" }] }, labels)).toBe(true);
    expect(selectorMatches({ matchExpressions: [{ key: "b", operator: "DoesNotExist" }] }, labels)).toBe(false);
    expect(
      selectorMatches({ matchLabels: { a: "1" }, matchExpressions: [{ key: "z", operator: "Exists" }] }, labels),
    ).toBe(false);
  });

  test("nodeView keeps name, labels, Ready, cordon and InternalIPs; a malformed object is dropped, not thrown", () => {
    expect(
      nodeView({
        metadata: { name: "n1", labels: CP, uid: "x" },
        spec: { unschedulable: true },
        status: {
          conditions: [
            { type: "MemoryPressure", status: "False" },
            { type: "Ready", status: "True" },
          ],
          addresses: [
            { type: "Hostname", address: "n1" },
            { type: "InternalIP", address: "2001:db8::0:1" },
            { type: "InternalIP", address: "192.168.100.31" },
            { type: "InternalIP", address: "bogus" },
          ],
          images: [{ names: ["x"] }],
        },
      }),
    ).toEqual({
      name: "n1",
      labels: CP,
      ready: true,
      unschedulable: true,
      internalIPs: ["2001:db8::1", "192.168.100.31"],
    });
    expect(nodeView({ metadata: { name: "n2" } })).toEqual({
      name: "n2",
      labels: {},
      ready: false,
      unschedulable: false,
      internalIPs: [],
    });
    expect(nodeView({ metadata: {} })).toBeUndefined();
    expect(nodeView("nonsense")).toBeUndefined();
  });

  const view = (r: ReturnType<typeof selectBackends>, pool: "api" | "ingress") =>
    (r.pools[pool]?.servers ?? []).map((x) => `${x.name}:${x.from}${x.node && x.node !== x.name ? `(${x.node})` : ""}`);

  test("selectBackends: static addresses stay; Nodes add servers beside them (selector, address inside network.cidr, sorted by address)", () => {
    const nodes = [
      node("cp-b", CP, ["10.0.0.5", "192.168.100.14"]),
      node("cp-a", CP, "192.168.100.13"),
      node("w-1", WORKER, "192.168.100.21"),
      node("w-2", WORKER, "192.168.100.22", { unschedulable: true }),
      node("w-3", { ...WORKER, "node.kubernetes.io/exclude-from-external-load-balancers": "" }, "192.168.100.23"),
      node("w-4", WORKER, []),
    ];
    const r = selectBackends(spec, nodes);
    expect(view(r, "api")).toEqual([
      "192.168.100.10:spec",
      "192.168.100.11:spec",
      "192.168.100.12:spec",
      "cp-a:node",
      "cp-b:node",
    ]);
    expect(r.backends.api.at(-1)).toEqual({ name: "cp-b", address: "192.168.100.14" });
    expect(r.backends.ingress).toEqual([{ name: "w-1", address: "192.168.100.21" }]);
    expect(r.pools.ingress!.leftOut).toEqual([
      { node: "w-2", reason: "cordoned" },
      { node: "w-3", reason: "labelled node.kubernetes.io/exclude-from-external-load-balancers" },
      { node: "w-4", reason: "no InternalIP" },
    ]);
  });

  test("selectBackends: the OpenShift install (issue 17's measured cases) never loses the bootstrap node or a static master", () => {
    const openshift = resolveSpec({
      ...devSpecRaw(),
      distribution: "openshift",
      apiBackend: {
        nodeSelector: { matchLabels: CP },
        addresses: ["192.168.100.9", "192.168.100.10", "192.168.100.11", "192.168.100.12"],
      },
    });
    const statics = ["192.168.100.9:spec", "192.168.100.10:spec", "192.168.100.11:spec", "192.168.100.12:spec"];
    // before: one NotReady master Node -> that master alone; three masters with one Ready -> one backend
    const oneNotReady = [node("master-0", CP, "192.168.100.10", { ready: false })];
    expect(view(selectBackends(openshift, oneNotReady), "api")).toEqual([
      "192.168.100.9:spec",
      "192.168.100.10:spec(master-0)",
      "192.168.100.11:spec",
      "192.168.100.12:spec",
    ]);
    const oneReady = [
      node("master-0", CP, "192.168.100.10"),
      node("master-1", CP, "192.168.100.11", { ready: false }),
      node("master-2", CP, "192.168.100.12", { ready: false }),
    ];
    const r = selectBackends(openshift, oneReady);
    expect(r.backends.api.map((b) => b.address)).toEqual([
      "192.168.100.9",
      "192.168.100.10",
      "192.168.100.11",
      "192.168.100.12",
    ]);
    expect(r.pools.api.servers.map((x) => x.node)).toEqual([undefined, "master-0", "master-1", "master-2"]);
    // the user removes the bootstrap address after bootstrap-complete: the one server that leaves
    const done = resolveSpec({
      ...devSpecRaw(),
      distribution: "openshift",
      apiBackend: {
        nodeSelector: { matchLabels: CP },
        addresses: ["192.168.100.10", "192.168.100.11", "192.168.100.12"],
      },
    });
    expect(view(selectBackends(done, oneReady), "api")).toEqual(statics.slice(1).map((x, i) => `${x}(master-${i})`));
    // kubeadm/Talos: Nodes without static addresses, NotReady until the CNI runs -> every one a backend all the same
    const kubeadm = [
      node("cp-1", CP, "192.168.100.31", { ready: false }),
      node("cp-2", CP, "192.168.100.32", { ready: false }),
    ];
    expect(view(selectBackends(spec, kubeadm), "api").slice(3)).toEqual(["cp-1:node", "cp-2:node"]);
  });

  test("selectBackends: cordon, the exclude label and NotReady never remove API servers; ingress: NotReady leaves while another is Ready, all stay when none is", () => {
    const cordoned = [
      node("cp-a", { ...CP, "node.kubernetes.io/exclude-from-external-load-balancers": "" }, "192.168.100.13", {
        unschedulable: true,
        ready: false,
      }),
    ];
    expect(view(selectBackends(spec, cordoned), "api").at(-1)).toBe("cp-a:node");
    const oneReady = [node("w-1", WORKER, "192.168.100.21"), node("w-2", WORKER, "192.168.100.22", { ready: false })];
    expect(selectBackends(spec, oneReady).pools.ingress).toEqual({
      servers: [{ name: "w-1", address: "192.168.100.21", from: "node", node: "w-1" }],
      leftOut: [{ node: "w-2", reason: "NotReady while other Nodes of the pool are Ready" }],
    });
    const noneReady = oneReady.map((n) => ({ ...n, ready: false }));
    expect(view(selectBackends(spec, noneReady), "ingress")).toEqual(["w-1:node", "w-2:node"]);
    // a Ready Node that cannot serve (no usable address) does not count as "another Ready one" either
    const readyWithoutAddress = [
      node("w-0", WORKER, "10.0.0.5"),
      node("w-2", WORKER, "192.168.100.22", { ready: false }),
    ];
    expect(view(selectBackends(spec, readyWithoutAddress), "ingress")).toEqual(["w-2:node"]);
    // a cordoned Ready Node does not count as "another Ready one"
    const cordonedReady = [
      node("w-1", WORKER, "192.168.100.21", { unschedulable: true }),
      node("w-2", WORKER, "192.168.100.22", { ready: false }),
    ];
    expect(view(selectBackends(spec, cordonedReady), "ingress")).toEqual(["w-2:node"]);
  });

  test("selectBackends: addresses a Node cannot be a server at, and Nodes with odd names or many addresses", () => {
    const nodes = [
      node("outside", CP, ["10.0.0.5", "2001:db8::5"]),
      node("own-vip", CP, "192.168.100.100"),
      node("own-lb", CP, "192.168.100.3"),
      node("gw", CP, "192.168.100.1"),
      node("twin-b", CP, "192.168.100.40"),
      node("twin-a", CP, "192.168.100.40"),
      node("many", CP, ["10.1.1.1", "192.168.100.41", "192.168.100.42", "fd00::1"]),
      node('odd name/with spaces "quotes" #$', CP, "192.168.100.43"),
    ];
    const r = selectBackends(spec, nodes);
    expect(r.pools.api.leftOut).toEqual([
      { node: "gw", reason: "its InternalIP 192.168.100.1 is one of the pair's own addresses" },
      { node: "outside", reason: "no InternalIP inside network.cidr 192.168.100.0/24" },
      { node: "own-lb", reason: "its InternalIP 192.168.100.3 is one of the pair's own addresses" },
      { node: "own-vip", reason: "its InternalIP 192.168.100.100 is one of the pair's own addresses" },
      { node: "twin-b", reason: "same InternalIP as twin-a" },
    ]);
    expect(r.backends.api.slice(3)).toEqual([
      { name: "twin-a", address: "192.168.100.40" },
      { name: "many", address: "192.168.100.41" },
      { name: 'odd name/with spaces "quotes" #$', address: "192.168.100.43" },
    ]);
    // the odd Node changes nothing else: the same selection without it, minus its server
    const without = selectBackends(spec, nodes.slice(0, -1));
    expect(without.backends.api).toEqual(r.backends.api.slice(0, -1));
    // input order does not matter
    expect(selectBackends(spec, [...nodes].reverse())).toEqual(r);
  });

  test("selectBackends: no Node matches -> the spec's static addresses; no ingress pool -> no ingress view", () => {
    const r = selectBackends(spec, [node("w-1", WORKER, "192.168.100.21")]);
    expect(view(r, "api")).toEqual(["192.168.100.10:spec", "192.168.100.11:spec", "192.168.100.12:spec"]);
    expect(r.backends.api).toEqual(spec.apiBackend.addresses.map((a) => ({ name: a, address: a })));
    const noIngress = { ...devSpecRaw() };
    delete noIngress.ingressBackend;
    delete (noIngress.virtualAddresses as Record<string, unknown>).ingress;
    const n = selectBackends(resolveSpec(noIngress), []);
    expect(n.pools.ingress).toBeUndefined();
    expect(n.backends.ingress).toEqual([]);
  });

  test("validateSpec (the agent's check of the LoadBalancer): field errors, never an exception — semantic, structural and selector rules (counter-cases)", () => {
    expect(validateSpec(devSpecRaw()).ok).toBe(true);
    const raw = devSpecRaw();
    const outside = {
      ...raw,
      virtualAddresses: { ...(raw.virtualAddresses as object), api: [{ address: "10.9.9.100", type: "private" }] },
    };
    expect(validateSpec(outside)).toEqual({
      ok: false,
      problems: [
        {
          path: "virtualAddresses.api[0].address",
          rule: "is private, so it must be inside network.cidr 192.168.100.0/24",
        },
      ],
    });
    expect(validateSpec({ ...devSpecRaw(), clusterName: 42 })).toEqual({
      ok: false,
      problems: [{ path: "clusterName", rule: "must be a string" }],
    });
    expect(validateSpec(null).ok).toBe(false);
    const badSelector = {
      ...devSpecRaw(),
      apiBackend: {
        addresses: ["192.168.100.10"],
        nodeSelector: {
          matchExpressions: [
            { key: "a", operator: "In" },
            { key: "b", operator: "Exists", values: ["x"] },
          ],
        },
      },
    };
    expect(validateSpec(badSelector)).toEqual({
      ok: false,
      problems: [
        { path: "apiBackend.nodeSelector.matchExpressions[0].values", rule: "must not be empty for In" },
        { path: "apiBackend.nodeSelector.matchExpressions[1].values", rule: "must be empty for Exists" },
      ],
    });
  });

  test("Backoff: exponential, jittered within [step/2, step], bounded, reset", () => {
    const lo = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0 });
    const hi = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0.999999 });
    expect(Array.from({ length: 7 }, () => lo.next())).toEqual([50, 100, 200, 400, 500, 500, 500]);
    expect(Array.from({ length: 7 }, () => hi.next())).toEqual([100, 200, 400, 800, 1000, 1000, 1000]);
    const b = new Backoff({ initialMs: 100, maxMs: 1000 });
    for (let i = 0; i < 200; i++) {
      const d = b.next();
      expect(d).toBeGreaterThanOrEqual(50);
      expect(d).toBeLessThanOrEqual(1000);
    }
    b.reset();
    expect(b.next()).toBeLessThanOrEqual(100);
  });

  test("conditions: Ready/Degraded/Progressing with reasons; transition time kept while the status stays", () => {
    const byType = (f: Parameters<typeof lbConditionInputs>[0]) =>
      Object.fromEntries(lbConditionInputs(f).map((c) => [c.type, `${c.status}/${c.reason}`]));
    expect(byType({})).toEqual({
      Ready: "Unknown/Starting",
      Degraded: "False/AsExpected",
      Progressing: "False/Reconciled",
    });
    expect(byType({ servicesUp: true })).toEqual({
      Ready: "True/Serving",
      Degraded: "False/AsExpected",
      Progressing: "False/Reconciled",
    });
    expect(byType({ servicesUp: true, vrrpState: "Fault" })).toMatchObject({
      Ready: "False/VrrpFault",
      Degraded: "True/VrrpFault",
    });
    expect(byType({ servicesUp: false, lastError: "haproxy -c failed", applying: true })).toEqual({
      Ready: "False/ServicesDown",
      Degraded: "True/ApplyFailed",
      Progressing: "True/Applying",
    });
    expect(byType({ servicesUp: true, specProblems: [{ path: "x", rule: "y" }] })).toMatchObject({
      Ready: "True/Serving",
      Degraded: "True/InvalidSpec",
    });
    const t1 = new Date("2025-01-02T03:04:05.678Z");
    const t2 = new Date("2025-01-02T03:09:00Z");
    const c1 = withTransition({ type: "Ready", status: "True", reason: "Serving", message: "" }, undefined, t1, 3);
    expect(c1).toEqual({
      type: "Ready",
      status: "True",
      observedGeneration: 3,
      lastTransitionTime: "2025-01-02T03:04:05Z",
      reason: "Serving",
      message: "",
    });
    expect(
      withTransition({ type: "Ready", status: "True", reason: "Serving", message: "again" }, [c1], t2)
        .lastTransitionTime,
    ).toBe("2025-01-02T03:04:05Z");
    expect(
      withTransition({ type: "Ready", status: "False", reason: "ServicesDown", message: "" }, [c1], t2)
        .lastTransitionTime,
    ).toBe("2025-01-02T03:09:00Z");
  });

  test("Redundant: False when the peer is missing, stale or not Ready, or this LB is not Ready; True when both are", () => {
    const me = { name: "lb1", ready: true };
    const r = (self: typeof me, peers: Parameters<typeof redundantInput>[1]) => {
      const c = redundantInput(self, peers, 30_000);
      return `${c.status}/${c.reason}`;
    };
    expect(r(me, [])).toBe("False/PeerMissing");
    expect(r(me, [{ name: "lb2", ready: true, heartbeatAgeMs: 30_001 }])).toBe("False/HeartbeatStale");
    expect(r(me, [{ name: "lb2", ready: false, heartbeatAgeMs: 1000 }])).toBe("False/PeerNotReady");
    expect(r({ ...me, ready: false }, [{ name: "lb2", ready: true, heartbeatAgeMs: 1000 }])).toBe("False/NotReady");
    expect(r(me, [{ name: "lb2", ready: true, heartbeatAgeMs: 30_000 }])).toBe("True/BothReady");
  });

  test("the MASTER's view of the peer: skew-proof heartbeat age on its own clock; unknown fields of a newer peer tolerated", () => {
    let nowMs = Date.parse("2025-01-02T03:00:00Z");
    const cluster = parseAgentSettings({
      cluster: { apiServers: ["https://127.0.0.1:1"], tlsServerName: TLS_NAME, namespace: NS, loadBalancerName: LAB },
      imageRef: IMAGE,
    }).cluster!;
    const reporter = new StatusReporter(new KubeClient(cluster), {
      namespace: NS,
      loadBalancerName: LAB,
      lbName: "lb1",
      role: "primary",
      heartbeatMs: 1000,
      staleAfterMs: 5000,
      now: () => new Date(nowMs),
    });
    reporter.update({ servicesUp: true, vrrpState: "Master" });
    const lbWith = (heartbeat: string, extra: Record<string, unknown> = {}) => ({
      metadata: { name: LAB, namespace: NS },
      spec: {},
      status: {
        loadBalancers: [
          {
            name: "lb2",
            role: "secondary",
            heartbeat,
            futureField: { x: 1 },
            conditions: [
              {
                type: "Ready",
                status: "True",
                reason: "Serving",
                message: "",
                lastTransitionTime: "2025-01-02T02:00:00Z",
              },
              { type: "Odd" },
            ],
            ...extra,
          },
        ],
      },
    });
    // the peer's clock runs an hour ahead: first sight counts as "now", never as the future
    reporter.observe(lbWith("2025-01-02T04:00:00Z"));
    expect(reporter.redundantNow().reason).toBe("BothReady");
    nowMs += 4000;
    reporter.observe(lbWith("2025-01-02T04:00:04Z"));
    nowMs += 4000;
    expect(reporter.redundantNow().reason).toBe("BothReady"); // changed 4 s ago
    nowMs += 1500;
    expect(reporter.redundantNow().reason).toBe("HeartbeatStale"); // unchanged for 5.5 s on our clock
    // a peer an hour behind that keeps writing is alive
    reporter.observe(lbWith("2025-01-02T02:00:09Z"));
    expect(reporter.redundantNow().reason).toBe("BothReady");
    reporter.observe(
      lbWith("2025-01-02T02:00:10Z", {
        conditions: [
          {
            type: "Ready",
            status: "False",
            reason: "ServicesDown",
            message: "",
            lastTransitionTime: "2025-01-02T02:00:10Z",
          },
        ],
      }),
    );
    expect(reporter.redundantNow().reason).toBe("PeerNotReady");
    reporter.observe({ metadata: { name: LAB, namespace: NS }, spec: {}, status: { loadBalancers: "garbage" } });
    expect(reporter.redundantNow().reason).toBe("PeerMissing");
  });

  test("writeSecretFileAtomic: 0600 whatever the umask, new inode (readers never see a partial file), no temp file left", async () => {
    const dir = mkdtempSync(join(tmpdir(), "edgepair-agent-kube-"));
    const old = process.umask(0o000);
    try {
      const path = join(dir, "token");
      writeFileSync(path, "old\n", { mode: 0o644 });
      const before = statSync(path).ino;
      await writeSecretFileAtomic(path, "new\n");
      expect(readFileSync(path, "utf8")).toBe("new\n");
      expect(statSync(path).mode & 0o777).toBe(0o600);
      expect(statSync(path).ino).not.toBe(before);
      expect(readdirSync(dir)).toEqual(["token"]);
      // counter-case: a directory that does not exist names the file, and nothing is left behind
      await expect(writeSecretFileAtomic(join(dir, "missing", "token"), "x")).rejects.toThrow(
        `cannot write ${join(dir, "missing", "token")}: ENOENT`,
      );
    } finally {
      process.umask(old);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("jwtTimes reads iat/exp of a JWT only", () => {
    const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url");
    expect(jwtTimes(`${b64({ alg: "RS256" })}.${b64({ iat: 10, exp: 20, sub: "x" })}.sig`)).toEqual({
      iat: 10,
      exp: 20,
    });
    expect(jwtTimes(`${b64({})}.${b64({ sub: "x" })}.sig`)).toEqual({});
    expect(jwtTimes("opaque-token")).toBeUndefined();
    expect(jwtTimes("a.%%%.c")).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------------------------------------------
// against the real API server

/** Events of one agent, with the time each arrived; waits are bounded. */
class EventLog {
  readonly events: { at: number; e: ClusterSideEvent }[] = [];
  private waiters: {
    pred: (e: ClusterSideEvent) => boolean;
    from: number;
    resolve: (v: { at: number; e: ClusterSideEvent }) => void;
  }[] = [];

  push = (e: ClusterSideEvent): void => {
    const item = { at: performance.now(), e };
    this.events.push(item);
    const idx = this.events.length - 1;
    this.waiters = this.waiters.filter((w) => {
      if (idx >= w.from && w.pred(e)) {
        w.resolve(item);
        return false;
      }
      return true;
    });
  };

  get mark(): number {
    return this.events.length;
  }

  async waitFor(
    pred: (e: ClusterSideEvent) => boolean,
    what: string,
    from = 0,
    timeoutMs = 15_000,
  ): Promise<{ at: number; e: ClusterSideEvent }> {
    const found = this.events.slice(from).find((x) => pred(x.e));
    if (found) return found;
    let timer: NodeJS.Timeout | undefined;
    try {
      return await new Promise((resolve, reject) => {
        this.waiters.push({ pred, from, resolve });
        timer = setTimeout(
          () =>
            reject(
              new Error(
                `no event "${what}" within ${timeoutMs} ms; last: ${JSON.stringify(this.events.slice(-5).map((x) => x.e))}`,
              ),
            ),
          timeoutMs,
        );
      });
    } finally {
      clearTimeout(timer);
    }
  }
}

const desired = (e: ClusterSideEvent) => (e.type === "desired" ? e.state : undefined);
/** the API servers that Nodes added (the spec's static ones stay whatever the Nodes do) */
const apiNames = (e: ClusterSideEvent) =>
  desired(e)
    ?.selection.pools.api.servers.filter((b) => b.from === "node")
    .map((b) => b.name)
    .join(",");
const ingressNames = (e: ClusterSideEvent) =>
  desired(e)
    ?.selection.backends.ingress.map((b) => b.name)
    .join(",");

/** A TCP relay to the API server that can be taken away and brought back (the API "away", not stopped: fast). */
class Relay {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();

  constructor(
    readonly port: number,
    private readonly target: number,
  ) {}

  async up(): Promise<void> {
    const server = createServer((client) => {
      const upstream = connect(this.target, "127.0.0.1");
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on("close", () => this.sockets.delete(s));
        s.on("error", () => undefined);
      }
      client.pipe(upstream).pipe(client);
      client.on("close", () => upstream.destroy());
      upstream.on("close", () => client.destroy());
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.port, "127.0.0.1", () => resolve());
    });
    this.server = server;
  }

  async down(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    for (const sock of this.sockets) sock.destroy();
    this.sockets.clear();
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2
    ? (s[(s.length - 1) / 2] as number)
    : ((s[s.length / 2 - 1] as number) + (s[s.length / 2] as number)) / 2;
};
const figures: Record<string, number[]> = {};
const measure = (what: string, ms: number) => (figures[what] ??= []).push(Math.round(ms));

describe("agent/kube against a real kube-apiserver, least-privilege token only", () => {
  let kube: KubeApiServer | undefined;
  let dir: string;
  let secretToken: string;
  /** Every response any agent client got, to prove no request needed more than the agent's Role. */
  const responses: (ResponseRecord & { agent: string })[] = [];
  const sides: ClusterSide[] = [];
  const relays: Relay[] = [];

  let cluster: AgentCluster;
  const must = (method: string, path: string, body?: unknown, contentType?: string): Promise<Reply> =>
    cluster.must(method, path, body, contentType);
  const putNode = (name: string, labels: Record<string, string>, ip: string, ready = true) =>
    cluster.putNode(name, labels, ip, ready);
  const setReady = (name: string, ready: boolean, ip?: string) => cluster.setReady(name, ready, ip);

  /** Agent settings with the real CA and TLS name; a token file of its own, 0600. */
  const settingsFor = (
    agent: string,
    apiServers: string[],
    token = secretToken,
    extra: Record<string, unknown> = {},
  ): AgentSettings => {
    const tokenFile = join(dir, agent, "token");
    mkdirSync(join(dir, agent), { recursive: true, mode: 0o700 });
    writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
    return parseAgentSettings({
      cluster: {
        apiServers,
        tlsServerName: TLS_NAME,
        caCertificate: kube!.caPem,
        namespace: NS,
        loadBalancerName: LAB,
        tokenFile,
        ...extra,
      },
      imageRef: IMAGE,
    });
  };
  const record = (agent: string) => (r: ResponseRecord) => responses.push({ ...r, agent });

  const startSide = async (
    agent: string,
    hostname: string,
    role: "primary" | "secondary",
    log: EventLog,
    settings: AgentSettings,
    opts: Partial<ConstructorParameters<typeof ClusterSide>[0]> = {},
  ) => {
    const side = new ClusterSide({
      settings,
      host: { hostname, role },
      onEvent: log.push,
      client: { requestTimeoutMs: 5000, onResponse: record(agent) },
      watch: { resyncMs: 4000, watchTimeoutSeconds: 2, backoff: { initialMs: 100, maxMs: 1000 } },
      status: { heartbeatMs: 300, staleAfterMs: 2000 },
      token: false,
      ...opts,
    });
    sides.push(side);
    await side.start();
    return side;
  };

  beforeAll(async () => {
    kube = await startKubeApiServer();
    dir = mkdtempSync(join(tmpdir(), "edgepair-agent-kube-"));
    chmodSync(dir, 0o700);
    cluster = await setUpAgentCluster(kube, { name: LAB, spec: devSpecRaw() });
    secretToken = cluster.token;
  }, 180_000);

  afterAll(async () => {
    await Promise.allSettled(sides.map((s) => s.stop()));
    await Promise.allSettled(relays.map((r) => r.down()));
    await kube?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
    for (const [what, xs] of Object.entries(figures)) {
      process.stderr.write(
        `[agent-kube] ${what}: n=${xs.length} min ${Math.min(...xs)} ms, median ${median(xs)} ms, max ${Math.max(...xs)} ms\n`,
      );
    }
  }, 60_000);

  describe("client", () => {
    test("reaches the API by address with the API's TLS name and CA; a wrong name or CA fails (counter-cases)", async () => {
      const ok = new KubeClient(settingsFor("client-ok", [kube!.server]).cluster!, { onResponse: record("client-ok") });
      const review = (await ok.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", {
        body: { apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" },
      })) as { status: { userInfo: { username: string } } };
      expect(review.status.userInfo.username).toBe(names.user);

      // 127.0.0.1 is in the serving certificate too: only a checked tls-server-name makes a wrong name fail
      const wrongName = new KubeClient({
        ...settingsFor("client-name", [kube!.server]).cluster!,
        tlsServerName: "api.elsewhere.example",
      });
      await expect(wrongName.request("GET", "/api/v1/nodes")).rejects.toThrow(/ERR_TLS_CERT_ALTNAME_INVALID/);
      const otherPkiDir = join(dir, "other-pki");
      mkdirSync(otherPkiDir);
      const otherCa = createPki(otherPkiDir).ca.certPem;
      const wrongCa = new KubeClient({ ...settingsFor("client-ca", [kube!.server]).cluster!, caCertificate: otherCa });
      await expect(wrongCa.request("GET", "/api/v1/nodes")).rejects.toThrow(KubeUnreachableError);
    });

    test("tries the next API server when one fails, and keeps the one that answered first", async () => {
      const [closed] = await freeLoopbackPorts(1);
      const c = new KubeClient(settingsFor("client-failover", [`https://127.0.0.1:${closed}`, kube!.server]).cluster!, {
        onResponse: record("client-failover"),
      });
      expect(c.currentServer).toBe(`https://127.0.0.1:${closed}`);
      await c.request("GET", "/api/v1/nodes");
      expect(c.currentServer).toBe(kube!.server);
      const before = responses.filter((r) => r.agent === "client-failover").length;
      await c.request("GET", "/api/v1/nodes");
      expect(
        responses
          .filter((r) => r.agent === "client-failover")
          .slice(before)
          .map((r) => r.server),
      ).toEqual([kube!.server]);
      expect(responses.find((r) => r.agent === "client-failover" && r.status === "error")?.server).toBe(
        `https://127.0.0.1:${closed}`,
      );
    });

    test("a missing or empty token file names the field; the token is in no error; an aborted request says so", async () => {
      const s = settingsFor("client-token", [kube!.server]).cluster!;
      const c = new KubeClient(s);
      rmSync(s.tokenFile);
      await expect(c.request("GET", "/api/v1/nodes")).rejects.toThrow(
        `cluster.tokenFile: cannot read ${s.tokenFile}: ENOENT`,
      );
      writeFileSync(s.tokenFile, "\n", { mode: 0o600 });
      await expect(c.request("GET", "/api/v1/nodes")).rejects.toThrow(`cluster.tokenFile: ${s.tokenFile} is empty`);
      writeFileSync(s.tokenFile, "not-a-valid-token\n", { mode: 0o600 });
      const err = await c.request("GET", "/api/v1/nodes").catch((e: unknown) => e);
      expect(err).toBeInstanceOf(KubeApiError);
      expect((err as KubeApiError).statusCode).toBe(401);
      expect((err as Error).message).not.toContain("not-a-valid-token");
      const ac = new AbortController();
      ac.abort();
      await expect(c.request("GET", "/api/v1/nodes", { signal: ac.signal })).rejects.toThrow(AbortedError);
    });
  });

  describe("one agent: Nodes and the LoadBalancer -> desired state", () => {
    const log = new EventLog();
    let side: ClusterSide;

    test("first desired state: the CR's spec, no Node yet -> the spec's static addresses", async () => {
      side = await startSide("lb1", "lab-lb-1", "primary", log, settingsFor("lb1", [kube!.server]));
      const first = (await log.waitFor((e) => e.type === "desired", "first desired state")).e;
      const state = desired(first)!;
      expect(state.generation).toBe(1);
      expect(state.spec.clusterName).toBe("lab");
      expect(state.selection.pools.api.servers.map((b) => b.from)).toEqual(["spec", "spec", "spec"]);
      expect(state.selection.pools.ingress).toEqual({ servers: [], leftOut: [] });
      expect(state.selection.backends.api.map((b) => b.address)).toEqual([
        "192.168.100.10",
        "192.168.100.11",
        "192.168.100.12",
      ]);
    });

    test("Node added / labelled / NotReady / cordoned / deleted -> a desired-state event within a bound", async () => {
      const step = async (what: string, change: () => Promise<unknown>, pred: (e: ClusterSideEvent) => boolean) => {
        const from = log.mark;
        const t0 = performance.now();
        await change();
        const got = await log.waitFor(pred, what, from, 5000);
        const ms = got.at - t0;
        measure("Node change -> desired event", ms);
        expect([what, ms < 2000]).toEqual([what, true]);
        return got.e;
      };
      // the spec's static API addresses are .10-.12; these Nodes sit beside them
      const e1 = await step(
        "cp-0 added",
        () => putNode("cp-0", CP, "192.168.100.13"),
        (e) => apiNames(e) === "cp-0",
      );
      expect(desired(e1)!.selection.pools.api.servers.map((b) => `${b.name}:${b.from}`)).toEqual([
        "192.168.100.10:spec",
        "192.168.100.11:spec",
        "192.168.100.12:spec",
        "cp-0:node",
      ]);
      await step(
        "cp-1 added",
        () => putNode("cp-1", CP, "192.168.100.14"),
        (e) => apiNames(e) === "cp-0,cp-1",
      );
      await step(
        "cp-2 added NotReady: a backend all the same (HAProxy's check judges)",
        () => putNode("cp-2", CP, "192.168.100.15", false),
        (e) => apiNames(e) === "cp-0,cp-1,cp-2",
      );
      await step(
        "cp-2 loses its label",
        () =>
          must(
            "PATCH",
            "/api/v1/nodes/cp-2",
            { metadata: { labels: { "node-role.kubernetes.io/control-plane": null } } },
            MERGE,
          ),
        (e) => apiNames(e) === "cp-0,cp-1",
      );
      await step(
        "w-0 added",
        () => putNode("w-0", WORKER, "192.168.100.20"),
        (e) => ingressNames(e) === "w-0" && desired(e)!.selection.pools.ingress!.servers[0]!.from === "node",
      );
      await step(
        "w-1 added",
        () => putNode("w-1", WORKER, "192.168.100.21"),
        (e) => ingressNames(e) === "w-0,w-1",
      );
      await step(
        "w-1 cordoned",
        () => must("PATCH", "/api/v1/nodes/w-1", { spec: { unschedulable: true } }, MERGE),
        (e) => ingressNames(e) === "w-0",
      );
      await step(
        "w-1 uncordoned",
        () => must("PATCH", "/api/v1/nodes/w-1", { spec: { unschedulable: null } }, MERGE),
        (e) => ingressNames(e) === "w-0,w-1",
      );
      await step(
        "w-1 NotReady beside a Ready w-0",
        () => setReady("w-1", false),
        (e) => ingressNames(e) === "w-0",
      );
      await step(
        "w-1 Ready again",
        () => setReady("w-1", true),
        (e) => ingressNames(e) === "w-0,w-1",
      );
      await step(
        "cp-1 deleted",
        () => must("DELETE", "/api/v1/nodes/cp-1"),
        (e) => apiNames(e) === "cp-0",
      );
      await step(
        "cp-1 back",
        () => putNode("cp-1", CP, "192.168.100.14"),
        (e) => apiNames(e) === "cp-0,cp-1",
      );
      const e2 = await step(
        "a Node at a static address is that server",
        () => putNode("cp-s", CP, "192.168.100.10"),
        (e) => desired(e)?.selection.pools.api.servers[0]?.node === "cp-s",
      );
      expect(apiNames(e2)).toBe("cp-0,cp-1");
      expect(desired(e2)!.selection.backends.api.map((b) => b.name)).toEqual([
        "192.168.100.10",
        "192.168.100.11",
        "192.168.100.12",
        "cp-0",
        "cp-1",
      ]);
      await step(
        "cp-s NotReady and deleted: the static server stays",
        () => setReady("cp-s", false).then(() => must("DELETE", "/api/v1/nodes/cp-s")),
        (e) => desired(e)?.selection.pools.api.servers[0]?.node === undefined,
      );
      // each desired event follows a change: a status write (heartbeat) or an unrelated Node field sends none
      const from = log.mark;
      await must("PATCH", "/api/v1/nodes/cp-0", { metadata: { annotations: { "example.com/unrelated": "x" } } }, MERGE);
      await sleep(1000);
      expect(log.events.slice(from).filter((x) => x.e.type === "desired")).toEqual([]);
      expect(side.current()!.selection.backends.api.map((b) => `${b.name}=${b.address}`)).toEqual([
        "192.168.100.10=192.168.100.10",
        "192.168.100.11=192.168.100.11",
        "192.168.100.12=192.168.100.12",
        "cp-0=192.168.100.13",
        "cp-1=192.168.100.14",
      ]);
    });

    test("resync: full relists keep running (and watches end after timeoutSeconds and resume) without events", async () => {
      const nodeRequests = () => responses.filter((r) => r.agent === "lb1" && r.path.startsWith("/api/v1/nodes"));
      const already = nodeRequests().length;
      const from = log.mark;
      await sleep(6000);
      const window = nodeRequests().slice(already);
      // resync every 4 s (±10 %): at least one full list; watches of 2-3 s: at least two more watches
      expect(window.filter((r) => r.path.startsWith("/api/v1/nodes?limit=")).length).toBeGreaterThanOrEqual(1);
      expect(window.filter((r) => r.path.startsWith("/api/v1/nodes?watch=true")).length).toBeGreaterThanOrEqual(2);
      expect(window.every((r) => r.status === 200)).toBe(true);
      expect(log.events.slice(from).filter((x) => x.e.type !== "statusError")).toEqual([]);
    });

    test("the Node list comes in pages (limit + continue): every Node, one snapshot", async () => {
      const paged = new EventLog();
      const other = await startSide(
        "lb-paged",
        "lab-lb-2",
        "secondary",
        paged,
        settingsFor("lb-paged", [kube!.server]),
        {
          watch: {
            resyncMs: 60_000,
            watchTimeoutSeconds: 30,
            backoff: { initialMs: 100, maxMs: 1000 },
            listPageSize: 2,
          },
        },
      );
      try {
        const first = desired((await paged.waitFor((e) => e.type === "desired", "first desired state (paged)")).e)!;
        const lists = responses.filter((r) => r.agent === "lb-paged" && r.path.startsWith("/api/v1/nodes?limit=2"));
        const all = (await must("GET", "/api/v1/nodes")).body as { items: unknown[] };
        expect(all.items.length).toBeGreaterThan(4);
        expect(lists.length).toBe(Math.ceil(all.items.length / 2));
        expect(lists.slice(1).every((r) => r.path.includes("continue="))).toBe(true);
        expect(first.selection).toEqual(side.current()!.selection);
      } finally {
        await other.stop();
        // its status entry goes with it: the later tests count the entries of the LBs they start
        const lb = (await must("GET", lbPath)).body as { status?: { loadBalancers?: { name: string }[] } };
        const i = (lb.status?.loadBalancers ?? []).findIndex((e) => e.name === "lab-lb-2");
        if (i >= 0)
          await must(
            "PATCH",
            `${lbPath}/status`,
            [
              { op: "test", path: `/status/loadBalancers/${i}/name`, value: "lab-lb-2" },
              { op: "remove", path: `/status/loadBalancers/${i}` },
            ],
            "application/json-patch+json",
          );
      }
    });

    test("a spec change -> desired event with the new spec; an invalid spec -> field errors, the last good one kept", async () => {
      let from = log.mark;
      await must(
        "PATCH",
        lbPath,
        { spec: { ingressBackend: { nodeSelector: { matchLabels: { "node-role.kubernetes.io/infra": "" } } } } },
        MERGE,
      );
      const changed = await log.waitFor((e) => e.type === "desired" && e.cause === "spec", "spec change", from);
      expect(desired(changed.e)!.generation).toBe(2);
      expect(desired(changed.e)!.selection.pools.ingress!.servers).toEqual([]);
      await must(
        "PATCH",
        "/api/v1/nodes/w-0",
        { metadata: { labels: { "node-role.kubernetes.io/infra": "" } } },
        MERGE,
      );
      await log.waitFor((e) => ingressNames(e) === "w-0", "infra node", from);

      from = log.mark;
      const good = side.current();
      // a private API VIP outside network.cidr: well-formed for the CRD, wrong for spec/semantics.ts
      const r = await must(
        "PATCH",
        lbPath,
        {
          spec: {
            virtualAddresses: {
              api: [
                { address: "10.9.9.100", type: "private" },
                { address: "198.51.100.100", type: "public" },
              ],
            },
          },
        },
        MERGE,
      );
      expect((r.body as { metadata: { generation: number } }).metadata.generation).toBe(3);
      const bad = (await log.waitFor((e) => e.type === "invalidSpec", "invalid spec", from)).e;
      expect(bad).toEqual({
        type: "invalidSpec",
        generation: 3,
        problems: [
          {
            path: "virtualAddresses.api[0].address",
            rule: "is private, so it must be inside network.cidr 192.168.100.0/24",
          },
        ],
      });
      expect(side.current()).toBe(good);
      // Nodes still move the backends of the last good spec
      await putNode("cp-9", CP, "192.168.100.19");
      const moved = await log.waitFor(
        (e) => apiNames(e) === "cp-0,cp-1,cp-9",
        "backend change under an invalid spec",
        from,
      );
      expect(desired(moved.e)!.generation).toBe(2);
      // status says Degraded with the field error
      const deadline = Date.now() + 5000;
      let degraded: { reason: string; message: string } | undefined;
      while (!degraded && Date.now() < deadline) {
        const lb = (await must("GET", lbPath)).body as {
          status?: {
            loadBalancers?: {
              name: string;
              conditions?: { type: string; status: string; reason: string; message: string }[];
            }[];
          };
        };
        degraded = lb.status?.loadBalancers
          ?.find((e) => e.name === "lab-lb-1")
          ?.conditions?.find((c) => c.type === "Degraded" && c.status === "True");
        if (!degraded) await sleep(100);
      }
      expect(degraded).toMatchObject({ reason: "InvalidSpec" });
      expect(degraded!.message).toContain(
        "virtualAddresses.api[0].address: is private, so it must be inside network.cidr 192.168.100.0/24",
      );

      from = log.mark;
      await must(
        "PATCH",
        lbPath,
        {
          spec: {
            virtualAddresses: {
              api: [
                { address: "192.168.100.100", type: "private" },
                { address: "198.51.100.100", type: "public" },
              ],
            },
          },
        },
        MERGE,
      );
      expect(
        desired((await log.waitFor((e) => e.type === "desired" && e.cause === "spec", "fixed spec", from)).e)!
          .generation,
      ).toBe(4);
      await must("DELETE", "/api/v1/nodes/cp-9");
    });
  });

  describe("two agents: status entries and Redundant", () => {
    const log1 = new EventLog();
    const log2 = new EventLog();
    let lb1: ClusterSide;
    let lb2: ClusterSide;

    type Cond = { type: string; status: string; reason: string; message: string; lastTransitionTime: string };
    const getStatus = async () =>
      (await must("GET", lbPath)).body as {
        status?: {
          conditions?: Cond[];
          loadBalancers?: { name: string; role: string; vrrpState?: string; heartbeat: string; conditions?: Cond[] }[];
        };
        metadata: { managedFields: { manager: string; subresource?: string; fieldsV1: unknown }[] };
      };
    const redundant = async () => (await getStatus()).status?.conditions?.find((c) => c.type === "Redundant");
    const untilRedundant = async (reason: string, timeoutMs = 8000) => {
      const t0 = performance.now();
      for (;;) {
        const c = await redundant();
        if (c?.reason === reason) return { c, ms: performance.now() - t0 };
        if (performance.now() - t0 > timeoutMs)
          throw new Error(`Redundant never became ${reason}; last ${JSON.stringify(c)}`);
        await sleep(50);
      }
    };

    test("lb1 alone (MASTER): its entry, and Redundant False PeerMissing", async () => {
      // the agent of the previous describe is lb1's own (same hostname): stop it so only these two write
      await Promise.all(sides.splice(0).map((s) => s.stop()));
      lb1 = await startSide("lb1", "lab-lb-1", "primary", log1, settingsFor("lb1", [kube!.server]));
      lb1.status.update({
        vrrpState: "Master",
        servicesUp: true,
        rendererVersion: "0.1.0",
        bootedImage: IMAGE,
        configHashes: { "/etc/haproxy/haproxy.cfg": "sha256:1" },
      });
      const { c } = await untilRedundant("PeerMissing");
      expect(c.status).toBe("False");
    });

    test("lb2 joins (BACKUP): both entries, Redundant True; the two write concurrently without a conflict", async () => {
      lb2 = await startSide("lb2", "lab-lb-2", "secondary", log2, settingsFor("lb2", [kube!.server]));
      lb2.status.update({ vrrpState: "Backup", servicesUp: true, rendererVersion: "0.1.0" });
      const { c, ms } = await untilRedundant("BothReady");
      measure("peer Ready -> Redundant True", ms);
      expect(c.status).toBe("True");

      const writes: Promise<void>[] = [];
      for (let i = 0; i < 15; i++) {
        lb1.status.update({ configHashes: { "/etc/haproxy/haproxy.cfg": `sha256:1-${i}` } });
        lb2.status.update({ configHashes: { "/etc/haproxy/haproxy.cfg": `sha256:2-${i}` } });
        writes.push(lb1.status.flush(), lb2.status.flush());
      }
      await Promise.all(writes);
      await sleep(500);
      const s = await getStatus();
      expect(s.status!.loadBalancers!.map((e) => [e.name, e.role, e.vrrpState])).toEqual([
        ["lab-lb-1", "primary", "Master"],
        ["lab-lb-2", "secondary", "Backup"],
      ]);
      expect([...log1.events, ...log2.events].filter((x) => x.e.type === "statusError")).toEqual([]);
      expect(responses.filter((r) => r.status === 409)).toEqual([]);
      // ownership: each entry manager owns its own entry only; the MASTER's pair manager owns Redundant
      const owned = (m: string) =>
        JSON.stringify(
          s.metadata.managedFields.find((f) => f.manager === m && f.subresource === "status")?.fieldsV1 ?? {},
        );
      expect(owned(statusFieldManager("lab-lb-1"))).toContain('k:{\\"name\\":\\"lab-lb-1\\"}');
      expect(owned(statusFieldManager("lab-lb-1"))).not.toContain("lab-lb-2");
      expect(owned(statusFieldManager("lab-lb-1"))).not.toContain("Redundant");
      expect(owned(statusFieldManager("lab-lb-2"))).not.toContain("lab-lb-1");
      expect(owned(pairStatusFieldManager("lab-lb-1"))).toContain('k:{\\"type\\":\\"Redundant\\"}');
      expect(owned(pairStatusFieldManager("lab-lb-1"))).not.toContain("loadBalancers");
    });

    test("lb2 not Ready -> PeerNotReady; Ready again -> True; the transition time follows only status changes", async () => {
      const before = (await redundant())!;
      await sleep(1100); // a later second, so a rewritten transition time would show
      lb2.status.update({ servicesUp: false, lastError: "haproxy is not running" });
      await untilRedundant("PeerNotReady");
      lb2.status.update({ servicesUp: true, lastError: undefined });
      const { c } = await untilRedundant("BothReady");
      expect(c.lastTransitionTime > before.lastTransitionTime).toBe(true);
      const lb1Ready = (await getStatus())
        .status!.loadBalancers!.find((e) => e.name === "lab-lb-1")!
        .conditions!.find((x) => x.type === "Ready")!;
      await sleep(1100);
      const again = (await getStatus())
        .status!.loadBalancers!.find((e) => e.name === "lab-lb-1")!
        .conditions!.find((x) => x.type === "Ready")!;
      expect(again.lastTransitionTime).toBe(lb1Ready.lastTransitionTime);
    });

    test("lb2 stops heartbeating -> Redundant False HeartbeatStale within the bound", async () => {
      const t0 = performance.now();
      await lb2.stop();
      const { c, ms } = await untilRedundant("HeartbeatStale", 8000);
      measure("peer heartbeat stops -> Redundant False", performance.now() - t0);
      expect(c.status).toBe("False");
      // bound: staleAfterMs 2000 + one heartbeat 300 + watch and write latency
      expect(ms).toBeLessThan(4000);
      expect(ms).toBeGreaterThanOrEqual(1500);
    });

    test("lb2 replaced by a VM with a new hostname: its entry joins, the predecessor's leaves, Redundant True again; the backends view reaches status", async () => {
      const t0 = performance.now();
      lb2 = await startSide("lb2b", "lab-lb-2b", "secondary", log2, settingsFor("lb2b", [kube!.server]));
      const pool = {
        servers: [
          { name: "192.168.100.9", address: "192.168.100.9", from: "spec" as const },
          { name: "192.168.100.10", address: "192.168.100.10", from: "spec" as const, node: "master-0" },
          ...Array.from({ length: 300 }, (_, i) => ({
            name: `w-${i}`,
            address: `10.0.${i >> 8}.${i & 255}`,
            from: "node" as const,
            node: `w-${i}`,
          })),
        ],
        leftOut: Array.from({ length: 40 }, (_, i) => ({ node: `x-${i}`, reason: "cordoned" })),
      };
      lb2.status.update({ vrrpState: "Backup", servicesUp: true, rendererVersion: "0.1.0", backends: { api: pool } });
      const { c } = await untilRedundant("BothReady");
      measure("replaced peer reports -> Redundant True", performance.now() - t0);
      expect(c.message).toContain("lab-lb-2b");
      for (let i = 0; i < 100; i++) {
        const names = (await getStatus()).status!.loadBalancers!.map((e) => e.name);
        if (!names.includes("lab-lb-2")) break;
        await sleep(50);
      }
      const s = (await getStatus()).status!.loadBalancers!;
      expect(s.map((e) => [e.name, e.role])).toEqual([
        ["lab-lb-1", "primary"],
        ["lab-lb-2b", "secondary"],
      ]);
      const api = (
        s[1] as unknown as {
          backends: { api: { servers: unknown[]; serverCount: number; leftOut: unknown[]; leftOutCount: number } };
        }
      ).backends.api;
      expect([api.servers.length, api.serverCount, api.leftOut.length, api.leftOutCount]).toEqual([256, 302, 32, 40]);
      expect(api.servers[1]).toEqual({
        name: "192.168.100.10",
        address: "192.168.100.10",
        from: "spec",
        node: "master-0",
      });
      // the MASTER's peer is the new VM, never the dead entry
      expect(lb1.status.peerView()?.name).toBe("lab-lb-2b");
      expect(responses.filter((r) => r.agent === "lb2b" && r.status === 403)).toEqual([]);
    });

    test("counter-case: an entry of the other role is never removed; the LB's own role only", async () => {
      // lb1 (primary) sees lab-lb-2b (secondary): it must not remove it however often it writes
      for (let i = 0; i < 5; i++) await lb1.status.flush();
      expect((await getStatus()).status!.loadBalancers!.map((e) => e.name)).toEqual(["lab-lb-1", "lab-lb-2b"]);
    });

    afterAll(async () => {
      await Promise.allSettled([lb1?.stop(), lb2?.stop()]);
    });
  });

  describe("token rotation", () => {
    test("TokenRequest replaces the bootstrap token with a 0600 short-lived one the client then uses; a refused token falls back to the kept bootstrap token", async () => {
      const log = new EventLog();
      const settings = settingsFor("lb-token", [kube!.server]);
      const tokenFile = settings.cluster!.tokenFile;
      const side = await startSide("lb-token", "lab-lb-1", "primary", log, settings, {
        token: { expirationSeconds: 3600 },
      });
      const renewed = await log.waitFor((e) => e.type === "tokenRenewed", "first renewal");
      const first = readFileSync(tokenFile, "utf8").trim();
      expect(first).not.toBe(secretToken);
      expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
      const times = jwtTimes(first)!;
      expect(times.exp! - times.iat!).toBe(3600);
      expect(renewed.e).toEqual({ type: "tokenRenewed", expiresAt: new Date(times.exp! * 1000) });
      // the bootstrap token (no expiry) was kept aside, 0600
      expect(readFileSync(bootstrapTokenPath(tokenFile), "utf8").trim()).toBe(secretToken);
      expect(statSync(bootstrapTokenPath(tokenFile)).mode & 0o777).toBe(0o600);

      // the client presents exactly the token in the file: the API server reports its ID
      const jti = (t: string) =>
        (JSON.parse(Buffer.from(t.split(".")[1]!, "base64url").toString()) as { jti: string }).jti;
      const credentialId = async () =>
        (
          (await side.client.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", {
            body: { apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" },
          })) as { status: { userInfo: { extra?: Record<string, string[]> } } }
        ).status.userInfo.extra?.["authentication.kubernetes.io/credential-id"];
      expect(await credentialId()).toEqual([`JTI=${jti(first)}`]);
      await side.token!.renewNow();
      const second = readFileSync(tokenFile, "utf8").trim();
      expect(second).not.toBe(first);
      expect(await credentialId()).toEqual([`JTI=${jti(second)}`]);

      // a refused token (e.g. expired while the VM was off): one 401, then the bootstrap token, then a fresh token
      writeFileSync(tokenFile, "expired-or-revoked\n", { mode: 0o600 });
      await side.token!.renewNow();
      const third = readFileSync(tokenFile, "utf8").trim();
      expect(jwtTimes(third)?.exp).toBeDefined();
      expect(await credentialId()).toEqual([`JTI=${jti(third)}`]);
      expect(side.client.auth.usingBootstrapToken).toBe(false);
      // requests racing the renewal may also have met the refused token once; never more than a few
      const refused = responses.filter((r) => r.agent === "lb-token" && r.status === 401).length;
      expect(refused).toBeGreaterThanOrEqual(1);
      expect(refused).toBeLessThanOrEqual(3);

      // no token in any event
      const shown = JSON.stringify(log.events);
      for (const t of [secretToken, first, second, third]) expect(shown).not.toContain(t.slice(-40));
      await side.stop();
    });
  });

  describe("the LoadBalancer deleted and created again with a new clusterName (past the CRD's immutability rules)", () => {
    test("the agent refuses it itself: invalid spec naming clusterName and the derived router ID; the last good spec stays", async () => {
      const log = new EventLog();
      const booted = resolveSpec(devSpecRaw());
      const side = await startSide(
        "lb-immutable",
        "lab-lb-1",
        "primary",
        log,
        settingsFor("lb-immutable", [kube!.server]),
        { bootstrapSpec: booted },
      );
      // the LoadBalancer's own spec (a first desired state may still be the boot spec's, before the watch read it)
      await log.waitFor((e) => e.type === "desired" && e.state.generation !== undefined, "desired state of the CR");
      const good = side.current();
      const from = log.mark;
      await must("DELETE", lbPath);
      const renamed = { ...devSpecRaw(), clusterName: "other" };
      await must(
        "POST",
        `/apis/${GROUP}/${VERSION}/namespaces/${NS}/${PLURAL}?fieldValidation=Strict`,
        loadBalancerResource(checkSpec(renamed as never), { name: LAB }),
      );
      const bad = (await log.waitFor((e) => e.type === "invalidSpec", "the re-created LoadBalancer refused", from)).e;
      expect(bad.type === "invalidSpec" ? bad.problems.map((p) => p.path) : []).toEqual([
        "clusterName",
        "vrrp.routerId",
      ]);
      expect(bad.type === "invalidSpec" ? bad.problems[0]!.rule : "").toMatch(
        /^cannot change on a running pair: .*; it runs lab$/,
      );
      // the last good spec stays (a Node event of an earlier test may still re-select its backends meanwhile)
      expect(side.current()?.spec).toBe(good?.spec);
      expect(log.events.slice(from).filter((x) => x.e.type === "desired" && x.e.cause === "spec")).toEqual([]);
      // counter-case: the LoadBalancer created again with the running clusterName is taken
      await must("DELETE", lbPath);
      await must(
        "POST",
        `/apis/${GROUP}/${VERSION}/namespaces/${NS}/${PLURAL}?fieldValidation=Strict`,
        loadBalancerResource(checkSpec(devSpecRaw() as never), { name: LAB }),
      );
      await log.waitFor(
        (e) => e.type === "desired" && e.cause === "spec",
        "the LoadBalancer with the running clusterName",
        from,
      );
      await side.stop();
    });
  });

  describe("the API away, then back", () => {
    test("first API server closed: the next one serves; relay down: back-off, last state kept; relay up: recovery, no crash", async () => {
      const [closed, relayPort] = await freeLoopbackPorts(2);
      const relay = new Relay(relayPort!, Number(new URL(kube!.server).port));
      relays.push(relay);
      await relay.up();
      const log = new EventLog();
      const side = await startSide(
        "lb-away",
        "lab-lb-1",
        "primary",
        log,
        settingsFor("lb-away", [`https://127.0.0.1:${closed}`, `https://127.0.0.1:${relayPort}`]),
      );
      await log.waitFor((e) => e.type === "desired", "desired through the second API server");
      expect(side.client.currentServer).toBe(`https://127.0.0.1:${relayPort}`);
      const kept = side.current();

      const from = log.mark;
      const tDown = performance.now();
      await relay.down();
      await log.waitFor((e) => e.type === "apiError" && e.source === "nodes", "API error", from, 10_000);
      // the cluster changes while the agent cannot see it
      await putNode("cp-5", CP, "192.168.100.15");
      await sleep(2500);
      const errors = log.events.slice(from).flatMap((x) => (x.e.type === "apiError" ? [x.e] : []));
      expect(errors.length).toBeGreaterThanOrEqual(3);
      // bounded, jittered exponential back-off per source
      const nodeDelays = errors.filter((e) => e.source === "nodes").map((e) => e.retryInMs);
      expect(nodeDelays.every((d) => d >= 50 && d <= 1000)).toBe(true);
      expect(Math.max(...nodeDelays)).toBeGreaterThan(nodeDelays[0]!);
      expect(errors.some((e) => e.message.includes("no API server answered"))).toBe(true);
      expect(side.current()).toBe(kept);

      const tUp = performance.now();
      await relay.up();
      const back = await log.waitFor(
        (e) => e.type === "apiRecovered" && e.source === "nodes",
        "recovery",
        from,
        10_000,
      );
      await log.waitFor((e) => apiNames(e)?.includes("cp-5") === true, "the change made while away", from, 10_000);
      measure("API back -> watch recovered", back.at - tUp);
      measure(
        "API outage seen by the agent (apiRecovered.downMs)",
        back.e.type === "apiRecovered" ? back.e.downMs : NaN,
      );
      expect(back.at - tUp).toBeLessThan(2500); // bound: the back-off cap (1 s) + list
      expect(performance.now() - tDown).toBeLessThan(20_000);
      await must("DELETE", "/api/v1/nodes/cp-5");
    });

    test("stop() leaves no timer, socket or request behind", async () => {
      // TLS sockets show as TCPSocketWrap
      const kinds = ["Timeout", "TCPSocketWrap", "GetAddrInfoReqWrap", "TCPConnectWrap", "FSReqCallback", "FileHandle"];
      const count = () => {
        const all = process.getActiveResourcesInfo();
        return Object.fromEntries(kinds.map((k) => [k, all.filter((x) => x === k).length]));
      };
      await Promise.all(sides.splice(0).map((s) => s.stop()));
      await Promise.all(relays.splice(0).map((r) => r.down()));
      await sleep(200);
      const before = count();
      const log = new EventLog();
      const [closed] = await freeLoopbackPorts(1);
      const side = await startSide(
        "lb-stop",
        "lab-lb-1",
        "primary",
        log,
        settingsFor("lb-stop", [`https://127.0.0.1:${closed}`, kube!.server]),
        { token: { expirationSeconds: 3600 } },
      );
      await log.waitFor((e) => e.type === "desired", "running");
      await log.waitFor((e) => e.type === "tokenRenewed", "token");
      side.status.update({ vrrpState: "Master", servicesUp: true });
      await sleep(300);
      const during = count();
      expect(during.Timeout).toBeGreaterThan(before.Timeout!);
      expect(during.TCPSocketWrap).toBeGreaterThanOrEqual(before.TCPSocketWrap! + 2); // the two watches
      await side.stop();
      sides.splice(sides.indexOf(side), 1);
      // at most what was there before (the fixture's own timers may end meanwhile); sockets close asynchronously,
      // so a loaded machine gets up to 2 s
      const grown = () => {
        const after = count();
        return kinds.filter((k) => after[k]! > before[k]!).map((k) => `${k}: ${before[k]} -> ${after[k]}`);
      };
      for (let i = 0; i < 20 && grown().length > 0; i++) await sleep(100);
      expect(grown()).toEqual([]);
    });
  });

  test("every request any agent made was allowed by its Role (no 403), and used only the agent's verbs", () => {
    expect(responses.length).toBeGreaterThan(100);
    expect(responses.filter((r) => r.status === 403)).toEqual([]);
    const shapes = new Set(
      responses
        .filter((r) => r.status !== "error")
        .map((r) => `${r.method} ${r.path.replace(/\?.*$/, "").replace(/\/nodes\/[^/]+$/, "/nodes/NAME")}`),
    );
    expect([...shapes].sort()).toEqual(
      [
        "GET /api/v1/nodes",
        `GET /apis/${GROUP}/${VERSION}/namespaces/${NS}/${PLURAL}`,
        `PATCH ${lbPath}/status`,
        `POST /api/v1/namespaces/${NS}/serviceaccounts/${names.serviceAccount}/token`,
        "POST /apis/authentication.k8s.io/v1/selfsubjectreviews",
      ].sort(),
    );
    // the LoadBalancer was only ever listed and watched by name
    expect(
      responses.filter(
        (r) =>
          r.path.startsWith(`/apis/${GROUP}/`) &&
          r.method === "GET" &&
          !r.path.includes(`fieldSelector=metadata.name%3D${LAB}`),
      ),
    ).toEqual([]);
  });
});
