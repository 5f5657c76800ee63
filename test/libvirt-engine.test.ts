/**
 * The libvirt provider through the real Pulumi engine (test/engine/pulumi-program.ts, engines from
 * ./tools/build-engines) against a private libvirtd (test/fixtures/libvirtd.ts):
 *
 * - test/engine/programs/libvirt-resources (one Network, Volume, CloudInitDisk, Domain; URI as a resource input):
 *   preview, up, refresh, in-place updates of all four (ids kept), a domain replaced with the old one deleted
 *   first (same name and MAC), a seed replaced new-first with the domain's CD-ROM swapped in place, a network
 *   replaced old-first together with its dependent domain, drift made with virsh reported by refresh and repaired
 *   by up, destroy; the secret user-data never in the state in plaintext.
 * - errors through the engine: a bad MAC at preview, a name collision, a missing base image, an unreachable URI.
 * - test/engine/programs/libvirt-lab (the two-network, two-domain lab; URI from the environment): up, refresh,
 *   destroy with nothing left (domains, networks, volumes, pool files, bridges, routes, processes, firewall rules).
 * - and the fixture's stop puts the root namespace back as it found it.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { PreviewResult, PulumiWorkspace, UpdateResult } from "./engine/pulumi-program";
import { must, run } from "./checkers/run";
import {
  firewallSnapshot,
  FirewallSnapshot,
  Libvirtd,
  libvirtRules,
  libvirtWorkspaceFiles,
  makeBaseImage,
  startLibvirtd,
  withoutLibvirtSkeleton,
} from "./fixtures/libvirtd";
import { stepTimings } from "./fixtures/step-timings";

const ENGINE_TIMEOUT = 300_000;
jest.setTimeout(ENGINE_TIMEOUT);

let lv: Libvirtd;
let base = "";
let fwBeforeFixture: FirewallSnapshot;
let forwardBefore = "";
const workspaces: PulumiWorkspace[] = [];

const { timed, report: reportTimings } = stepTimings("libvirt engine");

async function workspace(
  program: "libvirt-resources" | "libvirt-lab",
  config: Record<string, string | number | boolean>,
  env?: Record<string, string>,
): Promise<PulumiWorkspace> {
  const ws = await PulumiWorkspace.create({ name: program, files: libvirtWorkspaceFiles(program), config, env });
  workspaces.push(ws);
  return ws;
}

/** Operation per resource name, without the default provider. */
function ops(p: PreviewResult): Record<string, string> {
  const out: Record<string, string> = {};
  for (const s of p.steps) if (!s.type.startsWith("pulumi:providers:")) out[s.name] = s.op;
  return out;
}

function changes(r: UpdateResult): Record<string, number> {
  return r.summary.resourceChanges;
}

/** Index of a step line in an `up` transcript (e.g. "vm deleting original"). */
function stepAt(up: UpdateResult, resource: string, what: string): number {
  const i = up.stdout.search(new RegExp(`:(Domain|Network|Volume|CloudInitDisk) ${resource} ${what}`));
  if (i < 0) throw new Error(`no "${resource} ${what}" in:\n${up.stdout}`);
  return i;
}

beforeAll(async () => {
  fwBeforeFixture = firewallSnapshot();
  forwardBefore = fs.readFileSync("/proc/sys/net/ipv4/ip_forward", "utf8").trim();
  lv = await timed("start libvirtd + virtlogd + pool", () => startLibvirtd());
  base = makeBaseImage(lv);
});

afterAll(async () => {
  try {
    for (const ws of workspaces) await ws.dispose().catch((e) => console.error(`dispose: ${e}`));
    if (lv) await lv.stop();
  } finally {
    reportTimings();
  }
});

