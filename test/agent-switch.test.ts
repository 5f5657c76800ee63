/**
 * The image switch (agent/switch/): plan.ts's rules one by one (pure), bootc.ts against a stand-in bootc, and two
 * LBs' drivers coordinating through a REAL kube-apiserver (test/fixtures/kube-apiserver.ts: the CRD, RBAC and
 * LoadBalancer from k8s/; the drivers on the agent's least-privilege token, the admin identity only sets up, resets
 * and watches).
 *
 * bootc cannot run here (it needs an ostree-booted host and a registry), so a stand-in `bootc` is first on PATH
 * (test/fixtures/bootc-standin.ts): it records its calls and answers `bootc status --format json` in bootc's real
 * schema; a "reboot" promotes the staged (or queued rollback) deployment and starts a new driver instance with
 * nothing in memory. keepalived and the health gate are a small in-test model (VRRP BACKUP/MASTER with nopreempt,
 * adverts seen while the peer's keepalived runs, HAProxy backends DOWN on a given image): the lab's real daemons are
 * not part of these tests. Each LB's own status entry is written by the real StatusReporter (agent/kube/status.ts).
 */
import { adminCall, type Reply } from "./fixtures/agent-cluster";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { request, type RequestOptions } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KubeClient, type ResponseRecord } from "../agent/kube/client";
import { StatusReporter } from "../agent/kube/status";
import {
  BootcError,
  bootcClient,
  digestOf,
  kubeImageSwitchStore,
  nextStep,
  parseBootcStatus,
  pinnedRef,
  runSwitch,
  type BootcHostStatus,
  type ImageSwitchStore,
  type PeerFacts,
  type SelfFacts,
  type Step,
  type SwitchDeps,
  type SwitchOutcome,
  type SwitchTimeouts,
} from "../agent/switch";
import {
  agentNames,
  agentRbac,
  agentRbacManifests,
  CRD_NAME,
  DEFAULT_NAMESPACE,
  GROUP,
  loadBalancerCrd,
  loadBalancerResource,
  PLURAL,
  statusFieldManager,
  VERSION,
  type ImageSwitchStatus,
  type LoadBalancerEntryStatus,
  type Manifest,
} from "../k8s";
import { parseAgentSettings } from "../spec/agent-settings";
import type { Role } from "../spec/types";
import {
  createBootcStandin,
  standinImage,
  STANDIN_IMAGES,
  type BootcStandin,
  type StandinHost,
} from "./fixtures/bootc-standin";
import { startKubeApiServer, type KubeApiServer } from "./fixtures/kube-apiserver";
import { k8s, type K8s } from "./fixtures/kube/client-node";
import { devSpecRaw } from "./fixtures/variants";
import type { StatusVrrpState } from "../render/vrrp-state";
import { checkSpec } from "../spec/checked";

jest.setTimeout(120_000);

const { OLDER, OLD, NEW, NEWER } = STANDIN_IMAGES;
const REPO = "registry.example/edgepair";
const image = standinImage;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------------------------
// plan.ts, pure

