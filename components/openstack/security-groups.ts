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
 * Egress keeps Neutron's default allow-all rules: the LBs forward, sync and pull from the outside.
 */
import * as pulumi from "@pulumi/pulumi";
import * as openstack from "@pulumi/openstack";
import { API_PORT, INGRESS_HTTP_PORT, INGRESS_HTTPS_PORT, MACHINE_CONFIG_PORT } from "../../render/haproxy";
import type { IpFamily, ResolvedSpec, Role, VirtualAddress } from "../../spec/types";

export type GroupPurpose = "public" | "private" | "peer-primary" | "peer-secondary" | "handoff" | "forward";

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
  };
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
  if (side === "public") return ["public"];
  return ["private", ...(role ? [`peer-${role}` as const] : []), "handoff", "forward"];
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
