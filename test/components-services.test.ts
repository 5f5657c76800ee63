/**
 * Service pools (spec.serviceLoadBalancers) on each platform, under Pulumi's mocks as the other component tests
 * (test/components-openstack.test.ts says why mocks): on libvirt the public network routes every public pool to the
 * public next hop, exactly like the floating IPs; on OpenStack both LBs' ports allow their side's pools as
 * allowed-address-pairs, a created private subnet's DHCP keeps out of the private pools, and no floating IP or port
 * is created per pool address; the security groups admit the Service frontends (extraServices exactly, pools on
 * every port but 22 and 22623) on the ports that face them. A spec without pools gets nothing more (the
 * counter-cases).
 */
import { LibvirtNetworks } from "../components/libvirt/networks";
import {
  allocationPools,
  FORWARDING_ADDRESS_PAIR,
  OpenStackNetworking,
  securityGroupRules,
  type GroupPurpose,
  type RuleSpec,
} from "../components/openstack";
import { resolveSpec } from "../spec/resolve";
import type { ResolvedSpec } from "../spec/types";
import {
  neutronFloatingAddressOf,
  neutronMacOf,
  recordingMocks,
  settle,
  value,
  type Recorded,
} from "./fixtures/pulumi-mocks";
import { servicesRaw, variants } from "./fixtures/variants";

type Raw = Record<string, any>; // test-only: mutations reach into arbitrary depth

const TYPE = {
  network: "pulumi-nodejs:dynamic/libvirt:Network",
  port: "openstack:networking/port:Port",
  subnet: "openstack:networking/subnet:Subnet",
  fip: "openstack:networking/floatingIp:FloatingIp",
  fipAssoc: "openstack:networking/floatingIpAssociate:FloatingIpAssociate",
  group: "openstack:networking/secGroup:SecGroup",
  rule: "openstack:networking/secGroupRule:SecGroupRule",
};

let mocks: ReturnType<typeof recordingMocks>;
beforeAll(() => {
  mocks = recordingMocks((type, name) => ({
    ...(type === TYPE.port ? { macAddress: neutronMacOf(name) } : {}),
    ...(type === TYPE.fip ? { address: neutronFloatingAddressOf(name) } : {}),
  }));
});
beforeEach(() => mocks.reset());

const ofType = (t: string) => mocks.recorded.filter((r) => r.type === t);
function byName(t: string, name: string): Recorded {
  const found = ofType(t).find((r) => r.name === name);
  if (!found) throw new Error(`no ${t} named ${name}; have ${ofType(t).map((r) => r.name)}`);
  return found;
}

describe("libvirt: public pools are routed to the public next hop like the floating IPs", () => {
  async function publicRoutes(spec: ResolvedSpec): Promise<{ cidr: string; gateway: string }[]> {
    const nets = new LibvirtNetworks("lab-net", { spec });
    await value(nets.publicNetwork.name);
    await settle(mocks);
    return byName(TYPE.network, "lab-net-public").inputs.routes as { cidr: string; gateway: string }[];
  }
  const FLOATING = ["198.51.100.80/32", "198.51.100.100/32", "198.51.100.253/32"];

  test("a CIDR pool is one route; a first-last range is the fewest CIDRs that cover it; private pools are not routed", async () => {
    const raw = servicesRaw() as Raw;
    raw.serviceLoadBalancers.pools.push({
      name: "more",
      addresses: ["203.0.113.64-203.0.113.72", "192.0.2.7/32"],
      type: "public",
    });
    const routes = await publicRoutes(resolveSpec(raw));
    expect(routes).toEqual(
      [...FLOATING, "198.51.100.128/27", "203.0.113.64/29", "203.0.113.72/32", "192.0.2.7/32"].map((cidr) => ({
        cidr,
        gateway: "172.31.250.10",
      })),
    );
    // the private pool (192.168.100.200-239) is the cluster network's own: nothing routes it
    expect(routes.some((r) => r.cidr.startsWith("192.168.100."))).toBe(false);
  });

  test("counter-case: a spec without pools (or with private pools only) routes the floating IPs only", async () => {
    const dev = variants.find((v) => v.name === "dev")!.spec;
    expect((await publicRoutes(dev)).map((r) => r.cidr)).toEqual(FLOATING);
    mocks.reset();
    const raw = servicesRaw() as Raw;
    raw.serviceLoadBalancers.pools = raw.serviceLoadBalancers.pools.filter((p: Raw) => p.type === "private");
    raw.extraServices = raw.extraServices.filter((e: Raw) => e.name !== "mqtt");
    expect((await publicRoutes(resolveSpec(raw))).map((r) => r.cidr)).toEqual(FLOATING);
  });
});

