/**
 * The OpenStack components under Pulumi's mocks (pulumi.runtime.setMocks). Why mocks: @pulumi/openstack's provider
 * plugin cannot be downloaded or built here and there is no OpenStack, so the real engine cannot run them. What is
 * judged is what the program registers: every resource's type, name and inputs (mocks.recorded by the mock's
 * newResource), and its parent and resource options (mocks.recorded by a transformation on the top component, which
 * Pulumi hands down to every child).
 */
import * as pulumi from "@pulumi/pulumi";
import {
  type Recorded,
  neutronFloatingAddressOf,
  neutronMacOf,
  optionsRecorder,
  recordingMocks,
  settle,
  value,
} from "./fixtures/pulumi-mocks";
import {
  allocationPools,
  FORWARDING_ADDRESS_PAIR,
  OpenStackLbServer,
  OpenStackNetworking,
  VRRP_PROTOCOL,
  type OpenStackNetworkingArgs,
} from "../components/openstack";
import { resolveSpec } from "../spec/resolve";
import type { ResolvedSpec } from "../spec/types";
import { variants } from "./fixtures/variants";

const TYPE = {
  network: "openstack:networking/network:Network",
  subnet: "openstack:networking/subnet:Subnet",
  port: "openstack:networking/port:Port",
  group: "openstack:networking/secGroup:SecGroup",
  rule: "openstack:networking/secGroupRule:SecGroupRule",
  fip: "openstack:networking/floatingIp:FloatingIp",
  fipAssoc: "openstack:networking/floatingIpAssociate:FloatingIpAssociate",
  serverGroup: "openstack:compute/serverGroup:ServerGroup",
  instance: "openstack:compute/instance:Instance",
};

const macOf = neutronMacOf;
const floatingAddressOf = neutronFloatingAddressOf;

let mocks: ReturnType<typeof recordingMocks>;
beforeAll(() => {
  mocks = recordingMocks((type, name) => ({
    ...(type === TYPE.port ? { macAddress: macOf(name) } : {}),
    ...(type === TYPE.fip ? { address: floatingAddressOf(name) } : {}),
  }));
});

beforeEach(() => {
  mocks.reset();
  recorder.reset();
});

const recorder = optionsRecorder();
const recordOptions = recorder.transformation;

const openstackVariant = variants.find((v) => v.name === "openstack")!;
const SPEC: ResolvedSpec = openstackVariant.spec;

interface EditableRaw {
  network: Record<string, unknown>;
  virtualAddresses: Record<string, unknown>;
  ingressBackend?: unknown;
}

function openstackSpec(edit: (raw: EditableRaw) => void): ResolvedSpec {
  const raw = structuredClone(openstackVariant.raw) as unknown as EditableRaw;
  edit(raw);
  return resolveSpec(raw);
}

const PUBLIC = { networkId: "pub-net-uuid", subnetId: "pub-subnet-uuid" };
const EXTERNAL = "ext-floating";

function args(over: Partial<OpenStackNetworkingArgs> = {}): OpenStackNetworkingArgs {
  return {
    spec: SPEC,
    privateNetwork: { create: { dnsNameservers: ["192.0.2.53"] } },
    publicNetwork: PUBLIC,
    externalNetworkName: EXTERNAL,
    ...over,
  };
}

async function build(over: Partial<OpenStackNetworkingArgs> = {}, name = "prod-a-net"): Promise<OpenStackNetworking> {
  const net = new OpenStackNetworking(name, args(over), { transformations: [recordOptions] });
  await value(net.floatingIps);
  await value(net.serverGroupId);
  await settle(mocks);
  return net;
}

const ofType = (t: string) => mocks.recorded.filter((r) => r.type === t);
const byName = (t: string, name: string) => {
  const found = ofType(t).find((r) => r.name === name);
  if (!found)
    throw new Error(
      `no ${t} named ${name}; have ${ofType(t)
        .map((r) => r.name)
        .join(", ")}`,
    );
  return found;
};

interface Rule {
  group: string;
  protocol?: string;
  ethertype: string;
  min?: number;
  max?: number;
  remote?: string;
  direction: string;
}

