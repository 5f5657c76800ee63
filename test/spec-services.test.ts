/**
 * The catalog of bad `serviceLoadBalancers` and `extraServices` (spec/service-rules.ts, spec/pools.ts, the schema):
 * each mutation of a valid spec must produce exactly the expected `<field.path>: <rule>` line (among possibly others),
 * and each counter-case, a near miss that is fine, must validate. Collisions are judged after defaults (the metrics
 * and conntrack ports), and inputs an attacker would try (quotes, '#', '$', huge lists and strings) get a rule, not a
 * crash or a slow regular expression.
 */
import { formatProblem } from "../spec/errors";
import { validateSpec } from "../spec/resolve";
import { servicesRaw, variants } from "./fixtures/variants";

type Raw = Record<string, any>; // test-only: mutations reach into arbitrary depth

interface Case {
  name: string;
  mutate: (s: Raw) => void;
  /** the whole line, as `edgepair validate` prints it */
  expect: string;
  base?: () => Raw;
}

/** The openstack variant with a public pool inside its public network (203.0.113.0/24) and a private one. */
function openstackServicesRaw(): Raw {
  const raw = structuredClone(variants.find((v) => v.name === "openstack")!.raw) as Raw;
  raw.serviceLoadBalancers = {
    pools: [
      { name: "public", addresses: ["203.0.113.128/27"], type: "public" },
      { name: "internal", addresses: ["192.168.100.200-192.168.100.239"], type: "private" },
    ],
  };
  raw.extraServices = [
    {
      name: "mqtt",
      protocol: "TCP",
      frontend: { address: "203.0.113.130", port: 8883 },
      backend: { nodePort: 30883, addresses: ["192.168.100.21"] },
    },
  ];
  return raw;
}

const base = () => servicesRaw() as Raw;
const pool = (i: number) => `serviceLoadBalancers.pools[${i}]`;
const DNS_LABEL_RULE =
  "must be a DNS label: lowercase letters, digits and '-', starting and ending with a letter or digit";
const CLASS_RULE =
  "serviceLoadBalancers.loadBalancerClass: must be a prefixed name such as edgepair.io/pair (a DNS subdomain, '/', a name), as Kubernetes takes it";
const IPV4_ONLY = "must be IPv4: the cluster network is IPv4, and the kernel does not translate between families";
const NOT_A_POOL_ENTRY = "must be a CIDR (198.51.100.128/27) or a range first-last (192.168.100.200-192.168.100.239)";

/** Sets extraServices[i].frontend.port (and the address, when given). */
const frontend =
  (i: number, port: number, address?: string) =>
  (s: Raw): void => {
    s.extraServices[i].frontend.port = port;
    if (address) s.extraServices[i].frontend.address = address;
  };

