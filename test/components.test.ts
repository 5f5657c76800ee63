/**
 * The EdgePair component tree under Pulumi's mocks. Why mocks: @pulumi/random, @pulumi/kubernetes and
 * @pulumi/command need provider plugins that cannot be downloaded or built here (the Go module proxy refuses their
 * provider modules), so the real engine cannot load them. What the mocks record (test/fixtures/pulumi-mocks.ts) is
 * every resource the program registers, with its type, name and inputs; that is what these tests judge.
 */
import * as pulumi from "@pulumi/pulumi";
import { parse } from "yaml";
import { checkCloudConfig } from "./checkers/cloud-init";
import { optionsRecorder, recordingMocks, settle, value } from "./fixtures/pulumi-mocks";
import { EdgePair, type EdgePairArgs } from "../components";
import { deliveryScript, secretsStdin } from "../components/secret-delivery";
import { devSpecRaw } from "./fixtures/variants";

/** The mock monitor receives a secret as { <secret signature>: ..., value }; secretValue unwraps it (and proves it was one). */
const SECRET_SIG = "4dabf18193072939515e22adb298388d";
function secretValue(v: unknown): string {
  if (v && typeof v === "object" && SECRET_SIG in v) return String((v as unknown as { value: unknown }).value);
  throw new Error(`not a secret: ${JSON.stringify(v)?.slice(0, 80)}`);
}
const DIGEST = `registry.example/edgepair/appliance@sha256:${"a".repeat(64)}`;
const METRICS = "metrics-password-value-123";
const TOKEN = "eyJhbGciOiJSUzI1NiJ9.token-value";
const REGISTRY_AUTH = '{"auths":{"registry.example":{"auth":"dXNlcjpyZWdpc3RyeS1wYXNzd29yZA=="}}}';

let mocks: ReturnType<typeof recordingMocks>;
beforeAll(() => {
  mocks = recordingMocks((type) => ({
    ...(type === "random:index/randomPassword:RandomPassword" ? { result: "generated-password" } : {}),
    ...(type === "kubernetes:core/v1:Secret" ? { data: { token: Buffer.from(TOKEN).toString("base64") } } : {}),
    ...(type === "pulumi-nodejs:dynamic/edgepair:RenderedView" ? { digest: "d".repeat(64) } : {}),
  }));
});

beforeEach(() => {
  mocks.reset();
});

const baseArgs = (over: Partial<EdgePairArgs> = {}): EdgePairArgs => ({
  spec: devSpecRaw() as EdgePairArgs["spec"],
  image: { prebuilt: DIGEST },
  sshAuthorizedKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHk0bGVycm9yZm9ydGVzdGluZ29ubHkxMjM0NTY3 lab"],
  platform: { libvirt: { pool: "default", baseImage: "edgepair-appliance.qcow2" } },
  metricsPassword: METRICS,
  ...over,
});

const ofType = (t: string) => mocks.recorded.filter((r) => r.type === t);
const dynamicKind = (kind: string) => mocks.recorded.filter((r) => r.type === `pulumi-nodejs:dynamic/${kind}`);

test("an LB's disk, seed and domain are replaced old-first (fixed names and MACs: never two copies), also on `up --replace`", async () => {
  const recorder = optionsRecorder();
  const pair = new EdgePair("lab", baseArgs(), { transformations: [recorder.transformation] });
  await value(pair.imageRef);
  await settle(mocks);
  const children = recorder.registered.filter(
    (r) => /^lab-lb[12](-disk|-seed)?$/.test(r.name) && r.type.startsWith("pulumi-nodejs:dynamic"),
  );
  expect(children.map((r) => [r.name, (r.opts as pulumi.CustomResourceOptions).deleteBeforeReplace]).sort()).toEqual(
    ["lab-lb1", "lab-lb1-disk", "lab-lb1-seed", "lab-lb2", "lab-lb2-disk", "lab-lb2-seed"].map((n) => [n, true]),
  );
});