/** Every rule with the name of its group (the mock's id is `<group name>-id`). */
function rules(): Rule[] {
  return ofType(TYPE.rule).map((r) => ({
    group: String(r.inputs.securityGroupId).replace(/-id$/, ""),
    protocol: r.inputs.protocol as string | undefined,
    ethertype: String(r.inputs.ethertype),
    min: r.inputs.portRangeMin as number | undefined,
    max: r.inputs.portRangeMax as number | undefined,
    remote: r.inputs.remoteIpPrefix as string | undefined,
    direction: String(r.inputs.direction),
  }));
}

/** Does the rule let this protocol/port in? No protocol means every protocol, no port range every port. */
function admits(rule: Rule, protocol: string, port?: number): boolean {
  if (rule.direction !== "ingress") return false;
  if (rule.protocol !== undefined && rule.protocol !== protocol) return false;
  if (port === undefined || rule.min === undefined) return true;
  return rule.min <= port && port <= (rule.max ?? rule.min);
}

const ANYWHERE = ["0.0.0.0/0", "::/0", undefined];
const groupsOfPort = (port: Recorded) => (port.inputs.securityGroupIds as string[]).map((id) => id.replace(/-id$/, ""));
const pairsOf = (port: Recorded) =>
  (port.inputs.allowedAddressPairs as { ipAddress: string }[]).map((p) => p.ipAddress);
const addresses = (vips: { address: string }[]) => vips.map((v) => v.address);

