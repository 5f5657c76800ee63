/**
 * The CrossGuard pack's policies (policy/) against what the components really register: the project's EdgePair on
 * libvirt and on OpenStack (with cluster access) and a stack composing the VM component itself, recorded under
 * Pulumi's mocks with URNs, parents and property dependencies (test/fixtures/policy-capture.ts) and judged the way
 * the policy SDK's analyzer server judges them (test/fixtures/policy-harness.ts). Every policy passes on the
 * stacks as built and fails on a realistic break, from a component argument where the components allow one,
 * else from an edit of the recorded resource. test/policy-engine.test.ts runs the same pack through the real engine.
 */
import type { CapturedResource } from "./fixtures/policy-capture";
import { messagesOf, runPolicies, UNKNOWN, type PackConfig, type Violation } from "./fixtures/policy-harness";
import { composedLibvirtVms, libvirtPair, openstackPair, policyCapture } from "./fixtures/policy-stacks";
import { servicesRaw } from "./fixtures/variants";
import { edgepairPolicies } from "../policy/policies";
import { TYPES } from "../policy/lib/types";

jest.setTimeout(120_000);

const capture = policyCapture();
let libvirt: CapturedResource[];
let openstack: CapturedResource[];

beforeAll(async () => {
  libvirt = await libvirtPair(capture);
  openstack = await openstackPair(capture);
});

const judge = (rs: CapturedResource[], config: PackConfig = {}) => runPolicies(edgepairPolicies, rs, config);

function find(rs: CapturedResource[], type: string, name: string): CapturedResource {
  const r = rs.find((x) => x.type === type && x.name === name);
  if (!r) throw new Error(`no ${type} named ${name} among ${rs.map((x) => x.name).join(", ")}`);
  return r;
}

/** A copy of the stack with one resource edited; `props` edits inputs and state alike (a preview of a create). */
function edit(
  rs: CapturedResource[],
  type: string,
  name: string,
  f: (r: CapturedResource) => void,
): CapturedResource[] {
  const copy = structuredClone(rs);
  f(find(copy, type, name));
  return copy;
}
function editProps(
  rs: CapturedResource[],
  type: string,
  name: string,
  f: (props: Record<string, any>) => void,
): CapturedResource[] {
  return edit(rs, type, name, (r) => {
    f(r.inputs);
    f(r.outputs);
  });
}

type ViewFiles = Record<string, { mode: string; content: string }>;
const KEEPALIVED = "/etc/keepalived/keepalived.conf";
const EXTERNAL_ZONE = "/etc/firewalld/zones/external.xml";
const PRIVATE_KEYFILE = "/etc/NetworkManager/system-connections/edgepair-private.nmconnection";
function editFile(
  rs: CapturedResource[],
  view: string,
  path: string,
  f: (content: string) => string,
): CapturedResource[] {
  return editProps(rs, TYPES.renderedView, view, (p) => {
    const files = p.files as ViewFiles;
    if (!files[path]) throw new Error(`${view} has no ${path}`);
    files[path]!.content = f(files[path]!.content);
  });
}

const levels = (vs: Violation[], policy: string) => [
  ...new Set(vs.filter((v) => v.policy === policy).map((v) => v.level)),
];

describe("the pack", () => {
  test("14 policies, unique names, each with a description a reviewer can act on and a default enforcement level", () => {
    const names = edgepairPolicies.map((p) => p.name);
    expect(new Set(names).size).toBe(names.length);
    expect(names).toHaveLength(14);
    for (const p of edgepairPolicies) {
      expect({ name: p.name, ok: /^[a-z0-9-]+$/.test(p.name) && p.description.length >= 80 }).toEqual({
        name: p.name,
        ok: true,
      });
      expect(["mandatory", "advisory"]).toContain(p.enforcementLevel);
    }
    expect(edgepairPolicies.filter((p) => p.enforcementLevel === "mandatory").map((p) => p.name)).toEqual([
      "lb-vms-spread",
      "image-pinned-by-digest",
      "vrrp-v3-fast-advert",
      "security-groups-no-outside-ssh-or-mcs",
      "floating-ips-no-ssh-or-mcs",
      "firewall-no-ssh-on-vips-or-outside-mcs",
      "lbs-same-networks-distinct-addresses",
      "agent-rbac-least-privilege",
      "service-pools-distinct",
      "services-no-public-ssh-or-mcs",
    ]);
  });

  test("the stacks as the components build them pass every policy, and hold what the policies judge", async () => {
    expect(await judge(libvirt)).toEqual([]);
    expect(await judge(openstack)).toEqual([]);
    const count = (rs: CapturedResource[], t: string) => rs.filter((r) => r.type === t).length;
    expect([
      count(libvirt, TYPES.libvirtDomain),
      count(libvirt, TYPES.renderedView),
      count(libvirt, TYPES.role),
      count(libvirt, TYPES.loadBalancerCr),
    ]).toEqual([2, 2, 1, 1]);
    expect([
      count(openstack, TYPES.instance),
      count(openstack, TYPES.serverGroup),
      count(openstack, TYPES.floatingIpAssociate),
    ]).toEqual([2, 1, 3]);
    expect(count(openstack, TYPES.secGroupRule)).toBeGreaterThanOrEqual(15);
    // the links the stack policies follow are there, as the engine records them
    const lb1 = find(openstack, TYPES.instance, "prod-a-lb1");
    expect(lb1.propertyDependencies.schedulerHints).toEqual([expect.stringMatching(/ServerGroup::prod-a-net-group$/)]);
    expect(lb1.propertyDependencies.networks).toHaveLength(2);
  });
});

