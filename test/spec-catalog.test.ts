/**
 * The catalog of bad specs: each mutation of the dev spec must produce exactly the expected `<field.path>: <rule>`
 * line (among possibly others), and the valid variants must produce none.
 */
import { immutableChanges } from "../spec/immutable";
import { resolveSpec, validateSpec } from "../spec/resolve";
import type { ResolvedSpec } from "../spec/types";
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
  {
    name: "clusterName with capitals",
    mutate: (s) => (s.clusterName = "Lab"),
    expect: "clusterName: must be a DNS label",
  },
  {
    name: "clusterName too long",
    mutate: (s) => (s.clusterName = "a".repeat(41)),
    expect: "clusterName: must have at most 40 characters",
  },
  {
    name: "unknown distribution",
    mutate: (s) => (s.distribution = "rke2"),
    expect: "distribution: must be one of openshift, talos, generic",
  },
  { name: "typo'd top-level field", mutate: (s) => (s.virtualAdresses = {}), expect: "virtualAdresses: unknown field" },
  {
    name: "typo'd nested field",
    mutate: (s) => (s.network.gatway = "192.168.100.1"),
    expect: "network.gatway: unknown field",
  },
  {
    name: "typo in a VIP entry",
    mutate: (s) => (s.virtualAddresses.api[0].adress = "x"),
    expect: "virtualAddresses.api[0].adress: unknown field",
  },
  {
    name: "bad CIDR",
    mutate: (s) => (s.network.cidr = "192.168.100.0/33"),
    expect: "network.cidr: must be a CIDR such as 192.168.100.0/24",
  },
  {
    name: "CIDR not a network address",
    mutate: (s) => (s.network.cidr = "192.168.100.7/24"),
    expect: "network.cidr: must be a network address: 192.168.100.0/24",
  },
  {
    name: "CIDR without prefix",
    mutate: (s) => (s.network.cidr = "192.168.100.0"),
    expect: "network.cidr: must be a CIDR",
  },
  {
    name: "IPv6 cluster network",
    mutate: (s) => (s.network = { cidr: "fd00::/64" }),
    expect: "network.cidr: must be an IPv4 network",
  },
  {
    name: "network too small",
    mutate: (s) => (s.network = { cidr: "192.168.100.0/30" }),
    expect: "network.cidr: must hold at least a gateway and two LB addresses",
  },
  {
    name: "gateway outside the network",
    mutate: (s) => (s.network.gateway = "10.0.0.1"),
    expect: "network.gateway: must be inside network.cidr 192.168.100.0/24",
  },
  {
    name: "gateway is the broadcast address",
    mutate: (s) => (s.network.gateway = "192.168.100.255"),
    expect: "network.gateway: must not be the broadcast address",
  },
  {
    name: "gateway equal to an LB address",
    mutate: (s) => (s.network.gateway = "192.168.100.2"),
    expect: "network.lbAddresses[0]: must differ from the gateway 192.168.100.2",
  },
  {
    name: "LB addresses equal",
    mutate: (s) => (s.network.lbAddresses = ["192.168.100.2", "192.168.100.2"]),
    expect: "network.lbAddresses[1]: must differ from lbAddresses[0]",
  },
  {
    name: "LB address outside the network",
    mutate: (s) => (s.network.lbAddresses = ["192.168.100.2", "192.168.101.3"]),
    expect: "network.lbAddresses[1]: must be inside network.cidr",
  },
  {
    name: "only one LB address",
    mutate: (s) => (s.network.lbAddresses = ["192.168.100.2"]),
    expect: "network.lbAddresses: must have at least 2 items",
  },
  {
    name: "LB address not an IP",
    mutate: (s) => (s.network.lbAddresses = ["192.168.100.2", "lb2"]),
    expect: "network.lbAddresses[1]: must be an IPv4 or IPv6 address",
  },
  {
    name: "empty api list",
    mutate: (s) => (s.virtualAddresses.api = []),
    expect: "virtualAddresses.api: must have at least 1 item",
  },
  {
    name: "missing api list",
    mutate: (s) => delete s.virtualAddresses.api,
    expect: "virtualAddresses.api: is required",
  },
  {
    name: "a /24 given as a VIP",
    mutate: (s) => (s.virtualAddresses.api[1].address = "198.51.100.0/24"),
    expect: "virtualAddresses.api[1].address: must be a single address (/32), not the range /24",
  },
  {
    name: "IPv6 range as a VIP",
    mutate: (s) => s.virtualAddresses.api.push({ address: "2001:db8::/64", type: "public" }),
    expect: "virtualAddresses.api[2].address: must be a single address (/128), not the range /64",
  },
  {
    name: "VIP is not an address",
    mutate: (s) => (s.virtualAddresses.api[1].address = "198.51.100.300"),
    expect: "virtualAddresses.api[1].address: must be an IPv4 or IPv6 address",
  },
  {
    name: "VIP with a short IPv4 form",
    mutate: (s) => (s.virtualAddresses.api[1].address = "198.51.100"),
    expect: "virtualAddresses.api[1].address: must be an IPv4 or IPv6 address",
  },
  {
    name: "duplicate VIP",
    mutate: (s) => s.virtualAddresses.api.push({ address: "198.51.100.100/32", type: "public" }),
    expect: "virtualAddresses.api[2].address: duplicates 198.51.100.100 earlier in the same list",
  },
  {
    name: "same address private and public",
    mutate: (s) => (s.virtualAddresses.ingress[0] = { address: "192.168.100.100", type: "public" }),
    expect:
      "virtualAddresses.ingress[0].type: must match virtualAddresses.api[0].type: 192.168.100.100 cannot be both private and public",
  },
  {
    name: "unknown VIP type",
    mutate: (s) => (s.virtualAddresses.api[0].type = "internal"),
    expect: "virtualAddresses.api[0].type: must be one of private, public",
  },
  {
    name: "private VIP outside the private network",
    mutate: (s) => (s.virtualAddresses.api[0].address = "10.1.2.3"),
    expect: "virtualAddresses.api[0].address: is private, so it must be inside network.cidr 192.168.100.0/24",
  },
  {
    name: "private VIP equal to the gateway",
    mutate: (s) => (s.virtualAddresses.api[0].address = "192.168.100.1"),
    expect: "virtualAddresses.api[0].address: must not be the gateway or an LB address (192.168.100.1)",
  },
  {
    name: "private VIP equal to an LB address",
    mutate: (s) => (s.virtualAddresses.api[0].address = "192.168.100.3"),
    expect: "virtualAddresses.api[0].address: must not be the gateway or an LB address (192.168.100.3)",
  },
  {
    name: "public VIP inside the private network",
    mutate: (s) => (s.virtualAddresses.api[1].address = "192.168.100.200"),
    expect: "virtualAddresses.api[1].address: is public, so it must be outside network.cidr",
  },
  {
    name: "NAT address private",
    mutate: (s) => (s.virtualAddresses.nat = { address: "192.168.100.253", type: "private" }),
    expect: "virtualAddresses.nat.type: must be public: egress is translated to an address outside the cluster network",
  },
  {
    name: "NAT address IPv6",
    mutate: (s) => (s.virtualAddresses.nat = { address: "2001:db8::253", type: "public" }),
    expect: "virtualAddresses.nat.address: must be IPv4: the cluster network is IPv4",
  },
  {
    name: "only public addresses and no nat",
    mutate: (s) => {
      s.virtualAddresses.api.shift();
      delete s.virtualAddresses.nat;
    },
    expect: "virtualAddresses: needs a private address or nat",
  },
  {
    name: "empty ingress list",
    mutate: (s) => (s.virtualAddresses.ingress = []),
    expect: "virtualAddresses.ingress: must have at least 1 item",
  },
  {
    name: "ingress VIPs without ingressBackend",
    mutate: (s) => delete s.ingressBackend,
    expect: "ingressBackend: is required when virtualAddresses.ingress is set",
  },
  {
    name: "ingressBackend without ingress VIPs",
    mutate: (s) => delete s.virtualAddresses.ingress,
    expect: "ingressBackend: is set but virtualAddresses.ingress is not",
  },
  {
    name: "apiBackend with neither selector nor addresses",
    mutate: (s) => (s.apiBackend = {}),
    expect: "apiBackend: needs a nodeSelector or at least one address",
  },
  {
    name: "API pool filled only by Nodes",
    mutate: (s) => delete s.apiBackend.addresses,
    expect:
      "apiBackend.addresses: needs at least one address: the API VIP must have a server before any Node registers through it",
  },
  {
    name: "API pool with an empty address list",
    mutate: (s) => (s.apiBackend.addresses = []),
    expect: "apiBackend.addresses: needs at least one address",
  },
  {
    name: "selector: a label required and absent",
    mutate: (s) =>
      (s.ingressBackend.nodeSelector.matchExpressions = [
        { key: "node-role.kubernetes.io/worker", operator: "DoesNotExist" },
      ]),
    expect:
      'ingressBackend.nodeSelector: can match no Node: its terms on label "node-role.kubernetes.io/worker" contradict each other',
  },
  {
    name: "selector: In values all excluded by NotIn",
    mutate: (s) =>
      (s.ingressBackend.nodeSelector = {
        matchExpressions: [
          { key: "zone", operator: "In", values: ["a", "b"] },
          { key: "zone", operator: "NotIn", values: ["b", "a"] },
        ],
      }),
    expect: 'ingressBackend.nodeSelector: can match no Node: its terms on label "zone"',
  },
  {
    name: "selector: two In sets that do not meet",
    mutate: (s) =>
      (s.apiBackend.nodeSelector = {
        matchExpressions: [
          { key: "zone", operator: "In", values: ["a"] },
          { key: "zone", operator: "In", values: ["b"] },
        ],
      }),
    expect: 'apiBackend.nodeSelector: can match no Node: its terms on label "zone"',
  },
  {
    name: "selector: matchLabels value excluded by NotIn",
    mutate: (s) =>
      (s.apiBackend.nodeSelector = {
        matchLabels: { zone: "a" },
        matchExpressions: [{ key: "zone", operator: "NotIn", values: ["a"] }],
      }),
    expect: 'apiBackend.nodeSelector: can match no Node: its terms on label "zone"',
  },
  {
    name: "selector: In on an absent label",
    mutate: (s) =>
      (s.apiBackend.nodeSelector = {
        matchExpressions: [
          { key: "zone", operator: "DoesNotExist" },
          { key: "zone", operator: "In", values: ["a"] },
        ],
      }),
    expect: 'apiBackend.nodeSelector: can match no Node: its terms on label "zone"',
  },
  {
    name: "duplicate backend address",
    mutate: (s) => s.apiBackend.addresses.push("192.168.100.10"),
    expect: "apiBackend.addresses[3]: duplicates 192.168.100.10",
  },
  {
    name: "bad selector operator",
    mutate: (s) => (s.apiBackend.nodeSelector = { matchExpressions: [{ key: "a", operator: "Equals" }] }),
    expect: "apiBackend.nodeSelector.matchExpressions[0].operator: must be one of In, NotIn, Exists, DoesNotExist",
  },
  // issue 18: accepted before, wrong (each with a counter-case below)
  ...['"', "'", "#", "$", "${HOME}", "\\"].map((c): Case => ({
    name: `healthPath with ${c}`,
    mutate: (s) => (s.ingressBackend.healthPath = `/healthz${c}x`),
    expect:
      "ingressBackend.healthPath: must be an absolute URL path starting with /, without spaces, quotes, #, $ or backslash",
  })),
  {
    name: "VIP 0.0.0.0",
    mutate: (s) => (s.virtualAddresses.api[1].address = "0.0.0.0"),
    expect: "virtualAddresses.api[1].address: must be a unicast address: 0.0.0.0 is the unspecified address",
  },
  {
    name: "VIP ::",
    mutate: (s) => s.virtualAddresses.api.push({ address: "::", type: "public" }),
    expect: "virtualAddresses.api[2].address: must be a unicast address: :: is the unspecified address",
  },
  {
    name: "VIP loopback",
    mutate: (s) => (s.virtualAddresses.api[1].address = "127.0.0.1"),
    expect: "virtualAddresses.api[1].address: must be a unicast address: 127.0.0.1 is loopback",
  },
  {
    name: "VIP ::1",
    mutate: (s) => s.virtualAddresses.api.push({ address: "::1", type: "public" }),
    expect: "virtualAddresses.api[2].address: must be a unicast address: ::1 is loopback",
  },
  {
    name: "VIP multicast (VRRP's own group)",
    mutate: (s) => (s.virtualAddresses.api[1].address = "224.0.0.18"),
    expect: "virtualAddresses.api[1].address: must be a unicast address: 224.0.0.18 is multicast",
  },
  {
    name: "VIP broadcast",
    mutate: (s) => (s.virtualAddresses.api[1].address = "255.255.255.255"),
    expect: "virtualAddresses.api[1].address: must be a unicast address: 255.255.255.255 is the broadcast address",
  },
  {
    name: "VIP link-local with a zone",
    mutate: (s) => s.virtualAddresses.api.push({ address: "fe80::1%eth0", type: "public" }),
    expect: "virtualAddresses.api[2].address: must not carry an interface zone",
  },
  {
    name: "VIP link-local",
    mutate: (s) => s.virtualAddresses.api.push({ address: "fe80::1", type: "public" }),
    expect: "virtualAddresses.api[2].address: must be a unicast address: fe80::1 is link-local",
  },
  {
    name: "VIP IPv4-mapped IPv6",
    mutate: (s) => s.virtualAddresses.api.push({ address: "::ffff:198.51.100.7", type: "public" }),
    expect: "virtualAddresses.api[2].address: must be an IPv4 or IPv6 address",
  },
  {
    name: "backend loopback",
    mutate: (s) => s.apiBackend.addresses.push("127.0.0.1"),
    expect: "apiBackend.addresses[3]: must be a unicast address: 127.0.0.1 is loopback",
  },
  {
    name: "cluster network multicast",
    mutate: (s) => (s.network = { cidr: "224.0.0.0/24" }),
    expect: "network.cidr: must be a unicast network: 224.0.0.0/24 is multicast",
  },
  {
    name: "cluster network absurdly wide",
    mutate: (s) => (s.network = { cidr: "0.0.0.0/1" }),
    expect: "network.cidr: must be /8 or narrower, not /1",
  },
  {
    name: "public network loopback",
    mutate: (s) => (s.platform.publicNetwork.cidr = "127.0.0.0/24"),
    expect: "platform.publicNetwork.cidr: must be a unicast network: 127.0.0.0/24 is loopback",
  },
  {
    name: "backend at the private API VIP",
    mutate: (s) => s.apiBackend.addresses.push("192.168.100.100"),
    expect:
      "apiBackend.addresses[3]: must not be one of the pair's own addresses: 192.168.100.100 is a virtual address (HAProxy would forward to itself)",
  },
  {
    name: "backend at an LB address",
    mutate: (s) => s.apiBackend.addresses.push("192.168.100.3"),
    expect: "apiBackend.addresses[3]: must not be one of the pair's own addresses: 192.168.100.3 is an LB address",
  },
  {
    name: "backend at the gateway",
    mutate: (s) => (s.ingressBackend.addresses = ["192.168.100.1"]),
    expect: "ingressBackend.addresses[0]: must not be one of the pair's own addresses: 192.168.100.1 is the gateway",
  },
  {
    name: "backend at a public VIP",
    mutate: (s) => (s.ingressBackend.addresses = ["198.51.100.80"]),
    expect:
      "ingressBackend.addresses[0]: must not be one of the pair's own addresses: 198.51.100.80 is a virtual address",
  },
  {
    name: "IPv6 backend on an IPv4 cluster network",
    mutate: (s) => s.apiBackend.addresses.push("fd00::10"),
    expect: "apiBackend.addresses[3]: must be IPv4 like network.cidr",
  },
  {
    name: "talos' default httpsPort equals an explicit httpPort",
    mutate: (s) => (s.ingressBackend.httpPort = 30443),
    expect:
      "ingressBackend.httpsPort: must differ from ingressBackend.httpPort: both are 30443 (its default for this distribution)",
  },
  {
    name: "an explicit httpsPort equals talos' default httpPort",
    mutate: (s) => (s.ingressBackend.httpsPort = 30080),
    expect:
      "ingressBackend.httpsPort: must differ from ingressBackend.httpPort: both are 30080 (httpPort's default for this distribution)",
  },
  {
    name: "metrics on sshd's port",
    mutate: (s) => (s.metrics = { port: 22 }),
    expect: "metrics.port: must not be 22: sshd listens there on every LB address",
  },
  {
    name: "metrics on the conntrack sync port",
    mutate: (s) => (s.metrics = { port: 3780 }),
    expect: "metrics.port: must differ from the conntrack sync port 3780",
  },
  {
    name: "conntrack sync on the default metrics port",
    mutate: (s) => (s.conntrack = { port: 8404 }),
    expect: "conntrack.port: must differ from the metrics port 8404 (its default)",
  },
  {
    name: "IPv6 public network with IPv4 VIPs and IPv4 NAT",
    mutate: (s) =>
      (s.platform.publicNetwork = {
        cidr: "2001:db8:250::/64",
        gateway: "2001:db8:250::1",
        lbAddresses: ["2001:db8:250::2", "2001:db8:250::3"],
        nextHop: "2001:db8:250::10",
      }),
    expect: "virtualAddresses.api[1].address: cannot be IPv4 with an IPv6 platform.publicNetwork",
  },
  {
    name: "IPv4 NAT with an IPv6 public network",
    mutate: (s) =>
      (s.platform.publicNetwork = {
        cidr: "2001:db8:250::/64",
        gateway: "2001:db8:250::1",
        lbAddresses: ["2001:db8:250::2", "2001:db8:250::3"],
        nextHop: "2001:db8:250::10",
      }),
    expect: "virtualAddresses.nat.address: needs an IPv4 platform.publicNetwork",
  },
  {
    name: "router ID out of range",
    mutate: (s) => (s.vrrp = { routerId: 256 }),
    expect: "vrrp.routerId: must be at most 255",
  },
  { name: "router ID zero", mutate: (s) => (s.vrrp = { routerId: 0 }), expect: "vrrp.routerId: must be at least 1" },
  {
    name: "router ID not an integer",
    mutate: (s) => (s.vrrp = { routerId: 7.5 }),
    expect: "vrrp.routerId: must be an integer",
  },
  {
    name: "advert interval below 0.01 s",
    mutate: (s) => (s.vrrp = { advertInterval: 0.001 }),
    expect: "vrrp.advertInterval: must be at least 0.01",
  },
  {
    name: "advert interval not in centiseconds",
    mutate: (s) => (s.vrrp = { advertInterval: 0.125 }),
    expect: "vrrp.advertInterval: must be a multiple of 0.01 s",
  },
  {
    name: "advert interval as a string",
    mutate: (s) => (s.vrrp = { advertInterval: "100ms" }),
    expect: "vrrp.advertInterval: must be a number",
  },
  {
    name: "equal VRRP priorities",
    mutate: (s) => (s.vrrp = { priority: { primary: 100, secondary: 100 } }),
    expect: "vrrp.priority.secondary: must differ from vrrp.priority.primary",
  },
  {
    name: "priority 255 (reserved for address owners)",
    mutate: (s) => (s.vrrp = { priority: { primary: 255, secondary: 100 } }),
    expect: "vrrp.priority.primary: must be at most 254",
  },
  {
    name: "port out of range",
    mutate: (s) => (s.conntrack = { port: 70000 }),
    expect: "conntrack.port: must be at most 65535",
  },
  {
    name: "metrics on a frontend port",
    mutate: (s) => (s.metrics = { port: 6443 }),
    expect: "metrics.port: must not be a frontend port (6443, 22623, 80, 443)",
  },
  {
    name: "health path without slash",
    mutate: (s) => (s.ingressBackend.healthPath = "healthz"),
    expect: "ingressBackend.healthPath: must be an absolute URL path",
  },
  {
    name: "proxyProtocol as a string",
    mutate: (s) => (s.ingressBackend.proxyProtocol = "v2"),
    expect: "ingressBackend.proxyProtocol: must be true or false",
  },
  {
    name: "image by tag only",
    mutate: (s) => (s.image = "registry.lab:5000/edgepair/lb:1.2"),
    expect: "image: must be an image reference pinned by digest: REPOSITORY@sha256:<64 hex>",
  },
  {
    name: "image digest too short",
    mutate: (s) => (s.image = "registry.lab:5000/edgepair/lb@sha256:abc"),
    expect: "image: must be an image reference pinned by digest: REPOSITORY@sha256:<64 hex>",
  },
  { name: "missing platform", mutate: (s) => delete s.platform, expect: "platform: is required" },
  {
    name: "unknown platform",
    mutate: (s) => (s.platform.type = "aws"),
    expect: "platform.type: must be one of libvirt, openstack",
  },
  // the sync link (render/peer-link.ts)
  {
    name: "sync network IPv6",
    mutate: (s) => (s.syncNetwork = { cidr: "fd00:1::/64" }),
    expect: "syncNetwork.cidr: must be an IPv4 network: VRRPv3 adverts carry the IPv4 VIPs only over IPv4",
  },
  {
    name: "sync network too small",
    mutate: (s) => (s.syncNetwork = { cidr: "172.31.255.0/31" }),
    expect: "syncNetwork.cidr: must hold two LB addresses (/30 or wider)",
  },
  {
    name: "sync network overlapping the cluster network",
    mutate: (s) => (s.syncNetwork = { cidr: "192.168.100.248/29" }),
    expect: "syncNetwork.cidr: must not overlap network.cidr: the link is the LBs' own",
  },
  {
    name: "sync network overlapping the public network",
    mutate: (s) => (s.syncNetwork = { cidr: "172.31.250.0/29" }),
    expect: "syncNetwork.cidr: must not overlap platform.publicNetwork.cidr: the link is the LBs' own",
  },
  {
    name: "sync addresses equal",
    mutate: (s) => (s.syncNetwork = { cidr: "10.255.0.0/29", lbAddresses: ["10.255.0.1", "10.255.0.1"] }),
    expect: "syncNetwork.lbAddresses[1]: must differ from syncNetwork.lbAddresses[0]",
  },
  {
    name: "sync address outside its network",
    mutate: (s) => (s.syncNetwork = { cidr: "10.255.0.0/29", lbAddresses: ["10.255.0.1", "10.255.0.9"] }),
    expect: "syncNetwork.lbAddresses[1]: must be inside syncNetwork.cidr 10.255.0.0/29",
  },
  {
    name: "sync network /30 on libvirt",
    mutate: (s) => (s.syncNetwork = { cidr: "10.255.0.0/30" }),
    expect: "syncNetwork.cidr: must be /29 or wider on libvirt: the host's bridge takes an address beside the two LBs'",
  },
  {
    name: "sync address the broadcast address",
    mutate: (s) => (s.syncNetwork = { cidr: "10.255.0.0/29", lbAddresses: ["10.255.0.1", "10.255.0.7"] }),
    expect: "syncNetwork.lbAddresses[1]: must not be the network or broadcast address",
  },
  {
    name: "public VIP inside the sync network",
    mutate: (s) => (s.syncNetwork = { cidr: "198.51.100.96/29" }),
    expect:
      "virtualAddresses.api[1].address: must be outside syncNetwork.cidr 198.51.100.96/29: that link carries only VRRP and the conntrack sync",
  },
  {
    name: "sync network with an unknown field",
    mutate: (s) => (s.syncNetwork = { cidr: "10.255.0.0/30", gateway: "10.255.0.1" }),
    expect: "syncNetwork.gateway: unknown field",
  },
  {
    name: "public network overlapping the cluster network",
    mutate: (s) => (s.platform.publicNetwork = { cidr: "192.168.0.0/16" }),
    expect: "platform.publicNetwork.cidr: must not overlap network.cidr",
  },
  {
    name: "next hop outside the public network",
    mutate: (s) => (s.platform.publicNetwork.nextHop = "10.9.9.9"),
    expect: "platform.publicNetwork.nextHop: must be inside platform.publicNetwork.cidr",
  },
  {
    name: "next hop equal to an LB address",
    mutate: (s) => (s.platform.publicNetwork.nextHop = "172.31.250.2"),
    expect: "platform.publicNetwork.nextHop: must differ from the public gateway and LB addresses (172.31.250.2)",
  },
  {
    name: "libvirt floating IP inside the public network",
    mutate: (s) => (s.virtualAddresses.api[1].address = "172.31.250.100"),
    expect: "virtualAddresses.api[1].address: must be outside platform.publicNetwork.cidr",
  },
  {
    name: "openstack VIP outside the public network",
    mutate: (s) => (s.platform = { type: "openstack", publicNetwork: { cidr: "203.0.113.0/24" } }),
    expect: "virtualAddresses.api[1].address: must be inside platform.publicNetwork.cidr: on openstack",
  },
  {
    name: "openstack with a next hop",
    mutate: (s) => (s.platform.type = "openstack"),
    expect: "platform.publicNetwork.nextHop: is only for platform libvirt",
  },
  {
    name: "spec is not a mapping",
    mutate: (s) => Object.keys(s).forEach((k) => delete s[k]),
    expect: "clusterName: is required",
  },
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
    if (!lines.some((l) => l.startsWith(c.expect)))
      throw new Error(`expected "${c.expect}", got:\n${lines.join("\n")}`);
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
    if (!r.ok)
      expect(r.problems.map((p) => p.path).sort()).toEqual(
        ["distribution", "extra", "network.gateway", "virtualAddresses.api[1].address", "vrrp.routerId"].sort(),
      );
  });

  test("a non-object spec is one clear problem", () => {
    const r = validateSpec("clusterName: lab");
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.problems.map(formatProblem)).toContain("(spec): must be a mapping");
  });
});

