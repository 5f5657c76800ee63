/**
 * The Pulumi program under Pulumi's mocks: the stack's spec is loaded from config and validated before anything is
 * created. (The real engine arrives with the engines issue; mocks prove this wiring only.)
 */
import * as pulumi from "@pulumi/pulumi";
import { neutronMacOf } from "./fixtures/pulumi-mocks";
import { devSpecRaw, variants } from "./fixtures/variants";

function loadProgram(spec: unknown, extra: Record<string, string> = {}): Record<string, unknown> {
  pulumi.runtime.setAllConfig({ "edgepair:spec": JSON.stringify(spec), "edgepair:waitForReady": "true", ...extra });
  let exports: Record<string, unknown> = {};
  jest.isolateModules(() => {
    exports = require("../index") as Record<string, unknown>;
  });
  return exports;
}

const registered: string[] = [];
const inputsOf = new Map<string, Record<string, unknown>>();

beforeAll(async () => {
  await pulumi.runtime.setMocks(
    {
      newResource: (args) => {
        registered.push(args.type);
        inputsOf.set(args.type, args.inputs as Record<string, unknown>);
        const pushed =
          args.type === "pulumi-nodejs:dynamic/edgepair:ImageBuild"
            ? { ref: `${String(args.inputs.repository)}@sha256:${"f".repeat(64)}` }
            : {};
        return {
          id: `${args.name}-id`,
          state: {
            ...args.inputs,
            ...pushed,
            ...(args.type === "openstack:networking/port:Port" ? { macAddress: neutronMacOf(args.name) } : {}),
          },
        };
      },
      call: (args) => args.inputs,
    },
    "edgepair",
    "dev",
    false,
  );
});

test("the dev stack's spec loads and its derived values are exported", () => {
  const out = loadProgram(devSpecRaw());
  expect(out.clusterName).toBe("lab");
  expect(out.privateVips).toEqual(["192.168.100.1", "192.168.100.100"]);
  expect(out.publicVips).toEqual(["198.51.100.80", "198.51.100.100", "198.51.100.253"]);
  expect(out.vrrpRouterId).toEqual(expect.any(Number));
});

test("a bad spec stops the program with every field.path: rule", () => {
  const raw = devSpecRaw() as Record<string, any>;
  raw.distribution = "k3s";
  raw.virtualAddresses.api[0].address = "10.0.0.1";
  expect(() => loadProgram(raw)).toThrow(
    "distribution: must be one of openshift, talos, generic\n" +
      "virtualAddresses.api[0].address: is private, so it must be inside network.cidr 192.168.100.0/24",
  );
});

test("an openstack stack with `edgepair:openstack` composes the pair there; a bad setting names its field", async () => {
  const raw = variants.find((v) => v.name === "openstack")!.raw;
  const os = {
    privateNetwork: { create: {} },
    publicNetwork: { networkId: "pub-net", subnetId: "pub-subnet" },
    externalNetworkName: "ext",
    flavorName: "m1.small",
    imageName: "edgepair-appliance",
  };
  registered.length = 0;
  loadProgram(raw, {
    "edgepair:openstack": JSON.stringify(os),
    "edgepair:image": `registry.example/edgepair@sha256:${"d".repeat(64)}`,
    "edgepair:metricsPassword": "x",
  });
  await new Promise((r) => setTimeout(r, 300));
  expect(registered).toContain("edgepair:index:OpenStackNetworking");
  expect(registered.filter((t) => t === "edgepair:index:OpenStackLbServer")).toHaveLength(2);
  expect(() => loadProgram(raw, { "edgepair:openstack": JSON.stringify({ ...os, flavorName: "" }) })).toThrow(
    /edgepair:openstack is invalid:\nedgepair:openstack.flavorName: must have at least 1 character/,
  );
  const { imageName: _drop, ...noImage } = os;
  expect(() => loadProgram(raw, { "edgepair:openstack": JSON.stringify(noImage) })).toThrow(
    /edgepair:openstack.imageName: exactly one of imageName, imageId is required/,
  );
});

