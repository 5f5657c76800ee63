/**
 * EdgePair on platform openstack, and the FloatingIps record on both platforms, under Pulumi's mocks
 * (pulumi.runtime.setMocks). Why mocks: there is no OpenStack here, and the provider plugins of @pulumi/openstack,
 * random, kubernetes and command cannot be downloaded or built, so the real engine cannot run this tree. What is
 * judged is what the program registers: each resource's type, name and inputs (the mock's newResource records them,
 * test/fixtures/pulumi-mocks.ts) and each resource's parent and options (a transformation on EdgePair, which Pulumi
 * hands down to every child). The mock answers what Neutron would compute: a MAC per port, an address per floating IP.
 */
import * as pulumi from "@pulumi/pulumi";
import { parse } from "yaml";
import { checkCloudConfig } from "./checkers/cloud-init";
import {
  type Inputs,
  neutronFloatingAddressOf,
  neutronMacOf,
  optionsRecorder,
  recordingMocks,
  settle,
  value,
} from "./fixtures/pulumi-mocks";
import { devSpecRaw, variants } from "./fixtures/variants";
import { EdgePair, FloatingIps, type EdgePairArgs, type OpenStackPlatformArgs } from "../components";

const SECRET_SIG = "4dabf18193072939515e22adb298388d";
/** The mock monitor receives a secret as { <secret signature>: ..., value }; this unwraps it and proves it was one. */
function secretOf(v: unknown): unknown {
  if (v && typeof v === "object" && SECRET_SIG in v) return (v as unknown as { value: unknown }).value;
  throw new Error(`not a secret: ${JSON.stringify(v)?.slice(0, 80)}`);
}
const secretValue = (v: unknown): string => String(secretOf(v));

const TYPE = {
  pair: "edgepair:index:EdgePair",
  networking: "edgepair:index:OpenStackNetworking",
  server: "edgepair:index:OpenStackLbServer",
  floatingIps: "edgepair:index:FloatingIps",
  view: "pulumi-nodejs:dynamic/edgepair:RenderedView",
  port: "openstack:networking/port:Port",
  fip: "openstack:networking/floatingIp:FloatingIp",
  instance: "openstack:compute/instance:Instance",
  command: "command:remote:Command",
};

const DIGEST = `registry.example/edgepair/appliance@sha256:${"b".repeat(64)}`;
const METRICS = "metrics-password-value-os-456";
const TOKEN = "eyJhbGciOiJSUzI1NiJ9.openstack-token";
const SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHk0bGVycm9yZm9ydGVzdGluZ29ubHkxMjM0NTY3 ops";

const macOf = neutronMacOf;
const floatingAddressOf = neutronFloatingAddressOf;

const recorder = optionsRecorder();
const recordOptions = recorder.transformation;

let mocks: ReturnType<typeof recordingMocks>;
beforeAll(() => {
  mocks = recordingMocks((type, name) => ({
    ...(type === TYPE.port ? { macAddress: macOf(name) } : {}),
    ...(type === TYPE.fip ? { address: floatingAddressOf(name) } : {}),
    ...(type === "kubernetes:core/v1:Secret" ? { data: { token: Buffer.from(TOKEN).toString("base64") } } : {}),
    ...(type === TYPE.view ? { digest: "d".repeat(64) } : {}),
  }));
});

beforeEach(() => {
  mocks.reset();
  recorder.reset();
});

const openstackRaw = () => structuredClone(variants.find((v) => v.name === "openstack")!.raw) as EdgePairArgs["spec"];

const OPENSTACK: OpenStackPlatformArgs = {
  privateNetwork: { existing: { networkId: "priv-net-uuid", subnetId: "priv-subnet-uuid" } },
  publicNetwork: { networkId: "pub-net-uuid", subnetId: "pub-subnet-uuid" },
  externalNetworkName: "ext-floating",
  flavorName: "m1.small",
  imageName: "edgepair-appliance",
  keyPair: "ops",
};

const osArgs = (over: Partial<EdgePairArgs> = {}): EdgePairArgs => ({
  spec: openstackRaw(),
  image: { prebuilt: DIGEST },
  sshAuthorizedKeys: [SSH_KEY],
  platform: { openstack: OPENSTACK },
  metricsPassword: METRICS,
  ...over,
});

async function buildOpenStack(over: Partial<EdgePairArgs> = {}): Promise<EdgePair> {
  const pair = new EdgePair("prod-a", osArgs(over), { transformations: [recordOptions] });
  await value(pair.floatingIps);
  await Promise.all(pair.renderedDigests.map((d) => value(d)));
  await settle(mocks);
  return pair;
}