describe("issue 18: OpenStack public VIPs that are the public network's own addresses", () => {
  const os = () => structuredClone(variants.find((v) => v.name === "openstack")!.raw) as Raw;
  test.each([
    [
      "an LB's public address",
      "203.0.113.11",
      "virtualAddresses.api[1].address: must not be the public gateway or an LB's public address (203.0.113.11)",
    ],
    [
      "the public gateway",
      "203.0.113.1",
      "virtualAddresses.api[1].address: must not be the public gateway or an LB's public address (203.0.113.1)",
    ],
    [
      "the network address",
      "203.0.113.0",
      "virtualAddresses.api[1].address: must not be the public network's network or broadcast address",
    ],
    [
      "the broadcast address",
      "203.0.113.255",
      "virtualAddresses.api[1].address: must not be the public network's network or broadcast address",
    ],
  ])("%s", (_n, address, expected) => {
    const s = os();
    s.virtualAddresses.api[1].address = address;
    const r = validateSpec(s);
    expect(r.ok ? [] : r.problems.map(formatProblem)).toContain(expected);
  });
  test("counter-case: any other address of the public network", () => {
    const s = os();
    s.virtualAddresses.api[1].address = "203.0.113.101";
    expect(validateSpec(s)).toMatchObject({ ok: true });
  });
});

