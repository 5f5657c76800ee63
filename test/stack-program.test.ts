/**
 * The project's own Pulumi program (index.ts + Pulumi.yaml) under the real engine: the dev stack's spec previews,
 * the typed config defaults apply, and a bad spec stops `pulumi preview` with the field errors alone.
 */
import { PulumiCommandError, PulumiWorkspace } from "./engine/pulumi-program";
import { stackProgramFiles } from "./fixtures/stack-program";
import { devSpecRaw } from "./fixtures/variants";

jest.setTimeout(300_000);

function programFiles(spec: unknown): Record<string, string> {
  return stackProgramFiles({ "edgepair:spec": spec });
}

let ws: PulumiWorkspace | undefined;
afterEach(async () => {
  await ws?.dispose();
  ws = undefined;
});

test("the dev stack previews and its derived values come out", async () => {
  ws = await PulumiWorkspace.create({ name: "edgepair", files: programFiles(devSpecRaw()) });
  await ws.up();
  const out = await ws.outputs();
  expect(out.clusterName).toBe("lab");
  expect(out.privateVips).toEqual(["192.168.100.1", "192.168.100.100"]);
  const vcpus = await ws.run(["config", "get", "vmVcpus"]);
  expect(vcpus.stdout.trim()).toBe("2"); // typed default from Pulumi.yaml
});

test("a bad spec fails preview with every field.path: rule and no stack trace", async () => {
  const raw = devSpecRaw() as Record<string, any>;
  raw.distribution = "rke2";
  raw.network.gateway = "192.168.100.2";
  ws = await PulumiWorkspace.create({ name: "edgepair", files: programFiles(raw) });
  const err = await ws.preview().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PulumiCommandError);
  const text = String((err as Error).message);
  expect(text).toContain("edgepair:spec is invalid:");
  expect(text).toContain("distribution: must be one of openshift, talos, generic");
  expect(text).toContain("network.lbAddresses[0]: must differ from the gateway 192.168.100.2");
  expect(text).not.toContain("at resolveSpec");
});