describe("one of each resource through the engine", () => {
  let ws: PulumiWorkspace;
  let outs: Record<string, unknown> = {};
  const prefix = "epe";

  beforeAll(async () => {
    ws = await workspace("libvirt-resources", { pool: lv.pool, base, prefix, uri: lv.uri, cidr: "10.94.1.0/24" });
  });

  test("preview plans a create of each and touches nothing", async () => {
    const p = await timed("preview (create)", () => ws.previewJson());
    expect(ops(p)).toEqual({
      "libvirt-resources-test": "create",
      net: "create",
      disk: "create",
      seed: "create",
      vm: "create",
    });
    expect(p.byName.vm?.type).toBe("pulumi-nodejs:dynamic/libvirt:Domain");
    expect(lv.inventory()).toEqual({ domains: [], networks: [], pools: [lv.pool], volumes: [base] });
  });

  test("up creates them; kinds tell them apart; the secret user-data is not in the state in plaintext", async () => {
    const up = await timed("up (create 4)", () => ws.up());
    expect(changes(up)).toEqual({ create: 5 });
    outs = await ws.outputs();
    expect(outs).toMatchObject({
      networkKind: "libvirt:Network",
      diskKind: "libvirt:Volume",
      seedKind: "libvirt:CloudInitDisk",
      vmKind: "libvirt:Domain",
      networkBridge: "epe-br",
      vmState: "running",
      vmVirtType: lv.kvm ? "kvm" : "qemu",
      diskCapacity: 64 * 2 ** 20,
    });
    expect(lv.inventory()).toMatchObject({ domains: ["epe-vm"], networks: ["epe-net"] });
    const state = (await ws.exportState()).text;
    expect(state).not.toContain("content: one");
    expect((await ws.exportState({ showSecrets: true })).text).toContain("content: one");
    // The URI recorded to find the objects again is the credential-free one the program gave.
    const net = (await ws.resources()).find((r) => r.type.endsWith("libvirt:Network"));
    expect(net?.outputs?.uri).toBe(lv.uri);
    expect(net?.inputs?.kind).toBe("libvirt:Network");
  });

  test("refresh finds no drift", async () => {
    await timed("refresh (no drift)", () => ws.refresh({ expectNoChanges: true }));
  });

  test("in-place changes of all four preview as updates and keep every id", async () => {
    await ws.setConfig("extraHost", true);
    await ws.setConfig("netAutostart", false);
    await ws.setConfig("diskSize", 96 * 2 ** 20);
    await ws.setConfig("userDataMarker", "two");
    await ws.setConfig("memoryMiB", 192);
    await ws.setConfig("autostart", false);
    const p = await timed("preview (update 4)", () => ws.previewJson());
    expect(ops(p)).toEqual({
      "libvirt-resources-test": "same",
      net: "update",
      disk: "update",
      seed: "update",
      vm: "update",
    });
    expect(p.steps.flatMap((s) => s.replaces)).toEqual([]);
    const up = await timed("up (update 4 in place)", () => ws.up());
    expect(changes(up)).toEqual({ update: 4, same: 1 });
    const after = await ws.outputs();
    for (const k of ["networkUuid", "diskKey", "seedKey", "vmUuid"]) expect(after[k]).toBe(outs[k]);
    expect(after).toMatchObject({
      diskCapacity: 96 * 2 ** 20,
      vmMemoryMiB: 192,
      vmRestartRequired: true,
      vmState: "running",
    });
    expect(after.seedIsoSha256).not.toBe(outs.seedIsoSha256);
    expect(fs.readFileSync(path.join(lv.dir, "lib", "dnsmasq", "epe-net.hostsfile"), "utf8")).toContain(
      "52:54:00:5e:01:99,10.94.1.99,extra",
    );
    expect(lv.virsh(["net-info", "epe-net"]).stdout).toMatch(/Autostart:\s+no/);
    outs = after;
  });

  test("a new MAC replaces the domain, deleting the old one first (same name and MAC)", async () => {
    await ws.setConfig("mac2", "52:54:00:5e:01:03");
    const p = await ws.previewJson();
    expect(ops(p)).toMatchObject({ net: "same", disk: "same", seed: "same", vm: "replace" });
    expect(p.byName.vm?.replaces).toEqual(["nics"]);
    const up = await timed("up (replace domain, delete first)", () => ws.up());
    expect(changes(up)).toEqual({ replace: 1, same: 4 });
    expect(stepAt(up, "vm", "deleting original")).toBeLessThan(stepAt(up, "vm", "creating replacement"));
    const after = await ws.outputs();
    expect(after.vmUuid).not.toBe(outs.vmUuid);
    expect(lv.virsh(["domiflist", "epe-vm"]).stdout).toContain("52:54:00:5e:01:03");
    outs = after;
  });

  test("a renamed seed is replaced new-first, and the domain swaps its CD-ROM in place", async () => {
    await ws.setConfig("seedName", "epe-seed-2.iso");
    const p = await ws.previewJson();
    expect(ops(p)).toMatchObject({ seed: "replace", vm: "update", net: "same", disk: "same" });
    const up = await timed("up (replace seed, update domain)", () => ws.up());
    expect(changes(up)).toEqual({ replace: 1, update: 1, same: 3 });
    expect(stepAt(up, "seed", "creating replacement")).toBeLessThan(stepAt(up, "seed", "deleting original"));
    const after = await ws.outputs();
    expect(after.vmUuid).toBe(outs.vmUuid);
    expect(lv.virsh(["domblklist", "epe-vm"]).stdout).toMatch(/sda\s+\S*epe-seed-2\.iso/);
    expect(lv.inventory().volumes.sort()).toEqual([base, "epe-disk.qcow2", "epe-seed-2.iso"].sort());
    outs = after;
  });

  test("a new CIDR replaces the network old-first, and its dependent domain with it", async () => {
    await ws.setConfig("cidr", "10.94.2.0/24");
    const p = await ws.previewJson();
    expect(ops(p)).toMatchObject({ net: "replace", vm: "replace", disk: "same", seed: "same" });
    expect(p.byName.net?.replaces).toEqual(expect.arrayContaining(["cidr"]));
    const up = await timed("up (replace network + dependent domain)", () => ws.up());
    expect(changes(up)).toEqual({ replace: 2, same: 3 });
    expect(stepAt(up, "vm", "deleting original")).toBeLessThan(stepAt(up, "net", "deleting original"));
    expect(stepAt(up, "net", "deleting original")).toBeLessThan(stepAt(up, "net", "creating replacement"));
    const after = await ws.outputs();
    expect(after.networkUuid).not.toBe(outs.networkUuid);
    expect(after.vmUuid).not.toBe(outs.vmUuid);
    expect(after.vmState).toBe("running");
    expect(must("ip", ["route", "show", "198.18.91.0/24"]).stdout).toMatch(/via 10\.94\.2\.10 dev epe-br/);
    outs = after;
  });

  test("drift made with virsh is reported by refresh and repaired in place by up", async () => {
    lv.virsh(["destroy", "epe-vm"]);
    lv.virsh(["net-autostart", "epe-net"]);
    lv.virsh(["setvcpus", "epe-vm", "2", "--config", "--maximum"]);
    lv.virsh(["setvcpus", "epe-vm", "2", "--config"]);
    const refresh = ws.refresh({ expectNoChanges: true });
    await expect(refresh).rejects.toThrow(/no changes were expected/i);
    const resources = await ws.resources();
    const vm = resources.find((r) => r.type.endsWith("libvirt:Domain"))?.outputs;
    const net = resources.find((r) => r.type.endsWith("libvirt:Network"))?.outputs;
    expect(vm).toMatchObject({ running: false, state: "shut off", vcpu: 2 });
    expect(net).toMatchObject({ autostart: true });
    const p = await ws.previewJson();
    expect(ops(p)).toMatchObject({ vm: "update", net: "update", disk: "same", seed: "same" });
    const up = await timed("up (repair drift)", () => ws.up());
    expect(changes(up)).toEqual({ update: 2, same: 3 });
    expect(lv.virsh(["domstate", "epe-vm"]).stdout.trim()).toBe("running");
    await ws.refresh({ expectNoChanges: true });
  });

  test("destroy removes all of it", async () => {
    const d = await timed("destroy (4)", () => ws.destroy());
    expect(changes(d)).toEqual({ delete: 5 });
    expect(lv.inventory()).toEqual({ domains: [], networks: [], pools: [lv.pool], volumes: [base] });
  });
});