describe("issue 18: counter-cases of the new rules (what stays valid)", () => {
  const ok = (name: string, mutate: (s: Raw) => void, base: () => Raw = () => devSpecRaw() as Raw) =>
    test(name, () => {
      const s = base();
      mutate(s);
      const r = validateSpec(s);
      expect(r.ok ? [] : r.problems.map(formatProblem)).toEqual([]);
    });
  ok(
    "a health path with a query, & and %-escapes",
    (s) => (s.ingressBackend.healthPath = "/healthz/ready?probe=1&x=%2F"),
  );
  ok(
    "a /8 cluster network",
    (s) => (s.network.cidr = "10.0.0.0/8"),
    () => structuredClone(variants.find((v) => v.name === "talos-minimal")!.raw) as Raw,
  );
  ok("distinct ingress ports next to talos' defaults", (s) => (s.ingressBackend.httpPort = 30081));
  ok(
    "metrics and conntrack on ports of their own",
    (s) => ((s.metrics = { port: 9404 }), (s.conntrack = { port: 3781 })),
  );
  ok("a static backend outside the cluster network but of its family", (s) => s.apiBackend.addresses.push("10.0.0.5"));
  ok(
    "IPv6 VIPs beside an IPv4 public network (the openshift-ipv6 variant)",
    () => undefined,
    () => structuredClone(variants.find((v) => v.name === "openshift-ipv6")!.raw) as Raw,
  );
});