const poolCases: Case[] = [
  {
    name: "pool entry that is neither a CIDR nor a range",
    mutate: (s) => (s.serviceLoadBalancers.pools[0].addresses = ["public"]),
    expect: `${pool(0)}.addresses[0]: ${NOT_A_POOL_ENTRY}`,
  },
  {
    name: "pool entry with three parts",
    mutate: (s) => (s.serviceLoadBalancers.pools[1].addresses = ["192.168.100.200-192.168.100.210-192.168.100.220"]),
    expect: `${pool(1)}.addresses[0]: ${NOT_A_POOL_ENTRY}`,
  },
  {
    name: "pool range whose ends are not addresses",
    mutate: (s) => (s.serviceLoadBalancers.pools[1].addresses = ["192.168.100.200-$(reboot)"]),
    expect: `${pool(1)}.addresses[0]: must be a range of two addresses first-last`,
  },
  {
    name: "pool CIDR with a prefix too long",
    mutate: (s) => (s.serviceLoadBalancers.pools[0].addresses = ["198.51.100.128/33"]),
    expect: `${pool(0)}.addresses[0]: must be a CIDR such as 192.168.100.0/24`,
  },
  {
    name: "pool CIDR that is not a network address",
    mutate: (s) => (s.serviceLoadBalancers.pools[0].addresses = ["198.51.100.129/27"]),
    expect: `${pool(0)}.addresses[0]: must be a network address: 198.51.100.128/27, not 198.51.100.129/27`,
  },
  {
    name: "pool CIDR with a comment after it",
    mutate: (s) => (s.serviceLoadBalancers.pools[0].addresses = ["198.51.100.128/27 # public"]),
    expect: `${pool(0)}.addresses[0]: must be a CIDR such as 192.168.100.0/24`,
  },
  {
    name: "reversed range",
    mutate: (s) => (s.serviceLoadBalancers.pools[1].addresses = ["192.168.100.239-192.168.100.200"]),
    expect: `${pool(1)}.addresses[0]: is reversed: 192.168.100.239 comes after 192.168.100.200`,
  },
  {
    name: "IPv6 CIDR pool",
    mutate: (s) => (s.serviceLoadBalancers.pools[0].addresses = ["2001:db8:100::/120"]),
    expect: `${pool(0)}.addresses[0]: ${IPV4_ONLY}`,
  },
  {
    name: "IPv6 range pool",
    mutate: (s) => (s.serviceLoadBalancers.pools[0].addresses = ["2001:db8:100::1-2001:db8:100::ff"]),
    expect: `${pool(0)}.addresses[0]: ${IPV4_ONLY}`,
  },
  {
    name: "IPv6 /64 pool: the family is named before the size",
    mutate: (s) => (s.serviceLoadBalancers.pools[0].addresses = ["2001:db8:100::/64"]),
    expect: `${pool(0)}.addresses[0]: ${IPV4_ONLY}`,
  },
  {
    name: "pool CIDR wider than /16",
    mutate: (s) => (s.serviceLoadBalancers.pools[0].addresses = ["198.50.0.0/15"]),
    expect: `${pool(0)}.addresses[0]: must be /16 or narrower (65536 addresses), not /15`,
  },
  {
    name: "pool range of 65537 addresses",
    mutate: (s) => (s.serviceLoadBalancers.pools[0].addresses = ["198.18.0.0-198.19.0.0"]),
    expect: `${pool(0)}.addresses[0]: must hold at most 65536 addresses`,
  },
  {
    name: "private pool outside network.cidr",
    mutate: (s) => (s.serviceLoadBalancers.pools[1].addresses = ["192.168.101.0/28"]),
    expect: `${pool(1)}.addresses[0]: is private, so it must be inside network.cidr 192.168.100.0/24`,
  },
  {
    name: "private pool straddling the end of network.cidr",
    mutate: (s) => (s.serviceLoadBalancers.pools[1].addresses = ["192.168.100.250-192.168.101.5"]),
    expect: `${pool(1)}.addresses[0]: is private, so it must be inside network.cidr 192.168.100.0/24`,
  },
  {
    name: "private pool holding the broadcast address",
    mutate: (s) => (s.serviceLoadBalancers.pools[1].addresses = ["192.168.100.240/28"]),
    expect: `${pool(1)}.addresses[0]: must not hold network.cidr's network or broadcast address`,
  },
  {
    name: "private pool holding the network address",
    mutate: (s) => (s.serviceLoadBalancers.pools[1].addresses = ["192.168.100.0-192.168.100.0"]),
    expect: `${pool(1)}.addresses[0]: must not hold network.cidr's network or broadcast address`,
  },
  {
    name: "pool holding the gateway",
    mutate: (s) => (s.serviceLoadBalancers.pools[1].addresses = ["192.168.100.1/32"]),
    expect: `${pool(1)}.addresses[0]: must not hold the gateway 192.168.100.1`,
  },
  {
    name: "pool holding an LB address",
    mutate: (s) => (s.serviceLoadBalancers.pools[1].addresses = ["192.168.100.3-192.168.100.9"]),
    expect: `${pool(1)}.addresses[0]: must not hold an LB address 192.168.100.3`,
  },
  {
    name: "private pool holding the private API VIP",
    mutate: (s) => (s.serviceLoadBalancers.pools[1].addresses = ["192.168.100.96/28"]),
    expect: `${pool(1)}.addresses[0]: must not hold a virtual address: 192.168.100.100 is virtualAddresses.api[0]`,
  },
  {
    name: "public pool holding the ingress VIP",
    mutate: (s) => (s.serviceLoadBalancers.pools[0].addresses = ["198.51.100.64/27"]),
    expect: `${pool(0)}.addresses[0]: must not hold a virtual address: 198.51.100.80 is virtualAddresses.ingress[0]`,
  },
  {
    name: "public pool holding the nat VIP",
    mutate: (s) => (s.serviceLoadBalancers.pools[0].addresses = ["198.51.100.240/28"]),
    expect: `${pool(0)}.addresses[0]: must not hold a virtual address: 198.51.100.253 is virtualAddresses.nat`,
  },
  {
    name: "private pool holding a static API backend (a node's address)",
    mutate: (s) => (s.serviceLoadBalancers.pools[1].addresses = ["192.168.100.8/29"]),
    expect: `${pool(1)}.addresses[0]: must not hold a static backend: 192.168.100.10 is apiBackend.addresses[0], a node's address`,
  },
  {
    name: "private pool holding an extra service's static backend",
    mutate: (s) => (s.serviceLoadBalancers.pools[1].addresses = ["192.168.100.20/32"]),
    expect: `${pool(1)}.addresses[0]: must not hold a static backend: 192.168.100.20 is extraServices[1].backend.addresses[0], a node's address`,
  },
  {
    name: "public pool inside network.cidr",
    mutate: (s) => (s.serviceLoadBalancers.pools[0].addresses = ["192.168.100.128/28"]),
    expect: `${pool(0)}.addresses[0]: is public, so it must be outside network.cidr 192.168.100.0/24`,
  },
  {
    name: "public pool overlapping network.cidr at its start",
    mutate: (s) => (s.serviceLoadBalancers.pools[0].addresses = ["192.168.99.250-192.168.100.5"]),
    expect: `${pool(0)}.addresses[0]: is public, so it must be outside network.cidr 192.168.100.0/24`,
  },
  {
    name: "libvirt: public pool inside platform.publicNetwork",
    mutate: (s) => (s.serviceLoadBalancers.pools[0].addresses = ["172.31.250.128/28"]),
    expect: `${pool(0)}.addresses[0]: must be outside platform.publicNetwork.cidr: on libvirt public pools are routed to platform.publicNetwork.nextHop`,
  },
  {
    name: "libvirt: public pool holding the whole platform.publicNetwork",
    mutate: (s) => (s.serviceLoadBalancers.pools[0].addresses = ["172.31.0.0/16"]),
    expect: `${pool(0)}.addresses[0]: must be outside platform.publicNetwork.cidr: on libvirt public pools are routed to platform.publicNetwork.nextHop`,
  },
  {
    name: "libvirt: public IPv4 pool with an IPv6 platform.publicNetwork (no IPv4 next hop to route it to)",
    mutate: (s) => (s.platform.publicNetwork = { cidr: "2001:db8:250::/64" }),
    expect: `${pool(0)}.addresses[0]: cannot be IPv4 with an IPv6 platform.publicNetwork: it is routed to the public next hop`,
  },
  {
    name: "openstack: public pool outside platform.publicNetwork",
    base: openstackServicesRaw,
    mutate: (s) => (s.serviceLoadBalancers.pools[0].addresses = ["198.51.100.128/27"]),
    expect: `${pool(0)}.addresses[0]: must be inside platform.publicNetwork.cidr: on openstack a public Service address is a fixed IP of a VIP port`,
  },
  {
    name: "openstack: public pool holding an LB's public address",
    base: openstackServicesRaw,
    mutate: (s) => (s.serviceLoadBalancers.pools[0].addresses = ["203.0.113.8/29"]),
    expect: `${pool(0)}.addresses[0]: must not hold an LB's public address 203.0.113.11`,
  },
  {
    name: "openstack: public pool holding the public gateway",
    base: openstackServicesRaw,
    mutate: (s) => (s.serviceLoadBalancers.pools[0].addresses = ["203.0.113.1-203.0.113.7"]),
    expect: `${pool(0)}.addresses[0]: must not hold the public gateway 203.0.113.1`,
  },
  {
    name: "openstack: public pool holding the public network's broadcast address",
    base: openstackServicesRaw,
    mutate: (s) => (s.serviceLoadBalancers.pools[0].addresses = ["203.0.113.240/28"]),
    expect: `${pool(0)}.addresses[0]: must not hold platform.publicNetwork.cidr's network or broadcast address`,
  },
  {
    name: "openstack: public pool holding the public network's network address",
    base: openstackServicesRaw,
    mutate: (s) => (s.serviceLoadBalancers.pools[0].addresses = ["203.0.113.0-203.0.113.0"]),
    expect: `${pool(0)}.addresses[0]: must not hold platform.publicNetwork.cidr's network or broadcast address`,
  },
  {
    name: "openstack: public pool holding a public VIP",
    base: openstackServicesRaw,
    mutate: (s) => (s.serviceLoadBalancers.pools[0].addresses = ["203.0.113.96/28"]),
    expect: `${pool(0)}.addresses[0]: must not hold a virtual address: 203.0.113.100 is virtualAddresses.api[1]`,
  },
  {
    name: "public pool of multicast addresses (VRRP's 224.0.0.18 among them)",
    mutate: (s) => (s.serviceLoadBalancers.pools[0].addresses = ["224.0.0.0/24"]),
    expect: `${pool(0)}.addresses[0]: must hold unicast addresses only: it overlaps 224.0.0.0/4 (multicast)`,
  },
  {
    name: "public pool over the cloud's metadata range",
    mutate: (s) => (s.serviceLoadBalancers.pools[0].addresses = ["169.254.169.0/24"]),
    expect: `${pool(0)}.addresses[0]: must hold unicast addresses only: it overlaps 169.254.0.0/16 (link-local)`,
  },
  {
    name: "public pool of loopback addresses",
    mutate: (s) => (s.serviceLoadBalancers.pools[0].addresses = ["127.0.0.0/16"]),
    expect: `${pool(0)}.addresses[0]: must hold unicast addresses only: it overlaps 127.0.0.0/8 (loopback)`,
  },
  {
    name: "public pool starting at 0.0.0.0",
    mutate: (s) => (s.serviceLoadBalancers.pools[0].addresses = ["0.0.0.0/24"]),
    expect: `${pool(0)}.addresses[0]: must hold unicast addresses only: it overlaps 0.0.0.0/8 (the unspecified range)`,
  },
  {
    name: "public pool ending at 255.255.255.255",
    mutate: (s) => (s.serviceLoadBalancers.pools[0].addresses = ["255.255.255.0-255.255.255.255"]),
    expect: `${pool(0)}.addresses[0]: must hold unicast addresses only: it overlaps 255.255.255.255/32 (the broadcast address)`,
  },
  {
    name: "pools overlapping across pools",
    mutate: (s) =>
      s.serviceLoadBalancers.pools.push({ name: "more", addresses: ["198.51.100.150-198.51.100.170"], type: "public" }),
    expect: `${pool(2)}.addresses[0]: overlaps ${pool(0)}.addresses[0] (198.51.100.128-198.51.100.159)`,
  },
  {
    name: "entries overlapping within one pool",
    mutate: (s) => s.serviceLoadBalancers.pools[1].addresses.push("192.168.100.210/31"),
    expect: `${pool(1)}.addresses[1]: overlaps ${pool(1)}.addresses[0] (192.168.100.200-192.168.100.239)`,
  },
  {
    name: "the same entry twice in one pool",
    mutate: (s) => s.serviceLoadBalancers.pools[0].addresses.push("198.51.100.128/27"),
    expect: `${pool(0)}.addresses[1]: overlaps ${pool(0)}.addresses[0] (198.51.100.128-198.51.100.159)`,
  },
  {
    name: "a one-address entry inside another pool's range",
    mutate: (s) =>
      s.serviceLoadBalancers.pools.push({ name: "one", addresses: ["192.168.100.239/32"], type: "private" }),
    expect: `${pool(2)}.addresses[0]: overlaps ${pool(1)}.addresses[0] (192.168.100.200-192.168.100.239)`,
  },
  {
    name: "public pool overlapping syncNetwork",
    mutate: (s) => {
      s.syncNetwork = { cidr: "172.31.255.248/29" };
      s.serviceLoadBalancers.pools[0].addresses = ["172.31.255.240/28"];
    },
    expect: `${pool(0)}.addresses[0]: must be outside syncNetwork.cidr: that link carries only VRRP and the conntrack sync`,
  },
  {
    name: "duplicate pool names",
    mutate: (s) => (s.serviceLoadBalancers.pools[1].name = "public"),
    expect: `${pool(1)}.name: duplicates pool name public`,
  },
  {
    name: "pool name in capitals",
    mutate: (s) => (s.serviceLoadBalancers.pools[0].name = "Public"),
    expect: `${pool(0)}.name: ${DNS_LABEL_RULE}`,
  },
  {
    name: "pool name with a quote",
    mutate: (s) => (s.serviceLoadBalancers.pools[0].name = 'pub"lic'),
    expect: `${pool(0)}.name: ${DNS_LABEL_RULE}`,
  },
  {
    name: "unknown pool type",
    mutate: (s) => (s.serviceLoadBalancers.pools[0].type = "external"),
    expect: `${pool(0)}.type: must be one of private, public`,
  },
  {
    name: "no pools",
    mutate: (s) => (s.serviceLoadBalancers.pools = []),
    expect: "serviceLoadBalancers.pools: must have at least 1 item",
  },
  {
    name: "a pool without addresses",
    mutate: (s) => (s.serviceLoadBalancers.pools[0].addresses = []),
    expect: `${pool(0)}.addresses: must have at least 1 item`,
  },
  {
    name: "a pool entry that is not a string",
    mutate: (s) => (s.serviceLoadBalancers.pools[0].addresses = [3232261320]),
    expect: `${pool(0)}.addresses[0]: must be a string`,
  },
  {
    name: "too many pools",
    mutate: (s) =>
      (s.serviceLoadBalancers.pools = Array.from({ length: 33 }, (_, i) => ({
        name: `p${i}`,
        addresses: [`10.1.${i}.0/24`],
        type: "public",
      }))),
    expect: "serviceLoadBalancers.pools: must have at most 32 items",
  },
  {
    name: "too many entries in one pool",
    mutate: (s) => (s.serviceLoadBalancers.pools[0].addresses = Array.from({ length: 65 }, (_, i) => `10.2.${i}.0/24`)),
    expect: `${pool(0)}.addresses: must have at most 64 items`,
  },
  {
    name: "a pool entry of 101 characters",
    mutate: (s) => (s.serviceLoadBalancers.pools[0].addresses = [`198.51.100.128/27${" ".repeat(84)}`]),
    expect: `${pool(0)}.addresses[0]: must have at most 100 characters`,
  },
  {
    name: "loadBalancerClass without a prefix",
    mutate: (s) => (s.serviceLoadBalancers.loadBalancerClass = "edgepair"),
    expect: CLASS_RULE,
  },
  {
    name: "loadBalancerClass with capitals in its prefix",
    mutate: (s) => (s.serviceLoadBalancers.loadBalancerClass = "EdgePair.io/pair"),
    expect: CLASS_RULE,
  },
  {
    name: "loadBalancerClass with an empty DNS label",
    mutate: (s) => (s.serviceLoadBalancers.loadBalancerClass = "edgepair..io/pair"),
    expect: CLASS_RULE,
  },
  {
    name: "loadBalancerClass with a prefix label of 64 characters",
    mutate: (s) => (s.serviceLoadBalancers.loadBalancerClass = `${"a".repeat(64)}.io/pair`),
    expect: CLASS_RULE,
  },
  {
    name: "loadBalancerClass with a name of 64 characters",
    mutate: (s) => (s.serviceLoadBalancers.loadBalancerClass = `edgepair.io/${"a".repeat(64)}`),
    expect: CLASS_RULE,
  },
  {
    name: "loadBalancerClass with quotes, '#' and '$'",
    mutate: (s) => (s.serviceLoadBalancers.loadBalancerClass = 'edgepair.io/pair"#${HOME}'),
    expect: CLASS_RULE,
  },
  {
    name: "loadBalancerClass with two slashes",
    mutate: (s) => (s.serviceLoadBalancers.loadBalancerClass = "edgepair.io/pair/x"),
    expect: CLASS_RULE,
  },
  {
    name: "loadBalancerClass of 254 characters",
    mutate: (s) => (s.serviceLoadBalancers.loadBalancerClass = `${"a.".repeat(123)}io/pairs`),
    expect: "serviceLoadBalancers.loadBalancerClass: must have at most 253 characters",
  },
  {
    name: "defaultClass that is not a boolean",
    mutate: (s) => (s.serviceLoadBalancers.defaultClass = "yes"),
    expect: "serviceLoadBalancers.defaultClass: must be true or false",
  },
  {
    name: "unknown field in serviceLoadBalancers (a typo)",
    mutate: (s) => (s.serviceLoadBalancers.loadbalancerClass = "edgepair.io/pair"),
    expect: "serviceLoadBalancers.loadbalancerClass: unknown field",
  },
  {
    name: "unknown field in a pool",
    mutate: (s) => (s.serviceLoadBalancers.pools[0].adresses = ["198.51.100.128/27"]),
    expect: `${pool(0)}.adresses: unknown field`,
  },
];