describe("nextStep (pure): every rule with its counter-case", () => {
  const T0 = new Date("2025-01-02T03:00:00.000Z");
  const TIMEOUTS: SwitchTimeouts = { switchMs: 600_000, verifyMs: 300_000, rejoinAloneMs: 60_000 };
  const bootcAt = (booted: string, more: Partial<BootcHostStatus> = {}): BootcHostStatus => ({
    booted: { ...image(booted), transport: "registry" },
    staged: null,
    rollback: { ...image(OLDER), transport: "registry" },
    rollbackQueued: false,
    ...more,
  });
  const slot = (ref: string) => ({ ...image(ref), transport: "registry" });
  const self = (over: Partial<SelfFacts> = {}): SelfFacts => ({
    name: "lb-2",
    role: "secondary",
    bootc: bootcAt(OLD),
    keepalivedActive: true,
    vrrpState: "Backup",
    servicesUp: true,
    peerAdvertsSeen: true,
    ...over,
  });
  const peer = (over: Partial<PeerFacts> = {}): PeerFacts => ({
    name: "lb-1",
    ready: true,
    vrrpState: "Master",
    bootedImage: OLD,
    ...over,
  });
  const sw = (over: Partial<ImageSwitchStatus> = {}): ImageSwitchStatus => ({
    targetImage: NEW,
    phase: "Switching",
    turn: "lb-2",
    completed: [],
    message: "m",
    lastTransitionTime: T0.toISOString(),
    ...over,
  });
  const plan = (
    o: {
      self?: Partial<SelfFacts>;
      peer?: Partial<PeerFacts> | null;
      s?: ImageSwitchStatus;
      afterMs?: number;
      target?: string;
    } = {},
  ): Step =>
    nextStep({
      now: new Date(T0.getTime() + (o.afterMs ?? 1000)),
      targetImage: o.target ?? NEW,
      self: self(o.self),
      ...(o.peer === null ? {} : { peer: peer(o.peer ?? {}) }),
      ...(o.s ? { imageSwitch: o.s } : {}),
      timeouts: TIMEOUTS,
    });
  const kinds = (s: Step) => [s.kind, s.status.imageSwitch?.phase, s.status.imageSwitch?.turn];

  describe("who takes the first turn", () => {
    test("the BACKUP claims the first turn (Switching, turn = itself, nobody completed, Progressing)", () => {
      const s = plan();
      expect(kinds(s)).toEqual(["claim-turn", "Switching", "lb-2"]);
      expect(s.status.imageSwitch).toEqual({
        targetImage: NEW,
        phase: "Switching",
        turn: "lb-2",
        completed: [],
        message: "lb-2 switches to " + NEW,
        lastTransitionTime: "2025-01-02T03:00:01.000Z",
      });
      expect(s.status.self).toEqual({
        bootedImage: OLD,
        progressing: { reason: "ImageSwitch", message: `Switching to ${NEW}` },
      });
    });

    test("counter-case: the MASTER waits for the BACKUP; once the peer runs the target it takes the second turn", () => {
      const master = plan({ self: { name: "lb-1", vrrpState: "Master" }, peer: { name: "lb-2", vrrpState: "Backup" } });
      expect(kinds(master)).toEqual(["wait", undefined, undefined]);
      expect(master.reason).toContain("the BACKUP (lb-2) switches first");
      const second = plan({
        self: { name: "lb-1", vrrpState: "Master" },
        peer: { name: "lb-2", vrrpState: "Backup", bootedImage: NEW },
      });
      expect(kinds(second)).toEqual(["claim-turn", "Switching", "lb-1"]);
      expect(second.status.imageSwitch?.completed).toEqual(["lb-2"]);
    });

    test("two LBs that are both BACKUP may both claim: the resourceVersion guard picks one (see the API test)", () => {
      expect(plan({ peer: { vrrpState: "Backup" } }).kind).toBe("claim-turn");
      expect(plan({ self: { name: "lb-1" }, peer: { name: "lb-2", vrrpState: "Backup" } }).kind).toBe("claim-turn");
    });

    test("no claim without a Ready peer, with own services down, in FAULT, or for a target not pinned by digest", () => {
      expect(plan({ peer: null }).reason).toContain("no peer reports");
      expect(plan({ peer: { ready: false } }).reason).toContain("lb-1 is not Ready");
      expect(plan({ self: { servicesUp: false } }).kind).toBe("wait");
      expect(plan({ self: { vrrpState: "Fault" } }).kind).toBe("wait");
      const tagged = plan({ target: `${REPO}:latest` });
      expect([tagged.kind, tagged.kind === "wait" && tagged.idle]).toEqual(["wait", true]);
    });

    test("nothing to do once both run the target (idle); running it alone, wait for the peer's turn (not idle)", () => {
      const both = plan({ self: { bootc: bootcAt(NEW) }, peer: { bootedImage: NEW } });
      expect([both.kind, both.kind === "wait" && both.idle]).toEqual(["wait", true]);
      const alone = plan({ self: { bootc: bootcAt(NEW) } });
      expect([alone.kind, alone.kind === "wait" && alone.idle]).toEqual(["wait", false]);
    });

    test("a Failed target is final (idle, this LB Degraded if it failed); a new target starts a new switch", () => {
      const failed = sw({ phase: "Failed", message: "lb-2: gate failed" });
      const s = plan({ s: failed });
      expect([s.kind, s.kind === "wait" && s.idle]).toEqual(["wait", true]);
      expect(s.status.self.degraded).toEqual({ reason: "ImageSwitchFailed", message: "lb-2: gate failed" });
      expect(plan({ s: failed, self: { name: "lb-3" }, peer: { name: "lb-2" } }).status.self.degraded).toBeUndefined();
      const again = plan({ s: failed, target: NEWER });
      expect(kinds(again)).toEqual(["claim-turn", "Switching", "lb-2"]);
      expect(again.status.self.degraded).toBeUndefined();
    });
  });

  describe("one at a time", () => {
    test("while the peer holds the turn this LB waits, also when the spec moved to yet another target", () => {
      const peersTurn = sw({ turn: "lb-1" });
      for (const phase of ["Switching", "Verifying", "RollingBack", "Pending"] as const) {
        expect(kinds(plan({ s: { ...peersTurn, phase } }))).toEqual(["wait", undefined, undefined]);
      }
      expect(plan({ s: peersTurn, target: NEWER }).reason).toContain("lb-1 holds the turn");
      // counter-case: the same LB holding the turn proceeds
      expect(plan({ s: sw() }).kind).not.toBe("wait");
    });

    test("a turn passed to this LB (Pending) is claimed once the peer runs the target and is Ready", () => {
      const handed = sw({ phase: "Pending", turn: "lb-1", completed: ["lb-2"] });
      const me = { name: "lb-1", vrrpState: "Master" as StatusVrrpState };
      expect(
        kinds(plan({ s: handed, self: me, peer: { name: "lb-2", vrrpState: "Backup", bootedImage: NEW } })),
      ).toEqual(["claim-turn", "Switching", "lb-1"]);
      expect(plan({ s: handed, self: me, peer: { name: "lb-2", vrrpState: "Backup", bootedImage: OLD } }).kind).toBe(
        "wait",
      );
      expect(
        plan({ s: handed, self: me, peer: { name: "lb-2", vrrpState: "Backup", bootedImage: NEW, ready: false } }).kind,
      ).toBe("wait");
    });
  });

  describe("switching: stage, resign, hand over, reboot", () => {
    test("the target is staged first, while the LB still serves; no status change", () => {
      const s = plan({ s: sw() });
      expect(s).toMatchObject({ kind: "switch-and-reboot", target: NEW, stage: true, reboot: false });
      expect(s.status.imageSwitch).toBeUndefined();
    });

    test("staged and MASTER: resign (stop keepalived) before anything else; counter-case: not to a peer that is not a Ready BACKUP", () => {
      const staged = bootcAt(OLD, { staged: slot(NEW) });
      const s = plan({
        s: sw({ turn: "lb-1" }),
        self: { name: "lb-1", vrrpState: "Master", bootc: staged },
        peer: { name: "lb-2", vrrpState: "Backup", bootedImage: NEW },
      });
      expect(s.kind).toBe("resign");
      expect(
        plan({
          s: sw({ turn: "lb-1" }),
          self: { name: "lb-1", vrrpState: "Master", bootc: staged },
          peer: { name: "lb-2", vrrpState: "Fault", bootedImage: NEW },
        }).kind,
      ).toBe("wait");
      expect(
        plan({
          s: sw({ turn: "lb-1" }),
          self: { name: "lb-1", vrrpState: "Master", bootc: staged },
          peer: { name: "lb-2", vrrpState: "Backup", ready: false },
        }).kind,
      ).toBe("wait");
    });

    test("the reboot waits until the peer is Ready and MASTER; then Verifying is written and the LB reboots", () => {
      const staged = bootcAt(OLD, { staged: slot(NEW) });
      const resigned = { name: "lb-1", keepalivedActive: false, vrrpState: "Stop" as StatusVrrpState, bootc: staged };
      const notYet = plan({ s: sw({ turn: "lb-1" }), self: resigned, peer: { name: "lb-2", vrrpState: "Backup" } });
      expect(notYet.reason).toContain("to be Ready and MASTER before the reboot");
      const go = plan({ s: sw({ turn: "lb-1" }), self: resigned, peer: { name: "lb-2", vrrpState: "Master" } });
      expect(go).toMatchObject({ kind: "switch-and-reboot", stage: false, reboot: true });
      expect(go.status.imageSwitch).toMatchObject({
        phase: "Verifying",
        turn: "lb-1",
        lastTransitionTime: "2025-01-02T03:00:01.000Z",
      });
      // the BACKUP has nothing to resign: staged, peer MASTER -> reboot
      expect(plan({ s: sw(), self: { bootc: bootcAt(OLD, { staged: slot(NEW) }) } })).toMatchObject({
        kind: "switch-and-reboot",
        reboot: true,
      });
    });

    test("no reboot into the target within switchMs: Failed, Degraded, keepalived started again after a resignation", () => {
      const staged = bootcAt(OLD, { staged: slot(NEW) });
      const s = plan({
        s: sw({ turn: "lb-1" }),
        self: { name: "lb-1", keepalivedActive: false, vrrpState: "Stop", bootc: staged },
        peer: { name: "lb-2", vrrpState: "Backup" },
        afterMs: 600_001,
      });
      expect(s).toMatchObject({ kind: "fail", startKeepalived: true });
      expect(s.status.imageSwitch).toMatchObject({ phase: "Failed", turn: "lb-1" });
      expect(s.status.imageSwitch?.message).toContain("lb-2 did not take over the VIPs");
      expect(s.status.self.degraded?.reason).toBe("ImageSwitchFailed");
      // counter-case: one ms earlier it still waits
      expect(
        plan({
          s: sw({ turn: "lb-1" }),
          self: { name: "lb-1", keepalivedActive: false, vrrpState: "Stop", bootc: staged },
          peer: { name: "lb-2", vrrpState: "Backup" },
          afterMs: 599_999,
        }).kind,
      ).toBe("wait");
    });
  });

  describe("after the reboot", () => {
    const verifying = sw({ phase: "Verifying" });
    const onTarget = { bootc: bootcAt(NEW, { rollback: slot(OLD) }) };

    test("killed between the Verifying write and the reboot: the staged target still reboots, with no new write", () => {
      const s = plan({ s: verifying, self: { bootc: bootcAt(OLD, { staged: slot(NEW) }) } });
      expect(s).toMatchObject({ kind: "switch-and-reboot", stage: false, reboot: true });
      expect(s.status.imageSwitch).toBeUndefined();
    });

    test("keepalived waits for the peer's adverts AND a Ready peer (await-peer); then it starts", () => {
      const down = { ...onTarget, keepalivedActive: false, vrrpState: "Stop" as StatusVrrpState };
      expect(plan({ s: verifying, self: down })).toMatchObject({ kind: "await-peer", startKeepalived: true });
      expect(plan({ s: verifying, self: { ...down, peerAdvertsSeen: false } })).toMatchObject({
        kind: "await-peer",
        startKeepalived: false,
      });
      expect(plan({ s: verifying, self: down, peer: { ready: false } })).toMatchObject({
        kind: "await-peer",
        startKeepalived: false,
      });
      expect(plan({ s: verifying, self: down, peer: null })).toMatchObject({
        kind: "await-peer",
        startKeepalived: false,
      });
    });

    test("no peer seen by the verify deadline: rollback and reboot (RollingBack, Degraded)", () => {
      const s = plan({
        s: verifying,
        self: { ...onTarget, keepalivedActive: false, vrrpState: "Stop", peerAdvertsSeen: false },
        afterMs: 300_001,
      });
      expect(s).toMatchObject({ kind: "rollback-and-reboot", runRollback: true });
      expect(s.status.imageSwitch?.phase).toBe("RollingBack");
      expect(s.status.imageSwitch?.message).toContain("no VRRP adverts from lb-1");
      expect(s.status.imageSwitch?.message).toContain(`rolling back to ${OLD}`);
      expect(s.status.self.degraded?.reason).toBe("ImageSwitchFailed");
    });

    test("the gate is probed, then passes only with services/backends OK, VRRP BACKUP, the peer Ready and MASTER", () => {
      expect(plan({ s: verifying, self: onTarget })).toMatchObject({ kind: "verify", probe: true });
      const ok = { ok: true, failures: [] };
      const pass = plan({ s: verifying, self: { ...onTarget, gate: ok } });
      expect(kinds(pass)).toEqual(["pass-turn", "Pending", "lb-1"]);
      expect(pass.status.imageSwitch?.completed).toEqual(["lb-2"]);
      expect(pass.status.self.progressing).toBeUndefined();
      const failing = (over: Partial<SelfFacts>, p: Partial<PeerFacts> = {}) =>
        plan({ s: verifying, self: { ...onTarget, gate: ok, ...over }, peer: p });
      expect(failing({ gate: { ok: false, failures: ["HAProxy backend api/cp-0 is DOWN"] } })).toMatchObject({
        kind: "verify",
        probe: false,
        failures: ["HAProxy backend api/cp-0 is DOWN"],
      });
      expect(failing({ vrrpState: "Master" })).toMatchObject({
        kind: "verify",
        failures: ["VRRP state is Master, not settled as BACKUP"],
      });
      expect(failing({}, { ready: false })).toMatchObject({ kind: "verify", failures: ["lb-1 is not Ready"] });
      expect(failing({}, { vrrpState: "Backup" })).toMatchObject({
        kind: "verify",
        failures: [expect.stringContaining("lb-1 is not MASTER")],
      });
    });

    test("a gate still failing at the deadline rolls back; without a rollback deployment it can only fail", () => {
      const bad = { ...onTarget, gate: { ok: false, failures: ["HAProxy backend api/cp-0 is DOWN"] } };
      const s = plan({ s: verifying, self: bad, afterMs: 300_001 });
      expect(s).toMatchObject({ kind: "rollback-and-reboot", runRollback: true });
      expect(s.status.imageSwitch?.message).toContain(
        "failed the health gate within 300 s: HAProxy backend api/cp-0 is DOWN",
      );
      const none = plan({ s: verifying, self: { ...bad, bootc: bootcAt(NEW, { rollback: null }) }, afterMs: 300_001 });
      expect(kinds(none)).toEqual(["fail", "Failed", "lb-2"]);
    });

    test("the second LB passing the gate completes: turn cleared, both completed", () => {
      const s = plan({
        s: sw({ phase: "Verifying", turn: "lb-1", completed: ["lb-2"] }),
        self: { ...onTarget, name: "lb-1", gate: { ok: true, failures: [] } },
        peer: { name: "lb-2", bootedImage: NEW },
      });
      expect(kinds(s)).toEqual(["complete", "Completed", undefined]);
      expect(s.status.imageSwitch).not.toHaveProperty("turn");
      expect(s.status.imageSwitch?.completed).toEqual(["lb-1", "lb-2"]);
    });

    test("the target did not stay booted (the image's boot check rolled it back): rejoin, then Failed", () => {
      const back = { bootc: bootcAt(OLD, { rollback: slot(NEW) }) };
      expect(plan({ s: verifying, self: { ...back, keepalivedActive: false, vrrpState: "Stop" } })).toMatchObject({
        kind: "await-peer",
        startKeepalived: true,
      });
      const s = plan({ s: verifying, self: back });
      expect(kinds(s)).toEqual(["fail", "Failed", "lb-2"]);
      expect(s.status.imageSwitch?.message).toContain("did not stay booted");
    });
  });

  describe("rolling back", () => {
    const rolling = sw({ phase: "RollingBack", message: "lb-2: gate failed; rolling back" });
    test("bootc rollback runs once: not again while it is queued (bootc rollback toggles)", () => {
      expect(plan({ s: rolling, self: { bootc: bootcAt(NEW, { rollback: slot(OLD) }) } })).toMatchObject({
        kind: "rollback-and-reboot",
        runRollback: true,
      });
      expect(
        plan({ s: rolling, self: { bootc: bootcAt(NEW, { rollback: slot(OLD), rollbackQueued: true }) } }),
      ).toMatchObject({ kind: "rollback-and-reboot", runRollback: false });
      // killed between `bootc rollback` and the RollingBack write: Verifying + queued finishes the rollback
      const resumed = plan({
        s: sw({ phase: "Verifying" }),
        self: { bootc: bootcAt(NEW, { rollback: slot(OLD), rollbackQueued: true }) },
      });
      expect(resumed).toMatchObject({ kind: "rollback-and-reboot", runRollback: false });
      expect(resumed.status.imageSwitch?.phase).toBe("RollingBack");
    });

    test("back on the previous image: keepalived waits for the peer (alone only after rejoinAloneMs), then Failed", () => {
      const back = {
        bootc: bootcAt(OLD, { rollback: slot(NEW) }),
        keepalivedActive: false,
        vrrpState: "Stop" as StatusVrrpState,
        peerAdvertsSeen: false,
      };
      expect(plan({ s: rolling, self: back })).toMatchObject({ kind: "await-peer", startKeepalived: false });
      expect(plan({ s: rolling, self: back, afterMs: 300_000 + 60_001 })).toMatchObject({
        kind: "await-peer",
        startKeepalived: true,
      });
      const s = plan({ s: rolling, self: { bootc: bootcAt(OLD, { rollback: slot(NEW) }) } });
      expect(kinds(s)).toEqual(["fail", "Failed", "lb-2"]);
      expect(s.status.imageSwitch?.message).toBe(`lb-2: gate failed; rolling back; lb-2 runs ${OLD} again`);
      expect(s.status.self).toEqual({
        bootedImage: OLD,
        degraded: { reason: "ImageSwitchFailed", message: s.status.imageSwitch?.message },
      });
    });
  });
});