describe("selectors that look contradictory but can match (counter-cases)", () => {
  const ok = [
    {
      matchExpressions: [
        { key: "zone", operator: "In", values: ["a", "b"] },
        { key: "zone", operator: "NotIn", values: ["a"] },
      ],
    },
    {
      matchLabels: { zone: "a" },
      matchExpressions: [
        { key: "zone", operator: "Exists" },
        { key: "other", operator: "DoesNotExist" },
      ],
    },
    {
      matchExpressions: [
        { key: "zone", operator: "NotIn", values: ["a"] },
        { key: "zone", operator: "DoesNotExist" },
      ],
    },
    {
      matchExpressions: [
        { key: "zone", operator: "In", values: ["a", "b"] },
        { key: "zone", operator: "In", values: ["b", "c"] },
      ],
    },
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

describe("the agent's own immutability check: the sync link", () => {
  const withSync = (cidr?: string) => {
    const raw = devSpecRaw() as Raw;
    if (cidr) raw.syncNetwork = { cidr };
    return resolveSpec(raw);
  };
  test("adding, moving or removing syncNetwork is refused with the field named; the same link is not a change", () => {
    const paths = (a: ResolvedSpec, b: ResolvedSpec) => immutableChanges(a, b).map((p) => p.path);
    expect(paths(withSync(), withSync("172.31.255.248/29"))).toEqual(["syncNetwork"]);
    expect(paths(withSync("172.31.255.248/29"), withSync("172.31.255.240/29"))).toEqual(["syncNetwork"]);
    expect(paths(withSync("172.31.255.248/29"), withSync())).toEqual(["syncNetwork"]);
    expect(immutableChanges(withSync("172.31.255.248/29"), withSync("172.31.255.248/29"))).toEqual([]);
    expect(immutableChanges(withSync(), withSync("172.31.255.248/29"))[0]!.rule).toMatch(
      /it runs none \(the cluster network\)$/,
    );
  });
});
