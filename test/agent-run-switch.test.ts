/**
 * `agent run` drives the image switch (agent/run.ts + agent/switch/loop.ts): the image named in the LoadBalancer's
 * spec is the target; the same as the booted one leaves the LB idle, a new one makes it take its turn, and after
 * its "reboot" a new agent process resumes from status and bootc alone and hands the turn to the peer.
 *
 * Real: the kube-apiserver fixture with the agent's least-privilege token, the agent's own StatusReporter, the
 * driver and plan. Stand-ins, because they cannot run here: bootc (test/fixtures/bootc-standin.ts: records calls,
 * answers `bootc status --format json` in bootc's schema), systemd (reboot and keepalived are a recorded model: no
 * systemd runs in this sandbox), and the peer LB, played by a StatusReporter of its own reporting MASTER and Ready.
 * The rendered files are written into a temporary root beforehand, so the agent finds nothing to apply and the test
 * sees only the switch.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { CommandRunner } from "../agent/apply";
import { KubeClient } from "../agent/kube/client";
import { StatusReporter } from "../agent/kube/status";
import { AgentRun } from "../agent/run";
import { bootcClient, type SwitchHost, type SwitchOutcome } from "../agent/switch";
import { resolveBackends } from "../spec/backend-list";
import type { ImageSwitchStatus, LoadBalancerEntryStatus } from "../k8s";
import { renderAll } from "../render";
import { parseAgentSettings } from "../spec/agent-settings";
import { resolveSpec } from "../spec/resolve";
import type { HostFacts } from "../spec/types";
import { MERGE, setUpAgentCluster, type AgentCluster } from "./fixtures/agent-cluster";
import {
  createBootcStandin,
  standinImage,
  STANDIN_IMAGES,
  type BootcStandin,
  type StandinHost,
} from "./fixtures/bootc-standin";
import { startKubeApiServer, type KubeApiServer } from "./fixtures/kube-apiserver";
import { devSpecRaw } from "./fixtures/variants";

jest.setTimeout(120_000);

const LAB = "lab";
const { OLDER, OLD, NEW, NEWER } = STANDIN_IMAGES;
const image = standinImage;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const SELF: HostFacts = {
  hostname: "lab-lb-2",
  role: "secondary",
  publicInterface: { name: "ens3", mac: "52:54:00:00:02:01" },
  privateInterface: { name: "ens4", mac: "52:54:00:00:02:02" },
};
const PEER = "lab-lb-1";

async function until<T>(what: string, f: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

describe("agent run drives the image switch (real API server, stand-in bootc and systemd)", () => {
  let kube: KubeApiServer | undefined;
  let cluster: AgentCluster;
  let standin: BootcStandin;
  let dir: string;
  let peer: StatusReporter | undefined;
  const running = new Set<AgentRun>();

  beforeAll(async () => {
    kube = await startKubeApiServer();
    cluster = await setUpAgentCluster(kube, { name: LAB, spec: devSpecRaw() });
    standin = createBootcStandin();
    dir = mkdtempSync(join(tmpdir(), "edgepair-run-switch-"));
    writeFileSync(join(dir, "token"), `${cluster.token}\n`, { mode: 0o600 });
  }, 180_000);

  afterAll(async () => {
    await Promise.allSettled([...running].map((a) => a.stop()));
    await peer?.stop();
    await kube?.stop();
    standin?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  const settings = () =>
    parseAgentSettings({
      cluster: {
        apiServers: [kube!.server],
        tlsServerName: "kubernetes.default.svc",
        caCertificate: kube!.caPem,
        namespace: cluster.namespace,
        loadBalancerName: LAB,
        tokenFile: join(dir, "token"),
      },
      imageRef: OLD,
    });

  interface Vm {
    bootc: StandinHost;
    keepalived: boolean;
    reboots: number;
    events: string[];
  }

  /** One boot of the LB: a new agent process on the same disk (root, state dir) and bootc. */
  const boot = async (
    vm: Vm,
    outcomes: Array<{ target: string; outcome: SwitchOutcome }>,
    timeouts: { switchMs?: number } = {},
  ): Promise<{ agent: AgentRun; log: string[] }> => {
    const spec = { value: resolveSpec(devSpecRaw()) };
    const root = join(dir, "root");
    for (const f of renderAll({ spec: spec.value, host: SELF, backends: resolveBackends(spec.value, {}) })) {
      mkdirSync(dirname(join(root, f.path)), { recursive: true });
      writeFileSync(join(root, f.path), f.content, { mode: f.mode });
    }
    const bootc = bootcClient(vm.bootc.runner);
    const host: SwitchHost = {
      bootc,
      reboot: async () => {
        vm.reboots++;
        vm.events.push("reboot");
      },
      keepalived: {
        active: async () => vm.keepalived,
        state: async () => (vm.keepalived ? "Backup" : "Stop"),
        stop: async () => {
          vm.keepalived = false;
          vm.events.push("keepalived stop");
        },
        start: async () => {
          vm.keepalived = true;
          vm.events.push("keepalived start");
        },
      },
      peerAdvertsSeen: async () => true,
      servicesUp: async () => true,
      healthGate: async () => ({ ok: true, failures: [] }),
    };
    // everything but bootc is systemd's or the kernel's: answered as done (the addresses query: no VIP here, BACKUP)
    const runner: CommandRunner = async () => ({ exitCode: 0, timedOut: false, output: "" });
    const log: string[] = [];
    const agent = new AgentRun({
      root,
      stateDir: join(dir, "state"),
      settings: settings(),
      host: SELF,
      bootstrapSpec: spec.value,
      runner,
      validators: [],
      haproxySocket: join(dir, "no-haproxy.sock"),
      fifoPath: join(dir, "vrrp.fifo"),
      log: (line) => log.push(line),
      imageSwitch: {
        host,
        timeouts,
        pollMs: 100,
        idleRecheckMs: 300,
        peerStaleAfterMs: 3000,
        onOutcome: (target, outcome) => outcomes.push({ target, outcome }),
      },
      cluster: {
        watch: { resyncMs: 10_000, watchTimeoutSeconds: 5, backoff: { initialMs: 100, maxMs: 1000 } },
        status: { heartbeatMs: 250, staleAfterMs: 3000 },
        token: false,
      },
    });
    running.add(agent);
    await agent.start();
    return { agent, log };
  };

  const status = async () =>
    (
      (await cluster.must("GET", cluster.lbPath)).body as {
        status?: { imageSwitch?: ImageSwitchStatus; loadBalancers?: LoadBalancerEntryStatus[] };
      }
    ).status ?? {};
  const ownEntry = async () => (await status()).loadBalancers?.find((e) => e.name === SELF.hostname);
  const condition = (e: LoadBalancerEntryStatus | undefined, type: string) =>
    e?.conditions?.find((c) => c.type === type);
  const switchCalls = () =>
    standin
      .calls()
      .filter((c) => c.host === SELF.hostname && c.argv[0] === "bootc" && c.argv[1] !== "status")
      .map((c) => c.argv.slice(1).join(" "));

  test("same image as booted: idle, no bootc switch; a new image in the spec: the BACKUP takes its turn, reboots, and resumes after it", async () => {
    // the peer: MASTER and Ready on the old image, heartbeating
    const peerClient = new KubeClient(settings().cluster!, { requestTimeoutMs: 5000 });
    peer = new StatusReporter(peerClient, {
      namespace: cluster.namespace,
      loadBalancerName: LAB,
      lbName: PEER,
      role: "primary",
      heartbeatMs: 250,
      staleAfterMs: 3000,
    });
    peer.update({ vrrpState: "Master", servicesUp: true, bootedImage: OLD });
    peer.start();

    const vm: Vm = {
      bootc: standin.host(SELF.hostname, { booted: image(OLD), rollback: image(OLDER) }),
      keepalived: true,
      reboots: 0,
      events: [],
    };
    const outcomes: Array<{ target: string; outcome: SwitchOutcome }> = [];
    const first = await boot(vm, outcomes);

    // 1. no image in the spec: the target is the agent settings' imageRef, which runs already
    await until("an idle driver run", async () =>
      outcomes.some((o) => o.outcome.result === "idle") ? true : undefined,
    ).catch((e: Error) => {
      throw new Error(`${e.message}\nagent log:\n${first.log.join("\n")}\noutcomes: ${JSON.stringify(outcomes)}`);
    });
    expect(outcomes.every((o) => o.target === OLD)).toBe(true);
    expect(switchCalls()).toEqual([]);
    await until("the own entry with the booted image", async () =>
      (await ownEntry())?.bootedImage === OLD ? true : undefined,
    );

    // 2. the spec names a new image: this LB (BACKUP, peer Ready) claims the turn, stages it and reboots
    await cluster.must("PATCH", cluster.lbPath, { spec: { image: NEW } }, MERGE);
    await until("the reboot into the new image", async () => (vm.reboots === 1 ? true : undefined));
    expect(switchCalls()).toEqual([`switch ${NEW}`]);
    expect(vm.events).toEqual(["reboot"]); // a BACKUP does not resign: it holds no VIPs
    const during = await status();
    expect(during.imageSwitch).toMatchObject({ phase: "Verifying", turn: SELF.hostname, targetImage: NEW });
    const progressing = condition(
      during.loadBalancers?.find((e) => e.name === SELF.hostname),
      "Progressing",
    );
    expect(progressing?.status).toBe("True");
    expect(first.log.some((l) => l.includes("image switch: rebooting"))).toBe(true);
    expect(outcomes.at(-1)?.outcome.result).toBe("rebooting");

    // 3. the host reboots into the target: a new agent process with nothing in memory, keepalived held
    await first.agent.stop();
    running.delete(first.agent);
    vm.bootc.reboot();
    vm.keepalived = false;
    const second = await boot(vm, outcomes);
    const done = await until("the turn passed to the peer", async () => {
      const s = await status();
      return s.imageSwitch?.turn === PEER ? s : undefined;
    });
    expect(done.imageSwitch).toMatchObject({ phase: "Pending", targetImage: NEW, completed: [SELF.hostname] });
    expect(vm.events).toEqual(["reboot", "keepalived start"]);
    const after = await until("the entry on the new image, no longer progressing", async () => {
      const e = await ownEntry();
      return e?.bootedImage === NEW && condition(e, "Progressing")?.status === "False" ? e : undefined;
    });
    expect(condition(after, "Degraded")?.status).toBe("False");
    expect(switchCalls()).toEqual([`switch ${NEW}`]); // nothing staged again after the reboot
    expect(second.log.join("\n")).not.toContain(cluster.token);
  });

  test("a switch that cannot stage its image fails: the LB reports Degraded with the switch's reason, not an apply error", async () => {
    await Promise.allSettled([...running].map((a) => a.stop()));
    running.clear();
    await cluster.must("PATCH", `${cluster.lbPath}/status`, { status: null }, MERGE);
    const vm: Vm = {
      bootc: standin.host(SELF.hostname, { booted: image(NEW), rollback: image(OLD) }),
      keepalived: true,
      reboots: 0,
      events: [],
    };
    vm.bootc.update({
      failSwitch: "pinging container registry registry.example: connection refused",
      staged: null,
      rollbackQueued: false,
    });
    await cluster.must("PATCH", cluster.lbPath, { spec: { image: NEWER } }, MERGE);
    peer!.update({ bootedImage: NEW });
    await boot(vm, [], { switchMs: 2000 });
    const degraded = await until("Degraded from the failed switch", async () => {
      const c = condition(await ownEntry(), "Degraded");
      return c?.status === "True" ? c : undefined;
    });
    expect(degraded.reason).not.toBe("ApplyFailed");
    expect(degraded.message).toContain(NEWER);
    // the driver reports the LB's own entry before it writes imageSwitch: wait for that write too
    const failed = await until("imageSwitch Failed", async () => {
      const sw = (await status()).imageSwitch;
      return sw?.phase === "Failed" ? sw : undefined;
    });
    expect(failed).toMatchObject({ phase: "Failed", turn: SELF.hostname, targetImage: NEWER });
    expect(vm.reboots).toBe(0); // nothing was staged, so nothing to boot
  });
});
