/**
 * Neutron security groups equivalent to the firewall policy render/firewalld.ts puts on the LBs. They are a second
 * fence, not a copy: a security group cannot match a destination address, so where firewalld separates "SSH to this
 * LB's own address" from "SSH to a VIP", the public side here opens no SSH at all. firewalld still filters on the VM.
 *
 * Groups, by purpose:
 * - public: the frontends HAProxy serves on public VIPs (6443; 80/443 with ingress) and ICMP, from anywhere.
 * - private: what the internal zone accepts, from the cluster network only (SSH, frontends, 22623 on openshift,
 *   metrics, ICMP).
 * - peer-primary / peer-secondary: VRRP (IP protocol 112) and conntrackd sync, from the other LB's /32 only. One
 *   group per role, because a rule cannot say "the other one": a shared group would accept adverts from anything
 *   that holds either LB address.
 * - handoff: the private port receives mid-stream packets of public frontends from the peer (render/handoff.ts),
 *   which keep their client's source address. Only the public frontend ports, so nothing opens here that the
 *   public side does not already open to everyone.
 * - forward (only with nat): the cluster's egress reaches the private port addressed to the outside; every TCP port
 *   and every UDP port except conntrackd's, so VRRP and conntrackd stay peer-only even here.
 * - services-public / services-private (only with Service frontends of that side): what the kernel forwards to
 *   NodePorts (render/service-lb.ts), see serviceRules().
 * Egress keeps Neutron's default allow-all rules: the LBs forward, sync and pull from the outside.
 */
import * as pulumi from "@pulumi/pulumi";
import * as openstack from "@pulumi/openstack";
import { API_PORT, INGRESS_HTTP_PORT, INGRESS_HTTPS_PORT, MACHINE_CONFIG_PORT } from "../../render/haproxy";
import { contains, parseCidr } from "../../spec/address";
import type { AddressType, IpFamily, ResolvedSpec, Role, VirtualAddress } from "../../spec/types";

export type GroupPurpose =
  | "public"
  | "private"
  | "peer-primary"
  | "peer-secondary"
  | "handoff"
  | "forward"
  | "services-public"
  | "services-private";

/** Neutron's number for VRRP; numbers are accepted by every Neutron release, the name "vrrp" only by newer ones. */
export const VRRP_PROTOCOL = "112";
const SSH_PORT = 22;
const MAX_PORT = 65535;

export interface RuleSpec {
  /** Stable suffix of the rule's resource name. */
  key: string;
  protocol: "tcp" | "udp" | "icmp" | "ipv6-icmp" | typeof VRRP_PROTOCOL;
  ethertype: "IPv4" | "IPv6";
  ports?: { min: number; max: number };
  remoteIpPrefix: string;
  description: string;
}

const ANYWHERE: Record<IpFamily, string> = { 4: "0.0.0.0/0", 6: "::/0" };
const ETHERTYPE: Record<IpFamily, RuleSpec["ethertype"]> = { 4: "IPv4", 6: "IPv6" };

function tcp(port: number, family: IpFamily, from: string, description: string): RuleSpec {
  return {
    key: `tcp-${port}`,
    protocol: "tcp",
    ethertype: ETHERTYPE[family],
    ports: { min: port, max: port },
    remoteIpPrefix: from,
    description,
  };
}

function icmp(family: IpFamily, from: string): RuleSpec {
  return {
    key: "icmp",
    protocol: family === 4 ? "icmp" : "ipv6-icmp",
    ethertype: ETHERTYPE[family],
    remoteIpPrefix: from,
    description: "ICMP (path MTU, reachability)",
  };
}

function familyOfCidr(cidr: string): IpFamily {
  return cidr.includes(":") ? 6 : 4;
}

const hasPublic = (vips: readonly VirtualAddress[]) => vips.some((v) => v.type === "public");
const hasPublicV4 = (vips: readonly VirtualAddress[]) => vips.some((v) => v.type === "public" && v.family === 4);