describe("lb-vms-spread", () => {
  const P = "lb-vms-spread";

  test("libvirt: a stack composing two LbVm with the same MAC fails; with distinct MACs it passes", async () => {
    const bad = await composedLibvirtVms(capture, {
      lb1: ["52:54:00:00:00:01", "52:54:00:00:00:02"],
      lb2: ["52:54:00:00:00:01", "52:54:00:00:00:04"],
    });
    expect(messagesOf(await judge(bad), P)).toEqual([
      "NIC MAC 52:54:00:00:00:01 is used 2 times, by team-lb1 and team-lb2: each LB VM needs its own",
    ]);
    const good = await composedLibvirtVms(capture, {
      lb1: ["52:54:00:00:00:01", "52:54:00:00:00:02"],
      lb2: ["52:54:00:00:00:03", "52:54:00:00:00:04"],
    });
    expect(await judge(good)).toEqual([]);
  });

  test("libvirt: both domains on one disk, or one domain left, fail", async () => {
    const shared = editProps(libvirt, TYPES.libvirtDomain, "lab-lb2", (p) => {
      p.disks[0].volume = "lab-lb1-disk";
    });
    expect(messagesOf(await judge(shared), P)).toEqual([
      "disk volume default/lab-lb1-disk is used 2 times, by lab-lb1 and lab-lb2: each LB VM needs its own",
    ]);
    const single = libvirt.filter((r) => !(r.type === TYPES.libvirtDomain && r.name === "lab-lb2"));
    expect(messagesOf(await judge(single), P)).toEqual(["lab has 1 LB VM (lab-lb1): a pair needs two"]);
  });

  test("openstack: a server group without anti-affinity, or an instance without the hint, fails", async () => {
    const affinity = editProps(openstack, TYPES.serverGroup, "prod-a-net-group", (p) => {
      p.policies = ["affinity"];
    });
    expect(messagesOf(await judge(affinity), P)).toEqual(
      ["prod-a-lb1", "prod-a-lb2"].map(
        (n) =>
          `${n} (openstack:compute/instance:Instance) is in server group prod-a-net-group whose policies are [affinity], not anti-affinity: both LBs may land on one compute host`,
      ),
    );
    const unhinted = edit(openstack, TYPES.instance, "prod-a-lb2", (r) => {
      delete r.inputs.schedulerHints;
      delete r.outputs.schedulerHints;
      delete r.propertyDependencies.schedulerHints;
    });
    expect(messagesOf(await judge(unhinted), P)).toEqual([
      "prod-a-lb2 (openstack:compute/instance:Instance) has no scheduler hint to a server group: Nova may place both LBs on one compute host",
    ]);
    const twoGroups = edit(openstack, TYPES.instance, "prod-a-lb2", (r) => {
      r.inputs.schedulerHints = r.outputs.schedulerHints = [{ group: "another-group-uuid" }];
      delete r.propertyDependencies.schedulerHints;
    });
    expect(messagesOf(await judge(twoGroups), P)).toEqual([
      "the LB instances of prod-a are in 2 different server groups: anti-affinity only holds within one group",
    ]);
  });

  test("openstack preview: the group's ID is not known yet, the property dependency still names the group", async () => {
    const preview = editProps(openstack, TYPES.instance, "prod-a-lb1", (p) => {
      p.schedulerHints = [{ group: UNKNOWN }];
    });
    expect(await judge(preview)).toEqual([]);
  });
});

