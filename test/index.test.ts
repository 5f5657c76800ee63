/**
 * The Pulumi program under Pulumi's mocks: the stack's spec is loaded from config and validated before anything is
 * created. (The real engine arrives with the engines issue; mocks prove this wiring only.)
 */
import * as pulumi from "@pulumi/pulumi";
import { devSpecRaw } from "./fixtures/variants";

function loadProgram(spec: unknown): Record<string, unknown> {
  pulumi.runtime.setAllConfig({ "edgepair:spec": JSON.stringify(spec) });
  let exports: Record<string, unknown> = {};
  jest.isolateModules(() => {
    exports = require("../index") as Record<string, unknown>;
  });
  return exports;
}

beforeAll(() => {
  pulumi.runtime.setMocks(
    {
      newResource: (args) => ({ id: `${args.name}-id`, state: args.inputs }),
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