/** Every rule of every group for this spec; a group with no rules is not created. Pure. */
export function securityGroupRules(spec: ResolvedSpec): Record<GroupPurpose, RuleSpec[]> {
  const { api, machineConfig, ingress } = spec.derived.frontends;
  const pubFamily = familyOfCidr(spec.platform.publicNetwork.cidr);
  const anywhere = ANYWHERE[pubFamily];
  const cluster = spec.network.cidr;
  const [primary, secondary] = spec.network.lbAddresses;

  const publicRules = [
    ...(hasPublic(api) ? [tcp(API_PORT, pubFamily, anywhere, "Kubernetes API on the public VIPs")] : []),
    ...(hasPublic(ingress)
      ? [
          tcp(INGRESS_HTTP_PORT, pubFamily, anywhere, "ingress HTTP on the public VIPs"),
          tcp(INGRESS_HTTPS_PORT, pubFamily, anywhere, "ingress HTTPS on the public VIPs"),
        ]
      : []),
    icmp(pubFamily, anywhere),
  ];

  const privateRules = [
    tcp(SSH_PORT, 4, cluster, "SSH from the cluster network"),
    tcp(API_PORT, 4, cluster, "Kubernetes API from the cluster network"),
    ...(machineConfig.length > 0
      ? [tcp(MACHINE_CONFIG_PORT, 4, cluster, "machine config server from the cluster network only")]
      : []),
    ...(ingress.length > 0
      ? [
          tcp(INGRESS_HTTP_PORT, 4, cluster, "ingress HTTP from the cluster network"),
          tcp(INGRESS_HTTPS_PORT, 4, cluster, "ingress HTTPS from the cluster network"),
        ]
      : []),
    tcp(spec.metrics.port, 4, cluster, "HAProxy metrics from the cluster network only"),
    icmp(4, cluster),
  ];

  const peerRules = (peer: string): RuleSpec[] => [
    {
      key: "vrrp",
      protocol: VRRP_PROTOCOL,
      ethertype: "IPv4",
      remoteIpPrefix: `${peer}/32`,
      description: "VRRP adverts from the peer LB only",
    },
    {
      key: "conntrackd",
      protocol: "udp",
      ethertype: "IPv4",
      ports: { min: spec.conntrack.port, max: spec.conntrack.port },
      remoteIpPrefix: `${peer}/32`,
      description: "conntrackd state sync from the peer LB only",
    },
  ];

  // Handoff is IPv4 only (render/handoff.ts), like the cluster network that carries it.
  const handoffRules = [
    ...(hasPublicV4(api)
      ? [tcp(API_PORT, 4, ANYWHERE[4], "handed-off API packets from the peer, client source kept")]
      : []),
    ...(hasPublicV4(ingress)
      ? [
          tcp(INGRESS_HTTP_PORT, 4, ANYWHERE[4], "handed-off ingress HTTP packets from the peer, client source kept"),
          tcp(INGRESS_HTTPS_PORT, 4, ANYWHERE[4], "handed-off ingress HTTPS packets from the peer, client source kept"),
        ]
      : []),
  ];

  const forwardRules = spec.virtualAddresses.nat ? forward(cluster, spec.conntrack.port) : [];

  return {
    public: publicRules,
    private: privateRules,
    "peer-primary": peerRules(secondary),
    "peer-secondary": peerRules(primary),
    handoff: handoffRules,
    forward: forwardRules,
    "services-public": serviceRules(spec, "public", publicRules),
    "services-private": serviceRules(spec, "private", [...privateRules, ...handoffRules, ...forwardRules]),
  };
}

/** Port ranges of 1-65535 without the given ports. */
function rangesWithout(excluded: readonly number[]): { min: number; max: number }[] {
  const out: { min: number; max: number }[] = [];
  let next = 1;
  for (const port of [...new Set(excluded)].sort((a, b) => a - b)) {
    if (port > next) out.push({ min: next, max: port - 1 });
    next = Math.max(next, port + 1);
  }
  if (next <= MAX_PORT) out.push({ min: next, max: MAX_PORT });
  return out;
}

/** Never admitted from anywhere by a Service rule (policy/exposure.ts holds every group to it). */
const GUARDED_TCP = [SSH_PORT, MACHINE_CONFIG_PORT];