// ---------------------------------------------------------------------------------------------------------------
// bootc.ts against the stand-in

describe("bootc.ts with the stand-in bootc first on PATH", () => {
  let standin: BootcStandin;
  beforeAll(() => {
    standin = createBootcStandin();
  });
  afterAll(() => {
    standin.cleanup();
  });

  test("status is parsed from bootc's JSON schema; switch stages; rollback queues, drops staged, and toggles", async () => {
    const host = standin.host("h1", { booted: image(OLD), rollback: image(OLDER) });
    const bootc = bootcClient(host.runner);
    expect(await bootc.status()).toEqual({
      booted: { ref: OLD, transport: "registry", digest: digestOf(OLD) },
      staged: null,
      rollback: { ref: OLDER, transport: "registry", digest: digestOf(OLDER) },
      rollbackQueued: false,
    });
    await bootc.switchTo(NEW);
    expect((await bootc.status()).staged?.digest).toBe(digestOf(NEW));
    await bootc.rollback();
    expect(await bootc.status()).toMatchObject({ staged: null, rollbackQueued: true });
    await expect(bootc.switchTo(NEWER)).rejects.toThrow(
      /bootc switch .*: exit 1: error: Invalid state transition: rollback and image change/,
    );
    await bootc.rollback();
    expect((await bootc.status()).rollbackQueued).toBe(false);
    expect(
      standin
        .calls()
        .filter((c) => c.host === "h1")
        .map((c) => c.argv.slice(1, 2)[0]),
    ).toEqual(["status", "switch", "status", "rollback", "status", "switch", "rollback", "status"]);
  });

  test("counter-cases: a ref without digest is refused before bootc runs; a failing switch and a non-bootc host are BootcErrors", async () => {
    const host = standin.host("h2", { booted: image(OLD) });
    const bootc = bootcClient(host.runner);
    const before = standin.calls().length;
    await expect(bootc.switchTo(`${REPO}:latest`)).rejects.toThrow(
      "bootc switch: registry.example/edgepair:latest: must be pinned by digest",
    );
    expect(standin.calls().length).toBe(before);
    host.update({ failSwitch: "registry.example: connection refused" });
    await expect(bootc.switchTo(NEW)).rejects.toThrow(BootcError);
    await expect(bootc.rollback()).rejects.toThrow("error: No rollback available");
    expect(() => parseBootcStatus("not json")).toThrow("bootc status: output is not JSON");
    expect(() => parseBootcStatus(JSON.stringify({ apiVersion: "v1", kind: "BootcHost", status: {} }))).toThrow(
      /^bootc status: apiVersion: /,
    );
    expect(() =>
      parseBootcStatus(
        JSON.stringify({
          apiVersion: "org.containers.bootc/v1",
          kind: "BootcHost",
          status: { booted: null, staged: null, rollback: null },
        }),
      ),
    ).toThrow("bootc status: status.booted: this host did not boot a bootc container image");
    expect(
      pinnedRef({ ref: `${REPO}:v2@${digestOf(NEW)}`, transport: "registry", digest: digestOf(NEW) as string }),
    ).toBe(NEW);
    expect(pinnedRef({ ref: `localhost:5000/lb:v2`, transport: "registry", digest: digestOf(NEW) as string })).toBe(
      `localhost:5000/lb@${digestOf(NEW)}`,
    );
  });
});