test("`edgepair:imageBuild` builds and pushes the appliance instead of a prebuilt image; the push password must be a secret config", async () => {
  const raw = variants.find((v) => v.name === "openstack")!.raw;
  const os = {
    privateNetwork: { create: {} },
    publicNetwork: { networkId: "pub-net", subnetId: "pub-subnet" },
    externalNetworkName: "ext",
    flavorName: "m1.small",
    imageName: "edgepair-appliance",
  };
  const build = {
    repository: "registry.lab.example:5000/edgepair/appliance",
    buildArgs: { FEDORA_BOOTC: `quay.io/fedora/fedora-bootc@sha256:${"e".repeat(64)}` },
  };
  registered.length = 0;
  const base = {
    "edgepair:openstack": JSON.stringify(os),
    "edgepair:metricsPassword": "x",
    "edgepair:imageBuild": JSON.stringify(build),
  };
  loadProgram(raw, { ...base, "edgepair:imagePushUser": "pusher", "edgepair:imagePushPassword": "push-secret" });
  await new Promise((r) => setTimeout(r, 300));
  expect(inputsOf.get("pulumi-nodejs:dynamic/edgepair:ImageBuild")).toMatchObject({
    repository: build.repository,
    buildArgs: build.buildArgs,
  });
  // a user without the secret password stops the program before anything is built
  expect(() => loadProgram(raw, { ...base, "edgepair:imagePushUser": "pusher" })).toThrow(/edgepair:imagePushPassword/);
  // both a prebuilt image and a build: refused, naming both fields
  expect(() =>
    loadProgram(raw, { ...base, "edgepair:image": `registry.example/edgepair@sha256:${"d".repeat(64)}` }),
  ).toThrow(/image\.prebuilt and image\.build/);
});

test("`edgepair:clusterAccess` with the secret `edgepair:kubeconfig` creates ClusterAccess; one without the other, or a bad field, stops the program naming it", async () => {
  const raw = variants.find((v) => v.name === "openstack")!.raw;
  const base = {
    "edgepair:openstack": JSON.stringify({
      privateNetwork: { create: {} },
      publicNetwork: { networkId: "pub-net", subnetId: "pub-subnet" },
      externalNetworkName: "ext",
      flavorName: "m1.small",
      imageName: "edgepair-appliance",
    }),
    "edgepair:image": `registry.example/edgepair@sha256:${"d".repeat(64)}`,
    "edgepair:metricsPassword": "x",
  };
  const access = { apiServers: ["https://192.168.100.10:6443"], tlsServerName: "api.lab.example.com" };
  const kubeconfig = { "edgepair:kubeconfig": "apiVersion: v1\nkind: Config\n" };
  registered.length = 0;
  loadProgram(raw, { ...base, ...kubeconfig, "edgepair:clusterAccess": JSON.stringify(access) });
  await new Promise((r) => setTimeout(r, 300));
  expect(registered).toContain("edgepair:index:ClusterAccess");
  expect(registered).toContain("kubernetes:edgepair.io/v1alpha1:LoadBalancer");
  expect(registered).toContain("kubernetes:core/v1:Secret");
  // counter-case: without the two keys there is no ClusterAccess
  registered.length = 0;
  loadProgram(raw, base);
  await new Promise((r) => setTimeout(r, 300));
  expect(registered).not.toContain("edgepair:index:ClusterAccess");

  expect(() => loadProgram(raw, { ...base, "edgepair:clusterAccess": JSON.stringify(access) })).toThrow(
    "edgepair:clusterAccess is invalid:\nedgepair:kubeconfig: is required when edgepair:clusterAccess is set",
  );
  expect(() => loadProgram(raw, { ...base, ...kubeconfig })).toThrow(
    "edgepair:clusterAccess: is required when edgepair:kubeconfig is set",
  );
  const bad = { ...access, apiServers: ["http://192.168.100.10:6443"], namespace: "Edge_System", extra: 1 };
  expect(() => loadProgram(raw, { ...base, ...kubeconfig, "edgepair:clusterAccess": JSON.stringify(bad) })).toThrow(
    /edgepair:clusterAccess.apiServers\[0\]: must be an https URL[\s\S]*edgepair:clusterAccess.namespace: must be a Kubernetes namespace name[\s\S]*edgepair:clusterAccess.extra: unknown field/,
  );
});

// the accepted values reaching the domains: components.test.ts (dynamic providers do not serialize in this suite's
// isolated module registry) and stack-libvirt.test.ts through the real engine
test("`edgepair:libvirtDomainType` other than auto, kvm or qemu stops the program naming the key", () => {
  const libvirt = {
    "edgepair:libvirtBaseImage": "edgepair.qcow2",
    "edgepair:libvirtUri": "qemu:///system",
    "edgepair:libvirtPool": "default",
    "edgepair:vmVcpus": "1",
    "edgepair:vmMemoryMiB": "512",
    "edgepair:image": `registry.example/edgepair@sha256:${"d".repeat(64)}`,
    "edgepair:metricsPassword": "x",
  };
  expect(() => loadProgram(devSpecRaw(), { ...libvirt, "edgepair:libvirtDomainType": "xen" })).toThrow(
    /Configuration 'edgepair:libvirtDomainType' value 'xen' is not a legal enum value \(\["auto","kvm","qemu"\]\)/,
  );
});