describe("image-pinned-by-digest", () => {
  const P = "image-pinned-by-digest";
  const TAGGED = "registry.example/edgepair/appliance:1.4";

  test("a tag in BootcImage's ref, EdgePair's imageRef or the CR's spec.image fails", async () => {
    let rs = edit(libvirt, TYPES.bootcImage, "lab-image", (r) => {
      r.outputs.ref = TAGGED;
    });
    rs = edit(rs, TYPES.edgePair, "lab", (r) => {
      r.outputs.imageRef = TAGGED;
    });
    rs = edit(rs, TYPES.loadBalancerCr, "lab-cluster-loadbalancer", (r) => {
      (r.outputs.spec as Record<string, unknown>).image = TAGGED;
    });
    expect(messagesOf(await judge(rs), P).sort()).toEqual([
      `lab (edgepair:index:EdgePair) imageRef is "${TAGGED}": pin it by digest (registry/repo@sha256:<64 hex>)`,
      `lab-cluster-loadbalancer (kubernetes:edgepair.io/v1alpha1:LoadBalancer) spec.image is "${TAGGED}": pin it by digest (registry/repo@sha256:<64 hex>)`,
      `lab-image (edgepair:index:BootcImage) ref is "${TAGGED}": pin it by digest (registry/repo@sha256:<64 hex>)`,
    ]);
  });

  test("a digest with a tag before it passes; a short digest fails; an unknown ref (an image still to build) is left to `up`", async () => {
    const withTag = `registry.example/edgepair/appliance:1.4@sha256:${"c".repeat(64)}`;
    const set = (ref: string) =>
      edit(libvirt, TYPES.bootcImage, "lab-image", (r) => {
        r.outputs.ref = ref;
      });
    expect(messagesOf(await judge(set(withTag)), P)).toEqual([]);
    expect(
      messagesOf(await judge(set(`registry.example/edgepair/appliance@sha256:${"c".repeat(63)}`)), P),
    ).toHaveLength(1);
    expect(await judge(set(UNKNOWN))).toEqual([]);
  });
});

describe("vrrp-v3-fast-advert", () => {
  const P = "vrrp-v3-fast-advert";

  test("spec.vrrp.advertInterval 2 s fails in both rendered keepalived.conf and in the LoadBalancer CR", async () => {
    const slow = await libvirtPair(capture, {
      spec: (raw) => {
        raw.vrrp = { advertInterval: 2 };
      },
    });
    const vs = await judge(slow);
    expect(messagesOf(vs, P)).toEqual([
      "/etc/keepalived/keepalived.conf: vrrp_instance lab advert_int 2 s is above 1 s",
      "/etc/keepalived/keepalived.conf: vrrp_instance lab advert_int 2 s is above 1 s",
      "spec.vrrp.advertInterval 2 s is above 1 s",
    ]);
    expect(vs.filter((v) => v.policy === P).map((v) => v.urn?.split("::").pop())).toEqual([
      "lab-lb1-rendered",
      "lab-lb2-rendered",
      "lab-cluster-loadbalancer",
    ]);
    expect(levels(vs, P)).toEqual(["mandatory"]);
    // configurable: a higher ceiling passes it, an enforcement level override makes it advisory or switches it off
    expect(messagesOf(await judge(slow, { [P]: { maxAdvertIntervalSeconds: 2 } }), P)).toEqual([]);
    expect(levels(await judge(slow, { [P]: "advisory" }), P)).toEqual(["advisory"]);
    expect(await judge(slow, { [P]: "disabled" })).toEqual([]);
  });

  test("keepalived.conf without VRRP version 3 fails; a view whose files are not known yet (first OpenStack preview) is left to `up`", async () => {
    const v2 = editFile(libvirt, "lab-lb1-rendered", KEEPALIVED, (c) => c.replace("vrrp_version 3", "vrrp_version 2"));
    expect(messagesOf(await judge(v2), P)).toEqual([`${KEEPALIVED}: global_defs must set vrrp_version 3, found 2`]);
    const unknown = editProps(openstack, TYPES.renderedView, "prod-a-lb1-rendered", (p) => {
      p.files = UNKNOWN;
    });
    expect(await judge(unknown)).toEqual([]);
  });
});

