/**
 * The catalog of bad specs: each mutation of the dev spec must produce exactly the expected `<field.path>: <rule>`
 * line (among possibly others), and the valid variants must produce none.
 */
import { validateSpec } from "../spec/resolve";
import { formatProblem } from "../spec/errors";
import { devSpecRaw, variants } from "./fixtures/variants";

type Raw = Record<string, any>; // test-only: mutations reach into arbitrary depth

interface Case {
  name: string;
  mutate: (s: Raw) => void;
  expect: string;
}

const cases: Case[] = [
  { name: "missing clusterName", mutate: (s) => delete s.clusterName, expect: "clusterName: is required" },
  { name: "clusterName with capitals", mutate: (s) => (s.clusterName = "Lab"), expect: "clusterName: must be a DNS label" },
  { name: "clusterName too long", mutate: (s) => (s.clusterName = "a".repeat(41)), expect: "clusterName: must have at most 40 characters" },
  { name: "unknown distribution", mutate: (s) => (s.distribution = "rke2"), expect: "distribution: must be one of openshift, talos, generic" },
  { name: "typo'd top-level field", mutate: (s) => (s.virtualAdresses = {}), expect: "virtualAdresses: unknown field" },
  { name: "typo'd nested field", mutate: (s) => (s.network.gatway = "192.168.100.1"), expect: "network.gatway: unknown field" },
  { name: "typo in a VIP entry", mutate: (s) => (s.virtualAddresses.api[0].adress = "x"), expect: "virtualAddresses.api[0].adress: unknown field" },
  { name: "bad CIDR", mutate: (s) => (s.network.cidr = "192.168.100.0/33"), expect: "network.cidr: must be a CIDR such as 192.168.100.0/24" },
  { name: "CIDR not a network address", mutate: (s) => (s.network.cidr = "192.168.100.7/24"), expect: "network.cidr: must be a network address: 192.168.100.0/24" },
  { name: "CIDR without prefix", mutate: (s) => (s.network.cidr = "192.168.100.0"), expect: "network.cidr: must be a CIDR" },
  { name: "IPv6 cluster network", mutate: (s) => (s.network = { cidr: "fd00::/64" }), expect: "network.cidr: must be an IPv4 network" },
  { name: "network too small", mutate: (s) => (s.network = { cidr: "192.168.100.0/30" }), expect: "network.cidr: must hold at least a gateway and two LB addresses" },
  { name: "gateway outside the network", mutate: (s) => (s.network.gateway = "10.0.0.1"), expect: "network.gateway: must be inside network.cidr 192.168.100.0/24" },
  { name: "gateway is the broadcast address", mutate: (s) => (s.network.gateway = "192.168.100.255"), expect: "network.gateway: must not be the broadcast address" },
  { name: "gateway equal to an LB address", mutate: (s) => (s.network.gateway = "192.168.100.2"), expect: "network.lbAddresses[0]: must differ from the gateway 192.168.100.2" },
  { name: "LB addresses equal", mutate: (s) => (s.network.lbAddresses = ["192.168.100.2", "192.168.100.2"]), expect: "network.lbAddresses[1]: must differ from lbAddresses[0]" },
  { name: "LB address outside the network", mutate: (s) => (s.network.lbAddresses = ["192.168.100.2", "192.168.101.3"]), expect: "network.lbAddresses[1]: must be inside network.cidr" },
  { name: "only one LB address", mutate: (s) => (s.network.lbAddresses = ["192.168.100.2"]), expect: "network.lbAddresses: must have at least 2 items" },
  { name: "LB address not an IP", mutate: (s) => (s.network.lbAddresses = ["192.168.100.2", "lb2"]), expect: "network.lbAddresses[1]: must be an IPv4 or IPv6 address" },
  { name: "empty api list", mutate: (s) => (s.virtualAddresses.api = []), expect: "virtualAddresses.api: must have at least 1 item" },
  { name: "missing api list", mutate: (s) => delete s.virtualAddresses.api, expect: "virtualAddresses.api: is required" },
  { name: "a /24 given as a VIP", mutate: (s) => (s.virtualAddresses.api[1].address = "198.51.100.0/24"), expect: "virtualAddresses.api[1].address: must be a single address (/32), not the range /24" },
  { name: "IPv6 range as a VIP", mutate: (s) => s.virtualAddresses.api.push({ address: "2001:db8::/64", type: "public" }), expect: "virtualAddresses.api[2].address: must be a single address (/128), not the range /64" },
  { name: "VIP is not an address", mutate: (s) => (s.virtualAddresses.api[1].address = "198.51.100.300"), expect: "virtualAddresses.api[1].address: must be an IPv4 or IPv6 address" },
  { name: "VIP with a short IPv4 form", mutate: (s) => (s.virtualAddresses.api[1].address = "198.51.100"), expect: "virtualAddresses.api[1].address: must be an IPv4 or IPv6 address" },
  { name: "duplicate VIP", mutate: (s) => s.virtualAddresses.api.push({ address: "198.51.100.100/32", type: "public" }), expect: "virtualAddresses.api[2].address: duplicates 198.51.100.100 earlier in the same list" },
  { name: "same address private and public", mutate: (s) => (s.virtualAddresses.ingress[0] = { address: "192.168.100.100", type: "public" }), expect: "virtualAddresses.ingress[0].type: must match virtualAddresses.api[0].type: 192.168.100.100 cannot be both private and public" },
  { name: "unknown VIP type", mutate: (s) => (s.virtualAddresses.api[0].type = "internal"), expect: "virtualAddresses.api[0].type: must be one of private, public" },
  { name: "private VIP outside the private network", mutate: (s) => (s.virtualAddresses.api[0].address = "10.1.2.3"), expect: "virtualAddresses.api[0].address: is private, so it must be inside network.cidr 192.168.100.0/24" },
  { name: "private VIP equal to the gateway", mutate: (s) => (s.virtualAddresses.api[0].address = "192.168.100.1"), expect: "virtualAddresses.api[0].address: must not be the gateway or an LB address (192.168.100.1)" },
  { name: "private VIP equal to an LB address", mutate: (s) => (s.virtualAddresses.api[0].address = "192.168.100.3"), expect: "virtualAddresses.api[0].address: must not be the gateway or an LB address (192.168.100.3)" },
  { name: "public VIP inside the private network", mutate: (s) => (s.virtualAddresses.api[1].address = "192.168.100.200"), expect: "virtualAddresses.api[1].address: is public, so it must be outside network.cidr" },
  { name: "NAT address private", mutate: (s) => (s.virtualAddresses.nat = { address: "192.168.100.253", type: "private" }), expect: "virtualAddresses.nat.type: must be public: egress is translated to an address outside the cluster network" },
  { name: "NAT address IPv6", mutate: (s) => (s.virtualAddresses.nat = { address: "2001:db8::253", type: "public" }), expect: "virtualAddresses.nat.address: must be IPv4: the cluster network is IPv4" },
  { name: "only public addresses and no nat", mutate: (s) => { s.virtualAddresses.api.shift(); delete s.virtualAddresses.nat; }, expect: "virtualAddresses: needs a private address or nat" },
  { name: "empty ingress list", mutate: (s) => (s.virtualAddresses.ingress = []), expect: "virtualAddresses.ingress: must have at least 1 item" },
  { name: "ingress VIPs without ingressBackend", mutate: (s) => delete s.ingressBackend, expect: "ingressBackend: is required when virtualAddresses.ingress is set" },
  { name: "ingressBackend without ingress VIPs", mutate: (s) => delete s.virtualAddresses.ingress, expect: "ingressBackend: is set but virtualAddresses.ingress is not" },
  { name: "apiBackend with neither selector nor addresses", mutate: (s) => (s.apiBackend = {}), expect: "apiBackend: needs a nodeSelector or at least one address" },
  { name: "API pool filled only by Nodes", mutate: (s) => delete s.apiBackend.addresses, expect: "apiBackend.addresses: needs at least one address: the API VIP must have a server before any Node registers through it" },
  { name: "API pool with an empty address list", mutate: (s) => (s.apiBackend.addresses = []), expect: "apiBackend.addresses: needs at least one address" },
  { name: "selector: a label required and absent", mutate: (s) => (s.ingressBackend.nodeSelector.matchExpressions = [{ key: "node-role.kubernetes.io/worker", operator: "DoesNotExist" }]), expect: 'ingressBackend.nodeSelector: can match no Node: its terms on label "node-role.kubernetes.io/worker" contradict each other' },
  { name: "selector: In values all excluded by NotIn", mutate: (s) => (s.ingressBackend.nodeSelector = { matchExpressions: [{ key: "zone", operator: "In", values: ["a", "b"] }, { key: "zone", operator: "NotIn", values: ["b", "a"] }] }), expect: 'ingressBackend.nodeSelector: can match no Node: its terms on label "zone"' },
  { name: "selector: two In sets that do not meet", mutate: (s) => (s.apiBackend.nodeSelector = { matchExpressions: [{ key: "zone", operator: "In", values: ["a"] }, { key: "zone", operator: "In", values: ["b"] }] }), expect: 'apiBackend.nodeSelector: can match no Node: its terms on label "zone"' },
  { name: "selector: matchLabels value excluded by NotIn", mutate: (s) => (s.apiBackend.nodeSelector = { matchLabels: { zone: "a" }, matchExpressions: [{ key: "zone", operator: "NotIn", values: ["a"] }] }), expect: 'apiBackend.nodeSelector: can match no Node: its terms on label "zone"' },
  { name: "selector: In on an absent label", mutate: (s) => (s.apiBackend.nodeSelector = { matchExpressions: [{ key: "zone", operator: "DoesNotExist" }, { key: "zone", operator: "In", values: ["a"] }] }), expect: 'apiBackend.nodeSelector: can match no Node: its terms on label "zone"' },
  { name: "duplicate backend address", mutate: (s) => s.apiBackend.addresses.push("192.168.100.10"), expect: "apiBackend.addresses[3]: duplicates 192.168.100.10" },
  { name: "bad selector operator", mutate: (s) => (s.apiBackend.nodeSelector = { matchExpressions: [{ key: "a", operator: "Equals" }] }), expect: "apiBackend.nodeSelector.matchExpressions[0].operator: must be one of In, NotIn, Exists, DoesNotExist" },
  { name: "router ID out of range", mutate: (s) => (s.vrrp = { routerId: 256 }), expect: "vrrp.routerId: must be at most 255" },
  { name: "router ID zero", mutate: (s) => (s.vrrp = { routerId: 0 }), expect: "vrrp.routerId: must be at least 1" },
  { name: "router ID not an integer", mutate: (s) => (s.vrrp = { routerId: 7.5 }), expect: "vrrp.routerId: must be an integer" },
  { name: "advert interval below 0.01 s", mutate: (s) => (s.vrrp = { advertInterval: 0.001 }), expect: "vrrp.advertInterval: must be at least 0.01" },
  { name: "advert interval not in centiseconds", mutate: (s) => (s.vrrp = { advertInterval: 0.125 }), expect: "vrrp.advertInterval: must be a multiple of 0.01 s" },
  { name: "advert interval as a string", mutate: (s) => (s.vrrp = { advertInterval: "100ms" }), expect: "vrrp.advertInterval: must be a number" },
  { name: "equal VRRP priorities", mutate: (s) => (s.vrrp = { priority: { primary: 100, secondary: 100 } }), expect: "vrrp.priority.secondary: must differ from vrrp.priority.primary" },
  { name: "priority 255 (reserved for address owners)", mutate: (s) => (s.vrrp = { priority: { primary: 255, secondary: 100 } }), expect: "vrrp.priority.primary: must be at most 254" },
  { name: "port out of range", mutate: (s) => (s.conntrack = { port: 70000 }), expect: "conntrack.port: must be at most 65535" },
  { name: "metrics on a frontend port", mutate: (s) => (s.metrics = { port: 6443 }), expect: "metrics.port: must not be a frontend port (6443, 22623, 80, 443)" },
  { name: "health path without slash", mutate: (s) => (s.ingressBackend.healthPath = "healthz"), expect: "ingressBackend.healthPath: must be an absolute URL path" },
  { name: "proxyProtocol as a string", mutate: (s) => (s.ingressBackend.proxyProtocol = "v2"), expect: "ingressBackend.proxyProtocol: must be true or false" },
  { name: "image by tag only", mutate: (s) => (s.image = "registry.lab:5000/edgepair/lb:1.2"), expect: "image: must be an image reference pinned by digest: REPOSITORY@sha256:<64 hex>" },
  { name: "image digest too short", mutate: (s) => (s.image = "registry.lab:5000/edgepair/lb@sha256:abc"), expect: "image: must be an image reference pinned by digest: REPOSITORY@sha256:<64 hex>" },
  { name: "missing platform", mutate: (s) => delete s.platform, expect: "platform: is required" },
  { name: "unknown platform", mutate: (s) => (s.platform.type = "aws"), expect: "platform.type: must be one of libvirt, openstack" },
  { name: "public network overlapping the cluster network", mutate: (s) => (s.platform.publicNetwork = { cidr: "192.168.0.0/16" }), expect: "platform.publicNetwork.cidr: must not overlap network.cidr" },
  { name: "next hop outside the public network", mutate: (s) => (s.platform.publicNetwork.nextHop = "10.9.9.9"), expect: "platform.publicNetwork.nextHop: must be inside platform.publicNetwork.cidr" },
  { name: "next hop equal to an LB address", mutate: (s) => (s.platform.publicNetwork.nextHop = "172.31.250.2"), expect: "platform.publicNetwork.nextHop: must differ from the public gateway and LB addresses (172.31.250.2)" },
  { name: "libvirt floating IP inside the public network", mutate: (s) => (s.virtualAddresses.api[1].address = "172.31.250.100"), expect: "virtualAddresses.api[1].address: must be outside platform.publicNetwork.cidr" },
  { name: "openstack VIP outside the public network", mutate: (s) => (s.platform = { type: "openstack", publicNetwork: { cidr: "203.0.113.0/24" } }), expect: "virtualAddresses.api[1].address: must be inside platform.publicNetwork.cidr: on openstack" },
  { name: "openstack with a next hop", mutate: (s) => (s.platform.type = "openstack"), expect: "platform.publicNetwork.nextHop: is only for platform libvirt" },
  { name: "spec is not a mapping", mutate: (s) => Object.keys(s).forEach((k) => delete s[k]), expect: "clusterName: is required" },
];