describe("errors through the engine", () => {
  let ws: PulumiWorkspace;
  const prefix = "epx";

  beforeAll(async () => {
    ws = await workspace("libvirt-resources", { pool: lv.pool, base, prefix, uri: lv.uri, cidr: "10.94.5.0/24" });
  });

  afterEach(async () => {
    await ws.destroy();
    expect(lv.inventory()).toEqual({ domains: [], networks: [], pools: [lv.pool], volumes: [base] });
  });

  test("a bad MAC stops the preview with `field: rule` and creates nothing", async () => {
    await ws.setConfig("mac2", "52:54:00:5e:01");
    await expect(ws.preview()).rejects.toThrow(
      /has a problem: nics\[1\]\.mac: must be a unicast MAC address such as 52:54:00:12:34:56, not "52:54:00:5e:01"/,
    );
    await ws.setConfig("mac2", "52:54:00:5e:01:02");
  });

  test("a name collision fails the create and names the existing object", async () => {
    const file = path.join(lv.dir, "taken.xml");
    fs.writeFileSync(file, "<network><name>epx-net</name><bridge name='epx-taken'/></network>");
    lv.virsh(["net-define", file]);
    try {
      await expect(ws.up()).rejects.toThrow(
        /name: a network named "epx-net" already exists on qemu:\/\/\/system\?socket=\S+; choose another name/,
      );
      expect(lv.inventory().domains).toEqual([]);
    } finally {
      lv.virsh(["net-undefine", "epx-net"]);
    }
  });

  test("a missing base image fails the volume's create", async () => {
    await ws.setConfig("base", "nope.qcow2");
    await expect(ws.up()).rejects.toThrow(
      /base: base image volume "nope.qcow2" not found in pool "edgepair-test-[0-9a-f]+"/,
    );
    await ws.setConfig("base", base);
  });

  test("an unreachable URI fails with the URI and libvirt's reason", async () => {
    await ws.setConfig("uri", "qemu:///system?socket=/nonexistent/libvirt-sock");
    await expect(ws.up()).rejects.toThrow(
      /libvirt: cannot connect to qemu:\/\/\/system\?socket=\/nonexistent\/libvirt-sock: Failed to connect socket/,
    );
    await ws.setConfig("uri", lv.uri);
  });
});

