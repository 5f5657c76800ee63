/**
 * The policy pack through the real Pulumi engine (pulumi CLI and language host built from Go modules by
 * tools/build-engines): `pulumi preview --policy-pack policy` on the dev stack and on deliberately broken stacks.
 *
 * How the engine starts the pack (pkg/v3 v3.259.0, resource/plugin/analyzer_plugin.go NewPolicyAnalyzer): it reads
 * policy/PulumiPolicy.yaml (`runtime: nodejs`), looks for a *language* plugin named nodejs, and since ours is on
 * PATH it asks that host to RunPlugin the pack directory (kind "analyzer"); only without a language host would it
 * look for `pulumi-analyzer-policy-nodejs`. Our host implements RunPlugin for policy packs
 * (tools/engines/langhost/run_plugin.go: `node @pulumi/pulumi/cmd/run-policy-pack <engine> .` in the pack's
 * directory), so nothing is downloaded (PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true).
 *
 * Previews only: the libvirt providers' checks need no libvirtd, so the pair is planned against a libvirt URI that
 * does not exist and nothing is ever created.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { parse } from "yaml";
import { PulumiWorkspace, type RunResult } from "./engine/pulumi-program";
import { stackProgramFiles } from "./fixtures/stack-program";
import { REPO } from "./fixtures/variants";

jest.setTimeout(600_000);

const POLICY_DIR = path.join(REPO, "policy");
const DIGEST_REF = `registry.example/edgepair/appliance@sha256:${"b".repeat(64)}`;

let ws: PulumiWorkspace;

async function previewWithPack(extra: string[] = []): Promise<RunResult> {
  const r = await ws.run(["preview", "--color", "never", "--policy-pack", POLICY_DIR, ...extra], {
    allowFailure: true,
  });
  if (/RunPlugin not implemented/.test(r.stdout + r.stderr)) {
    throw new Error(
      "the engines' pulumi-language-nodejs cannot run policy packs (no RunPlugin): run ./tools/build-engines",
    );
  }
  return r;
}

/** The "Policies:" block of the preview's output (the violations, as a reviewer sees them). */
function policiesBlock(r: RunResult): string {
  const out = r.stdout;
  const start = out.indexOf("Policies:");
  return start < 0 ? "" : out.slice(start, out.indexOf("\n\n", start) < 0 ? undefined : out.indexOf("\n\n", start));
}

beforeAll(async () => {
  const dev = parse(fs.readFileSync(path.join(REPO, "Pulumi.dev.yaml"), "utf8")) as { config: Record<string, unknown> };
  ws = await PulumiWorkspace.create({ name: "edgepair", stack: "dev", files: stackProgramFiles(dev.config, "dev") });
});

afterAll(async () => {
  await ws?.dispose().catch((e) => console.error(`dispose: ${e}`));
});

test("the dev stack as committed (spec validated, nothing composed) passes the pack", async () => {
  const r = await previewWithPack();
  expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: expect.any(String) });
  expect(policiesBlock(r)).toMatch(/edgepair@v0\.1\.0/);
  expect(r.stdout).not.toMatch(/\[mandatory\]|\[advisory\]/);
});

test("the dev stack with the lab pair composed: every mandatory policy passes, the lab's shortcuts show as advisory", async () => {
  for (const [key, value] of Object.entries({
    "edgepair:libvirtUri": "qemu:///system?socket=/nonexistent/edgepair-policy-test",
    "edgepair:libvirtPool": "default",
    "edgepair:libvirtBaseImage": "edgepair.qcow2",
    "edgepair:image": DIGEST_REF,
  }))
    await ws.setConfig(key, value);
  await ws.setConfig("edgepair:vmVcpus", 1);
  await ws.setConfig("edgepair:vmMemoryMiB", 256);
  await ws.setConfig("edgepair:waitForReady", false);
  await ws.setConfig("edgepair:metricsPassword", "policy-engine-metrics", { secret: true });
  const r = await previewWithPack();
  expect(r.code).toBe(0);
  const block = policiesBlock(r);
  expect(r.stdout).not.toContain("[mandatory]");
  expect(block).toMatch(/\[advisory\](?: \[severity: \w+\])?\s+second-lb-waits-for-first/);
  expect(block).toMatch(/\[advisory\](?: \[severity: \w+\])?\s+lb-vm-sizing/);
  expect(block).toContain("memoryMiB 256 is below 2048");
  // every policy judged what the preview knows; none gave up on an unknown value
  expect(r.stdout).not.toContain("can't run policy");
  // the pair really was planned (two domains, two views), so the stack policies had it to judge
  expect(r.stdout.match(/pulumi-nodejs:dynamic\/libvirt:Domain/g)?.length).toBeGreaterThanOrEqual(2);
});

test("broken: spec.vrrp.advertInterval 2 s fails the preview with the policy's message, once per LB's keepalived.conf", async () => {
  await ws.run(["config", "set", "--path", "edgepair:spec.vrrp.advertInterval", "2"]);
  const r = await previewWithPack();
  expect(r.code).not.toBe(0);
  const block = policiesBlock(r);
  expect(block).toMatch(/\[mandatory\](?: \[severity: \w+\])?\s+vrrp-v3-fast-advert/);
  expect(block.match(/vrrp_instance lab advert_int 2 s is above 1 s/g)).toHaveLength(2);
  expect(r.stdout).toMatch(/error: preview failed/);
});

test("the same break with the policy set to advisory in --policy-pack-config: shown, not fatal", async () => {
  const config = path.join(ws.root, "policy-config.json");
  fs.writeFileSync(
    config,
    JSON.stringify({ "vrrp-v3-fast-advert": { enforcementLevel: "advisory", maxAdvertIntervalSeconds: 1 } }),
  );
  const r = await previewWithPack(["--policy-pack-config", config]);
  expect(r.code).toBe(0);
  expect(policiesBlock(r)).toMatch(/\[advisory\](?: \[severity: \w+\])?\s+vrrp-v3-fast-advert/);
  expect(r.stdout).not.toContain("[mandatory]");
});

test("broken: a stack composing two LB VMs with the same MACs fails lb-vms-spread (a stack policy, through the engine's links)", async () => {
  const program = fs
    .readFileSync(path.join(REPO, "test", "fixtures", "policy-team-program.ts"), "utf8")
    .replaceAll('from "../../', 'from "./');
  fs.writeFileSync(path.join(ws.projectDir, "index.ts"), program);
  const r = await previewWithPack();
  expect(r.code).not.toBe(0);
  const block = policiesBlock(r);
  expect(block).toMatch(/\[mandatory\](?: \[severity: \w+\])?\s+lb-vms-spread/);
  expect(block).toContain(
    "NIC MAC 52:54:00:0e:00:01 is used 2 times, by team-lb1 and team-lb2: each LB VM needs its own",
  );
  expect(block).toContain("NIC MAC 52:54:00:0e:00:02 is used 2 times");
});
