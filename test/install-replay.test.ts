/**
 * A cluster's install replayed through the pair (issue 17): real haproxy, keepalived, conntrackd and firewalld in the
 * lab's namespaces, `agent run` on both LBs against a real kube-apiserver (the cluster), clients on a cluster node
 * that never stop asking.
 *
 * OpenShift: the bootstrap node serves 6443 with the real kube-apiserver (relayed into the bootstrap host's
 * namespace through a Unix socket) and 22623 (the machine-config server stand-in); the three masters register as
 * NotReady Nodes first and start serving later, one by one, then turn Ready; the user removes the bootstrap address
 * from the spec after bootstrap-complete (the LoadBalancer patched as ClusterAccess would on `pulumi up`); the workers
 * register last. kubeadm: the first control plane serves at once (the real kube-apiserver), the others join later,
 * every Node NotReady until a CNI appears.
 *
 * Asserted: not one failed request through the private API VIP (6443) and, for OpenShift, 22623, from start to end;
 * no HAProxy reload (every change is backend membership, done through the runtime API: a reload is unavoidable only
 * for changes of frontends, ports or check options, and none happens in an install); no server ever leaves the pool
 * while the spec lists it; each LB's status shows where its servers come from. Needs root.
 */
import { createConnection, createServer, type Server } from "node:net";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { readServers, RuntimeSocket } from "../agent/haproxy";
import { readRequests } from "../lab/analysis";
import type { ProcessRecord } from "../lab/exec";
import type { LbKey } from "../lab/lab";
import { MACHINE_CONFIG_PORT } from "../render/haproxy";
import { MERGE } from "./fixtures/agent-cluster";
import { CONTROL_PLANE as CP, startAgentOnLab, type AgentOnLab } from "./fixtures/agent-on-lab";
import { devSpecRaw } from "./fixtures/variants";

jest.setTimeout(420_000);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const suite = process.getuid?.() === 0 ? describe : describe.skip;
const API_PORT = 6443;

interface PoolStatus {
  servers: { name: string; address: string; from: string; node?: string }[];
}
interface EntryStatus {
  name: string;
  backends?: { api: PoolStatus; ingress?: PoolStatus };
}

/** Unix socket -> the real kube-apiserver on loopback (the lab relays a backend address to this socket). */
function unixRelay(path: string, apiServer: string): Promise<Server> {
  const { hostname, port } = new URL(apiServer);
  rmSync(path, { force: true });
  const server = createServer((s) => {
    const up = createConnection(Number(port), hostname);
    const end = () => {
      s.destroy();
      up.destroy();
    };
    s.on("error", end);
    up.on("error", end);
    s.pipe(up).pipe(s);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => resolve(server));
  });
}

/** The replay's harness: the lab, both agents, the clients, and what it observed. */
class Replay {
  readonly steps: { step: string; ms: number }[] = [];
  private readonly clients: { name: string; out: string; p: ProcessRecord }[] = [];
  /** every server name seen in the runtime list, per LB and backend, and the static ones that ever went missing */
  readonly missing: string[] = [];
  private watching: NodeJS.Timeout | undefined;
  private relay: Server | undefined;
  private t0 = Date.now();

  constructor(readonly h: AgentOnLab) {}

  get lab() {
    return this.h.lab;
  }
  hostOf(address: string): string {
    const h = this.lab.plan.hosts.find((x) => x.address === address);
    if (!h) throw new Error(`no lab host at ${address}`);
    return h.key;
  }

  async step<T>(what: string, run: () => Promise<T>): Promise<T> {
    const t = Date.now();
    const r = await run();
    this.steps.push({ step: what, ms: Date.now() - t });
    process.stderr.write(
      `[install-replay] +${((Date.now() - this.t0) / 1000).toFixed(1)} s ${what}: ${Date.now() - t} ms\n`,
    );
    return r;
  }

  /** The real kube-apiserver at `address`:6443 inside its lab host. */
  async serveRealApi(address: string): Promise<void> {
    const sock = join(this.lab.dir, "kube-apiserver.sock");
    this.relay ??= await unixRelay(sock, this.h.kube.server);
    await this.lab.startRelay(`${this.hostOf(address)}/serve`, this.hostOf(address), `${address}:${API_PORT}`, sock);
  }