describe("the two-network, two-domain lab", () => {
  let ws: PulumiWorkspace;
  const prefix = "eplab";
  const bridges = [`${prefix}-priv`, `${prefix}-pub`];
  const cidrs = ["10.94.100.0/24", "10.94.200.0/24", "198.18.94.0/24"];
  let fwBefore: FirewallSnapshot;
  let routesBefore = "";

  beforeAll(async () => {
    fwBefore = firewallSnapshot();
    routesBefore = must("ip", ["route", "show"]).stdout;
    ws = await workspace(
      "libvirt-lab",
      { pool: lv.pool, base, prefix, privateCidr: cidrs[0]!, publicCidr: cidrs[1]!, floatingCidr: cidrs[2]! },
      { EDGEPAIR_LIBVIRT_URI: lv.uri },
    );
  });

  test("up: both networks and both domains, running, each LB on both networks", async () => {
    const up = await timed("lab up", () => ws.up());
    expect(changes(up)).toEqual({ create: 9 });
    const outs = await ws.outputs();
    expect(outs).toMatchObject({
      privateBridge: bridges[0],
      publicBridge: bridges[1],
      domainStates: ["running", "running"],
    });
    expect(lv.inventory().networks.sort()).toEqual([`${prefix}-private`, `${prefix}-public`]);
    for (const n of [1, 2]) {
      const ifs = lv.virsh(["domiflist", `${prefix}-lb${n}`]).stdout;
      expect(ifs).toMatch(new RegExp(`${prefix}-public\\s+virtio\\s+52:54:00:ec:01:0${n}`));
      expect(ifs).toMatch(new RegExp(`${prefix}-private\\s+virtio\\s+52:54:00:ec:02:0${n}`));
    }
    // Private: isolated, the host on .254 (never the gateway VIP .1), reservations, router = the VIP.
    expect(must("ip", ["-4", "-o", "addr", "show", "dev", bridges[0]!]).stdout).toContain("inet 10.94.100.254/24");
    const privConf = fs.readFileSync(path.join(lv.dir, "lib", "dnsmasq", `${prefix}-private.conf`), "utf8");
    expect(privConf).toContain("dhcp-option=option:router,10.94.100.1");
    expect(
      fs
        .readFileSync(path.join(lv.dir, "lib", "dnsmasq", `${prefix}-private.hostsfile`), "utf8")
        .trim()
        .split("\n"),
    ).toEqual([
      "52:54:00:ec:02:01,10.94.100.2,lb1",
      "52:54:00:ec:02:02,10.94.100.3,lb2",
      "52:54:00:ec:0a:0a,10.94.100.10,node1",
    ]);
    // Public: NAT, the floating range routed to the public-side VIP.
    expect(must("ip", ["route", "show", cidrs[2]!]).stdout).toMatch(/via 10\.94\.200\.10 dev eplab-pub/);
    expect(libvirtRules(firewallSnapshot(), [cidrs[1]!]).join("\n")).toMatch(/MASQUERADE/);
  });

  test("refresh finds no drift", async () => {
    await timed("lab refresh", () => ws.refresh({ expectNoChanges: true }));
  });

  test("destroy leaves nothing: domains, networks, volumes, files, bridges, routes, processes, firewall rules", async () => {
    const d = await timed("lab destroy", () => ws.destroy());
    expect(changes(d)).toEqual({ delete: 9 });
    expect(lv.inventory()).toEqual({ domains: [], networks: [], pools: [lv.pool], volumes: [base] });
    expect(fs.readdirSync(lv.poolDir)).toEqual([base]);
    for (const b of bridges) expect(fs.existsSync(`/sys/class/net/${b}`)).toBe(false);
    expect(must("ip", ["route", "show"]).stdout).toBe(routesBefore);
    expect(run("pgrep", ["-f", `${prefix}-(lb|private|public)`]).stdout).toBe("");
    expect(
      fs.readdirSync(path.join(lv.dir, "run", "qemu")).filter((f) => f.endsWith(".pid") && f !== "driver.pid"),
    ).toEqual([]);
    const now = firewallSnapshot();
    expect(libvirtRules(now, [...bridges, ...cidrs])).toEqual([]);
    expect(withoutLibvirtSkeleton(now)).toEqual(withoutLibvirtSkeleton(fwBefore));
  });
});

test("stopping the daemon puts the root namespace back as the fixture found it", async () => {
  for (const ws of workspaces.splice(0)) await ws.dispose();
  const report = await lv.stop();
  expect(report.leftovers).toEqual([]);
  if (report.restoredBaseline) {
    // This was the only libvirtd fixture running: the rule set is byte for byte what it was.
    expect(firewallSnapshot()).toEqual(fwBeforeFixture);
    expect(fs.readFileSync("/proc/sys/net/ipv4/ip_forward", "utf8").trim()).toBe(forwardBefore);
  } else {
    expect(withoutLibvirtSkeleton(firewallSnapshot())).toEqual(withoutLibvirtSkeleton(fwBeforeFixture));
  }
  expect(fs.existsSync(lv.dir)).toBe(false);
  for (const pid of [lv.pids.libvirtd, lv.pids.virtlogd, lv.pids.holder]) {
    const stat = fs.existsSync(`/proc/${pid}/stat`) ? fs.readFileSync(`/proc/${pid}/stat`, "utf8") : "";
    expect(stat === "" || / Z /.test(stat)).toBe(true);
  }
});