describe("spec catalog: each bad spec gets its field.path: rule", () => {
  test("the catalog has at least 40 cases", () => expect(cases.length).toBeGreaterThanOrEqual(40));

  test.each(cases.map((c) => [c.name, c] as const))("%s", (_name, c) => {
    const raw = devSpecRaw() as Raw;
    c.mutate(raw);
    const r = validateSpec(raw);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const lines = r.problems.map(formatProblem);
    expect(lines.some((l) => l.startsWith(c.expect))).toBe(true);
    if (!lines.some((l) => l.startsWith(c.expect))) throw new Error(`expected "${c.expect}", got:\n${lines.join("\n")}`);
  });

  test("every problem is reported at once", () => {
    const raw = devSpecRaw() as Raw;
    raw.distribution = "rke2";
    raw.network.gateway = "10.0.0.1";
    raw.virtualAddresses.api[1].address = "198.51.100.0/24";
    raw.vrrp = { routerId: 300 };
    raw.extra = true;
    const r = validateSpec(raw);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.problems.map((p) => p.path).sort()).toEqual(
      ["distribution", "extra", "network.gateway", "virtualAddresses.api[1].address", "vrrp.routerId"].sort(),
    );
  });

  test("a non-object spec is one clear problem", () => {
    const r = validateSpec("clusterName: lab");
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.problems.map(formatProblem)).toContain("(spec): must be a mapping");
  });
});