const extraCases: Case[] = [
  {
    name: "frontend neither a VIP nor in a pool",
    mutate: (s) => (s.extraServices[2].frontend.address = "198.51.100.99"),
    expect:
      "extraServices[2].frontend.address: must be one of virtualAddresses.api or .ingress, or inside a pool of serviceLoadBalancers: 198.51.100.99 is neither",
  },
  {
    name: "frontend in a pool's range when the spec has no pools",
    mutate: (s) => {
      delete s.serviceLoadBalancers;
    },
    expect:
      "extraServices[2].frontend.address: must be one of virtualAddresses.api or .ingress, or inside a pool of serviceLoadBalancers: 198.51.100.130 is neither",
  },
  {
    name: "frontend on the gateway (a VIP only as the NAT gateway)",
    mutate: (s) => (s.extraServices[1].frontend.address = "192.168.100.1"),
    expect:
      "extraServices[1].frontend.address: must be one of virtualAddresses.api or .ingress, or inside a pool of serviceLoadBalancers: 192.168.100.1 is neither",
  },
  {
    name: "frontend on the nat VIP",
    mutate: (s) => (s.extraServices[0].frontend.address = "198.51.100.253"),
    expect:
      "extraServices[0].frontend.address: must not be virtualAddresses.nat: its ports are the egress translation's",
  },
  {
    name: "IPv6 frontend (an IPv6 VIP)",
    mutate: (s) => {
      s.virtualAddresses.ingress.push({ address: "2001:db8:100::80", type: "public" });
      s.extraServices[0].frontend.address = "2001:db8:100::80";
    },
    expect: `extraServices[0].frontend.address: ${IPV4_ONLY}`,
  },
  {
    name: "frontend that is not an address",
    mutate: (s) => (s.extraServices[0].frontend.address = "198.51.100.80 # syslog"),
    expect: "extraServices[0].frontend.address: must be an IPv4 or IPv6 address",
  },
  {
    name: "frontend wider than one address",
    mutate: (s) => (s.extraServices[2].frontend.address = "198.51.100.128/27"),
    expect: "extraServices[2].frontend.address: must be a single address (/32), not the range /27",
  },
  {
    name: "frontend 6443 on a VIP",
    mutate: frontend(1, 6443),
    expect: "extraServices[1].frontend.port: must not be 6443 on a virtual address of the pair: it is the API frontend",
  },
  {
    name: "frontend 80 on a VIP",
    mutate: frontend(0, 80),
    expect:
      "extraServices[0].frontend.port: must not be 80 on a virtual address of the pair: it is an ingress frontend",
  },
  {
    name: "frontend 443 on a VIP",
    mutate: frontend(1, 443),
    expect:
      "extraServices[1].frontend.port: must not be 443 on a virtual address of the pair: it is an ingress frontend",
  },
  {
    name: "frontend 22623 on a private VIP",
    mutate: frontend(1, 22623),
    expect:
      "extraServices[1].frontend.port: must not be 22623 on a virtual address of the pair: it is the machine-config frontend",
  },
  {
    name: "frontend on the default metrics port on a VIP",
    mutate: frontend(1, 8404),
    expect: "extraServices[1].frontend.port: must not be 8404 on a virtual address of the pair: it is the metrics port",
  },
  {
    name: "frontend on the default conntrack sync port on a VIP",
    mutate: frontend(0, 3780),
    expect:
      "extraServices[0].frontend.port: must not be 3780 on a virtual address of the pair: it is the conntrack sync port",
  },
  {
    name: "frontend on an explicit metrics.port on a VIP",
    mutate: (s) => {
      s.metrics = { port: 9000 };
      frontend(1, 9000)(s);
    },
    expect: "extraServices[1].frontend.port: must not be 9000 on a virtual address of the pair: it is the metrics port",
  },
  {
    name: "frontend on an explicit conntrack.port on a VIP",
    mutate: (s) => {
      s.conntrack = { port: 3800 };
      frontend(0, 3800)(s);
    },
    expect:
      "extraServices[0].frontend.port: must not be 3800 on a virtual address of the pair: it is the conntrack sync port",
  },
  {
    name: "frontend 22 on a public pool address",
    mutate: frontend(2, 22),
    expect: "extraServices[2].frontend.port: must not be 22 on a public address: SSH is never exposed outside",
  },
  {
    name: "frontend 22 over UDP on a public pool address",
    mutate: (s) => {
      s.extraServices[2].protocol = "UDP";
      frontend(2, 22)(s);
    },
    expect: "extraServices[2].frontend.port: must not be 22 on a public address: SSH is never exposed outside",
  },
  {
    name: "frontend 22623 on a public pool address",
    mutate: frontend(2, 22623),
    expect:
      "extraServices[2].frontend.port: must not be 22623 on a public address: the machine-config server is never exposed outside",
  },
  {
    name: "frontend 22 on a public VIP",
    mutate: frontend(0, 22),
    expect: "extraServices[0].frontend.port: must not be 22 on a public address: SSH is never exposed outside",
  },
  {
    name: "frontend 22 on an openstack public pool address",
    base: openstackServicesRaw,
    mutate: frontend(0, 22),
    expect: "extraServices[0].frontend.port: must not be 22 on a public address: SSH is never exposed outside",
  },
  {
    name: "frontend port 0",
    mutate: frontend(0, 0),
    expect: "extraServices[0].frontend.port: must be at least 1",
  },
  {
    name: "frontend port 65536",
    mutate: frontend(0, 65536),
    expect: "extraServices[0].frontend.port: must be at most 65535",
  },
  {
    name: "duplicate frontend: same address, protocol and port",
    mutate: (s) =>
      s.extraServices.push({
        name: "db-copy",
        protocol: "TCP",
        frontend: { address: "192.168.100.100", port: 5432 },
        backend: { nodePort: 30433, addresses: ["192.168.100.21"] },
      }),
    expect: "extraServices[3].frontend.port: TCP 192.168.100.100:5432 is already extraServices[1].frontend",
  },
  {
    name: "duplicate frontend written with /32",
    mutate: (s) =>
      s.extraServices.push({
        name: "mqtt-copy",
        protocol: "TCP",
        frontend: { address: "198.51.100.130/32", port: 8883 },
        backend: { nodePort: 30884, addresses: ["192.168.100.21"] },
      }),
    expect: "extraServices[3].frontend.port: TCP 198.51.100.130:8883 is already extraServices[2].frontend",
  },
  {
    name: "duplicate names",
    mutate: (s) => (s.extraServices[2].name = "db"),
    expect: "extraServices[2].name: duplicates extraServices[1].name db",
  },
  {
    name: "name in capitals",
    mutate: (s) => (s.extraServices[0].name = "Syslog"),
    expect: `extraServices[0].name: ${DNS_LABEL_RULE}`,
  },
  {
    name: "name with '_' (it would collide with another's nftables chain)",
    mutate: (s) => (s.extraServices[0].name = "sys_log"),
    expect: `extraServices[0].name: ${DNS_LABEL_RULE}`,
  },
  {
    name: "name with a quote, '#' and '$'",
    mutate: (s) => (s.extraServices[0].name = 'a"#$b'),
    expect: `extraServices[0].name: ${DNS_LABEL_RULE}`,
  },
  {
    name: "name of 41 characters",
    mutate: (s) => (s.extraServices[0].name = "a".repeat(41)),
    expect: "extraServices[0].name: must have at most 40 characters",
  },
  {
    name: "protocol in lowercase",
    mutate: (s) => (s.extraServices[0].protocol = "udp"),
    expect: "extraServices[0].protocol: must be one of TCP, UDP",
  },
  {
    name: "protocol SCTP",
    mutate: (s) => (s.extraServices[0].protocol = "SCTP"),
    expect: "extraServices[0].protocol: must be one of TCP, UDP",
  },
  {
    name: "backend without nodeSelector and addresses",
    mutate: (s) => (s.extraServices[0].backend = { nodePort: 30514 }),
    expect: "extraServices[0].backend: needs a nodeSelector or at least one address",
  },
  {
    name: "backend with an empty address list and no nodeSelector",
    mutate: (s) => (s.extraServices[1].backend.addresses = []),
    expect: "extraServices[1].backend: needs a nodeSelector or at least one address",
  },
  {
    name: "backend without a nodePort",
    mutate: (s) => delete s.extraServices[1].backend.nodePort,
    expect: "extraServices[1].backend.nodePort: is required",
  },
  {
    name: "backend address outside network.cidr",
    mutate: (s) => (s.extraServices[1].backend.addresses = ["10.0.0.5"]),
    expect:
      "extraServices[1].backend.addresses[0]: must be inside network.cidr 192.168.100.0/24: NodePorts are reached through the private NIC",
  },
  {
    name: "IPv6 backend address",
    mutate: (s) => (s.extraServices[1].backend.addresses = ["fd00::20"]),
    expect:
      "extraServices[1].backend.addresses[0]: must be inside network.cidr 192.168.100.0/24: NodePorts are reached through the private NIC",
  },
  {
    name: "backend address is the gateway",
    mutate: (s) => (s.extraServices[1].backend.addresses = ["192.168.100.1"]),
    expect:
      "extraServices[1].backend.addresses[0]: must not be one of the pair's own addresses: 192.168.100.1 (it would forward to itself)",
  },
  {
    name: "backend address is an LB address",
    mutate: (s) => (s.extraServices[1].backend.addresses = ["192.168.100.2"]),
    expect:
      "extraServices[1].backend.addresses[0]: must not be one of the pair's own addresses: 192.168.100.2 (it would forward to itself)",
  },
  {
    name: "backend address is a VIP",
    mutate: (s) => (s.extraServices[1].backend.addresses = ["192.168.100.100"]),
    expect:
      "extraServices[1].backend.addresses[0]: must not be a virtual address: 192.168.100.100 is virtualAddresses.api[0]",
  },
  {
    name: "backend address is network.cidr's broadcast address",
    mutate: (s) => (s.extraServices[1].backend.addresses = ["192.168.100.255"]),
    expect: "extraServices[1].backend.addresses[0]: must not be network.cidr's network or broadcast address",
  },
  {
    name: "backend address is network.cidr's network address",
    mutate: (s) => (s.extraServices[1].backend.addresses = ["192.168.100.0"]),
    expect: "extraServices[1].backend.addresses[0]: must not be network.cidr's network or broadcast address",
  },
  {
    name: "duplicate backend address (once with /32)",
    mutate: (s) => (s.extraServices[2].backend.addresses = ["192.168.100.21", "192.168.100.21/32"]),
    expect: "extraServices[2].backend.addresses[1]: duplicates 192.168.100.21",
  },
  {
    name: "backend address that is not an address",
    mutate: (s) => (s.extraServices[1].backend.addresses = ["192.168.100.20;reboot"]),
    expect: "extraServices[1].backend.addresses[0]: must be an IPv4 or IPv6 address",
  },
  {
    name: "backend address list of 257",
    mutate: (s) =>
      (s.extraServices[1].backend.addresses = Array.from(
        { length: 257 },
        (_, i) => `192.168.${101 + (i >> 8)}.${i % 256}`,
      )),
    expect: "extraServices[1].backend.addresses: must have at most 256 items",
  },
  {
    name: "sourceRanges IPv6",
    mutate: (s) => (s.extraServices[2].sourceRanges = ["2001:db8::/32"]),
    expect: "extraServices[2].sourceRanges[0]: must be IPv4: Service addresses are IPv4",
  },
  {
    name: "sourceRanges entry without a prefix",
    mutate: (s) => (s.extraServices[2].sourceRanges = ["203.0.113.7"]),
    expect: "extraServices[2].sourceRanges[0]: must be a CIDR such as 192.168.100.0/24",
  },
  {
    name: "sourceRanges entry that is not a network address",
    mutate: (s) => (s.extraServices[2].sourceRanges = ["203.0.113.7/24"]),
    expect: "extraServices[2].sourceRanges[0]: must be a network address: 203.0.113.0/24, not 203.0.113.7/24",
  },
  {
    name: "sourceRanges entry with nftables syntax after it",
    mutate: (s) => (s.extraServices[2].sourceRanges = ["10.0.0.0/8 } accept #"]),
    expect: "extraServices[2].sourceRanges[0]: must be a CIDR such as 192.168.100.0/24",
  },
  {
    name: "sourceRanges empty (absent means anyone: an empty list would read as no one)",
    mutate: (s) => (s.extraServices[2].sourceRanges = []),
    expect: "extraServices[2].sourceRanges: must have at least 1 item",
  },
  {
    name: "too many extra services",
    mutate: (s) =>
      (s.extraServices = Array.from({ length: 257 }, (_, i) => ({
        name: `s${i}`,
        protocol: "TCP",
        frontend: { address: "198.51.100.130", port: 10000 + i },
        backend: { nodePort: 30000 + i, addresses: ["192.168.100.20"] },
      }))),
    expect: "extraServices: must have at most 256 items",
  },
  {
    name: "unknown field in an extra service (a typo)",
    mutate: (s) => (s.extraServices[2].sourceRange = ["10.0.0.0/8"]),
    expect: "extraServices[2].sourceRange: unknown field",
  },
  {
    name: "unknown field in a frontend",
    mutate: (s) => (s.extraServices[0].frontend.ports = [514]),
    expect: "extraServices[0].frontend.ports: unknown field",
  },
  {
    name: "unknown field in a backend",
    mutate: (s) => (s.extraServices[0].backend.port = 30514),
    expect: "extraServices[0].backend.port: unknown field",
  },
  {
    name: "backend nodeSelector that can match no Node",
    mutate: (s) =>
      (s.extraServices[0].backend.nodeSelector = {
        matchLabels: { zone: "a" },
        matchExpressions: [{ key: "zone", operator: "DoesNotExist" }],
      }),
    expect: 'extraServices[0].backend.nodeSelector: can match no Node: its terms on label "zone" contradict each other',
  },
];