describe("security-groups-no-outside-ssh-or-mcs", () => {
  const P = "security-groups-no-outside-ssh-or-mcs";
  const rule = (name: string, f: (p: Record<string, any>) => void) => editProps(openstack, TYPES.secGroupRule, name, f);

  test("SSH from 0.0.0.0/0, everything from anywhere, or no remote prefix at all fails", async () => {
    expect(
      messagesOf(
        await judge(
          rule("prod-a-net-sg-private-tcp-22", (p) => {
            p.remoteIpPrefix = "0.0.0.0/0";
          }),
        ),
        P,
      ),
    ).toEqual(["rule opens SSH (22/tcp) to 0.0.0.0/0, which is outside the internal ranges"]);
    const wide = rule("prod-a-net-sg-public-tcp-443", (p) => {
      p.portRangeMin = 1;
      p.portRangeMax = 65535;
    });
    expect(messagesOf(await judge(wide), P)).toEqual([
      "rule opens SSH (22/tcp) to 0.0.0.0/0, which is outside the internal ranges",
      "rule opens the machine config server (22623/tcp) to 0.0.0.0/0, which is outside the internal ranges",
    ]);
    const anywhere = rule("prod-a-net-sg-private-tcp-22623", (p) => {
      delete p.remoteIpPrefix;
    });
    expect(messagesOf(await judge(anywhere), P)).toEqual([
      "rule opens the machine config server (22623/tcp) to anywhere (no remote prefix), which is outside the internal ranges",
    ]);
  });

  test("internal sources, other protocols and source groups pass; internalCidrs extends what counts as inside", async () => {
    const corp = rule("prod-a-net-sg-private-tcp-22", (p) => {
      p.remoteIpPrefix = "198.18.0.0/15";
    });
    expect(messagesOf(await judge(corp), P)).toHaveLength(1);
    expect(messagesOf(await judge(corp, { [P]: { internalCidrs: ["198.18.0.0/15"] } }), P)).toEqual([]);
    expect(
      messagesOf(
        await judge(
          rule("prod-a-net-sg-private-tcp-22", (p) => {
            p.protocol = "udp";
            p.remoteIpPrefix = "0.0.0.0/0";
          }),
        ),
        P,
      ),
    ).toEqual([]);
    expect(
      messagesOf(
        await judge(
          rule("prod-a-net-sg-private-tcp-22", (p) => {
            delete p.remoteIpPrefix;
            p.remoteGroupId = "bastion-sg";
          }),
        ),
        P,
      ),
    ).toEqual([]);
  });
});

describe("floating-ips-no-ssh-or-mcs", () => {
  const P = "floating-ips-no-ssh-or-mcs";

  test("a floating IP associated with an LB's private port (SSH and 22623 from the cluster) fails", async () => {
    const moved = edit(openstack, TYPES.floatingIpAssociate, "prod-a-net-fip-203-0-113-100-association", (r) => {
      r.propertyDependencies.portId = [find(openstack, TYPES.port, "prod-a-net-primary-private").urn];
    });
    const msgs = messagesOf(await judge(moved), P);
    expect(msgs).toContain(
      "prod-a-net-fip-203-0-113-100-association (openstack:networking/floatingIpAssociate:FloatingIpAssociate) reaches port prod-a-net-primary-private, whose security group rule prod-a-net-sg-private-tcp-22 opens SSH (22/tcp) from 192.168.100.0/24",
    );
    expect(
      msgs.some((m) => m.includes("prod-a-net-sg-private-tcp-22623 opens the machine config server (22623/tcp)")),
    ).toBe(true);
    expect(msgs.some((m) => m.includes("prod-a-net-sg-forward-tcp-1-65535"))).toBe(true);
  });

  test("a public group rule opening SSH fails here (every floating IP reaches it) and in the security group policy", async () => {
    const ssh = editProps(openstack, TYPES.secGroupRule, "prod-a-net-sg-public-tcp-443", (p) => {
      p.portRangeMin = 22;
      p.portRangeMax = 22;
    });
    const vs = await judge(ssh);
    expect(messagesOf(vs, P)).toHaveLength(3);
    expect(messagesOf(vs, "security-groups-no-outside-ssh-or-mcs")).toHaveLength(1);
  });
});