test("the libvirt tree: networks, two LB VMs (disk, seed, domain), a rendered view per LB; children named from the parent", async () => {
  const pair = new EdgePair("lab", baseArgs());
  await value(pair.imageRef);
  await settle(mocks);
  expect(ofType("edgepair:index:EdgePair").map((r) => r.name)).toEqual(["lab"]);
  expect(ofType("edgepair:index:BootcImage").map((r) => r.name)).toEqual(["lab-image"]);
  expect(ofType("edgepair:index:LbVm").map((r) => r.name)).toEqual(["lab-lb1", "lab-lb2"]);
  expect(
    dynamicKind("libvirt:Network")
      .map((r) => r.name)
      .sort(),
  ).toEqual(["lab-net-private", "lab-net-public"]);
  expect(dynamicKind("libvirt:Domain").map((r) => r.name)).toEqual(["lab-lb1", "lab-lb2"]);
  expect(dynamicKind("libvirt:CloudInitDisk").map((r) => r.name)).toEqual(["lab-lb1-seed", "lab-lb2-seed"]);
  expect(mocks.recorded.every((r) => r.name.startsWith("lab"))).toBe(true);
  // the public network routes every floating IP to the next hop; the private one is isolated
  const pub = dynamicKind("libvirt:Network").find((r) => r.name === "lab-net-public")!;
  expect(pub.inputs.routes).toEqual(
    ["198.51.100.80", "198.51.100.100", "198.51.100.253"].map((a) => ({ cidr: `${a}/32`, gateway: "172.31.250.10" })),
  );
  expect(pub.inputs.hostAddress).toBe("172.31.250.1");
  expect(dynamicKind("libvirt:Network").find((r) => r.name === "lab-net-private")!.inputs.mode).toBe("isolated");
  // no generated password when one is given
  expect(ofType("random:index/randomPassword:RandomPassword")).toEqual([]);
  // no domain type unless the platform says: the provider's auto
  expect(dynamicKind("libvirt:Domain").map((r) => r.inputs.type)).toEqual([undefined, undefined]);
});

test("libvirt domainType reaches both domains (qemu where /dev/kvm runs only special guest kernels)", async () => {
  new EdgePair(
    "lab",
    baseArgs({ platform: { libvirt: { pool: "default", baseImage: "edgepair-appliance.qcow2", domainType: "qemu" } } }),
  );
  await settle(mocks);
  expect(dynamicKind("libvirt:Domain").map((r) => r.inputs.type)).toEqual(["qemu", "qemu"]);
});

test("MACs are derived from stack and VM names: the same on every run, distinct, and the ones the user-data names", async () => {
  const a = new EdgePair("lab", baseArgs());
  const macsA = a.lbs.flatMap((l) => [l.publicMac, l.privateMac]);
  const b = new EdgePair("lab", baseArgs());
  expect(b.lbs.flatMap((l) => [l.publicMac, l.privateMac])).toEqual(macsA);
  expect(new Set(macsA).size).toBe(4);
  await settle(mocks);
  const domains = dynamicKind("libvirt:Domain");
  expect(domains[0]!.inputs.nics).toEqual([
    { network: "lab-net-public", mac: macsA[0] },
    { network: "lab-net-private", mac: macsA[1] },
  ]);
  const seed = dynamicKind("libvirt:CloudInitDisk")[0]!;
  const doc = parse(secretValue(seed.inputs.userData)) as { write_files: { path: string; content: string }[] };
  const host = parse(doc.write_files.find((f) => f.path === "/etc/edgepair/host.yaml")!.content) as {
    publicInterface: { mac: string };
  };
  expect(host.publicInterface.mac).toBe(macsA[0]);
});