describe("OpenStackNetworking (openstack variant)", () => {
  test("the graph: 4 LB ports, a VIP port per VIP, a floating IP and one association per public VIP, one server group", async () => {
    await build();
    expect(ofType("edgepair:index:OpenStackNetworking").map((r) => r.name)).toEqual(["prod-a-net"]);
    expect(
      ofType(TYPE.port)
        .map((r) => r.name)
        .sort(),
    ).toEqual([
      "prod-a-net-primary-private",
      "prod-a-net-primary-public",
      "prod-a-net-secondary-private",
      "prod-a-net-secondary-public",
      "prod-a-net-vip-192-168-100-1",
      "prod-a-net-vip-192-168-100-100",
      "prod-a-net-vip-203-0-113-100",
      "prod-a-net-vip-203-0-113-253",
      "prod-a-net-vip-203-0-113-80",
    ]);
    expect(ofType(TYPE.fip)).toHaveLength(3);
    expect(ofType(TYPE.fipAssoc)).toHaveLength(3);
    expect(ofType(TYPE.serverGroup)).toHaveLength(1);
    expect(
      ofType(TYPE.group)
        .map((r) => r.name)
        .sort(),
    ).toEqual(
      ["forward", "handoff", "peer-primary", "peer-secondary", "private", "public"].map((p) => `prod-a-net-sg-${p}`),
    );
    // children are named from the component's name
    expect(mocks.recorded.every((r) => r.name === "prod-a-net" || r.name.startsWith("prod-a-net-"))).toBe(true);
  });

  test("every child is parented to the component (the security groups through their own component)", async () => {
    const net = await build();
    const children = recorder.registered.filter((r) => r.type !== "edgepair:index:OpenStackNetworking");
    expect(children.length).toBe(mocks.recorded.length - 1);
    const sgComponent = recorder.registered.find((r) => r.type === "edgepair:index:OpenStackSecurityGroups")!;
    expect(sgComponent.parent).toBe(net);
    for (const child of children) {
      const parent = child.type === TYPE.group || child.type === TYPE.rule ? sgComponent.resource : net;
      expect({ name: child.name, parentIsComponent: child.parent === parent }).toEqual({
        name: child.name,
        parentIsComponent: true,
      });
      // the engine sees the same tree: a child's URN is qualified by its parent's type
      const parentType =
        parent === net ? "edgepair:index:OpenStackNetworking" : "edgepair:index:OpenStackSecurityGroups";
      expect(await value(child.resource.urn)).toContain(`${parentType}$${child.type}::${child.name}`);
    }
  });

  test("the public side opens only 6443, 80, 443 and ICMP to the world; 22 and 22623 never from 0.0.0.0/0 or ::/0", async () => {
    await build();
    const all = rules();
    expect(all.length).toBeGreaterThan(10);
    // a missing remote prefix or protocol would mean "any": every rule names both
    expect(all.filter((r) => r.remote === undefined || r.protocol === undefined)).toEqual([]);
    for (const port of [22, 22623]) {
      expect(all.filter((r) => ANYWHERE.includes(r.remote) && admits(r, "tcp", port))).toEqual([]);
    }
    const publicRules = all
      .filter((r) => r.group === "prod-a-net-sg-public")
      .map((r) => `${r.protocol}/${r.min ?? "-"}/${r.remote}`);
    expect(publicRules.sort()).toEqual([
      "icmp/-/0.0.0.0/0",
      "tcp/443/0.0.0.0/0",
      "tcp/6443/0.0.0.0/0",
      "tcp/80/0.0.0.0/0",
    ]);
    // the public LB ports and public VIP ports carry only the public group
    for (const port of ofType(TYPE.port).filter((p) => p.name.endsWith("-public") || p.name.includes("-vip-203-"))) {
      expect(groupsOfPort(port)).toEqual(["prod-a-net-sg-public"]);
      expect(port.inputs.portSecurityEnabled).toBe(true);
    }
  });

  test("the private side: SSH, API, 22623, ingress and metrics from the cluster CIDR only", async () => {
    await build();
    const priv = rules().filter((r) => r.group === "prod-a-net-sg-private");
    expect(priv.every((r) => r.remote === SPEC.network.cidr)).toBe(true);
    expect(priv.map((r) => `${r.protocol}/${r.min ?? "-"}`).sort()).toEqual(
      ["icmp/-", "tcp/22", "tcp/22623", "tcp/443", "tcp/6443", "tcp/80", `tcp/${SPEC.metrics.port}`].sort(),
    );
    // metrics: nothing but the cluster CIDR (or the peer) may reach it
    const metrics = rules().filter((r) => admits(r, "tcp", SPEC.metrics.port));
    expect(new Set(metrics.map((r) => r.remote))).toEqual(new Set([SPEC.network.cidr]));
  });

  test("VRRP (112) and conntrackd sync only from the peer's /32, each LB's peer group on its own private port only", async () => {
    await build();
    const [primary, secondary] = SPEC.network.lbAddresses;
    const all = rules();
    const vrrp = all.filter((r) => admits(r, VRRP_PROTOCOL));
    expect(vrrp.map((r) => [r.group, r.remote, r.ethertype]).sort()).toEqual([
      ["prod-a-net-sg-peer-primary", `${secondary}/32`, "IPv4"],
      ["prod-a-net-sg-peer-secondary", `${primary}/32`, "IPv4"],
    ]);
    const sync = all.filter((r) => admits(r, "udp", SPEC.conntrack.port));
    expect(sync.map((r) => [r.group, r.remote, r.min, r.max]).sort()).toEqual([
      ["prod-a-net-sg-peer-primary", `${secondary}/32`, SPEC.conntrack.port, SPEC.conntrack.port],
      ["prod-a-net-sg-peer-secondary", `${primary}/32`, SPEC.conntrack.port, SPEC.conntrack.port],
    ]);
    // the egress-forwarding group lets the cluster out on every other UDP port, not this one
    const forwardUdp = all.filter((r) => r.group === "prod-a-net-sg-forward" && r.protocol === "udp");
    expect(forwardUdp.map((r) => [r.min, r.max])).toEqual([
      [1, SPEC.conntrack.port - 1],
      [SPEC.conntrack.port + 1, 65535],
    ]);
    expect(groupsOfPort(byName(TYPE.port, "prod-a-net-primary-private"))).toContain("prod-a-net-sg-peer-primary");
    expect(groupsOfPort(byName(TYPE.port, "prod-a-net-primary-private"))).not.toContain("prod-a-net-sg-peer-secondary");
    expect(groupsOfPort(byName(TYPE.port, "prod-a-net-secondary-private"))).toContain("prod-a-net-sg-peer-secondary");
    expect(groupsOfPort(byName(TYPE.port, "prod-a-net-secondary-private"))).not.toContain("prod-a-net-sg-peer-primary");
    for (const vipPort of ofType(TYPE.port).filter((p) => p.name.includes("-vip-"))) {
      expect(groupsOfPort(vipPort).some((g) => g.includes("-peer-"))).toBe(false);
    }
  });

  test("LB ports: fixed LB addresses, allowed-address-pairs for exactly the VIPs of their network (plus forwarding on the private side)", async () => {
    await build();
    const pub = SPEC.platform.publicNetwork;
    for (const [i, role] of (["primary", "secondary"] as const).entries()) {
      const publicPort = byName(TYPE.port, `prod-a-net-${role}-public`);
      expect(publicPort.inputs.networkId).toBe(PUBLIC.networkId);
      expect(publicPort.inputs.fixedIps).toEqual([{ subnetId: PUBLIC.subnetId, ipAddress: pub.lbAddresses[i] }]);
      expect(pairsOf(publicPort).sort()).toEqual(addresses(SPEC.derived.publicVips).sort());

      const privatePort = byName(TYPE.port, `prod-a-net-${role}-private`);
      expect(privatePort.inputs.networkId).toBe("prod-a-net-private-id");
      expect(privatePort.inputs.fixedIps).toEqual([
        { subnetId: "prod-a-net-private-id", ipAddress: SPEC.network.lbAddresses[i] },
      ]);
      const privatePairs = pairsOf(privatePort);
      expect(privatePairs.filter((p) => p !== FORWARDING_ADDRESS_PAIR).sort()).toEqual([
        "192.168.100.1",
        "192.168.100.100",
      ]);
      expect(privatePairs).toContain(FORWARDING_ADDRESS_PAIR);
      expect(privatePort.inputs.portSecurityEnabled).toBe(true);
    }
  });

  test("a VIP port per VIP on its own network with the VIP as fixed IP and no device", async () => {
    await build();
    const vipPorts = ofType(TYPE.port).filter((p) => p.name.includes("-vip-"));
    const expected = [
      ...SPEC.derived.publicVips.map((v) => ({
        ip: v.address,
        networkId: PUBLIC.networkId,
        subnetId: PUBLIC.subnetId,
      })),
      ...SPEC.derived.privateVips.map((v) => ({
        ip: v.address,
        networkId: "prod-a-net-private-id",
        subnetId: "prod-a-net-private-id",
      })),
    ];
    expect(vipPorts).toHaveLength(expected.length);
    for (const e of expected) {
      const port = vipPorts.find((p) => (p.inputs.fixedIps as { ipAddress: string }[])[0]!.ipAddress === e.ip)!;
      expect(port.inputs.networkId).toBe(e.networkId);
      expect(port.inputs.fixedIps).toEqual([{ subnetId: e.subnetId, ipAddress: e.ip }]);
      expect(port.inputs.deviceId).toBeUndefined();
      expect(port.inputs.deviceOwner).toBeUndefined();
      expect(port.inputs.allowedAddressPairs).toBeUndefined();
    }
  });

  test("one floating IP association per public VIP port, none for private VIPs; outputs pair each VIP with its floating IP", async () => {
    const net = await build();
    const assocs = ofType(TYPE.fipAssoc);
    const publicVipPorts = SPEC.derived.publicVips.map((v) => `prod-a-net-vip-${v.address.replace(/\./g, "-")}`);
    expect(assocs.map((a) => String(a.inputs.portId).replace(/-id$/, "")).sort()).toEqual([...publicVipPorts].sort());
    for (const a of assocs) {
      const port = byName(TYPE.port, String(a.inputs.portId).replace(/-id$/, ""));
      expect(a.inputs.fixedIp).toBe((port.inputs.fixedIps as { ipAddress: string }[])[0]!.ipAddress);
      expect(ofType(TYPE.fip).map((f) => floatingAddressOf(f.name))).toContain(a.inputs.floatingIp);
    }
    expect(ofType(TYPE.fip).every((f) => f.inputs.pool === EXTERNAL)).toBe(true);
    // each floating IP is associated exactly once
    expect(new Set(assocs.map((a) => a.inputs.floatingIp)).size).toBe(assocs.length);
    const bindings = await value(net.floatingIps);
    expect(bindings.map((b) => b.vip).sort()).toEqual(addresses(SPEC.derived.publicVips).sort());
    expect(bindings.find((b) => b.vip === "203.0.113.100")!.floatingIp).toBe(
      floatingAddressOf("prod-a-net-fip-203-0-113-100"),
    );
  });

  test("the created private subnet: gateway = the gateway VIP, DHCP pools exclude the LB addresses and every VIP", async () => {
    await build();
    const subnet = byName(TYPE.subnet, "prod-a-net-private");
    expect(subnet.inputs.cidr).toBe("192.168.100.0/24");
    expect(subnet.inputs.gatewayIp).toBe("192.168.100.1");
    expect(subnet.inputs.dnsNameservers).toEqual(["192.0.2.53"]);
    expect(subnet.inputs.allocationPools).toEqual([
      { start: "192.168.100.4", end: "192.168.100.99" },
      { start: "192.168.100.101", end: "192.168.100.254" },
    ]);
  });

  test("an existing private network is used as given: no network or subnet is created", async () => {
    await build({ privateNetwork: { existing: { networkId: "priv-net-uuid", subnetId: "priv-subnet-uuid" } } });
    expect(ofType(TYPE.network)).toEqual([]);
    expect(ofType(TYPE.subnet)).toEqual([]);
    const port = byName(TYPE.port, "prod-a-net-primary-private");
    expect(port.inputs.networkId).toBe("priv-net-uuid");
    expect(port.inputs.fixedIps).toEqual([{ subnetId: "priv-subnet-uuid", ipAddress: "192.168.100.2" }]);
  });

  test("port MACs are the ports' own outputs", async () => {
    const net = await build();
    expect(await value(net.lbPorts.primary.publicMac)).toBe(macOf("prod-a-net-primary-public"));
    expect(await value(net.lbPorts.secondary.privateMac)).toBe(macOf("prod-a-net-secondary-private"));
    expect(await value(net.lbPorts.secondary.privatePortId)).toBe("prod-a-net-secondary-private-id");
  });

  test("server group: anti-affinity by default, soft-anti-affinity on request", async () => {
    await build();
    expect(ofType(TYPE.serverGroup)[0]!.inputs.policies).toEqual(["anti-affinity"]);
    mocks.reset();
    await build({ antiAffinity: "soft" });
    expect(ofType(TYPE.serverGroup)[0]!.inputs.policies).toEqual(["soft-anti-affinity"]);
  });
});