/**
 * The rules of the Service frontends of one side: the port the kernel forwards them on (render/service-lb.ts) faces
 * their clients, and Neutron drops whatever no rule admits. Pure.
 *
 * - extraServices: exactly their protocol and port, from each of their sourceRanges, or from anywhere. On the private
 *   side (the spec refuses 22 and 22623 on a public address) "anywhere" for 22/tcp or 22623/tcp becomes the cluster
 *   network: the security groups never admit either from an outside prefix (policy/exposure.ts).
 * - Services of type LoadBalancer: their ports are known only in the cluster, after `pulumi up` (the agent allocates
 *   from the pools), so a side with pools admits TCP and UDP on every port from anywhere. The LB's own firewall is the
 *   gate there, not this group: only the allocated frontends are translated (services.nft's map; a Service's
 *   loadBalancerSourceRanges refuse other sources before translation), and whatever is not translated meets
 *   firewalld, whose zones reject every port they do not open and whose policies forward nothing from outside. Two exceptions, because the host firewall is
 *   NOT their gate: 22/tcp and 22623/tcp never from anywhere (the external zone accepts SSH on the LB's own public
 *   address, and these groups are what keeps it off, see components/platforms/openstack.ts; on the private side the
 *   internal zone opens both to every source on the NIC), and on the private side conntrackd's UDP port stays
 *   admitted from the peer only, as in the forward group. A private-pool Service on one of those ports is still
 *   reached from the cluster network (the next rule or the forward group admit it); a public-pool Service on 22 or
 *   22623 is not reached at all, as no public address may serve either (DESIGN.md).
 * - Replies after a failover: without the NAT gateway every Service flow is translated to the moving
 *   serviceSourceAddress, and its backend answers that address from the cluster network. Neutron's own connection
 *   state lives with the port of the LB that forwarded the flow; the peer's port after a failover has none, so the
 *   replies must be admitted as new packets: TCP and UDP from the cluster network on every port (conntrackd's
 *   excluded), what the forward group already admits when the spec has nat.
 *
 * A rule that another rule of the same ports already admits (this group's, or a group the side's ports always carry)
 * is left out: Neutron refuses two identical rules in one group, and each rule counts against the project's quota.
 */
function serviceRules(spec: ResolvedSpec, side: AddressType, sideRules: readonly RuleSpec[]): RuleSpec[] {
  const cluster = spec.network.cidr;
  const conntrack = spec.conntrack.port;
  const rule = (
    key: string,
    protocol: "tcp" | "udp",
    ports: { min: number; max: number },
    from: string,
    description: string,
  ): RuleSpec => ({
    key,
    protocol,
    ethertype: "IPv4",
    ports,
    remoteIpPrefix: from,
    description,
  });

  const extras = spec.extraServices
    .filter((e) => e.frontend.type === side)
    .flatMap((e) => {
      const protocol = e.protocol === "TCP" ? "tcp" : "udp";
      const port = { min: e.frontend.port, max: e.frontend.port };
      const what = `extra service ${e.name}: ${e.protocol} ${e.frontend.address}:${e.frontend.port}`;
      if (e.sourceRanges.length > 0)
        return e.sourceRanges.map((from) =>
          rule(`extra-${e.name}.${slug(from)}`, protocol, port, from, `${what} from ${from}`),
        );
      if (protocol === "tcp" && GUARDED_TCP.includes(e.frontend.port))
        return [
          rule(
            `extra-${e.name}`,
            protocol,
            port,
            cluster,
            `${what}, from the cluster network only (${e.frontend.port}/tcp never from outside)`,
          ),
        ];
      return [rule(`extra-${e.name}`, protocol, port, ANYWHERE[4], `${what} from anywhere`)];
    });

  const hasPools = (spec.serviceLoadBalancers?.pools ?? []).some((p) => p.type === side);
  const pools = hasPools
    ? [
        ...rangesWithout(GUARDED_TCP).map((ports) =>
          rule(
            `pools-tcp-${ports.min}-${ports.max}`,
            "tcp",
            ports,
            ANYWHERE[4],
            `Services of type LoadBalancer on the ${side} pools (LB firewall is the gate; 22, 22623 never)`,
          ),
        ),
        ...rangesWithout(side === "private" ? [conntrack] : []).map((ports) =>
          rule(
            `pools-udp-${ports.min}-${ports.max}`,
            "udp",
            ports,
            ANYWHERE[4],
            `Services of type LoadBalancer on the ${side} pools (LB firewall is the gate${side === "private" ? "; conntrackd's port from the peer only" : ""})`,
          ),
        ),
      ]
    : [];

  const anyService = spec.serviceLoadBalancers !== undefined || spec.extraServices.length > 0;
  const replies =
    side === "private" && anyService
      ? [
          rule(
            `replies-tcp-1-${MAX_PORT}`,
            "tcp",
            { min: 1, max: MAX_PORT },
            cluster,
            "backends' replies to the moving Service source address (after a failover)",
          ),
          ...rangesWithout([conntrack]).map((ports) =>
            rule(
              `replies-udp-${ports.min}-${ports.max}`,
              "udp",
              ports,
              cluster,
              "backends' replies to the moving Service source address (after a failover; conntrackd's port excluded)",
            ),
          ),
        ]
      : [];

  const candidates = [...pools, ...replies, ...extras];
  return candidates.filter(
    (r, i) =>
      !sideRules.some((o) => covers(o, r)) &&
      // of two rules that admit exactly the same, the first stays
      !candidates.some((o, j) => j !== i && covers(o, r) && (!covers(r, o) || j < i)),
  );
}