function problemsOf(raw: Raw): string[] {
  const r = validateSpec(raw);
  return r.ok ? [] : r.problems.map(formatProblem);
}

describe.each([
  ["serviceLoadBalancers", poolCases],
  ["extraServices", extraCases],
])("%s: each bad input gets its field.path: rule", (_part, cases) => {
  test.each(cases.map((c) => [c.name, c] as const))("%s", (_name, c) => {
    const raw = (c.base ?? base)();
    c.mutate(raw);
    const lines = problemsOf(raw);
    if (!lines.includes(c.expect)) throw new Error(`expected "${c.expect}", got:\n${lines.join("\n")}`);
  });
});

describe("counter-cases: near misses that are fine", () => {
  const ok = (name: string, mutate: (s: Raw) => void, from: () => Raw = base) =>
    test(name, () => {
      const s = from();
      mutate(s);
      expect(problemsOf(s)).toEqual([]);
    });
  ok("the services variant as it is", () => undefined);
  ok("the services variant without the NAT gateway", (s) => delete s.virtualAddresses.nat);
  ok("the openstack variant with a public pool inside its public network", () => undefined, openstackServicesRaw);
  ok("80 on a public pool address (the pair's ingress binds its VIPs only)", frontend(2, 80));
  ok("443 and 6443 on a public pool address", (s) => {
    frontend(2, 443)(s);
    s.extraServices.push({
      name: "api-2",
      protocol: "TCP",
      frontend: { address: "198.51.100.131", port: 6443 },
      backend: { nodePort: 30643, addresses: ["192.168.100.20"] },
    });
  });
  ok("the metrics port's default on a VIP once metrics.port moves elsewhere", (s) => {
    s.metrics = { port: 9000 };
    frontend(1, 8404)(s);
  });
  ok("22623 on a private pool address (only on public addresses it is refused)", frontend(1, 22623, "192.168.100.200"));
  ok("TCP and UDP on the same address and port", (s) =>
    s.extraServices.push({
      name: "syslog-tcp",
      protocol: "TCP",
      frontend: { address: "198.51.100.80", port: 514 },
      backend: { nodePort: 30515, addresses: ["192.168.100.20"] },
    }),
  );
  ok("the same port on two addresses", (s) =>
    s.extraServices.push({
      name: "db-public",
      protocol: "TCP",
      frontend: { address: "198.51.100.131", port: 5432 },
      backend: { nodePort: 30432, addresses: ["192.168.100.20"] },
    }),
  );
  ok("pools that touch without overlapping, a one-address range and a /32", (s) => {
    s.serviceLoadBalancers.pools[1].addresses = [
      "192.168.100.200-192.168.100.239",
      "192.168.100.240-192.168.100.240",
      "192.168.100.241/32",
    ];
    s.serviceLoadBalancers.pools.push({ name: "low", addresses: ["192.168.100.101-192.168.100.199"], type: "private" });
  });
  ok("a private pool right up to the VIPs and LB addresses around it", (s) => {
    s.serviceLoadBalancers.pools[1].addresses = ["192.168.100.4-192.168.100.9", "192.168.100.101-192.168.100.254"];
    s.extraServices[1].frontend.address = "192.168.100.100";
  });
  ok("a public /16 and a range of exactly 65536 addresses", (s) => {
    s.serviceLoadBalancers.pools[0].addresses = ["198.18.0.0/16", "100.64.0.0-100.64.255.255"];
    s.extraServices[2].frontend.address = "198.18.0.130";
  });
  ok("loadBalancerClass forms Kubernetes takes", (s) => {
    s.serviceLoadBalancers.loadBalancerClass = `a.example-1.com/My_class.v1`;
    s.serviceLoadBalancers.defaultClass = true;
  });
  ok("loadBalancerClass with labels of 63 and a name of 63", (s) => {
    s.serviceLoadBalancers.loadBalancerClass = `${"a".repeat(63)}.io/${"b".repeat(63)}`;
  });
  ok("a backend address outside every pool next to a pool", (s) => {
    s.serviceLoadBalancers.pools[1].addresses = ["192.168.100.21-192.168.100.30"];
    s.extraServices[1].backend.addresses = ["192.168.100.20"];
    s.extraServices[2].backend.addresses = ["192.168.100.20"];
  });
  ok("sourceRanges that overlap each other and the whole Internet (nftables merges them)", (s) => {
    s.extraServices[2].sourceRanges = ["0.0.0.0/0", "10.0.0.0/8", "10.1.0.0/16", "10.0.0.0/8"];
  });
  ok("a backend only by nodeSelector", (s) => {
    s.extraServices[1].backend = { nodePort: 30432, nodeSelector: { matchLabels: { role: "db" } } };
  });
});