// ---------------------------------------------------------------------------------------------------------------
// two drivers against a real kube-apiserver

const NS = DEFAULT_NAMESPACE;
const LAB = "lab";
const names = agentNames({ name: LAB });
const TLS_NAME = "kubernetes.default.svc";
const lbPath = `/apis/${GROUP}/${VERSION}/namespaces/${NS}/${PLURAL}/${LAB}`;
const DRIVER_TIMEOUTS: SwitchTimeouts = { switchMs: 30_000, verifyMs: 8000, rejoinAloneMs: 3000 };

/** Every distinct status.imageSwitch the API server announces on a watch, in order. */
async function watchImageSwitch(
  kc: K8s.KubeConfig,
  fromResourceVersion: string,
): Promise<{ history: ImageSwitchStatus[]; stop(): void }> {
  const q = new URLSearchParams({
    watch: "true",
    fieldSelector: `metadata.name=${LAB}`,
    resourceVersion: fromResourceVersion,
    timeoutSeconds: "300",
  });
  const url = new URL(`${kc.getCurrentCluster()!.server}/apis/${GROUP}/${VERSION}/namespaces/${NS}/${PLURAL}?${q}`);
  const opts: RequestOptions = { method: "GET", headers: { Accept: "application/json" } };
  await kc.applyToHTTPSOptions(opts);
  const history: ImageSwitchStatus[] = [];
  let last = "";
  let partial = "";
  const req = request(url, opts, (res) => {
    res.setEncoding("utf8");
    res.on("data", (chunk: string) => {
      partial += chunk;
      let nl: number;
      while ((nl = partial.indexOf("\n")) >= 0) {
        const line = partial.slice(0, nl);
        partial = partial.slice(nl + 1);
        const ev = JSON.parse(line) as { object?: { status?: { imageSwitch?: ImageSwitchStatus } } };
        const s = ev.object?.status?.imageSwitch;
        const text = JSON.stringify(s ?? null);
        if (s && text !== last) history.push(s);
        last = text;
      }
    });
    res.on("error", () => undefined);
  });
  req.on("error", () => undefined);
  req.end();
  return { history, stop: () => req.destroy() };
}