describe("selectors that look contradictory but can match (counter-cases)", () => {
  const ok = [
    { matchExpressions: [{ key: "zone", operator: "In", values: ["a", "b"] }, { key: "zone", operator: "NotIn", values: ["a"] }] },
    { matchLabels: { zone: "a" }, matchExpressions: [{ key: "zone", operator: "Exists" }, { key: "other", operator: "DoesNotExist" }] },
    { matchExpressions: [{ key: "zone", operator: "NotIn", values: ["a"] }, { key: "zone", operator: "DoesNotExist" }] },
    { matchExpressions: [{ key: "zone", operator: "In", values: ["a", "b"] }, { key: "zone", operator: "In", values: ["b", "c"] }] },
  ];
  test.each(ok.map((sel, i) => [i, sel] as const))("selector %i validates", (_i, sel) => {
    const s = devSpecRaw() as Raw;
    s.apiBackend.nodeSelector = sel;
    expect(validateSpec(s)).toMatchObject({ ok: true });
  });
});

describe("valid variants", () => {
  test.each(variants.map((v) => [v.name, v] as const))("%s validates", (_n, v) => {
    const r = validateSpec(v.raw);
    if (!r.ok) throw new Error(r.problems.map(formatProblem).join("\n"));
  });

  test("optional parts left out give a smaller configuration, not a crash", () => {
    const noIngress = variants.find((v) => v.name === "no-ingress")!.spec;
    expect(noIngress.derived.frontends.ingress).toEqual([]);
    expect(noIngress.ingressBackend).toBeUndefined();
    const noNat = variants.find((v) => v.name === "no-nat")!.spec;
    expect(noNat.virtualAddresses.nat).toBeUndefined();
    expect(noNat.derived.privateVips.map((a) => a.address)).toEqual(["192.168.100.100"]); // no gateway VIP
  });
});