describe("firewall-no-ssh-on-vips-or-outside-mcs", () => {
  const P = "firewall-no-ssh-on-vips-or-outside-mcs";
  const where = `${EXTERNAL_ZONE} (zone external, faces the outside)`;

  test("SSH zone-wide, SSH accepted on a public VIP, 22623 from anywhere in the outside zone fail", async () => {
    const zoneWide = editFile(libvirt, "lab-lb1-rendered", EXTERNAL_ZONE, (c) =>
      c.replace('<interface name="edgepair-fip"/>', '<interface name="edgepair-fip"/>\n  <service name="ssh"/>'),
    );
    expect(messagesOf(await judge(zoneWide), P)).toEqual([
      `${where}: opens SSH (22/tcp) to every address of the zone, its public VIPs included`,
    ]);
    const onVip = editFile(libvirt, "lab-lb2-rendered", EXTERNAL_ZONE, (c) =>
      c.replace('<destination address="172.31.250.3"/>', '<destination address="198.51.100.80"/>'),
    );
    expect(messagesOf(await judge(onVip), P)).toEqual([
      `${where}: a rule accepts SSH from anywhere on 198.51.100.80, a VIP`,
    ]);
    const mcs = '<rule family="ipv4">\n    <port port="22623" protocol="tcp"/>\n    <accept/>\n  </rule>\n</zone>';
    const mcsOpen = editFile(openstack, "prod-a-lb1-rendered", EXTERNAL_ZONE, (c) => c.replace("</zone>", mcs));
    expect(messagesOf(await judge(mcsOpen), P)).toEqual([`${where}: a rule accepts 22623/tcp from anywhere`]);
  });

  test("22623 from the cluster network passes; a zone file that is not XML is reported by path", async () => {
    const fromCluster =
      '<rule family="ipv4">\n    <source address="192.168.100.0/24"/>\n    <port port="22623" protocol="tcp"/>\n    <accept/>\n  </rule>\n</zone>';
    expect(
      messagesOf(
        await judge(editFile(libvirt, "lab-lb1-rendered", EXTERNAL_ZONE, (c) => c.replace("</zone>", fromCluster))),
        P,
      ),
    ).toEqual([]);
    const broken = editFile(libvirt, "lab-lb1-rendered", EXTERNAL_ZONE, (c) => c.replace("</zone>", ""));
    const msgs = messagesOf(await judge(broken), P);
    expect(msgs).toHaveLength(1);
    expect(msgs[0]).toMatch(/^\/etc\/firewalld\/zones\/external\.xml: not a readable firewalld zone/);
  });
});

describe("lbs-same-networks-distinct-addresses", () => {
  const P = "lbs-same-networks-distinct-addresses";

  test("libvirt: the second LB's private NIC on another network, or its keyfile on the first LB's address, fails", async () => {
    const apart = editProps(libvirt, TYPES.libvirtDomain, "lab-lb2", (p) => {
      p.nics[1].network = "lab-net-other";
    });
    expect(messagesOf(await judge(apart), P)).toEqual([
      "lab: the LBs are not on the same networks (lab-lb1 only on [libvirt network lab-net-private], lab-lb2 only on [libvirt network lab-net-other]); VRRP and the VIPs need both on each",
    ]);
    const sameAddress = editFile(libvirt, "lab-lb2-rendered", PRIVATE_KEYFILE, (c) =>
      c.replace("address1=192.168.100.3/24", "address1=192.168.100.2/24"),
    );
    expect(messagesOf(await judge(sameAddress), P)).toEqual([
      "lab: lab-lb-1 and lab-lb-2 both configure 192.168.100.2 on edgepair-private; each LB needs its own address",
    ]);
  });

  test("openstack: the second LB's private port on another network, or on the first LB's fixed IP, fails", async () => {
    const elsewhere = edit(openstack, TYPES.port, "prod-a-net-secondary-private", (r) => {
      r.inputs.networkId = r.outputs.networkId = "other-net-uuid";
      delete r.propertyDependencies.networkId;
    });
    expect(messagesOf(await judge(elsewhere), P)).toEqual([
      "prod-a: the LBs are not on the same networks (prod-a-lb1 only on [network prod-a-net-private], prod-a-lb2 only on [network other-net-uuid]); VRRP and the VIPs need both on each",
    ]);
    const clash = editProps(openstack, TYPES.port, "prod-a-net-secondary-private", (p) => {
      p.fixedIps[0].ipAddress = "192.168.100.2";
    });
    expect(messagesOf(await judge(clash), P)).toEqual([
      "prod-a: both LBs hold 192.168.100.2 on network prod-a-net-private; each needs its own address",
    ]);
  });
});