describe("two LB drivers against a real kube-apiserver, agent token only, stand-in bootc", () => {
  let kube: KubeApiServer | undefined;
  let admin: K8s.KubeConfig;
  let dir: string;
  let token: string;
  let standin: BootcStandin;
  /** Every response any agent client got: the agent's Role must have sufficed for all of them. */
  const responses: ResponseRecord[] = [];
  const reporters = new Set<StatusReporter>();

  const must = async (method: string, path: string, body?: unknown, contentType?: string): Promise<Reply> => {
    const r = await adminCall(admin, method, path, body, contentType);
    if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
    return r;
  };

  beforeAll(async () => {
    kube = await startKubeApiServer();
    admin = new k8s.KubeConfig();
    admin.loadFromString(kube.adminKubeConfig);
    dir = mkdtempSync(join(tmpdir(), "edgepair-agent-switch-"));
    standin = createBootcStandin();

    await must(
      "POST",
      "/apis/apiextensions.k8s.io/v1/customresourcedefinitions?fieldValidation=Strict",
      loadBalancerCrd(),
    );
    const deadline = Date.now() + 30_000;
    for (;;) {
      const crd = (await must("GET", `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${CRD_NAME}`)).body as {
        status?: { conditions?: { type: string; status: string }[] };
      };
      if (crd.status?.conditions?.some((c) => c.type === "Established" && c.status === "True")) break;
      if (Date.now() > deadline) throw new Error(`${CRD_NAME} not Established`);
      await sleep(100);
    }
    const collections: Record<string, string> = {
      Namespace: "/api/v1/namespaces",
      ServiceAccount: `/api/v1/namespaces/${NS}/serviceaccounts`,
      Secret: `/api/v1/namespaces/${NS}/secrets`,
      ClusterRole: "/apis/rbac.authorization.k8s.io/v1/clusterroles",
      ClusterRoleBinding: "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
      Role: `/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/roles`,
      RoleBinding: `/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/rolebindings`,
    };
    for (const m of agentRbacManifests(agentRbac({ name: LAB, createNamespace: true })))
      await must("POST", `${collections[m.kind] as string}?fieldValidation=Strict`, m);
    await must(
      "POST",
      `/apis/${GROUP}/${VERSION}/namespaces/${NS}/${PLURAL}?fieldValidation=Strict`,
      loadBalancerResource(checkSpec(devSpecRaw() as never), { name: LAB }) as Manifest,
    );
    let t: string | undefined;
    while (!t) {
      const s = (await must("GET", `/api/v1/namespaces/${NS}/secrets/${names.tokenSecret}`)).body as {
        data?: { token?: string };
      };
      t = s.data?.token && Buffer.from(s.data.token, "base64").toString("utf8");
      if (Date.now() > deadline + 30_000) throw new Error("the token controller did not fill the Secret");
      if (!t) await sleep(100);
    }
    token = t;
  }, 180_000);

  afterAll(async () => {
    await Promise.allSettled([...reporters].map((r) => r.stop()));
    await kube?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
    standin?.cleanup();
  }, 60_000);

  // ------------------------------------------------------------------------------------------- the simulated pair

  interface Vm {
    name: string;
    role: Role;
    bootc: StandinHost;
    keepalived: boolean;
    servicesUp: boolean;
    /** The health gate fails while this digest is booted (its HAProxy backends stay DOWN). */
    gateFailsOn?: string;
    client: KubeClient;
    reporter?: StatusReporter;
  }

  interface PairEvent {
    vm: string;
    what: string;
    /** Who held the VIPs right after it. */
    master?: string;
  }

  /** keepalived of both LBs: BACKUP on both with nopreempt (render/keepalived.ts), so a returning LB stays BACKUP. */
  class Pair {
    master: string | undefined;
    elect = true;
    readonly events: PairEvent[] = [];
    /** Moments when nobody held the VIPs although a keepalived ran. */
    vipGaps = 0;
    constructor(readonly vms: Vm[]) {}
    state(vm: Vm): StatusVrrpState {
      return !vm.keepalived ? "Stop" : vm.name === this.master ? "Master" : "Backup";
    }
    peer(vm: Vm): Vm {
      return this.vms.find((v) => v !== vm) as Vm;
    }
    changed(vm: Vm, what: string): void {
      if (this.elect && !this.vms.some((v) => v.name === this.master && v.keepalived))
        this.master = this.vms.find((v) => v.keepalived)?.name;
      if (!this.elect && this.master !== undefined && !this.vms.some((v) => v.name === this.master && v.keepalived))
        this.master = undefined;
      if (this.elect && this.master === undefined && this.vms.some((v) => v.keepalived)) this.vipGaps++;
      this.events.push({ vm: vm.name, what, ...(this.master ? { master: this.master } : {}) });
      for (const v of this.vms) v.reporter?.update({ vrrpState: this.state(v) });
    }
  }

  const makeVm = (name: string, role: Role, booted: string, rollback: string): Vm => {
    const tokenFile = join(dir, name, "token");
    mkdirSync(join(dir, name), { recursive: true, mode: 0o700 });
    writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
    const cluster = parseAgentSettings({
      cluster: {
        apiServers: [kube!.server],
        tlsServerName: TLS_NAME,
        caCertificate: kube!.caPem,
        namespace: NS,
        loadBalancerName: LAB,
        tokenFile,
      },
      imageRef: booted,
    }).cluster!;
    return {
      name,
      role,
      bootc: standin.host(name, { booted: image(booted), rollback: image(rollback) }),
      keepalived: true,
      servicesUp: true,
      client: new KubeClient(cluster, { requestTimeoutMs: 5000, onResponse: (r) => responses.push(r) }),
    };
  };

  /** The VM (re)boots: a new agent process, whose StatusReporter knows nothing but what the host says. */
  const boot = (pair: Pair, vm: Vm): void => {
    const r = new StatusReporter(vm.client, {
      namespace: NS,
      loadBalancerName: LAB,
      lbName: vm.name,
      role: vm.role,
      heartbeatMs: 250,
      staleAfterMs: 2000,
    });
    reporters.add(r);
    vm.reporter = r;
    r.update({
      vrrpState: pair.state(vm),
      servicesUp: vm.servicesUp,
      bootedImage: pinnedRef({ ...vm.bootc.state().booted, transport: "registry" }),
    });
    r.start();
  };

  interface KillPoint {
    vm: string;
    /** "bootc switch", "keepalived start", "status <Phase>", … as reported by the effects below */
    after: string;
    /** Only in this boot of the VM (1 = the first). */
    boot?: number;
  }

  interface RunOptions {
    kills?: KillPoint[];
    /** Wraps the VM's store (races). */
    wrapStore?: (vm: Vm, store: ImageSwitchStore) => ImageSwitchStore;
    onStep?: (vm: Vm, step: Step, abort: () => void) => void;
    /** One driver run only, whatever its outcome. */
    once?: boolean;
  }

  interface VmRun {
    outcomes: SwitchOutcome[];
    kills: string[];
    boots: number;
    steps: string[];
  }

  /** Runs one VM's agent until it is idle: a reboot starts a new driver on the new boot, a kill a new driver on the same. */
  /** Aborted at the end of every test, so no driver outlives its test. */
  let testStop = new AbortController();

  const runVm = async (pair: Pair, vm: Vm, o: RunOptions = {}): Promise<VmRun> => {
    const run: VmRun = { outcomes: [], kills: [], boots: 1, steps: [] };
    const pendingKills = [...(o.kills ?? [])].filter((k) => k.vm === vm.name);
    const stop = testStop.signal;
    for (let i = 0; i < 12; i++) {
      if (stop.aborted) throw new Error(`${vm.name}: stopped by the test`);
      if (!vm.reporter) {
        run.boots++;
        boot(pair, vm);
      }
      const ac = new AbortController();
      const onStop = () => ac.abort();
      stop.addEventListener("abort", onStop, { once: true });
      const after = (what: string): void => {
        const k = pendingKills.findIndex((p) => p.after === what && (p.boot === undefined || p.boot === run.boots));
        if (k < 0) return;
        pendingKills.splice(k, 1);
        run.kills.push(`${what} (boot ${run.boots})`);
        ac.abort();
      };
      const real = kubeImageSwitchStore(vm.client, {
        namespace: NS,
        loadBalancerName: LAB,
        fieldManager: `${statusFieldManager(vm.name)}/switch`,
      });
      const recorded: ImageSwitchStore = {
        read: () => real.read(),
        write: async (next, rv) => {
          const ok = await real.write(next, rv);
          if (ok) after(`status ${next.phase}`);
          return ok;
        },
      };
      const store = o.wrapStore ? o.wrapStore(vm, recorded) : recorded;
      const bootc = bootcClient(vm.bootc.runner);
      const deps: SwitchDeps = {
        self: { name: vm.name, role: vm.role },
        targetImage: NEW,
        store,
        host: {
          bootc: {
            status: () => bootc.status(),
            switchTo: async (ref) => {
              await bootc.switchTo(ref);
              after("bootc switch");
            },
            rollback: async () => {
              await bootc.rollback();
              after("bootc rollback");
            },
          },
          reboot: async () => {
            const r = vm.reporter;
            vm.reporter = undefined;
            await r?.stop();
            vm.keepalived = false;
            vm.bootc.reboot();
            pair.changed(vm, "reboot");
          },
          keepalived: {
            active: async () => vm.keepalived,
            state: async () => pair.state(vm),
            stop: async () => {
              vm.keepalived = false;
              pair.changed(vm, "keepalived stop");
              after("keepalived stop");
            },
            start: async () => {
              vm.keepalived = true;
              pair.changed(vm, "keepalived start");
              after("keepalived start");
            },
          },
          peerAdvertsSeen: async () => pair.peer(vm).keepalived,
          servicesUp: async () => vm.servicesUp,
          healthGate: async () =>
            vm.gateFailsOn !== undefined && vm.bootc.state().booted.digest === vm.gateFailsOn
              ? { ok: false, failures: ["HAProxy backend api/cp-0 is DOWN"] }
              : { ok: true, failures: [] },
        },
        report: (r) => {
          vm.reporter?.update({
            bootedImage: r.bootedImage,
            applying: r.progressing !== undefined,
            lastError: r.degraded ? `${r.degraded.reason}: ${r.degraded.message}` : undefined,
          });
        },
        timeouts: DRIVER_TIMEOUTS,
        pollMs: 100,
        runForMs: 60_000,
        peerStaleAfterMs: 2000,
        signal: ac.signal,
        onStep: (step) => {
          const line = `${step.kind}${step.status.imageSwitch ? ` -> ${step.status.imageSwitch.phase}` : ""}`;
          if (run.steps[run.steps.length - 1] !== line) run.steps.push(line);
          o.onStep?.(vm, step, () => ac.abort());
        },
      };
      const outcome = await runSwitch(deps).finally(() => stop.removeEventListener("abort", onStop));
      run.outcomes.push(outcome);
      if (outcome.result === "idle" || o.once) return run;
      if (outcome.result === "rebooting" || outcome.result === "aborted") continue;
      throw new Error(
        `${vm.name}: ${outcome.result} after ${outcome.steps} steps; last: ${outcome.step?.reason}; errors: ${outcome.errors.slice(-5).join(" | ")}; steps: ${run.steps.join(", ")}`,
      );
    }
    throw new Error(`${vm.name}: more than 12 runs; steps: ${run.steps.join(", ")}`);
  };

  /** Both VMs' agents to the end; a failure stops the other one and reports what each did. */
  const runPair = async (pair: Pair, o: RunOptions = {}): Promise<[VmRun, VmRun]> => {
    const settled = await Promise.allSettled(
      pair.vms.map((vm) =>
        runVm(pair, vm, o).catch((e: unknown) => {
          testStop.abort();
          throw e;
        }),
      ),
    );
    const failures = settled.flatMap((r) => (r.status === "rejected" ? [(r.reason as Error).message] : []));
    if (failures.length > 0)
      throw new Error(
        `${failures.join("\n")}\nVRRP events: ${pair.events.map((e) => `${e.vm} ${e.what}`).join(", ")}\nbootc: ${bootcHistory().join(", ")}`,
      );
    return settled.map((r) => (r as PromiseFulfilledResult<VmRun>).value) as [VmRun, VmRun];
  };

  afterEach(() => {
    testStop.abort();
    testStop = new AbortController();
    // the agent's Role sufficed for every request its drivers and reporters made
    expect(responses.length).toBeGreaterThan(10);
    expect(responses.filter((r) => r.status === 403 || r.status === 401)).toEqual([]);
    responses.length = 0;
  });

  let calls0 = 0;
  /** bootc switch/rollback/upgrade calls and reboots since the test began, as "host verb". */
  const bootcHistory = () =>
    standin
      .calls()
      .slice(calls0)
      .filter((c) => c.argv[0] === "reboot" || c.argv[1] !== "status")
      .map((c) => `${c.host} ${c.argv[0] === "reboot" ? "reboot" : c.argv[1]}`);
  const phases = (h: ImageSwitchStatus[]) =>
    h.map((s) => [s.phase, s.turn ?? "-", (s.completed ?? []).join(",")].join(" "));
  const entries = async () =>
    ((await must("GET", lbPath)).body as { status?: { loadBalancers?: LoadBalancerEntryStatus[] } }).status
      ?.loadBalancers ?? [];
  const condition = (e: LoadBalancerEntryStatus | undefined, type: string) =>
    e?.conditions?.find((c) => c.type === type);

  /** A fresh pair: lb-1 (primary) MASTER, lb-2 BACKUP, both on OLD, both entries in status; the watch started. */
  const setUp = async (): Promise<{
    pair: Pair;
    lb1: Vm;
    lb2: Vm;
    watch: Awaited<ReturnType<typeof watchImageSwitch>>;
  }> => {
    await Promise.allSettled([...reporters].map((r) => r.stop()));
    reporters.clear();
    await must("PATCH", `${lbPath}/status`, { status: null }, "application/merge-patch+json");
    calls0 = standin.calls().length;
    const lb1 = makeVm("lb-1", "primary", OLD, OLDER);
    const lb2 = makeVm("lb-2", "secondary", OLD, OLDER);
    const pair = new Pair([lb1, lb2]);
    pair.master = "lb-1";
    boot(pair, lb1);
    boot(pair, lb2);
    const deadline = Date.now() + 20_000;
    while ((await entries()).filter((e) => condition(e, "Ready")?.status === "True").length < 2) {
      if (Date.now() > deadline) throw new Error("the two entries did not appear");
      await sleep(100);
    }
    const rv = ((await must("GET", lbPath)).body as { metadata: { resourceVersion: string } }).metadata.resourceVersion;
    return { pair, lb1, lb2, watch: await watchImageSwitch(admin, rv) };
  };

  /** Waits until the watch saw `phase` (the watch trails the writes by a few ms). */
  const seen = async (h: ImageSwitchStatus[], phase: string): Promise<void> => {
    const deadline = Date.now() + 10_000;
    while (!h.some((s) => s.phase === phase)) {
      if (Date.now() > deadline) throw new Error(`the watch never showed ${phase}: ${JSON.stringify(phases(h))}`);
      await sleep(50);
    }
  };

  const HAPPY = [
    "Switching lb-2 ",
    "Verifying lb-2 ",
    "Pending lb-1 lb-2",
    "Switching lb-1 lb-2",
    "Verifying lb-1 lb-2",
    "Completed - lb-1,lb-2",
  ];

  test("the BACKUP switches first, the MASTER resigns before its reboot, then switches; status and bootc agree", async () => {
    const { pair, lb1, lb2, watch } = await setUp();
    try {
      const t0 = Date.now();
      const [r1, r2] = await runPair(pair);
      const ms = Date.now() - t0;
      await seen(watch.history, "Completed");
      expect(phases(watch.history)).toEqual(HAPPY);
      expect(bootcHistory()).toEqual(["lb-2 switch", "lb-2 reboot", "lb-1 switch", "lb-1 reboot"]);

      // the MASTER (lb-1) stopped keepalived before its reboot, and lb-2 held the VIPs by then; the BACKUP had
      // nothing to resign; the VIPs were never unheld
      const ev = pair.events.map((e) => `${e.vm} ${e.what}${e.master ? ` [${e.master}]` : ""}`);
      expect(ev).toEqual([
        "lb-2 reboot [lb-1]",
        "lb-2 keepalived start [lb-1]",
        "lb-1 keepalived stop [lb-2]",
        "lb-1 reboot [lb-2]",
        "lb-1 keepalived start [lb-2]",
      ]);
      expect(pair.vipGaps).toBe(0);

      expect([r1.boots, r2.boots]).toEqual([2, 2]);
      // in order of first occurrence (a write that lost to a heartbeat repeats its step)
      const firsts = (xs: string[]) => [...new Set(xs)];
      expect(firsts(r2.steps)).toEqual([
        "claim-turn -> Switching",
        "switch-and-reboot",
        "switch-and-reboot -> Verifying",
        "await-peer",
        "verify",
        "pass-turn -> Pending",
        "wait",
      ]);
      expect(firsts(r1.steps)).toEqual([
        "wait",
        "claim-turn -> Switching",
        "switch-and-reboot",
        "resign",
        "switch-and-reboot -> Verifying",
        "await-peer",
        "verify",
        "complete -> Completed",
      ]);
      for (const vm of [lb1, lb2])
        expect(vm.bootc.state()).toMatchObject({
          booted: image(NEW),
          rollback: image(OLD),
          staged: null,
          rollbackQueued: false,
        });

      // each LB's entry: the new image, not Degraded, not Progressing (the reporters flush every 250 ms)
      await sleep(600);
      const es = await entries();
      for (const name of ["lb-1", "lb-2"]) {
        const e = es.find((x) => x.name === name);
        expect([
          name,
          e?.bootedImage,
          condition(e, "Degraded")?.status,
          condition(e, "Progressing")?.status,
          condition(e, "Ready")?.status,
        ]).toEqual([name, NEW, "False", "False", "True"]);
      }
      // the switch's updates own imageSwitch only: the entries stay their LBs' own (server-side apply)
      const managed = (
        (await must("GET", lbPath)).body as { metadata: { managedFields: { manager: string; fieldsV1: unknown }[] } }
      ).metadata.managedFields;
      for (const name of ["lb-1", "lb-2"]) {
        const owned = JSON.stringify(
          managed.find((m) => m.manager === `${statusFieldManager(name)}/switch`)?.fieldsV1 ?? null,
        );
        expect(owned).toContain("f:imageSwitch");
        expect(owned).not.toContain("loadBalancers");
      }
      // reads, the resourceVersion-guarded updates of imageSwitch (PUT), the entries' server-side applies (PATCH)
      expect(new Set(responses.map((r) => r.method))).toEqual(new Set(["GET", "PUT", "PATCH"]));
      process.stderr.write(`[agent-switch] two-LB switch with 100 ms polls: ${ms} ms\n`);
    } finally {
      watch.stop();
    }
  });

  test.each<[string, KillPoint[]]>([
    ["", []],
    [" (killed after writing RollingBack, before bootc rollback)", [{ vm: "lb-2", after: "status RollingBack" }]],
    [
      " (killed after bootc rollback, before the reboot: rollback must not run again, it toggles)",
      [{ vm: "lb-2", after: "bootc rollback" }],
    ],
  ])(
    "a failed gate on the first LB: rollback + reboot, RollingBack then Failed, Degraded with the reason; the MASTER never switches%s",
    async (_what, kills) => {
      const { pair, lb1, lb2, watch } = await setUp();
      try {
        lb2.gateFailsOn = digestOf(NEW);
        const [r1, r2] = await runPair(pair, { kills });
        expect(r2.kills).toHaveLength(kills.length);
        await seen(watch.history, "Failed");
        expect(phases(watch.history)).toEqual([
          "Switching lb-2 ",
          "Verifying lb-2 ",
          "RollingBack lb-2 ",
          "Failed lb-2 ",
        ]);
        expect(bootcHistory()).toEqual(["lb-2 switch", "lb-2 reboot", "lb-2 rollback", "lb-2 reboot"]);
        const failed = watch.history[watch.history.length - 1] as ImageSwitchStatus;
        expect(failed.message).toContain(
          `${NEW} failed the health gate within 8 s: HAProxy backend api/cp-0 is DOWN; rolling back to ${OLD}`,
        );
        expect(lb2.bootc.state()).toMatchObject({ booted: image(OLD), rollback: image(NEW) });
        expect(lb1.bootc.state()).toMatchObject({ booted: image(OLD), staged: null });
        expect(r1.steps.every((s) => s === "wait")).toBe(true);
        expect(r2.steps).toContain("rollback-and-reboot -> RollingBack");
        expect(pair.master).toBe("lb-1");

        await sleep(600);
        const e2 = (await entries()).find((e) => e.name === "lb-2");
        expect(condition(e2, "Degraded")).toMatchObject({ status: "True" });
        expect(condition(e2, "Degraded")?.message).toContain("ImageSwitchFailed: lb-2: ");
        expect(condition(e2, "Degraded")?.message).toContain("HAProxy backend api/cp-0 is DOWN");
        expect(condition(e2, "Progressing")?.status).toBe("False");
        expect(e2?.bootedImage).toBe(OLD);

        // the failure stands for a new agent process on lb-2: it finds it in status and still reports Degraded
        const again = await runVm(pair, lb2);
        expect(again.steps).toEqual(["wait"]);
        expect(again.outcomes[0]?.step?.status.self.degraded?.message).toBe(failed.message);
        expect(bootcHistory()).toEqual(["lb-2 switch", "lb-2 reboot", "lb-2 rollback", "lb-2 reboot"]);
      } finally {
        watch.stop();
      }
    },
  );

  test("the image's boot check rolls the target back: Failed with the reason, no agent rollback, the MASTER never switches", async () => {
    const { pair, lb1, lb2, watch } = await setUp();
    try {
      lb2.bootc.update({ rejectAtBoot: [digestOf(NEW) as string] });
      await runPair(pair);
      await seen(watch.history, "Failed");
      expect(phases(watch.history)).toEqual(["Switching lb-2 ", "Verifying lb-2 ", "Failed lb-2 "]);
      expect(watch.history[2]?.message).toContain(
        `lb-2 booted ${OLD} instead of ${NEW}: the target did not stay booted`,
      );
      expect(bootcHistory()).toEqual(["lb-2 switch", "lb-2 reboot"]);
      expect(pair.events.map((e) => `${e.vm} ${e.what}`)).toEqual(["lb-2 reboot", "lb-2 keepalived start"]);
      expect(lb1.bootc.state()).toMatchObject({ booted: image(OLD), staged: null });
    } finally {
      watch.stop();
    }
  });

  test.each<[string, KillPoint[]]>([
    ["the BACKUP after bootc switch, before its reboot", [{ vm: "lb-2", after: "bootc switch" }]],
    ["the MASTER after writing Verifying, before its reboot", [{ vm: "lb-1", after: "status Verifying" }]],
    [
      "the BACKUP after its reboot, before the gate (keepalived just started)",
      [{ vm: "lb-2", after: "keepalived start", boot: 2 }],
    ],
    ["the MASTER right after its resignation, before its reboot", [{ vm: "lb-1", after: "keepalived stop" }]],
  ])("an agent killed mid-switch (%s) resumes from status and bootc alone", async (_what, kills) => {
    const { pair, lb1, lb2, watch } = await setUp();
    try {
      const [r1, r2] = await runPair(pair, { kills });
      expect([...r1.kills, ...r2.kills]).toHaveLength(1);
      await seen(watch.history, "Completed");
      expect(phases(watch.history)).toEqual(HAPPY);
      // nothing done twice: one switch and one reboot per LB, in order
      expect(bootcHistory()).toEqual(["lb-2 switch", "lb-2 reboot", "lb-1 switch", "lb-1 reboot"]);
      expect(pair.vipGaps).toBe(0);
      for (const vm of [lb1, lb2]) expect(vm.bootc.state()).toMatchObject({ booted: image(NEW), staged: null });
    } finally {
      watch.stop();
    }
  });

  test("two drivers racing to claim the first turn: exactly one wins (resourceVersion conflict), the other waits", async () => {
    const { pair, lb1, lb2, watch } = await setUp();
    try {
      // both BACKUP (no MASTER elected), so both may claim; a barrier makes both write from the same resourceVersion
      pair.elect = false;
      pair.master = undefined;
      pair.changed(lb1, "no master");
      await sleep(600);
      // no status writes from here on (heartbeats would move the resourceVersion between the two reads); the
      // entries' last heartbeats are fresh enough for the claim
      await Promise.all([lb1, lb2].flatMap((v) => (v.reporter ? [v.reporter.stop()] : [])));
      const writes: { vm: string; ok: boolean; rv: string }[] = [];
      let arrived = 0;
      let release: () => void = () => undefined;
      const barrier = new Promise<void>((r) => (release = r));
      const wrapStore = (vm: Vm, store: ImageSwitchStore): ImageSwitchStore => ({
        read: () => store.read(),
        write: async (next, rv) => {
          if (next.phase === "Switching" && writes.filter((w) => w.vm === vm.name).length === 0) {
            if (++arrived === 2) release();
            let timer: NodeJS.Timeout | undefined;
            await Promise.race([barrier, new Promise((r) => (timer = setTimeout(r, 15_000)))]);
            clearTimeout(timer);
          }
          const ok = await store.write(next, rv);
          writes.push({ vm: vm.name, ok, rv });
          return ok;
        },
      });
      // stop each driver once it has seen the outcome: the winner when it stages, the loser when it waits for the turn
      const onStep = (_vm: Vm, step: Step, abort: () => void) => {
        if (step.kind === "switch-and-reboot" || (step.kind === "wait" && step.reason.includes("holds the turn")))
          abort();
      };
      const runs = await runPair(pair, { wrapStore, onStep, once: true });
      expect(runs.map((r) => r.outcomes.map((o) => o.result))).toEqual([["aborted"], ["aborted"]]);
      expect(writes.map((w) => w.ok).sort()).toEqual([false, true]);
      expect(writes[0]?.rv).toBe(writes[1]?.rv);
      const winner = writes.find((w) => w.ok)?.vm;
      const loser = winner === "lb-1" ? "lb-2" : "lb-1";
      await seen(watch.history, "Switching");
      expect(phases(watch.history)).toEqual([`Switching ${winner} `]);
      expect(bootcHistory().filter((c) => c.startsWith(loser))).toEqual([]);
    } finally {
      watch.stop();
    }
  });
});