  /** The machine-config server stand-in alone (the bootstrap's 22623 beside the real API). */
  async serveMcs(address: string): Promise<void> {
    const key = this.hostOf(address);
    const pki = join(this.lab.dir, "pki");
    const p = this.lab.startHelper(`${key}/mcs`, key, [
      "serve",
      "--name",
      address,
      "--https",
      `${address}:${MACHINE_CONFIG_PORT}`,
      "--cert",
      join(pki, "cert.pem"),
      "--key",
      join(pki, "key.pem"),
    ]);
    await this.lab.waitListening(p);
  }

  async stopAll(address: string): Promise<void> {
    const key = this.hostOf(address);
    await this.lab.stopServer(key);
    const mcs = this.lab.proc(`${key}/mcs`);
    if (mcs) await this.lab.stopClient(mcs);
  }

  startClient(name: string, url: string): void {
    const out = join(this.lab.dir, "logs", `${name}.jsonl`);
    const p = this.lab.startClient(name, url, out, {
      ns: this.lab.ns("node"),
      intervalMs: 50,
      timeoutMs: 3000,
      maxMs: 300_000,
    });
    this.clients.push({ name, out, p });
  }

  async stopClients(): Promise<{ name: string; requests: number; failed: number; firstFailures: string[] }[]> {
    for (const c of this.clients) await this.lab.stopClient(c.p);
    return this.clients.map((c) => {
      const r = readRequests(c.out);
      const failed = r.filter((x) => !x.ok);
      return {
        name: c.name,
        requests: r.length,
        failed: failed.length,
        firstFailures: failed.slice(0, 5).map((x) => JSON.stringify(x)),
      };
    });
  }

  async servers(key: LbKey): Promise<{ backend: string; name: string; address: string }[]> {
    const a = this.h.agents[key]!;
    return readServers(new RuntimeSocket(a.haproxySocket()));
  }

  /** Watches both LBs' runtime server lists: a static address missing from its backends while the spec lists it. */
  watchStatics(statics: () => readonly string[], backends: readonly string[]): void {
    let busy = false;
    this.watching = setInterval(() => {
      if (busy) return;
      busy = true;
      void Promise.all(
        (["lb1", "lb2"] as const).map(async (k) => {
          const list = await this.servers(k).catch(() => undefined);
          if (!list) return;
          for (const be of backends) {
            for (const a of statics()) {
              if (!list.some((s) => s.backend === be && s.address === a)) this.missing.push(`${k} ${be} ${a}`);
            }
          }
        }),
      ).finally(() => (busy = false));
    }, 100);
  }

  async until(what: string, timeoutMs: number, probe: () => Promise<boolean>): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await probe())) {
      if (Date.now() > deadline) {
        const logs = Object.values(this.h.agents)
          .map((a) => `${a!.key}:\n${a!.log.slice(-15).join("\n")}`)
          .join("\n");
        const clients = this.clients.map((c) => {
          const r = readRequests(c.out);
          return `${c.name}: ${r.length} requests, ${r.filter((x) => !x.ok).length} failed`;
        });
        throw new Error(
          `install replay: ${what} within ${timeoutMs} ms\nclients so far: ${clients.join("; ")}\n${logs}`,
        );
      }
      await sleep(100);
    }
  }

  /** HAProxy's own check on both LBs: `server` of `backend` UP (true) or DOWN (false). */
  async health(backend: string, server: string, up: boolean): Promise<boolean> {
    for (const k of ["lb1", "lb2"] as const) {
      const rows = await this.lab.backendHealth(k).catch(() => []);
      const row = rows.find((r) => r.backend === backend && r.server === server);
      if (!row || row.status.startsWith("UP") !== up) return false;
    }
    return true;
  }

  async entries(): Promise<EntryStatus[]> {
    const lb = (await this.h.cluster.must("GET", this.h.cluster.lbPath)).body as {
      status?: { loadBalancers?: EntryStatus[] };
    };
    return lb.status?.loadBalancers ?? [];
  }

  /** Both LBs' status says `pool` holds exactly `view` (name:from(node)). */
  async statusShows(pool: "api" | "ingress", view: string[]): Promise<boolean> {
    const e = await this.entries();
    const text = (p: PoolStatus | undefined) =>
      (p?.servers ?? []).map((s) => `${s.name}:${s.from}${s.node ? `(${s.node})` : ""}`).join(" ");
    return e.length === 2 && e.every((x) => text(x.backends?.[pool]) === view.join(" "));
  }

  async stop(): Promise<void> {
    clearInterval(this.watching);
    this.relay?.close();
    await this.h.stop();
  }
}

