/**
 * The OpenStack pair with Service frontends (pools on both sides, extra services) as the policy pack judges it: the
 * security groups that admit the Service frontends (components/openstack/security-groups.ts) must keep 22/tcp and
 * 22623/tcp off every outside source and off every port a floating IP reaches, like the groups without Services.
 * Recorded under the capturing mocks and judged as test/policy.test.ts judges the stacks (its own file: Pulumi's
 * mocks are process-wide).
 */
import type { CapturedResource } from "./fixtures/policy-capture";
import { messagesOf, runPolicies } from "./fixtures/policy-harness";
import { openstackPair, policyCapture } from "./fixtures/policy-stacks";
import { variants } from "./fixtures/variants";
import { edgepairPolicies } from "../policy/policies";
import { TYPES } from "../policy/lib/types";

jest.setTimeout(60_000);

type Raw = Record<string, any>; // test-only

const capture = policyCapture();
let stack: CapturedResource[];

beforeAll(async () => {
  const raw = structuredClone(variants.find((v) => v.name === "openstack")!.raw) as Raw;
  raw.serviceLoadBalancers = {
    pools: [
      { name: "public", addresses: ["203.0.113.128/27"], type: "public" },
      { name: "internal", addresses: ["192.168.100.200-192.168.100.239"], type: "private" },
    ],
  };
  raw.extraServices = [
    {
      name: "syslog",
      protocol: "UDP",
      frontend: { address: "203.0.113.80", port: 514 },
      backend: { nodePort: 30514, addresses: ["192.168.100.20"] },
    },
    {
      name: "git",
      protocol: "TCP",
      frontend: { address: "192.168.100.100", port: 22 },
      backend: { nodePort: 30022, addresses: ["192.168.100.20"] },
    },
  ];
  stack = await openstackPair(capture, { args: { spec: raw as never } });
});

test("the stack with Service security groups passes every policy, SSH and 22623 ones included", async () => {
  const rules = stack.filter((r) => r.type === TYPES.secGroupRule && r.name.includes("-sg-services-"));
  // not vacuous: the full-range rules are there, on both sides
  expect(rules.map((r) => r.name)).toEqual(
    expect.arrayContaining([
      "prod-a-net-sg-services-public-pools-tcp-23-22622",
      "prod-a-net-sg-services-public-pools-tcp-22624-65535",
      "prod-a-net-sg-services-private-pools-tcp-1-21",
    ]),
  );
  expect(await runPolicies(edgepairPolicies, stack)).toEqual([]);
});

test("counter-case: one full TCP range from anywhere would fail both policies that guard 22 and 22623", async () => {
  const wide = structuredClone(stack);
  const rule = wide.find((r) => r.name === "prod-a-net-sg-services-public-pools-tcp-23-22622")!;
  for (const props of [rule.inputs, rule.outputs]) props.portRangeMin = 1;
  const vs = await runPolicies(edgepairPolicies, wide);
  expect(messagesOf(vs, "security-groups-no-outside-ssh-or-mcs")).toEqual([
    "rule opens SSH (22/tcp) to 0.0.0.0/0, which is outside the internal ranges",
  ]);
  // every public VIP port has a floating IP and carries the public services group
  expect(messagesOf(vs, "floating-ips-no-ssh-or-mcs")).toHaveLength(3);
});