test("with spec.syncNetwork: an isolated sync network, a third NIC per LB, and host facts naming it", async () => {
  const spec = { ...devSpecRaw(), syncNetwork: { cidr: "172.31.255.248/29" } } as EdgePairArgs["spec"];
  const pair = new EdgePair("lab", baseArgs({ spec }));
  await value(pair.imageRef);
  await settle(mocks);
  const sync = dynamicKind("libvirt:Network").find((r) => r.name === "lab-net-sync");
  // the host's bridge takes the last address; the LBs default to the first two
  expect(sync?.inputs).toMatchObject({
    mode: "isolated",
    cidr: "172.31.255.248/29",
    hostAddress: "172.31.255.254",
    dns: false,
  });
  expect(sync?.inputs.dhcp).toBeUndefined();
  const domains = dynamicKind("libvirt:Domain");
  for (const d of domains)
    expect((d.inputs.nics as { network: string }[]).map((n) => n.network)).toEqual([
      "lab-net-public",
      "lab-net-private",
      "lab-net-sync",
    ]);
  const seed = dynamicKind("libvirt:CloudInitDisk")[0]!;
  const doc = parse(secretValue(seed.inputs.userData)) as { write_files: { path: string; content: string }[] };
  const host = parse(doc.write_files.find((f) => f.path === "/etc/edgepair/host.yaml")!.content) as {
    syncInterface?: { name: string; mac: string };
  };
  expect(host.syncInterface).toEqual({ name: "enp3s0", mac: (domains[0]!.inputs.nics as { mac: string }[])[2]!.mac });
});

test("user-data passes the real cloud-init schema, is a secret, carries the metrics password as a 0600 file; the rendered view never holds it", async () => {
  const pair = new EdgePair("lab", baseArgs());
  await value(pair.imageRef);
  await settle(mocks);
  const seed = dynamicKind("libvirt:CloudInitDisk")[0]!;
  const userData = secretValue(seed.inputs.userData);
  expect(userData).toContain(METRICS);
  const doc = parse(userData) as { write_files: { path: string; permissions: string; content: string }[] };
  const schema = checkCloudConfig(userData);
  if (!schema.ok) throw new Error(schema.output);
  const secretFile = doc.write_files.find((f) => f.path === "/etc/edgepair/secrets/metrics-password")!;
  expect(secretFile.permissions).toBe("0600");
  expect(await value(pulumi.output(pair.metricsPassword).apply((p) => p))).toBe(METRICS);
  await expect(pulumi.isSecret(pair.metricsPassword)).resolves.toBe(true);
  const views = dynamicKind("edgepair:RenderedView");
  expect(views).toHaveLength(2);
  for (const v of views) {
    const files = v.inputs.files as Record<string, { mode: string; content: string }>;
    expect(Object.keys(files)).toEqual(
      expect.arrayContaining([
        "/etc/haproxy/haproxy.cfg",
        "/etc/keepalived/keepalived.conf",
        "/etc/edgepair/handoff.nft",
      ]),
    );
    expect(JSON.stringify(v.inputs)).not.toContain(METRICS);
    expect(files["/etc/NetworkManager/system-connections/edgepair-private.nmconnection"]?.mode).toBe("0600");
  }
});

test("without a given password, @pulumi/random generates it", async () => {
  const pair = new EdgePair("lab", baseArgs({ metricsPassword: undefined }));
  expect(await value(pair.metricsPassword)).toBe("generated-password");
  expect(ofType("random:index/randomPassword:RandomPassword").map((r) => r.name)).toEqual(["lab-metrics-password"]);
});

test("a bad spec or an image not pinned by digest stops the program before anything is registered under the pair", async () => {
  const raw = devSpecRaw() as Record<string, any>;
  raw.network.cidr = "192.168.100.0/33";
  expect(() => new EdgePair("bad", baseArgs({ spec: raw as EdgePairArgs["spec"] }))).toThrow(/network\.cidr: /);
  expect(mocks.recorded.filter((r) => r.type !== "edgepair:index:EdgePair")).toEqual([]);
  expect(
    () => new EdgePair("tag", baseArgs({ image: { prebuilt: "registry.example/edgepair/appliance:latest" } })),
  ).toThrow(/image\.prebuilt: must be pinned by digest/);
});