const ofType = (t: string) => mocks.recorded.filter((r) => r.type === t);
const reg = (type: string, name: string) => {
  const found = recorder.registered.find((r) => r.type === type && r.name === name);
  if (!found) throw new Error(`no ${type} named ${name}`);
  return found;
};

interface CloudConfig {
  hostname: string;
  write_files: { path: string; permissions: string; content: string }[];
}
const fileOf = (doc: CloudConfig, path: string) => doc.write_files.find((f) => f.path === path)!.content;

describe("EdgePair on openstack", () => {
  test("the tree: OpenStackNetworking, two OpenStackLbServer, FloatingIps, two RenderedView, all children of the pair and named from it", async () => {
    const pair = await buildOpenStack();
    expect(ofType(TYPE.pair).map((r) => r.name)).toEqual(["prod-a"]);
    expect(ofType(TYPE.networking).map((r) => r.name)).toEqual(["prod-a-net"]);
    expect(ofType(TYPE.server).map((r) => r.name)).toEqual(["prod-a-lb1", "prod-a-lb2"]);
    expect(ofType(TYPE.instance).map((r) => r.name)).toEqual(["prod-a-lb1", "prod-a-lb2"]);
    expect(ofType(TYPE.floatingIps).map((r) => r.name)).toEqual(["prod-a-floating-ips"]);
    expect(ofType(TYPE.view).map((r) => r.name)).toEqual(["prod-a-lb1-rendered", "prod-a-lb2-rendered"]);
    // nothing of the other platform
    expect(mocks.recorded.filter((r) => r.type.includes("libvirt") || r.type === "edgepair:index:LbVm")).toEqual([]);
    expect(mocks.recorded.every((r) => r.name === "prod-a" || r.name.startsWith("prod-a-"))).toBe(true);
    for (const [type, name] of [
      [TYPE.networking, "prod-a-net"],
      [TYPE.server, "prod-a-lb1"],
      [TYPE.server, "prod-a-lb2"],
      [TYPE.floatingIps, "prod-a-floating-ips"],
      [TYPE.view, "prod-a-lb1-rendered"],
      ["edgepair:index:BootcImage", "prod-a-image"],
    ] as const) {
      expect({ name, parentIsPair: reg(type, name).parent === pair }).toEqual({ name, parentIsPair: true });
    }
  });

  test("each server's user-data is a secret, passes the real cloud-init schema and carries its ports' MACs in host.yaml", async () => {
    const pair = await buildOpenStack();
    for (const [i, role] of (["primary", "secondary"] as const).entries()) {
      const inst = ofType(TYPE.instance)[i]!;
      const userData = secretValue(inst.inputs.userData);
      const schema = checkCloudConfig(userData);
      if (!schema.ok) throw new Error(schema.output);
      const doc = parse(userData) as CloudConfig;
      expect(doc.hostname).toBe(`prod-a-lb-${i + 1}`);
      const host = parse(fileOf(doc, "/etc/edgepair/host.yaml")) as Inputs;
      expect(host).toEqual({
        hostname: `prod-a-lb-${i + 1}`,
        role,
        publicInterface: { name: "enp1s0", mac: macOf(`prod-a-net-${role}-public`) },
        privateInterface: { name: "enp2s0", mac: macOf(`prod-a-net-${role}-private`) },
      });
      expect(doc.write_files.find((f) => f.path === "/etc/edgepair/secrets/metrics-password")).toMatchObject({
        permissions: "0600",
        content: METRICS,
      });
      // public NIC first, private second, as the host facts say
      expect(inst.inputs.networks).toEqual([
        { port: `prod-a-net-${role}-public-id` },
        { port: `prod-a-net-${role}-private-id` },
      ]);
      expect(inst.inputs.keyPair).toBe("ops");
      // the server object's own output is a secret too
      const server = reg(TYPE.instance, `prod-a-lb${i + 1}`).resource as unknown as { userData: pulumi.Output<string> };
      expect(await pulumi.isSecret(server.userData)).toBe(true);
      // the summary reports the same MACs
      expect(await value(pair.lbs[i]!.publicMac)).toBe(macOf(`prod-a-net-${role}-public`));
      expect(await value(pair.lbs[i]!.privateMac)).toBe(macOf(`prod-a-net-${role}-private`));
    }
    // the two LBs got different documents: the apply is per port, not shared
    const [a, b] = ofType(TYPE.instance).map((r) => secretValue(r.inputs.userData));
    expect(a).not.toBe(b);
  });

  test("the rendered views match the NICs by the ports' MACs and never hold the metrics password", async () => {
    await buildOpenStack();
    for (const [i, role] of (["primary", "secondary"] as const).entries()) {
      const view = ofType(TYPE.view)[i]!;
      const files = view.inputs.files as Record<string, { mode: string; content: string }>;
      expect(files["/etc/NetworkManager/system-connections/edgepair-public.nmconnection"]!.content).toContain(
        `mac-address=${macOf(`prod-a-net-${role}-public`)}`,
      );
      expect(files["/etc/NetworkManager/system-connections/edgepair-private.nmconnection"]!.content).toContain(
        `mac-address=${macOf(`prod-a-net-${role}-private`)}`,
      );
      expect(JSON.stringify(view.inputs)).not.toContain(METRICS);
    }
  });

  test("the second server waits for the first to serve again (ready gate on its monitor URI); the first waits for nothing", async () => {
    await buildOpenStack();
    const first = reg(TYPE.server, "prod-a-lb1");
    const second = reg(TYPE.server, "prod-a-lb2");
    const gate = reg("pulumi-nodejs:dynamic/edgepair:ReadyGate", "prod-a-lb1-ready");
    expect(first.opts.dependsOn).toBeUndefined();
    expect(gate.opts.dependsOn).toEqual([first.resource]);
    expect(second.opts.dependsOn).toEqual([gate.resource]);
    expect(ofType("pulumi-nodejs:dynamic/edgepair:ReadyGate").map((r) => r.inputs.url)).toEqual([
      "http://192.168.100.2:8404/healthz",
      "http://192.168.100.3:8404/healthz",
    ]);
    // the instances stay create-only for what only first boot reads
    expect(reg(TYPE.instance, "prod-a-lb2").opts.ignoreChanges).toEqual(
      expect.arrayContaining(["userData", "imageName"]),
    );
  });

  test("secret delivery goes to the LBs' private addresses (the public security group opens no SSH), one after the other", async () => {
    await buildOpenStack({
      clusterAccess: {
        kubeconfig: "apiVersion: v1\nkind: Config\n",
        apiServers: ["https://192.168.100.10:6443"],
        tlsServerName: "api.prod-a.example",
      },
      delivery: {
        user: "core",
        privateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----",
      },
    });
    const commands = ofType(TYPE.command);
    // the connection holds the private key, so the whole connection reaches the engine as a secret
    expect(commands.map((c) => (secretOf(c.inputs.connection) as { host: string }).host)).toEqual([
      "192.168.100.2",
      "192.168.100.3",
    ]);
    expect(reg("edgepair:index:SecretDelivery", "prod-a-lb2-secrets").opts.dependsOn).toEqual([
      reg("edgepair:index:SecretDelivery", "prod-a-lb1-secrets").resource,
    ]);
    // a stack made with the former TokenDelivery keeps its resources: an alias, not a delete and create
    expect(reg("edgepair:index:SecretDelivery", "prod-a-lb1-secrets").opts.aliases).toEqual([
      { type: "edgepair:index:TokenDelivery", name: "prod-a-lb1-token" },
    ]);
    for (const inst of ofType(TYPE.instance))
      expect(secretValue(inst.inputs.userData)).toContain("/etc/edgepair/secrets/cluster-token");
  });

  test("an image by ID reaches the servers as imageId only; soft anti-affinity reaches the server group", async () => {
    await buildOpenStack({
      platform: { openstack: { ...OPENSTACK, imageName: undefined, imageId: "0b7c-image-uuid", antiAffinity: "soft" } },
    });
    for (const inst of ofType(TYPE.instance)) {
      expect(inst.inputs.imageId).toBe("0b7c-image-uuid");
      expect(inst.inputs.imageName).toBeUndefined();
    }
    expect(ofType("openstack:compute/serverGroup:ServerGroup")[0]!.inputs.policies).toEqual(["soft-anti-affinity"]);
  });
});