describe("OpenStackNetworking: optional parts of the spec", () => {
  test("no ingress: no 80/443 rule anywhere", async () => {
    const spec = openstackSpec((raw) => {
      delete raw.virtualAddresses.ingress;
      delete raw.ingressBackend;
    });
    await build({ spec });
    const all = rules();
    expect(all.length).toBeGreaterThan(0);
    const web = all.filter(
      (r) => r.group !== "prod-a-net-sg-forward" && (admits(r, "tcp", 80) || admits(r, "tcp", 443)),
    );
    expect(web).toEqual([]);
    // the public side keeps the API and ICMP
    expect(
      all
        .filter((r) => r.group === "prod-a-net-sg-public")
        .map((r) => `${r.protocol}/${r.min ?? "-"}`)
        .sort(),
    ).toEqual(["icmp/-", "tcp/6443"]);
  });

  test("no nat: no forwarding group, no gateway VIP port, no port-range rule", async () => {
    const spec = openstackSpec((raw) => {
      delete raw.virtualAddresses.nat;
    });
    await build({ spec });
    expect(ofType(TYPE.group).map((g) => g.name)).not.toContain("prod-a-net-sg-forward");
    expect(ofType(TYPE.port).map((p) => p.name)).not.toContain("prod-a-net-vip-192-168-100-1");
    expect(rules().filter((r) => r.min !== r.max)).toEqual([]);
    // with ingress still there, a rule for 80 exists: the check above is not vacuous
    expect(rules().some((r) => admits(r, "tcp", 80))).toBe(true);
  });

  test("DHCP pools around reserved addresses at the edges of the range and next to each other", () => {
    const spec = openstackSpec((raw) => {
      raw.network.lbAddresses = ["192.168.100.5", "192.168.100.6"];
      raw.virtualAddresses.api = [
        { address: "192.168.100.254", type: "private" },
        { address: "203.0.113.100", type: "public" },
      ];
    });
    expect(allocationPools(spec)).toEqual([
      { start: "192.168.100.2", end: "192.168.100.4" },
      { start: "192.168.100.7", end: "192.168.100.253" },
    ]);
  });

  test("a spec for another platform is refused, naming the field", () => {
    const libvirtSpec = variants.find((v) => v.name === "dev")!.spec;
    expect(() => new OpenStackNetworking("x", args({ spec: libvirtSpec }))).toThrow("platform.type: must be openstack");
  });
});