/** Whether rule a admits every packet rule b admits (same ethertype and protocol, ports and source within a's). */
export function covers(a: RuleSpec, b: RuleSpec): boolean {
  if (a.ethertype !== b.ethertype || a.protocol !== b.protocol) return false;
  const ap = a.ports ?? { min: 1, max: MAX_PORT };
  const bp = b.ports ?? { min: 1, max: MAX_PORT };
  if (ap.min > bp.min || ap.max < bp.max) return false;
  const ar = parseCidr(a.remoteIpPrefix);
  const br = parseCidr(b.remoteIpPrefix);
  if (!ar.ok || !br.ok) return a.remoteIpPrefix === b.remoteIpPrefix;
  return ar.cidr.prefixLength <= br.cidr.prefixLength && contains(ar.cidr, br.cidr.network);
}

/** A CIDR as a resource-name part: 203.0.113.0/24 -> 203-0-113-0-24 (after a dot, which no extra service name holds). */
function slug(cidr: string): string {
  return cidr.replace(/[./:]/g, "-");
}

function forward(cluster: string, conntrackPort: number): RuleSpec[] {
  const udp = (min: number, max: number): RuleSpec => ({
    key: `udp-${min}-${max}`,
    protocol: "udp",
    ethertype: "IPv4",
    ports: { min, max },
    remoteIpPrefix: cluster,
    description: "cluster egress through the NAT gateway (conntrackd's port excluded)",
  });
  return [
    {
      key: `tcp-1-${MAX_PORT}`,
      protocol: "tcp",
      ethertype: "IPv4",
      ports: { min: 1, max: MAX_PORT },
      remoteIpPrefix: cluster,
      description: "cluster egress through the NAT gateway",
    },
    ...(conntrackPort > 1 ? [udp(1, conntrackPort - 1)] : []),
    ...(conntrackPort < MAX_PORT ? [udp(conntrackPort + 1, MAX_PORT)] : []),
  ];
}

/** Which groups a port carries: LB ports per role and side, VIP ports per side (no peer group: VRRP targets LBs). */
export function groupsFor(side: "public" | "private", role?: Role): GroupPurpose[] {
  if (side === "public") return ["public", "services-public"];
  return ["private", ...(role ? [`peer-${role}` as const] : []), "handoff", "forward", "services-private"];
}

export interface OpenStackSecurityGroupsArgs {
  spec: ResolvedSpec;
}

export class OpenStackSecurityGroups extends pulumi.ComponentResource {
  /** Group IDs by purpose; purposes without rules for this spec are absent. */
  public readonly ids: Partial<Record<GroupPurpose, pulumi.Output<string>>>;

  constructor(name: string, args: OpenStackSecurityGroupsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("edgepair:index:OpenStackSecurityGroups", name, {}, opts);
    const rules = securityGroupRules(args.spec);
    const ids: Partial<Record<GroupPurpose, pulumi.Output<string>>> = {};
    for (const purpose of Object.keys(rules) as GroupPurpose[]) {
      const list = rules[purpose];
      if (list.length === 0) continue;
      const groupName = `${name}-${purpose}`;
      const group = new openstack.networking.SecGroup(
        groupName,
        {
          name: groupName,
          description: `edgepair ${args.spec.clusterName}: ${purpose}`,
        },
        { parent: this },
      );
      for (const r of list) {
        new openstack.networking.SecGroupRule(
          `${groupName}-${r.key}`,
          {
            securityGroupId: group.id,
            direction: "ingress",
            ethertype: r.ethertype,
            protocol: r.protocol,
            ...(r.ports ? { portRangeMin: r.ports.min, portRangeMax: r.ports.max } : {}),
            remoteIpPrefix: r.remoteIpPrefix,
            description: r.description,
          },
          { parent: this },
        );
      }
      ids[purpose] = group.id;
    }
    this.ids = ids;
    this.registerOutputs({ ids });
  }

  /** The IDs of the groups a port on this side (and of this LB, for LB ports) carries. */
  public for(side: "public" | "private", role?: Role): pulumi.Output<string>[] {
    return groupsFor(side, role).flatMap((p) => {
      const id = this.ids[p];
      return id ? [id] : [];
    });
  }
}