describe("agent-rbac-least-privilege", () => {
  const P = "agent-rbac-least-privilege";
  const role = (f: (p: Record<string, any>) => void) => editProps(libvirt, TYPES.role, "lab-cluster-role", f);
  const secrets = (extra: Record<string, unknown> = {}) => ({
    apiGroups: [""],
    resources: ["secrets"],
    verbs: ["get"],
    ...extra,
  });

  test("Secrets of the namespace, another Secret, Secrets cluster-wide, a wildcard verb or a binding to cluster-admin fail", async () => {
    expect(messagesOf(await judge(role((p) => p.rules.push(secrets()))), P)).toEqual([
      "rules[4] grants access to every Secret of the namespace; pin it with resourceNames: [lab-agent-token]",
    ]);
    expect(
      messagesOf(await judge(role((p) => p.rules.push(secrets({ resourceNames: ["registry-pull"] })))), P),
    ).toEqual(["rules[4] grants access to Secrets registry-pull, which are not the agent's own (lab-agent-token)"]);
    const clusterWide = editProps(libvirt, TYPES.clusterRole, "lab-cluster-nodes-reader", (p) =>
      p.rules.push(secrets({ resourceNames: ["lab-agent-token"] })),
    );
    expect(messagesOf(await judge(clusterWide), P)).toEqual([
      "rules[1] grants access to Secrets cluster-wide; the agent may only read its own token Secret, in its namespace",
    ]);
    expect(
      messagesOf(
        await judge(
          role((p) => {
            p.rules[0].verbs = ["*"];
          }),
        ),
        P,
      ),
    ).toEqual(["rules[0].verbs has the wildcard *"]);
    const admin = editProps(libvirt, TYPES.roleBinding, "lab-cluster-role", (p) => {
      p.roleRef = { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "cluster-admin" };
    });
    expect(messagesOf(await judge(admin), P)).toEqual([
      "roleRef is ClusterRole cluster-admin; the agent is bound only to its own ClusterRole edgepair:edgepair-system:lab:agent",
    ]);
  });

  test("its own token Secret by name passes; roles that are not the agent's are not judged", async () => {
    expect(
      messagesOf(await judge(role((p) => p.rules.push(secrets({ resourceNames: ["lab-agent-token"] })))), P),
    ).toEqual([]);
    const notAgent = role((p) => {
      p.metadata.labels["app.kubernetes.io/component"] = "operator";
      p.rules[0].verbs = ["*"];
    });
    expect(messagesOf(await judge(notAgent), P)).toEqual([]);
  });
});

/** The libvirt pair with the services variant's pools and extra services (test/fixtures/variants.ts). */
function withServices(raw: Record<string, unknown>): void {
  const services = servicesRaw();
  raw.serviceLoadBalancers = services.serviceLoadBalancers;
  raw.extraServices = services.extraServices;
}

describe("service-pools-distinct", () => {
  const P = "service-pools-distinct";
  const CR = "lab-cluster-loadbalancer";
  let services: CapturedResource[];
  beforeAll(async () => {
    services = await libvirtPair(capture, { spec: withServices });
  });
  /** The stack with the LoadBalancer resource's spec edited (as `kubectl edit` or another program could). */
  const crEdit = (f: (spec: Record<string, any>) => void) =>
    editProps(services, TYPES.loadBalancerCr, CR, (p) => f(p.spec));
  const pools = (spec: Record<string, any>) => spec.serviceLoadBalancers.pools as Record<string, any>[];

  test("counter-case: the pools as the spec allows them pass, and so do stacks without pools", async () => {
    expect(messagesOf(await judge(services), P)).toEqual([]);
    expect(messagesOf(await judge(services), "services-no-public-ssh-or-mcs")).toEqual([]);
    const touching = crEdit((spec) => {
      pools(spec).push({ name: "next", addresses: ["198.51.100.160-198.51.100.170"], type: "public" });
      pools(spec)[1]!.addresses.push("192.168.100.240/32");
    });
    expect(messagesOf(await judge(touching), P)).toEqual([]);
    expect(messagesOf(await judge(libvirt), P)).toEqual([]);
    expect(messagesOf(await judge(openstack), P)).toEqual([]);
  });

  test("pools overlapping each other, or two entries of one pool overlapping, fail", async () => {
    const across = crEdit((spec) =>
      pools(spec).push({ name: "more", addresses: ["198.51.100.150-198.51.100.170"], type: "public" }),
    );
    expect(messagesOf(await judge(across), P)).toEqual([
      "spec.serviceLoadBalancers.pools[2].addresses[0] 198.51.100.150-198.51.100.170 (pool more) overlaps spec.serviceLoadBalancers.pools[0].addresses[0] 198.51.100.128/27 (pool public): one address could go to two Services",
    ]);
    const within = crEdit((spec) => pools(spec)[1]!.addresses.push("192.168.100.239/32"));
    expect(messagesOf(await judge(within), P)).toEqual([
      "spec.serviceLoadBalancers.pools[1].addresses[1] 192.168.100.239/32 (pool internal) overlaps spec.serviceLoadBalancers.pools[1].addresses[0] 192.168.100.200-192.168.100.239 (pool internal): one address could go to two Services",
    ]);
    const vs = await judge(within);
    expect(vs.filter((v) => v.policy === P).map((v) => [v.level, v.urn?.split("::").pop()])).toEqual([
      ["mandatory", CR],
    ]);
  });

  test("a pool holding a VIP, the NAT gateway or an LB address fails, defaulted addresses included", async () => {
    const vip = crEdit((spec) => (pools(spec)[0]!.addresses = ["198.51.100.64/27"]));
    expect(messagesOf(await judge(vip), P)).toEqual([
      "spec.serviceLoadBalancers.pools[0].addresses[0] 198.51.100.64/27 (pool public) holds 198.51.100.80, virtualAddresses.ingress[0]: a Service would take it",
    ]);
    const gatewayAndLb = crEdit((spec) => (pools(spec)[1]!.addresses = ["192.168.100.1-192.168.100.2"]));
    expect(messagesOf(await judge(gatewayAndLb), P)).toEqual([
      "spec.serviceLoadBalancers.pools[1].addresses[0] 192.168.100.1-192.168.100.2 (pool internal) holds 192.168.100.1, the gateway: a Service would take it",
      "spec.serviceLoadBalancers.pools[1].addresses[0] 192.168.100.1-192.168.100.2 (pool internal) holds 192.168.100.2, an LB address (network.lbAddresses[0]): a Service would take it",
    ]);
    // written nowhere: the gateway and LB addresses the spec defaults to (the network's first three hosts)
    const defaulted = crEdit((spec) => {
      spec.network = { cidr: "192.168.100.0/24" };
      pools(spec)[1]!.addresses = ["192.168.100.3/32"];
    });
    expect(messagesOf(await judge(defaulted), P)).toEqual([
      "spec.serviceLoadBalancers.pools[1].addresses[0] 192.168.100.3/32 (pool internal) holds 192.168.100.3, an LB address (network.lbAddresses[1]): a Service would take it",
    ]);
  });

  test("an entry that is neither a CIDR nor a range cannot be judged and fails; an unknown spec is left to `up`", async () => {
    const bad = crEdit((spec) => (pools(spec)[0]!.addresses = ["198.51.100.128/27; 0.0.0.0/0"]));
    expect(messagesOf(await judge(bad), P)).toEqual([
      'spec.serviceLoadBalancers.pools[0].addresses[0] "198.51.100.128/27; 0.0.0.0/0" is neither a CIDR nor a first-last range of IPv4 addresses: it cannot be judged',
    ]);
    const unknown = editProps(services, TYPES.loadBalancerCr, CR, (p) => {
      p.spec = UNKNOWN;
    });
    expect(messagesOf(await judge(unknown), P)).toEqual([]);
  });
});