describe("OpenStackLbServer", () => {
  const USER_DATA = "#cloud-config\nwrite_files: [{path: /etc/edgepair/secrets/token, content: SECRET-TOKEN-7f3a}]\n";

  async function buildPair() {
    const net = await build();
    const servers = (["primary", "secondary"] as const).map(
      (role, i) =>
        new OpenStackLbServer(
          `prod-a-lb${i + 1}`,
          {
            flavorName: "m1.small",
            imageName: "edgepair-appliance",
            userData: USER_DATA,
            ports: { public: net.lbPorts[role].publicPortId, private: net.lbPorts[role].privatePortId },
            serverGroupId: net.serverGroupId,
            keyPair: "ops",
          },
          { transformations: [recordOptions] },
        ),
    );
    await Promise.all(servers.map((s) => value(s.id)));
    await settle(mocks);
    return { net, servers };
  }

  test("both servers: config drive, the server group's hint, public NIC first, private second", async () => {
    await buildPair();
    const instances = ofType(TYPE.instance);
    expect(instances.map((i) => i.name)).toEqual(["prod-a-lb1", "prod-a-lb2"]);
    for (const [i, role] of (["primary", "secondary"] as const).entries()) {
      const inst = instances[i]!;
      expect(inst.inputs.configDrive).toBe(true);
      expect(inst.inputs.schedulerHints).toEqual([{ group: "prod-a-net-group-id" }]);
      expect(inst.inputs.networks).toEqual([
        { port: `prod-a-net-${role}-public-id` },
        { port: `prod-a-net-${role}-private-id` },
      ]);
      expect(inst.inputs.imageName).toBe("edgepair-appliance");
      expect(inst.inputs.flavorName).toBe("m1.small");
    }
  });

  test("user-data is a secret and create-only (ignoreChanges), and the instance is parented to its component", async () => {
    const { servers } = await buildPair();
    const reg = recorder.registered.filter((r) => r.type === TYPE.instance);
    expect(reg).toHaveLength(2);
    for (const [i, r] of reg.entries()) {
      expect(await pulumi.isSecret(pulumi.output(r.props.userData))).toBe(true);
      expect(r.opts.ignoreChanges).toEqual(expect.arrayContaining(["userData", "imageName", "imageId", "keyPair"]));
      expect(r.parent).toBe(servers[i]);
    }
    for (const s of servers) {
      expect(await pulumi.isSecret(s.instance.userData)).toBe(true);
      expect(await value(s.instance.userData)).toBe(USER_DATA);
      expect(await value(s.instance.urn)).toContain(
        "edgepair:index:OpenStackLbServer$openstack:compute/instance:Instance::prod-a-lb",
      );
    }
  });

  test("an image by ID is passed as imageId only", async () => {
    const server = new OpenStackLbServer("by-id", {
      flavorName: "m1.small",
      imageId: "0b7c-image-uuid",
      userData: USER_DATA,
      ports: { public: "p1", private: "p2" },
      serverGroupId: "g",
    });
    await value(server.id);
    await settle(mocks);
    const inst = byName(TYPE.instance, "by-id");
    expect(inst.inputs.imageId).toBe("0b7c-image-uuid");
    expect(inst.inputs.imageName).toBeUndefined();
    expect(inst.inputs.keyPair).toBeUndefined();
  });
});