describe("openstack: pools as allowed-address-pairs on both LBs' ports", () => {
  const openstackRaw = () => structuredClone(variants.find((v) => v.name === "openstack")!.raw) as Raw;
  /** The openstack variant with a public pool (a CIDR and a range) and a private one. */
  function withPools(): ResolvedSpec {
    const raw = openstackRaw();
    raw.serviceLoadBalancers = {
      pools: [
        { name: "public", addresses: ["203.0.113.128/27", "203.0.113.200-203.0.113.209"], type: "public" },
        { name: "internal", addresses: ["192.168.100.200-192.168.100.239"], type: "private" },
      ],
    };
    return resolveSpec(raw);
  }
  async function build(spec: ResolvedSpec): Promise<void> {
    const net = new OpenStackNetworking("prod-a-net", {
      spec,
      privateNetwork: { create: {} },
      publicNetwork: { networkId: "pub-net-uuid", subnetId: "pub-subnet-uuid" },
      externalNetworkName: "ext-floating",
    });
    await value(net.floatingIps);
    await settle(mocks);
  }
  const pairsOf = (name: string) =>
    (byName(TYPE.port, name).inputs.allowedAddressPairs as { ipAddress: string }[]).map((p) => p.ipAddress);
  const PUBLIC_VIPS = ["203.0.113.80", "203.0.113.100", "203.0.113.253"];
  const PRIVATE_VIPS = ["192.168.100.1", "192.168.100.100"];

  test("public pools on both public ports, private pools on both private ports, each side only its own", async () => {
    await build(withPools());
    for (const role of ["primary", "secondary"]) {
      expect(pairsOf(`prod-a-net-${role}-public`)).toEqual([
        ...PUBLIC_VIPS,
        "203.0.113.128/27",
        "203.0.113.200/29",
        "203.0.113.208/31",
      ]);
      expect(pairsOf(`prod-a-net-${role}-private`)).toEqual([
        ...PRIVATE_VIPS,
        "192.168.100.200/29",
        "192.168.100.208/28",
        "192.168.100.224/28",
        FORWARDING_ADDRESS_PAIR,
      ]);
    }
  });

  test("no port and no floating IP per pool address: those stay one per VIP", async () => {
    await build(withPools());
    const vipPorts = ofType(TYPE.port).filter((p) => p.name.includes("-vip-"));
    expect(vipPorts.map((p) => (p.inputs.fixedIps as { ipAddress: string }[])[0]!.ipAddress).sort()).toEqual(
      [...PRIVATE_VIPS, ...PUBLIC_VIPS].sort(),
    );
    expect(ofType(TYPE.fip)).toHaveLength(PUBLIC_VIPS.length);
    expect(ofType(TYPE.fipAssoc)).toHaveLength(PUBLIC_VIPS.length);
  });

  test("the created private subnet's DHCP pools keep out of the private Service pool", async () => {
    await build(withPools());
    expect(byName(TYPE.subnet, "prod-a-net-private").inputs.allocationPools).toEqual([
      { start: "192.168.100.4", end: "192.168.100.99" },
      { start: "192.168.100.101", end: "192.168.100.199" },
      { start: "192.168.100.240", end: "192.168.100.254" },
    ]);
  });

  test("DHCP pools around private pools at the ends of the network, next to a VIP and next to each other", () => {
    const raw = openstackRaw();
    raw.serviceLoadBalancers = {
      pools: [
        { name: "low", addresses: ["192.168.100.20-192.168.100.99"], type: "private" },
        { name: "high", addresses: ["192.168.100.101/32", "192.168.100.102-192.168.100.110"], type: "private" },
        { name: "top", addresses: ["192.168.100.240-192.168.100.254"], type: "private" },
      ],
    };
    expect(allocationPools(resolveSpec(raw))).toEqual([
      { start: "192.168.100.4", end: "192.168.100.19" },
      { start: "192.168.100.111", end: "192.168.100.239" },
    ]);
  });

  test("counter-case: a spec without pools gets the VIPs' pairs only and the DHCP pools as before", async () => {
    await build(variants.find((v) => v.name === "openstack")!.spec);
    for (const role of ["primary", "secondary"]) {
      expect(pairsOf(`prod-a-net-${role}-public`)).toEqual(PUBLIC_VIPS);
      expect(pairsOf(`prod-a-net-${role}-private`)).toEqual([...PRIVATE_VIPS, FORWARDING_ADDRESS_PAIR]);
    }
    expect(byName(TYPE.subnet, "prod-a-net-private").inputs.allocationPools).toEqual([
      { start: "192.168.100.4", end: "192.168.100.99" },
      { start: "192.168.100.101", end: "192.168.100.254" },
    ]);
  });
});