describe("services-no-public-ssh-or-mcs", () => {
  const P = "services-no-public-ssh-or-mcs";
  const CR = "lab-cluster-loadbalancer";
  const SERVICES_NFT = "/etc/edgepair/services.nft";
  let services: CapturedResource[];
  beforeAll(async () => {
    services = await libvirtPair(capture, { spec: withServices });
  });
  const crEdit = (f: (spec: Record<string, any>) => void) =>
    editProps(services, TYPES.loadBalancerCr, CR, (p) => f(p.spec));
  const port = (i: number, n: number, address?: string) =>
    crEdit((spec) => {
      spec.extraServices[i].frontend.port = n;
      if (address) spec.extraServices[i].frontend.address = address;
    });

  test("22 on a public pool address, 22623 over UDP on a public VIP: each fails in the LoadBalancer resource", async () => {
    expect(messagesOf(await judge(port(2, 22)), P)).toEqual([
      "spec.extraServices[2] (mqtt) takes TCP 198.51.100.130:22, in public pool public: SSH must never be reachable from outside",
    ]);
    expect(messagesOf(await judge(port(0, 22623)), P)).toEqual([
      "spec.extraServices[0] (syslog) takes UDP 198.51.100.80:22623, a public VIP: the machine config server must never be reachable from outside",
    ]);
    const vs = await judge(port(2, 22));
    expect(levels(vs, P)).toEqual(["mandatory"]);
    expect(vs.filter((v) => v.policy === P).map((v) => v.urn?.split("::").pop())).toEqual([CR]);
  });

  test("a pool typed private whose addresses are outside the internal ranges still counts as public; internalCidrs moves the line", async () => {
    const mislabelled = crEdit((spec) => {
      spec.serviceLoadBalancers.pools[0].type = "private";
      spec.extraServices[2].frontend.port = 22;
    });
    expect(messagesOf(await judge(mislabelled), P)).toEqual([
      "spec.extraServices[2] (mqtt) takes TCP 198.51.100.130:22, outside the internal ranges: SSH must never be reachable from outside",
    ]);
    expect(messagesOf(await judge(mislabelled, { [P]: { internalCidrs: ["198.51.100.128/27"] } }), P)).toEqual([]);
  });

  test("counter-cases: 22 on a private VIP or a private pool address, 80 or 443 on a public one pass", async () => {
    expect(messagesOf(await judge(port(1, 22)), P)).toEqual([]);
    expect(messagesOf(await judge(port(1, 22623, "192.168.100.200")), P)).toEqual([]);
    expect(messagesOf(await judge(port(2, 80)), P)).toEqual([]);
    expect(messagesOf(await judge(port(0, 443)), P)).toEqual([]);
  });

  test("the rendered services.nft forwarding 22 on an outside address fails; on a cluster address it passes", async () => {
    const nft = (f: (c: string) => string) =>
      editFile(services, "lab-lb1-rendered", SERVICES_NFT, (c) => {
        const edited = f(c);
        if (edited === c) throw new Error(`the edit changed nothing in ${SERVICES_NFT}:\n${c}`);
        return edited;
      });
    const outside = nft((c) => c.replace("198.51.100.130 . tcp . 8883 :", "198.51.100.130 . tcp . 22 :"));
    expect(messagesOf(await judge(outside), P)).toEqual([
      `${SERVICES_NFT}: forwards TCP 198.51.100.130:22, outside the internal ranges: SSH must never be reachable from outside`,
    ]);
    const mcs = nft((c) => c.replace("198.51.100.130 . tcp . 8883 :", "198.51.100.130 . tcp . 22623 :"));
    expect(messagesOf(await judge(mcs), P)).toHaveLength(1);
    const inside = nft((c) => c.replace("192.168.100.100 . tcp . 5432 :", "192.168.100.100 . tcp . 22 :"));
    expect(messagesOf(await judge(inside), P)).toEqual([]);
    // a comment naming the port is not a frontend
    const comment = nft((c) => `${c}\n# 198.51.100.130 . tcp . 22 : goto nowhere\n`);
    expect(messagesOf(await judge(comment), P)).toEqual([]);
  });
});