describe("serviceLoadBalancers and extraServices: every problem at once", () => {
  test("a bad frontend does not hide its backend's or another service's problems", () => {
    const s = base();
    s.virtualAddresses.ingress.push({ address: "2001:db8:100::80", type: "public" });
    s.extraServices[0].frontend.address = "2001:db8:100::80";
    s.extraServices[0].backend = { nodePort: 30514, addresses: ["10.0.0.5"] };
    s.extraServices[2].frontend.port = 22;
    s.serviceLoadBalancers.pools[1].addresses = ["192.168.100.239-192.168.100.200"];
    expect(problemsOf(s).sort()).toEqual(
      [
        `extraServices[0].frontend.address: ${IPV4_ONLY}`,
        "extraServices[0].backend.addresses[0]: must be inside network.cidr 192.168.100.0/24: NodePorts are reached through the private NIC",
        "extraServices[2].frontend.port: must not be 22 on a public address: SSH is never exposed outside",
        `${pool(1)}.addresses[0]: is reversed: 192.168.100.239 comes after 192.168.100.200`,
      ].sort(),
    );
  });

  test("a pool that breaks several rules names each", () => {
    const s = base();
    s.serviceLoadBalancers.pools[1].addresses = ["192.168.100.0/28"];
    const lines = problemsOf(s);
    for (const rule of [
      "must not hold network.cidr's network or broadcast address",
      "must not hold the gateway 192.168.100.1",
      "must not hold an LB address 192.168.100.2",
      "must not hold an LB address 192.168.100.3",
      "must not hold a static backend: 192.168.100.10 is apiBackend.addresses[0], a node's address",
    ])
      expect(lines).toContain(`${pool(1)}.addresses[0]: ${rule}`);
  });

  test("huge inputs are refused quickly, by their size", () => {
    const s = base();
    s.serviceLoadBalancers.loadBalancerClass = `${"a".repeat(100_000)}/pair`;
    s.serviceLoadBalancers.pools[0].addresses = [`${"1".repeat(100_000)}-2`];
    s.extraServices[0].name = "a-".repeat(50_000);
    const started = Date.now();
    const lines = problemsOf(s);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(lines).toContain("serviceLoadBalancers.loadBalancerClass: must have at most 253 characters");
    expect(lines).toContain(`${pool(0)}.addresses[0]: must have at most 100 characters`);
    expect(lines).toContain("extraServices[0].name: must have at most 40 characters");
  });

  test("the widest valid pools (32 pools of 64 /16-sized ranges) validate in reasonable time", () => {
    const s = base();
    delete s.extraServices;
    // 2048 disjoint public /24s outside every network of the spec: 10.0.0.0/13 holds them
    s.serviceLoadBalancers.pools = Array.from({ length: 32 }, (_, p) => ({
      name: `p${p}`,
      type: "public",
      addresses: Array.from({ length: 64 }, (_, e) => `10.${p >> 2}.${((p & 3) << 6) + e}.0/24`),
    }));
    const started = Date.now();
    expect(problemsOf(s)).toEqual([]);
    expect(Date.now() - started).toBeLessThan(5000);
  });
});