describe("openstack: security groups admit the Service frontends on the ports that face them", () => {
  const openstackRaw = () => structuredClone(variants.find((v) => v.name === "openstack")!.raw) as Raw;
  /**
   * The openstack variant with extra services: UDP from anywhere on the public ingress VIP, TCP from two ranges on
   * the public API VIP, TCP from anywhere on the private API VIP, and SSH-to-a-node (22/tcp) on it.
   */
  function withExtras(edit: (raw: Raw) => void = () => {}): ResolvedSpec {
    const raw = openstackRaw();
    raw.extraServices = [
      {
        name: "syslog",
        protocol: "UDP",
        frontend: { address: "203.0.113.80", port: 514 },
        backend: { nodePort: 30514, addresses: ["192.168.100.20"] },
      },
      {
        name: "mqtt",
        protocol: "TCP",
        frontend: { address: "203.0.113.100", port: 8883 },
        backend: { nodePort: 30883, addresses: ["192.168.100.21"] },
        sourceRanges: ["198.51.100.0/24", "10.0.0.0/8"],
      },
      {
        name: "db",
        protocol: "TCP",
        frontend: { address: "192.168.100.100", port: 5432 },
        backend: { nodePort: 30432, addresses: ["192.168.100.20"] },
      },
      {
        name: "git",
        protocol: "TCP",
        frontend: { address: "192.168.100.100", port: 22 },
        backend: { nodePort: 30022, addresses: ["192.168.100.20"] },
      },
    ];
    edit(raw);
    return resolveSpec(raw);
  }
  const POOLS = [
    { name: "public", addresses: ["203.0.113.128/27"], type: "public" },
    { name: "internal", addresses: ["192.168.100.200-192.168.100.239"], type: "private" },
  ];
  const text = (r: RuleSpec) =>
    `${r.key}: ${r.protocol} ${r.ports ? `${r.ports.min}-${r.ports.max}` : "any"} from ${r.remoteIpPrefix}`;
  const show = (rules: RuleSpec[]) => rules.map(text);
  /** Does the rule admit this TCP port from a source outside the cluster and the private ranges? */
  const fromOutside = (r: RuleSpec, port: number) =>
    r.protocol === "tcp" &&
    (r.ports === undefined || (r.ports.min <= port && port <= r.ports.max)) &&
    !/^(10\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.)/.test(r.remoteIpPrefix);

  test("extra services: exactly their protocol and port, from their source ranges or from anywhere, on their side", () => {
    const rules = securityGroupRules(withExtras());
    expect(show(rules["services-public"])).toEqual([
      "extra-syslog: udp 514-514 from 0.0.0.0/0",
      "extra-mqtt.10-0-0-0-8: tcp 8883-8883 from 10.0.0.0/8",
      "extra-mqtt.198-51-100-0-24: tcp 8883-8883 from 198.51.100.0/24",
    ]);
    // git (22 on a private VIP) would be "from the cluster network only", which the private group's SSH rule already
    // admits; with nat the backends' replies are the forward group's
    expect(show(rules["services-private"])).toEqual(["extra-db: tcp 5432-5432 from 0.0.0.0/0"]);
    expect(rules["services-private"][0]!.description).toBe("extra service db: TCP 192.168.100.100:5432 from anywhere");
  });

  test("pools: every TCP port but 22 and 22623 and every UDP port from anywhere (conntrackd's kept peer-only on the private side); the extra services they cover are left out", () => {
    const rules = securityGroupRules(
      withExtras((raw) => {
        raw.serviceLoadBalancers = { pools: POOLS };
        raw.extraServices.push({
          name: "amqp",
          protocol: "TCP",
          frontend: { address: "203.0.113.130", port: 5671 },
          backend: { nodePort: 30671, addresses: ["192.168.100.22"] },
          sourceRanges: ["198.51.100.0/24"],
        });
      }),
    );
    const poolTcp = [
      "pools-tcp-1-21: tcp 1-21",
      "pools-tcp-23-22622: tcp 23-22622",
      "pools-tcp-22624-65535: tcp 22624-65535",
    ];
    expect(show(rules["services-public"])).toEqual(
      [...poolTcp, "pools-udp-1-65535: udp 1-65535"].map((r) => `${r} from 0.0.0.0/0`),
    );
    expect(show(rules["services-private"])).toEqual(
      [...poolTcp, "pools-udp-1-3779: udp 1-3779", "pools-udp-3781-65535: udp 3781-65535"].map(
        (r) => `${r} from 0.0.0.0/0`,
      ),
    );
    for (const side of ["services-public", "services-private"] as const) {
      for (const port of [22, 22623]) expect(rules[side].filter((r) => fromOutside(r, port))).toEqual([]);
    }
    // conntrackd's port on the private ports: from the peer only, as before (the public side has no conntrackd)
    const privateSide: GroupPurpose[] = [
      "private",
      "peer-primary",
      "peer-secondary",
      "handoff",
      "forward",
      "services-private",
    ];
    const sync = privateSide
      .flatMap((g) => rules[g])
      .filter((r) => r.protocol === "udp" && r.ports!.min <= 3780 && 3780 <= r.ports!.max);
    expect(sync.map((r) => r.remoteIpPrefix).sort()).toEqual(["192.168.100.2/32", "192.168.100.3/32"]);
  });

  test("only the side with pools opens every port: public pools leave the private side to its extra services", () => {
    const rules = securityGroupRules(
      withExtras((raw) => {
        raw.serviceLoadBalancers = { pools: POOLS.filter((p) => p.type === "public") };
      }),
    );
    expect(rules["services-public"].map((r) => r.key)).toEqual([
      "pools-tcp-1-21",
      "pools-tcp-23-22622",
      "pools-tcp-22624-65535",
      "pools-udp-1-65535",
    ]);
    expect(show(rules["services-private"])).toEqual(["extra-db: tcp 5432-5432 from 0.0.0.0/0"]);
  });

  test("without nat, the backends' replies to the moving source address are admitted from the cluster network (the new holder's port has no state for them)", () => {
    const rules = securityGroupRules(
      withExtras((raw) => {
        delete raw.virtualAddresses.nat;
      }),
    );
    expect(rules.forward).toEqual([]);
    expect(show(rules["services-private"])).toEqual([
      "replies-tcp-1-65535: tcp 1-65535 from 192.168.100.0/24",
      "replies-udp-1-3779: udp 1-3779 from 192.168.100.0/24",
      "replies-udp-3781-65535: udp 3781-65535 from 192.168.100.0/24",
      "extra-db: tcp 5432-5432 from 0.0.0.0/0",
    ]);
    // with a private pool, the pool's UDP rules from anywhere cover the replies' UDP, its TCP does not cover 22/22623
    const pooled = securityGroupRules(
      withExtras((raw) => {
        delete raw.virtualAddresses.nat;
        raw.serviceLoadBalancers = { pools: POOLS };
      }),
    );
    expect(pooled["services-private"].map((r) => r.key)).toEqual([
      "pools-tcp-1-21",
      "pools-tcp-23-22622",
      "pools-tcp-22624-65535",
      "pools-udp-1-3779",
      "pools-udp-3781-65535",
      "replies-tcp-1-65535",
    ]);
  });

  test("22 and 22623 on a private address without source ranges: from the cluster network only, never from anywhere", () => {
    const rules = securityGroupRules(
      withExtras((raw) => {
        delete raw.virtualAddresses.nat; // no forward group, so the narrowed rule is not covered by it
        raw.distribution = "generic"; // no 22623 in the private group either
        raw.serviceLoadBalancers = { pools: POOLS };
        raw.extraServices.push({
          name: "ignition", // 22623 is the pair's own on a VIP, free on a private pool address
          protocol: "TCP",
          frontend: { address: "192.168.100.200", port: 22623 },
          backend: { nodePort: 30623, addresses: ["192.168.100.20"] },
        });
      }),
    );
    const all = Object.values(rules).flat();
    for (const port of [22, 22623]) expect(all.filter((r) => fromOutside(r, port))).toEqual([]);
    // the replies rule admits both from the cluster network; nothing else is added for them
    expect(rules["services-private"].map((r) => r.key)).not.toContain("extra-ignition");
    expect(rules["services-private"].map((r) => r.key)).not.toContain("extra-git");
  });

  test("two extra services on one port from the same sources become one rule (Neutron refuses duplicates in a group)", () => {
    const rules = securityGroupRules(
      withExtras((raw) => {
        raw.extraServices.push({
          name: "syslog-api",
          protocol: "UDP",
          frontend: { address: "203.0.113.100", port: 514 },
          backend: { nodePort: 30515, addresses: ["192.168.100.20"] },
        });
      }),
    );
    expect(rules["services-public"].filter((r) => r.protocol === "udp").map((r) => r.key)).toEqual(["extra-syslog"]);
  });

  test("counter-case: a spec without pools or extra services gets no new group and no new rule", () => {
    const plain = variants.find((v) => v.name === "openstack")!.spec;
    const rules = securityGroupRules(plain);
    expect(rules["services-public"]).toEqual([]);
    expect(rules["services-private"]).toEqual([]);
    // and the groups every spec has are the same with services as without (nothing moves into them)
    const pooled = securityGroupRules(withExtras((raw) => (raw.serviceLoadBalancers = { pools: POOLS })));
    const existing: GroupPurpose[] = ["public", "private", "peer-primary", "peer-secondary", "handoff", "forward"];
    for (const g of existing) expect(pooled[g]).toEqual(rules[g]);
  });

  async function build(spec: ResolvedSpec): Promise<void> {
    const net = new OpenStackNetworking("prod-a-net", {
      spec,
      privateNetwork: { create: {} },
      publicNetwork: { networkId: "pub-net-uuid", subnetId: "pub-subnet-uuid" },
      externalNetworkName: "ext-floating",
    });
    await value(net.floatingIps);
    await settle(mocks);
  }
  const groupsOf = (port: Recorded) =>
    (port.inputs.securityGroupIds as string[]).map((id) => id.replace(/^prod-a-net-sg-/, "").replace(/-id$/, ""));

  test("each side's LB ports and VIP ports carry that side's services group; its rules are ingress rules of that group", async () => {
    await build(withExtras((raw) => (raw.serviceLoadBalancers = { pools: POOLS })));
    expect(
      ofType(TYPE.group)
        .map((g) => g.name)
        .filter((n) => n.includes("services")),
    ).toEqual(["prod-a-net-sg-services-public", "prod-a-net-sg-services-private"]);
    for (const port of ofType(TYPE.port)) {
      const publicSide = port.name.endsWith("-public") || port.name.includes("-vip-203-");
      expect({ port: port.name, groups: groupsOf(port).filter((g) => g.startsWith("services")) }).toEqual({
        port: port.name,
        groups: [publicSide ? "services-public" : "services-private"],
      });
    }
    const rule = byName(TYPE.rule, "prod-a-net-sg-services-public-pools-tcp-23-22622");
    expect(rule.inputs).toMatchObject({
      securityGroupId: "prod-a-net-sg-services-public-id",
      direction: "ingress",
      ethertype: "IPv4",
      protocol: "tcp",
      portRangeMin: 23,
      portRangeMax: 22622,
      remoteIpPrefix: "0.0.0.0/0",
    });
  });

  test("counter-case: without pools or extra services the ports carry the groups they carried before", async () => {
    await build(variants.find((v) => v.name === "openstack")!.spec);
    expect(ofType(TYPE.group).some((g) => g.name.includes("services"))).toBe(false);
    expect(ofType(TYPE.rule).some((r) => r.name.includes("services"))).toBe(false);
    expect(groupsOf(byName(TYPE.port, "prod-a-net-primary-public"))).toEqual(["public"]);
    expect(groupsOf(byName(TYPE.port, "prod-a-net-primary-private"))).toEqual([
      "private",
      "peer-primary",
      "handoff",
      "forward",
    ]);
  });
});