describe("advisory policies", () => {
  test("soft anti-affinity (a component argument) is advisory", async () => {
    const soft = await judge(await openstackPair(capture, { antiAffinity: "soft" }));
    expect(soft.map((v) => [v.policy, v.level])).toEqual([["server-group-hard-anti-affinity", "advisory"]]);
    expect(messagesOf(soft, "server-group-hard-anti-affinity")).toEqual([
      'server group policies are [soft-anti-affinity]: prefer anti-affinity (antiAffinity: "hard")',
    ]);
  });

  test("the lab's settings (no ready gate, 1 vCPU, 256 MiB) are advisory; the thresholds and the level are configurable", async () => {
    const lab = await libvirtPair(capture, { vcpu: 1, memoryMiB: 256, args: { readiness: { enabled: false } } });
    const vs = await judge(lab);
    expect(vs.every((v) => v.level === "advisory")).toBe(true);
    expect(messagesOf(vs, "second-lb-waits-for-first")).toEqual(
      Array(2).fill("the gate is disabled: the next LB will not wait for this one to serve again"),
    );
    expect(messagesOf(vs, "lb-vm-sizing")).toEqual([
      "vcpu 1 is below 2",
      "memoryMiB 256 is below 2048",
      "vcpu 1 is below 2",
      "memoryMiB 256 is below 2048",
    ]);
    expect(
      messagesOf(await judge(lab, { "lb-vm-sizing": { minVcpus: 1, minMemoryMiB: 256 } }), "lb-vm-sizing"),
    ).toEqual([]);
    expect(levels(await judge(lab, { "lb-vm-sizing": { enforcementLevel: "mandatory" } }), "lb-vm-sizing")).toEqual([
      "mandatory",
    ]);
  });

  test("a seed or instance whose user-data is not create-only is advisory", async () => {
    const seed = edit(libvirt, "pulumi-nodejs:dynamic/libvirt:CloudInitDisk", "lab-lb1-seed", (r) => {
      r.ignoreChanges = [];
    });
    expect(messagesOf(await judge(seed), "first-boot-inputs-create-only")).toEqual([
      "userData is not in ignoreChanges: a spec change would replace this LB",
    ]);
    const server = edit(openstack, TYPES.instance, "prod-a-lb2", (r) => {
      r.ignoreChanges = ["imageName"];
    });
    expect((await judge(server)).map((v) => [v.policy, v.level, v.urn?.split("::").pop()])).toEqual([
      ["first-boot-inputs-create-only", "advisory", "prod-a-lb2"],
    ]);
  });
});