describe("the spec's platform.type must match the platform arguments", () => {
  const onlyThePair = () => mocks.recorded.filter((r) => r.type !== TYPE.pair);

  test("an openstack spec with libvirt arguments stops before anything is created", async () => {
    expect(
      () => new EdgePair("mix", osArgs({ platform: { libvirt: { pool: "default", baseImage: "x.qcow2" } } })),
    ).toThrow("platform: the arguments are for libvirt but the spec's platform.type is openstack");
    await settle(mocks);
    expect(onlyThePair()).toEqual([]);
  });

  test("syncNetwork on openstack is refused by name (port security already stops forged peer addresses there)", async () => {
    const base = osArgs();
    const spec = {
      ...(base.spec as Record<string, unknown>),
      syncNetwork: { cidr: "172.31.255.248/29" },
    } as EdgePairArgs["spec"];
    expect(() => new EdgePair("sync", osArgs({ spec }))).toThrow(
      /^syncNetwork: not available on platform openstack yet/,
    );
    await settle(mocks);
    expect(mocks.recorded.filter((r) => r.type.startsWith("openstack:compute"))).toEqual([]);
  });

  test("a libvirt spec with openstack arguments stops before anything is created", async () => {
    expect(() => new EdgePair("mix", osArgs({ spec: devSpecRaw() as EdgePairArgs["spec"] }))).toThrow(
      "platform: the arguments are for openstack but the spec's platform.type is libvirt",
    );
    await settle(mocks);
    expect(onlyThePair()).toEqual([]);
  });

  test("both platforms at once, or none, is refused", async () => {
    const both = {
      libvirt: { pool: "default", baseImage: "x.qcow2" },
      openstack: OPENSTACK,
    } as unknown as EdgePairArgs["platform"];
    expect(() => new EdgePair("both", osArgs({ platform: both }))).toThrow(
      "platform: must name exactly one of libvirt, openstack, got libvirt and openstack",
    );
    expect(() => new EdgePair("none", osArgs({ platform: {} as EdgePairArgs["platform"] }))).toThrow(
      "platform: must name exactly one of libvirt, openstack, got none",
    );
    await settle(mocks);
    expect(onlyThePair()).toEqual([]);
  });
});