const BOOT = "192.168.100.9";
const MASTERS = ["192.168.100.10", "192.168.100.11", "192.168.100.12"];

suite("the OpenShift install replayed through the pair: bootstrap node, NotReady masters, bootstrap removed", () => {
  let r: Replay | undefined;
  afterAll(async () => {
    await r?.stop();
  }, 120_000);

  test("0 failed requests through the private API VIP (6443) and 22623 from start to end; no HAProxy reload", async () => {
    const spec = devSpecRaw();
    spec.distribution = "openshift";
    spec.apiBackend = { nodeSelector: { matchLabels: CP }, addresses: [BOOT, ...MASTERS] };
    let statics = [BOOT, ...MASTERS];
    const h = await startAgentOnLab({ spec, both: true, putNodes: () => false, kubeArgs: ["--anonymous-auth=true"] });
    r = new Replay(h);
    const lab = r.lab;
    const vip = lab.plan.targets.apiVipPrivate!;

    await r.step(
      "bootstrap serves (the real kube-apiserver on 6443, the MCS on 22623); the masters do not yet",
      async () => {
        for (const a of [BOOT, ...MASTERS]) await r!.stopAll(a);
        await r!.serveRealApi(BOOT);
        await r!.serveMcs(BOOT);
        await r!.until(
          "bootstrap UP, masters DOWN on both LBs",
          30_000,
          async () =>
            (await r!.health("be_api", BOOT, true)) &&
            (await r!.health("be_machine_config", BOOT, true)) &&
            (await Promise.all(MASTERS.map((m) => r!.health("be_api", m, false)))).every(Boolean),
        );
      },
    );
    r.watchStatics(() => statics, ["be_api", "be_machine_config"]);
    r.startClient("api-vip-6443", `https://${vip}:${API_PORT}/readyz`);
    r.startClient("api-vip-22623", `https://${vip}:${MACHINE_CONFIG_PORT}/config/worker`);
    await sleep(2000);

    await r.step("the masters register as NotReady Nodes: each LB's status names them, HAProxy unchanged", async () => {
      for (const [i, a] of MASTERS.entries()) await h.cluster.putNode(`master-${i}`, CP, a, false);
      await r!.until("status shows the masters' Nodes on both LBs", 20_000, () =>
        r!.statusShows("api", [`${BOOT}:spec`, ...MASTERS.map((a, i) => `${a}:spec(master-${i})`)]),
      );
    });

    for (const [i, a] of MASTERS.entries()) {
      await r.step(`master-${i} starts serving 6443 and 22623: HAProxy's check takes it in on both LBs`, async () => {
        await lab.startServer(r!.hostOf(a));
        await r!.until(
          `master-${i} UP`,
          30_000,
          async () => (await r!.health("be_api", a, true)) && (await r!.health("be_machine_config", a, true)),
        );
      });
      await r.step(`master-${i} turns Ready`, async () => {
        await h.cluster.setReady(`master-${i}`, true);
        await sleep(500);
      });
    }

    await r.step(
      "bootstrap-complete: the bootstrap address leaves the spec; both LBs drain and delete its server",
      async () => {
        statics = MASTERS;
        await h.cluster.must("PATCH", h.cluster.lbPath, { spec: { apiBackend: { addresses: MASTERS } } }, MERGE);
        await r!.until("bootstrap server gone from both LBs", 30_000, async () =>
          (
            await Promise.all(
              (["lb1", "lb2"] as const).map(async (k) => !(await r!.servers(k)).some((s) => s.address === BOOT)),
            )
          ).every(Boolean),
        );
        await r!.stopAll(BOOT); // the bootstrap machine is destroyed
      },
    );

    await r.step("the workers register: ingress servers added by their Nodes", async () => {
      for (const n of lab.plan.nodes.filter((x) => !("node-role.kubernetes.io/control-plane" in x.labels)))
        await h.cluster.putNode(n.name, n.labels, n.internalIPs[0]!, true);
      await r!.until("status shows the workers", 20_000, () =>
        r!.statusShows(
          "ingress",
          lab.plan.backends.ingress.map((b) => `${b.name}:node(${b.name})`),
        ),
      );
    });
    await sleep(2000);

    const clients = await r.stopClients();
    process.stderr.write(
      `[install-replay] openshift: ${clients.map((c) => `${c.name} ${c.requests} requests, ${c.failed} failed`).join("; ")}\n`,
    );
    expect(clients.map((c) => [c.name, c.failed, c.firstFailures])).toEqual([
      ["api-vip-6443", 0, []],
      ["api-vip-22623", 0, []],
    ]);
    expect(clients.every((c) => c.requests > 200)).toBe(true);
    expect(r.missing.slice(0, 5)).toEqual([]);
    // not one reload of HAProxy (or of anything else) on either LB: every change went through the runtime API
    expect(Object.values(h.agents).flatMap((a) => a!.reloads)).toEqual([]);
    expect(
      await r.statusShows(
        "api",
        MASTERS.map((a, i) => `${a}:spec(master-${i})`),
      ),
    ).toBe(true);
  });
});

