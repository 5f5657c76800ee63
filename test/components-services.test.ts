/**
 * Service pools (spec.serviceLoadBalancers) on each platform, under Pulumi's mocks as the other component tests
 * (test/components-openstack.test.ts says why mocks): on libvirt the public network routes every public pool to the
 * public next hop, exactly like the floating IPs; on OpenStack both LBs' ports allow their side's pools as
 * allowed-address-pairs, a created private subnet's DHCP keeps out of the private pools, and no floating IP or port
 * is created per pool address. A spec without pools gets nothing more (the counter-cases).
 */
import { LibvirtNetworks } from "../components/libvirt/networks";
import { allocationPools, FORWARDING_ADDRESS_PAIR, OpenStackNetworking } from "../components/openstack";
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