test("cluster access: CRD, namespace, least-privilege RBAC, the CR carrying the spec as written plus the image, a secret token; delivered one LB at a time", async () => {
  const pair = new EdgePair(
    "ca",
    baseArgs({
      clusterAccess: {
        kubeconfig: "apiVersion: v1\nkind: Config\n",
        apiServers: ["https://192.168.100.10:6443"],
        tlsServerName: "api.lab.example",
      },
      delivery: {
        user: "core",
        privateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----",
      },
      registryAuth: REGISTRY_AUTH,
    }),
  );
  await value(pair.imageRef);
  await settle(mocks);
  expect(ofType("kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition")).toHaveLength(1);
  const crdSpec = JSON.stringify(ofType("kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition")[0]!.inputs.spec);
  expect(crdSpec).toContain("x_kubernetes_validations");
  expect(crdSpec).not.toContain("x-kubernetes-");
  const cr = ofType("kubernetes:edgepair.io/v1alpha1:LoadBalancer");
  expect(cr).toHaveLength(1);
  // the image reaches the agents as spec.image: a new one is a spec change they roll out one LB at a time
  expect(cr[0]!.inputs.spec).toEqual({ ...devSpecRaw(), image: await value(pair.imageRef) });
  const rules = JSON.stringify(
    [
      ...ofType("kubernetes:rbac.authorization.k8s.io/v1:Role"),
      ...ofType("kubernetes:rbac.authorization.k8s.io/v1:ClusterRole"),
    ].map((r) => r.inputs.rules),
  );
  expect(rules).not.toContain('"*"');
  expect(rules).not.toContain('"secrets"');
  const commands = ofType("command:remote:Command");
  expect(commands).toHaveLength(2);
  for (const c of commands) {
    // every secret of the stack on stdin, none in the command, the triggers or the type's plain inputs
    expect(secretValue(c.inputs.stdin)).toBe(
      secretsStdin({ clusterToken: TOKEN, metricsPassword: METRICS, registryAuth: REGISTRY_AUTH }),
    );
    const plain = JSON.stringify({ create: c.inputs.create, logging: c.inputs.logging });
    for (const s of [TOKEN, METRICS, REGISTRY_AUTH, Buffer.from(TOKEN).toString("base64")])
      expect(plain).not.toContain(s);
    // the triggers carry the secrets too (a rotation re-runs the command), so they reach the engine as a secret
    expect(JSON.stringify(c.inputs.triggers)).toContain(SECRET_SIG);
    expect(String(c.inputs.create)).toContain("0600");
    expect(c.inputs.logging).toBe("none");
  }

  // the token also lands in the user-data of VMs created after the cluster exists, as a 0600 file
  expect(
    secretValue(dynamicKind("libvirt:CloudInitDisk").find((r) => r.name === "ca-lb1-seed")!.inputs.userData),
  ).toContain("/etc/edgepair/secrets/cluster-token");
});

test("the delivery script names every secret's file and holds the agent settings as data, no value", () => {
  const script = deliveryScript({
    imageRef: DIGEST,
    cluster: {
      apiServers: ["https://192.168.100.10:6443"],
      tlsServerName: "api.lab.example",
      namespace: "edgepair-system",
      loadBalancerName: "lab",
    },
  });
  expect(script).toContain("umask 077");
  expect(script).toContain(
    "clusterToken) file='/etc/edgepair/secrets/cluster-token'; kept='/etc/edgepair/secrets/cluster-token.bootstrap'; users='edgepair-agent.service'",
  );
  expect(script).toContain("registryAuth) file='/etc/ostree/auth.json'");
  expect(script).toContain("loadBalancerName: lab");
});