suite("a kubeadm-style install replayed through the pair: control-plane Nodes NotReady until a CNI appears", () => {
  let r: Replay | undefined;
  afterAll(async () => {
    await r?.stop();
  }, 120_000);

  test("0 failed requests through the private API VIP; every control plane a server while NotReady; no reload", async () => {
    const spec = devSpecRaw();
    spec.distribution = "generic";
    spec.apiBackend = { nodeSelector: { matchLabels: CP }, addresses: MASTERS };
    const h = await startAgentOnLab({ spec, both: true, putNodes: () => false, kubeArgs: ["--anonymous-auth=true"] });
    r = new Replay(h);
    const lab = r.lab;
    const [first, ...joining] = MASTERS as [string, ...string[]];

    await r.step(
      "kubeadm init: the first control plane serves (the real kube-apiserver); the others do not yet",
      async () => {
        for (const a of MASTERS) await r!.stopAll(a);
        await r!.serveRealApi(first);
        await r!.until(
          "the first UP, the others DOWN",
          30_000,
          async () =>
            (await r!.health("be_api", first, true)) &&
            (await Promise.all(joining.map((m) => r!.health("be_api", m, false)))).every(Boolean),
        );
      },
    );
    r.watchStatics(() => MASTERS, ["be_api"]);
    r.startClient("api-vip-6443", `https://${lab.plan.targets.apiVipPrivate!}:${API_PORT}/readyz`);
    await sleep(2000);
    await r.step("cp-0 registers NotReady (no CNI yet)", () => h.cluster.putNode("cp-0", CP, first, false));
    for (const [i, a] of joining.entries()) {
      await r.step(`kubeadm join: cp-${i + 1} serves, then registers NotReady; HAProxy takes it in`, async () => {
        await lab.startServer(r!.hostOf(a));
        await h.cluster.putNode(`cp-${i + 1}`, CP, a, false);
        await r!.until(`cp-${i + 1} UP`, 30_000, () => r!.health("be_api", a, true));
      });
    }
    await r.step("every control plane NotReady, each a server: the status says so", () =>
      r!.until("status", 20_000, () =>
        r!.statusShows(
          "api",
          MASTERS.map((a, i) => `${a}:spec(cp-${i})`),
        ),
      ),
    );
    await r.step("the CNI appears: every Node Ready", async () => {
      for (let i = 0; i < MASTERS.length; i++) await h.cluster.setReady(`cp-${i}`, true);
      await sleep(2000);
    });

    const clients = await r.stopClients();
    process.stderr.write(
      `[install-replay] kubeadm: ${clients.map((c) => `${c.name} ${c.requests} requests, ${c.failed} failed`).join("; ")}\n`,
    );
    expect(clients.map((c) => [c.name, c.failed, c.firstFailures])).toEqual([["api-vip-6443", 0, []]]);
    expect(clients[0]!.requests).toBeGreaterThan(100);
    expect(r.missing.slice(0, 5)).toEqual([]);
    expect(Object.values(h.agents).flatMap((a) => a!.reloads)).toEqual([]);
  });
});