describe("FloatingIps", () => {
  test("openstack: each public IPv4 VIP with the floating IP associated with its VIP port", async () => {
    const pair = await buildOpenStack();
    const expected = ["203.0.113.100", "203.0.113.253", "203.0.113.80"].map((vip) => ({
      vip,
      floatingIp: floatingAddressOf(`prod-a-net-fip-${vip.replace(/\./g, "-")}`),
    }));
    const got = await value(pair.floatingIps);
    expect([...got].sort((x, y) => JSON.stringify(x).localeCompare(JSON.stringify(y)))).toEqual(
      expected.sort((x, y) => JSON.stringify(x).localeCompare(JSON.stringify(y))),
    );
    const component = reg(TYPE.floatingIps, "prod-a-floating-ips").resource as FloatingIps;
    expect(component.kind).toBe("nat");
    expect(await value(component.addresses)).toEqual(got);
  });

  test("libvirt: each public IPv4 VIP routed to the public next hop, nothing created under the component", async () => {
    const pair = new EdgePair(
      "lab",
      {
        spec: devSpecRaw() as EdgePairArgs["spec"],
        image: { prebuilt: DIGEST },
        platform: { libvirt: { pool: "default", baseImage: "edgepair-appliance.qcow2" } },
        metricsPassword: METRICS,
      },
      { transformations: [recordOptions] },
    );
    const got = await value(pair.floatingIps);
    await settle(mocks);
    expect(got).toEqual(
      ["198.51.100.80", "198.51.100.100", "198.51.100.253"].map((address) => ({ address, routedTo: "172.31.250.10" })),
    );
    const component = reg(TYPE.floatingIps, "lab-floating-ips");
    expect(component.parent).toBe(pair);
    expect(recorder.registered.filter((r) => r.parent === component.resource)).toEqual([]);
    expect(mocks.recorded.filter((r) => r.type.startsWith("openstack:"))).toEqual([]);
  });

  test("routed: a public IPv6 VIP gets no floating IP; a spec without a next hop is refused, naming the field", async () => {
    const ipv6 = variants.find((v) => v.name === "openshift-ipv6")!.spec;
    expect(ipv6.derived.publicVips.some((v) => v.family === 6)).toBe(true);
    const routed = new FloatingIps("v6", { routed: { spec: ipv6 } });
    const addresses = (await value(routed.addresses)).map((a) => ("address" in a ? a.address : a.vip));
    expect(addresses.length).toBeGreaterThan(0);
    expect(addresses.filter((a) => a.includes(":"))).toEqual([]);
    const openstackSpec = variants.find((v) => v.name === "openstack")!.spec;
    expect(() => new FloatingIps("none", { routed: { spec: openstackSpec } })).toThrow(
      "platform.publicNetwork.nextHop: required for routed floating IPs",
    );
  });
});
