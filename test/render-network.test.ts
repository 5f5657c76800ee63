import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { renderFirewall } from "../render/firewall";
import { EGRESS_POLICY, renderFirewalld } from "../render/firewalld";
import { GUARD_NFT_PATH, GUARD_TABLE, METADATA_V4, METADATA_V6, renderGuard } from "../render/guard";
import { NAT_NFT_PATH, NAT_TABLE, renderNatNftables } from "../render/nat-nftables";
import {
  FIP_CONNECTION,
  NM_APPLY_SCRIPT,
  NM_CONNECTIONS_DIR,
  PRIVATE_CONNECTION,
  PUBLIC_CONNECTION,
  SYNC_CONNECTION,
  profileUuid,
  renderNetworkManager,
} from "../render/networkmanager";
import { SYSCTL_PATH, renderSysctl } from "../render/sysctl";
import type { RenderedFile, RenderInput } from "../render/types";
import { FLOATING_IP_INTERFACE, type HostFacts, type ResolvedSpec } from "../spec/types";
import { checkFirewalld, listAll, listAllParallel, type Listing } from "./checkers/firewalld";
import { withNetns } from "./checkers/netns";
import { applyNft, checkNft, checkNftFiles } from "./checkers/nft";
import { checkNmFiles, checkNmKeyfile, runWithNetworkManager, shellLine } from "./checkers/nmcli";
import { run } from "./checkers/run";
import { checkSysctl, checkSysctlFiles } from "./checkers/sysctl";
import { devBackends, devResolved, primaryHost, secondaryHost } from "./fixtures/resolved";
import { variants, variantsByHost } from "./fixtures/variants";

const devHosts: HostFacts[] = [primaryHost, secondaryHost];
const input = (spec: ResolvedSpec, host: HostFacts = primaryHost): RenderInput => ({
  spec,
  host,
  backends: devBackends,
});
const byPath = (files: RenderedFile[], path: string): RenderedFile => {
  const f = files.find((x) => x.path === path);
  if (!f) throw new Error(`${path} not rendered; got ${files.map((x) => x.path).join(", ")}`);
  return f;
};
const own = (pair: readonly [string, string], host: HostFacts) => (host.role === "primary" ? pair[0] : pair[1]);
const peer = (pair: readonly [string, string], host: HostFacts) => (host.role === "primary" ? pair[1] : pair[0]);
const keyfilePath = (id: string) => `${NM_CONNECTIONS_DIR}/${id}.nmconnection`;
/** The key=value lines of one [section] of a keyfile. */
function keyfileSection(content: string, name: string): Record<string, string> {
  const out: Record<string, string> = {};
  let inside = false;
  for (const line of content.split("\n")) {
    if (line.startsWith("[")) inside = line === `[${name}]`;
    else if (inside && line.includes("=")) out[line.slice(0, line.indexOf("="))] = line.slice(line.indexOf("=") + 1);
  }
  return out;
}
/** The rich rules firewalld reports for a zone or policy, one per line. */
const richRules = (listing: string): string[] => listing.split("\n").filter((l) => l.trim().startsWith("rule "));
const field = (listing: string, name: string): string =>
  listing
    .split("\n")
    .find((l) => l.trim().startsWith(`${name}:`))
    ?.split(":")
    .slice(1)
    .join(":")
    .trim() ?? "";

const osApi = { address: "172.31.250.100", family: 4 as const, type: "public" as const };
const osNat = { address: "172.31.250.253", family: 4 as const, type: "public" as const };
const openstackSpec: ResolvedSpec = {
  ...devResolved,
  virtualAddresses: { api: [devResolved.virtualAddresses.api[0]!, osApi], ingress: [], nat: osNat },
  platform: {
    type: "openstack",
    publicNetwork: {
      cidr: "172.31.250.0/24",
      prefixLength: 24,
      gateway: "172.31.250.1",
      lbAddresses: ["172.31.250.2", "172.31.250.3"],
    },
  },
  derived: {
    ...devResolved.derived,
    publicVips: [osApi, osNat],
    frontends: { api: [devResolved.virtualAddresses.api[0]!, osApi], machineConfig: [], ingress: [] },
  },
};
const noNatSpec: ResolvedSpec = {
  ...devResolved,
  virtualAddresses: { api: devResolved.virtualAddresses.api, ingress: devResolved.virtualAddresses.ingress },
};
const openshiftSpec: ResolvedSpec = {
  ...devResolved,
  distribution: "openshift",
  derived: {
    ...devResolved.derived,
    frontends: { ...devResolved.derived.frontends, machineConfig: [devResolved.virtualAddresses.api[0]!] },
  },
};

describe("NetworkManager keyfiles", () => {
  describe.each(variantsByHost)("$label", ({ spec, host, backends }) => {
    const files = renderNetworkManager({ spec, host, backends });

    test("nmcli accepts every keyfile and keeps the zone binding and the MAC match", () => {
      for (const f of files) {
        const r = checkNmKeyfile(f.content);
        if (!r.ok) throw new Error(`${f.path}: ${r.output}`);
        const normalized = r.output;
        const zone = keyfileSection(f.content, "connection").zone;
        expect(zone).toMatch(/^(external|internal|edgepair-sync)$/);
        expect(normalized).toContain(`zone=${zone}`);
        const mac = keyfileSection(f.content, "ethernet")["mac-address"];
        if (f.path !== keyfilePath(FIP_CONNECTION)) expect(normalized.toLowerCase()).toContain(`mac-address=${mac}`);
      }
    });

    test("every keyfile is 0600 under system-connections", () => {
      for (const f of files) {
        expect(f.mode).toBe(0o600);
        expect(f.path.startsWith(`${NM_CONNECTIONS_DIR}/`)).toBe(true);
        expect(f.reload.service).toBe("networkmanager");
      }
    });

    test("public NIC: own address on the public network, the gateway, zone external, matched by its MAC", () => {
      const pub = byPath(files, keyfilePath(PUBLIC_CONNECTION)).content;
      const net = spec.platform.publicNetwork;
      expect(keyfileSection(pub, "ethernet")["mac-address"]).toBe(host.publicInterface.mac.toLowerCase());
      expect(keyfileSection(pub, "connection").zone).toBe("external");
      expect(pub).toContain(`address1=${own(net.lbAddresses, host)}/${net.prefixLength}\n`);
      expect(pub).toContain(`gateway=${net.gateway}\n`);
      expect(pub).not.toContain(peer(net.lbAddresses, host));
    });

    test("private NIC: own address with the cluster prefix, never the default route, zone internal", () => {
      const priv = byPath(files, keyfilePath(PRIVATE_CONNECTION)).content;
      expect(keyfileSection(priv, "ethernet")["mac-address"]).toBe(host.privateInterface.mac.toLowerCase());
      expect(keyfileSection(priv, "connection").zone).toBe("internal");
      expect(keyfileSection(priv, "ipv4")).toEqual({
        method: "manual",
        address1: `${own(spec.network.lbAddresses, host)}/${spec.network.prefixLength}`,
        "never-default": "true",
      });
      // VIPs are keepalived's: a VIP in the profile would sit on both LBs at once.
      for (const v of spec.derived.privateVips) expect(priv).not.toContain(`=${v.address}/`);
    });

    test("sync link: a profile only with syncNetwork, its own address and zone, no route, matched by its MAC", () => {
      const f = files.find((x) => x.path === keyfilePath(SYNC_CONNECTION));
      if (!spec.syncNetwork) return expect(f).toBeUndefined();
      const c = f?.content ?? "";
      expect(keyfileSection(c, "ethernet")["mac-address"]).toBe(host.syncInterface?.mac);
      expect(keyfileSection(c, "connection").zone).toBe("edgepair-sync");
      expect(keyfileSection(c, "ipv4")).toEqual({
        method: "manual",
        address1: `${own(spec.syncNetwork.lbAddresses, host)}/${spec.syncNetwork.prefixLength}`,
        "never-default": "true",
      });
      expect(keyfileSection(c, "ipv6")).toEqual({ method: "disabled" });
    });

    test("the dummy link holds every address both LBs serve: frontend VIPs, and every public VIP when routed", () => {
      const fip = files.find((f) => f.path === keyfilePath(FIP_CONNECTION));
      expect(fip).toBeDefined();
      const c = fip?.content ?? "";
      expect(keyfileSection(c, "connection")).toMatchObject({
        type: "dummy",
        "interface-name": FLOATING_IP_INTERFACE,
        zone: "external",
      });
      const { api, machineConfig, ingress } = spec.derived.frontends;
      const routed = spec.platform.type === "libvirt" ? spec.derived.publicVips : [];
      for (const family of [4, 6] as const) {
        const section = keyfileSection(c, `ipv${family}`);
        const vips = [
          ...new Set(
            [...routed, ...api, ...machineConfig, ...ingress].filter((v) => v.family === family).map((v) => v.address),
          ),
        ];
        expect(section.method).toBe(vips.length > 0 ? "manual" : "disabled");
        const addresses = Object.entries(section)
          .filter(([k]) => k.startsWith("address"))
          .map(([, v]) => v);
        expect(addresses.sort()).toEqual(vips.map((v) => `${v}/${family === 4 ? 32 : 128}`).sort());
      }
      // the cluster's gateway VIP is never local on the BACKUP: it would black-hole the nodes' egress
      expect(c).not.toContain(`=${spec.network.gateway}/`);
    });

    test("reload loads each file and reapplies it keeping external addresses; never a flushing command", () => {
      for (const f of files) {
        const cmds = f.reload.commands.map((c) => c.join(" "));
        expect(f.reload.commands[0]).toEqual(["nmcli", "connection", "load", f.path]);
        const apply = f.reload.commands[1] ?? [];
        expect(apply.slice(0, 4)).toEqual(["sh", "-c", NM_APPLY_SCRIPT, "edgepair-nm-apply"]);
        const iface = f.path.endsWith(`${PUBLIC_CONNECTION}.nmconnection`)
          ? host.publicInterface.name
          : f.path.endsWith(`${PRIVATE_CONNECTION}.nmconnection`)
            ? host.privateInterface.name
            : f.path.endsWith(`${SYNC_CONNECTION}.nmconnection`)
              ? host.syncInterface?.name
              : FLOATING_IP_INTERFACE;
        expect(apply.slice(4)).toEqual([iface, keyfileSection(f.content, "connection").uuid]);
        for (const c of cmds) {
          expect(c).not.toMatch(/nmcli (device|d) reapply|connection reload/);
        }
      }
    });
  });

  test("counter-case: nmcli rejects ipv4.method=manuel and a broken section header", () => {
    const pub = byPath(renderNetworkManager(input(devResolved)), keyfilePath(PUBLIC_CONNECTION)).content;
    expect(checkNmKeyfile(pub).ok).toBe(true);
    const bad = checkNmKeyfile(pub.replace("method=manual", "method=manuel"));
    expect(bad.ok).toBe(false);
    expect(bad.output).toContain("ipv4.method");
    expect(checkNmKeyfile(pub.replace("[ipv4]", "[ipv4")).ok).toBe(false);
  });

  test("the apply script passes shellcheck and reapplies with the preserve-external-IP flag", () => {
    const dir = mkdtempSync(join(tmpdir(), "ep-nm-script-"));
    try {
      const path = join(dir, "apply.sh");
      writeFileSync(path, `#!/bin/sh\n${NM_APPLY_SCRIPT}\n`);
      const r = run("shellcheck", ["-s", "sh", path]);
      expect(r.output).toBe("");
      expect(r.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // Device.Reapply(settings={}, version_id=0, flags=NM_DEVICE_REAPPLY_FLAGS_PRESERVE_EXTERNAL_IP)
    expect(NM_APPLY_SCRIPT).toContain("org.freedesktop.NetworkManager.Device Reapply 'a{sa{sv}}tu' 0 0 1");
  });

  test("real NetworkManager: the reload action applies a changed profile and keeps keepalived's addresses", () => {
    // The dummy link is left out: this kernel has no dummy links.
    const files = renderNetworkManager(input(devResolved)).filter(
      (f) => !f.path.endsWith(`${FIP_CONNECTION}.nmconnection`),
    );
    const pub = byPath(files, keyfilePath(PUBLIC_CONNECTION));
    const priv = byPath(files, keyfilePath(PRIVATE_CONNECTION));
    const changed = { ...pub, content: pub.content.replace("gateway=172.31.250.1", "gateway=172.31.250.254") };
    const reloadOf = (f: RenderedFile) => f.reload.commands.map(shellLine).join(" && ");
    const addrs = (dev: string) =>
      `echo "${dev}: $(ip -o addr show dev ${dev} | awk '{print $4}' | grep -v '^fe80' | tr '\\n' ' ')"`;
    const script = [
      `${reloadOf(pub)} && ${reloadOf(priv)} && echo first-apply-ok`,
      "sleep 1",
      // What keepalived adds on MASTER: a private VIP, the public next hop, an IPv6 public VIP.
      "ip addr add 192.168.100.100/32 dev eth1 && ip addr add 172.31.250.10/32 dev eth0 && ip addr add 2001:db8:100::100/128 dev eth0 nodad",
      `cat > ${pub.path} <<'KEYFILE'\n${changed.content}KEYFILE`,
      `${reloadOf(changed)} && ${reloadOf(priv)} && echo second-apply-ok`,
      "sleep 1",
      addrs("eth0"),
      addrs("eth1"),
      'echo "route: $(ip route show default)"',
      'echo "zones: $(nmcli -g connection.zone connection show edgepair-public) $(nmcli -g connection.zone connection show edgepair-private)"',
      // Contrast: what the obvious command does to the same VIP.
      "nmcli device reapply eth1 >/dev/null && sleep 1",
      `echo "after nmcli device reapply: $(ip -o addr show dev eth1 | awk '{print $4}' | tr '\\n' ' ')"`,
    ].join("\n");
    const r = runWithNetworkManager(
      files,
      [
        { name: primaryHost.publicInterface.name, mac: primaryHost.publicInterface.mac },
        { name: primaryHost.privateInterface.name, mac: primaryHost.privateInterface.mac },
      ],
      script,
    );
    const out = r.output;
    if (!out.includes("second-apply-ok")) throw new Error(out);
    const line = (prefix: string) => out.split("\n").find((l) => l.startsWith(prefix)) ?? "";
    expect(line("eth0:").split(" ")).toEqual(
      expect.arrayContaining(["172.31.250.2/24", "172.31.250.10/32", "2001:db8:100::100/128"]),
    );
    expect(line("eth1:").split(" ")).toEqual(expect.arrayContaining(["192.168.100.2/24", "192.168.100.100/32"]));
    expect(line("route:")).toContain("default via 172.31.250.254 dev eth0"); // the change was applied
    expect(line("zones:")).toBe("zones: external internal");
    expect(line("after nmcli device reapply:")).not.toContain("192.168.100.100");
  });

  test("openstack: the dummy link holds the frontend VIPs only (the NAT VIP is the MASTER's alone); NICs bound to zones", () => {
    for (const host of devHosts) {
      const files = renderNetworkManager(input(openstackSpec, host));
      expect(files.map((f) => f.path).sort()).toEqual([
        keyfilePath(FIP_CONNECTION),
        keyfilePath(PRIVATE_CONNECTION),
        keyfilePath(PUBLIC_CONNECTION),
      ]);
      expect(checkNmFiles(files).ok).toBe(true);
      const fip = files.find((f) => f.path === keyfilePath(FIP_CONNECTION))?.content ?? "";
      const nat = openstackSpec.virtualAddresses.nat;
      if (nat) expect(fip).not.toContain(`=${nat.address}/`);
    }
  });

  test("an IPv6 public network puts the static address in [ipv6] and disables IPv4", () => {
    const spec: ResolvedSpec = {
      ...openstackSpec,
      virtualAddresses: { api: [devResolved.virtualAddresses.api[0]!], ingress: [] },
      platform: {
        type: "openstack",
        publicNetwork: {
          cidr: "2001:db8:7::/64",
          prefixLength: 64,
          gateway: "2001:db8:7::1",
          lbAddresses: ["2001:db8:7::2", "2001:db8:7::3"],
        },
      },
      derived: {
        ...devResolved.derived,
        publicVips: [],
        frontends: { api: [devResolved.virtualAddresses.api[0]!], machineConfig: [], ingress: [] },
      },
    };
    const pub = byPath(renderNetworkManager(input(spec, secondaryHost)), keyfilePath(PUBLIC_CONNECTION)).content;
    expect(keyfileSection(pub, "ipv4")).toEqual({ method: "disabled" });
    expect(keyfileSection(pub, "ipv6")).toMatchObject({
      method: "manual",
      address1: "2001:db8:7::3/64",
      gateway: "2001:db8:7::1",
    });
    expect(checkNmKeyfile(pub).ok).toBe(true);
  });

  test("profile UUIDs are RFC 4122 version 5, stable, distinct per profile and per cluster", () => {
    const a = profileUuid(devResolved, PUBLIC_CONNECTION);
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(profileUuid(devResolved, PUBLIC_CONNECTION)).toBe(a);
    expect(profileUuid(devResolved, PRIVATE_CONNECTION)).not.toBe(a);
    expect(profileUuid({ ...devResolved, clusterName: "other" }, PUBLIC_CONNECTION)).not.toBe(a);
  });
});

describe("sysctl", () => {
  describe.each(variantsByHost)("$label", ({ spec, host, backends }) => {
    const files = renderSysctl({ spec, host, backends });

    test("sysctl -p applies the file in a namespace with the named NICs", () => {
      const sync = spec.syncNetwork && host.syncInterface ? [host.syncInterface.name] : [];
      const r = checkSysctlFiles(files, [host.publicInterface.name, host.privateInterface.name, ...sync]);
      if (!r.ok) throw new Error(r.output);
      expect(r.output).toContain("net.netfilter.nf_conntrack_tcp_loose = 0");
      // the sync link carries only the pair's own traffic: strict reverse-path filtering there, and only there
      for (const s of sync) expect(r.output).toContain(`net.ipv4.conf.${s}.rp_filter = 1`);
      if (sync.length === 0) expect(files[0]?.content).not.toMatch(/rp_filter = 1/);
    });

    test("gateway, VRRP and conntrack settings, per-interface keys on this host's NICs", () => {
      const [f] = files;
      expect(files).toHaveLength(1);
      expect(f?.path).toBe(SYSCTL_PATH);
      expect(f?.mode).toBe(0o644);
      expect(f?.reload).toEqual({ service: "sysctl", commands: [["sysctl", "-p", SYSCTL_PATH]] });
      const content = f?.content ?? "";
      const pub = host.publicInterface.name;
      const priv = host.privateInterface.name;
      for (const line of [
        "net.ipv4.ip_forward = 1",
        "net.ipv4.ip_nonlocal_bind = 1",
        "net.ipv6.ip_nonlocal_bind = 1",
        "net.netfilter.nf_conntrack_tcp_loose = 0",
        `net.ipv6.conf.${pub}.accept_ra = 2`,
        `net.ipv4.conf.${pub}.arp_ignore = 1`,
        `net.ipv4.conf.${priv}.arp_announce = 2`,
        "net.ipv4.conf.all.send_redirects = 0",
        `net.ipv4.conf.${priv}.send_redirects = 0`,
      ]) {
        expect(content.split("\n")).toContain(line);
      }
    });
  });

  test("an interface name with a dot (VLAN) is written with slashes and accepted by sysctl", () => {
    const host: HostFacts = { ...primaryHost, publicInterface: { name: "eth0.100", mac: "52:54:00:ed:01:09" } };
    const content = renderSysctl(input(devResolved, host))[0]?.content ?? "";
    expect(content).toContain("net/ipv6/conf/eth0.100/accept_ra = 2");
    const r = checkSysctl(content, ["eth0.100", host.privateInterface.name]);
    if (!r.ok) throw new Error(r.output);
  });

  test("counter-case: a misspelled key is rejected", () => {
    const content = renderSysctl(input(devResolved))[0]?.content ?? "";
    const r = checkSysctl(content.replace("net.ipv4.ip_forward", "net.ipv4.ip_forwrd"), ["eth0", "eth1"]);
    expect(r.ok).toBe(false);
    expect(r.output).toContain("ip_forwrd");
  });
});

describe("firewalld", () => {
  describe.each(variantsByHost)("$label", ({ spec, host, backends }) => {
    const files = renderFirewalld({ spec, host, backends });
    let external = "";
    let internal = "";
    let policy = "";
    let sync = "";
    beforeAll(async () => {
      const listings: Listing[] = [
        { name: "external", kind: "zone" },
        { name: "internal", kind: "zone" },
        { name: EGRESS_POLICY, kind: "policy" },
        ...(spec.syncNetwork ? [{ name: "edgepair-sync", kind: "zone" as const }] : []),
      ];
      [external = "", internal = "", policy = "", sync = ""] = await listAllParallel(files, listings);
    });

    test("firewall-offline-cmd --check-config accepts the tree", () => {
      const r = checkFirewalld(files);
      if (!r.ok) throw new Error(r.output);
      for (const f of files) {
        expect(f.mode).toBe(0o644);
        expect(f.reload).toEqual({ service: "firewalld", commands: [["firewall-cmd", "--reload"]] });
      }
    });

    test("external: no 22623, no metrics, no masquerade, no SSH service; API/ingress ports only for public VIPs", () => {
      const ports = field(external, "ports").split(/\s+/).filter(Boolean);
      expect(ports).not.toContain("22623/tcp");
      expect(ports).not.toContain(`${spec.metrics.port}/tcp`);
      expect(external).not.toContain("22623");
      expect(field(external, "masquerade")).toBe("no");
      expect(field(external, "services")).toBe("");
      expect(field(external, "target")).toBe("default");
      const fip = spec.platform.type === "libvirt" ? [FLOATING_IP_INTERFACE] : [];
      expect(field(external, "interfaces").split(/\s+/).filter(Boolean).sort()).toEqual(
        [host.publicInterface.name, ...fip].sort(),
      );
      expect(field(internal, "interfaces")).toBe(host.privateInterface.name);
      const publicApi = spec.derived.frontends.api.some((v) => v.type === "public");
      const publicIngress = spec.derived.frontends.ingress.some((v) => v.type === "public");
      expect(ports.includes("6443/tcp")).toBe(publicApi);
      expect(ports.includes("443/tcp")).toBe(publicIngress);
      expect(ports.includes("80/tcp")).toBe(publicIngress);
    });

    test("external: SSH accepted on this LB's own public address only, rejected first on every public VIP", () => {
      const rules = richRules(external);
      const mine = own(spec.platform.publicNetwork.lbAddresses, host);
      const accepts = rules.filter((r) => r.includes("ssh") && r.endsWith("accept"));
      expect(accepts).toHaveLength(1);
      expect(accepts[0]).toContain(`destination address="${mine}"`);
      const shared = [
        ...spec.derived.publicVips.map((v) => v.address),
        ...(spec.platform.publicNetwork.nextHop ? [spec.platform.publicNetwork.nextHop] : []),
      ];
      for (const address of shared) {
        const family = address.includes(":") ? "ipv6" : "ipv4";
        expect(rules).toContainEqual(
          expect.stringMatching(
            new RegExp(
              `rule priority="-\\d+" family="${family}" destination address="${address.replace(/[.]/g, "\\.")}" service name="ssh" reject`,
            ),
          ),
        );
      }
      expect(rules.filter((r) => r.includes("reject"))).toHaveLength(shared.length);
    });

    test("internal: API always, 22623 only with private OpenShift API VIPs, 80/443 only with ingress, forward on", () => {
      const ports = field(internal, "ports").split(/\s+/).filter(Boolean);
      expect(ports).toContain("6443/tcp");
      expect(ports.includes("22623/tcp")).toBe(
        spec.distribution === "openshift" && spec.derived.frontends.machineConfig.length > 0,
      );
      expect(ports.includes("80/tcp")).toBe(spec.derived.frontends.ingress.length > 0);
      expect(ports.includes("443/tcp")).toBe(spec.derived.frontends.ingress.length > 0);
      expect(ports).not.toContain(`${spec.metrics.port}/tcp`); // only through the source-limited rule
      // SSH is a rich rule to this LB's own private address (every VIP is local to both LBs), not the open service
      expect(field(internal, "services")).toBe("");
      expect(field(internal, "forward")).toBe("yes");
      expect(field(internal, "masquerade")).toBe("no");
    });

    test("internal: SSH to this LB's own address only; metrics from the cluster network only; VRRP and conntrack sync from the peer only", () => {
      const rules = richRules(internal);
      const link = spec.syncNetwork ?? spec.network;
      const p = peer(link.lbAddresses, host);
      const peerRules = [
        `rule family="ipv4" source address="${p}" protocol value="vrrp" accept`,
        `rule family="ipv4" source address="${p}" port port="${spec.conntrack.port}" protocol="udp" accept`,
      ];
      expect(rules).toEqual(
        [
          `rule family="ipv4" destination address="${own(spec.network.lbAddresses, host)}" service name="ssh" accept`,
          `rule family="ipv4" source address="${spec.network.cidr}" port port="${spec.metrics.port}" protocol="tcp" accept`,
          // with a sync link, VRRP and the sync are not taken from the cluster network at all
          ...(spec.syncNetwork ? [] : peerRules),
        ].map((r) => expect.stringContaining(r)),
      );
      const syncFile = files.find((f) => f.path.endsWith("/zones/edgepair-sync.xml"));
      if (!spec.syncNetwork) return expect(syncFile).toBeUndefined();
      expect(field(sync, "interfaces")).toBe(host.syncInterface?.name);
      expect([field(sync, "services"), field(sync, "ports"), field(sync, "forward")]).toEqual(["", "", "no"]);
      expect(richRules(sync)).toEqual(peerRules.map((r) => expect.stringContaining(r)));
      expect(internal).not.toContain(`source address="${own(spec.network.lbAddresses, host)}"`);
    });

    test("egress policy: internal to external, rejecting unless NAT is set, then only from the cluster network", () => {
      expect(field(policy, "target")).toBe("REJECT");
      expect(field(policy, "ingress-zones")).toBe("internal");
      expect(field(policy, "egress-zones")).toBe("external");
      expect(field(policy, "masquerade")).toBe("no");
      expect(richRules(policy)).toEqual(
        spec.virtualAddresses.nat
          ? [
              // never to link-local (a cloud's metadata service), before the accept
              expect.stringMatching(
                /^\s*rule priority="-\d+" family="ipv4" destination address="169\.254\.0\.0\/16" reject/,
              ),
              expect.stringContaining(`rule family="ipv4" source address="${spec.network.cidr}" accept`),
            ]
          : [],
      );
    });
  });

  test("synthetic specs: no nat closes egress, openshift opens 22623 inside only, openstack rejects SSH on its VIPs", () => {
    expect(richRules(listAll(renderFirewalld(input(noNatSpec)), EGRESS_POLICY, "policy").output)).toEqual([]);
    const os = renderFirewalld(input(openshiftSpec, secondaryHost));
    expect(checkFirewalld(os).ok).toBe(true);
    expect(field(listAll(os, "internal").output, "ports")).toContain("22623/tcp");
    expect(listAll(os, "external").output).not.toContain("22623");
    const stack = renderFirewalld(input(openstackSpec));
    expect(checkFirewalld(stack).ok).toBe(true);
    const ext = listAll(stack, "external").output;
    expect(ext).toContain('destination address="172.31.250.100" service name="ssh" reject');
    expect(ext).toContain('destination address="172.31.250.253" service name="ssh" reject');
    expect(ext).toContain('destination address="172.31.250.2" service name="ssh" accept');
    expect(ext).not.toContain("198.51.100");
    expect(field(ext, "ports")).toBe("6443/tcp"); // no ingress in this spec
  });

  test("counter-cases: <rich-rule> and an unknown service are rejected", () => {
    const files = renderFirewalld(input(devResolved));
    const zone = byPath(files, "/etc/firewalld/zones/internal.xml");
    const withFile = (content: string) => files.map((f) => (f === zone ? { ...f, content } : f));
    const richRule = checkFirewalld(
      withFile(zone.content.replace(/<rule /, "<rich-rule ").replace("</rule>", "</rich-rule>")),
    );
    expect(richRule.ok).toBe(false);
    expect(richRule.output).toMatch(/rich-rule/);
    // a zone-level service (firewall-offline-cmd does not look up services named inside rich rules)
    const unknown = checkFirewalld(
      withFile(zone.content.replace(/(<interface [^>]*\/>)/, '$1\n  <service name="edgepair-nosuch"/>')),
    );
    expect(unknown.ok).toBe(false);
    expect(unknown.output).toMatch(/INVALID_SERVICE/);
  });
});

describe("egress SNAT (nftables)", () => {
  describe.each(variantsByHost)("$label", ({ spec, host, backends }) => {
    const files = renderNatNftables({ spec, host, backends });

    test("nft -c accepts the file; SNAT of all protocols from the cluster network to the NAT VIP when nat is set", () => {
      const r = checkNftFiles(files);
      if (!r.ok) throw new Error(r.output);
      const [f] = files;
      expect(f?.path).toBe(NAT_NFT_PATH);
      expect(f?.reload).toEqual({ service: "nftables", commands: [["nft", "-f", NAT_NFT_PATH]] });
      const content = f?.content ?? "";
      const nat = spec.virtualAddresses.nat;
      const rule = `oifname "${host.publicInterface.name}" ip saddr ${spec.network.cidr} snat to ${nat?.address}`;
      expect(content.includes(rule)).toBe(nat !== undefined);
      expect(content).toContain(`delete table ip ${NAT_TABLE}`);
      // Not TCP-only as in the proof of concept: UDP (DNS, NTP) and ICMP leave through the NAT address too.
      expect(content).not.toMatch(/\b(tcp|udp|meta l4proto)\b.*snat/);
    });
  });

  test("applied twice, the table is replaced (one rule); applied without nat, the table is gone", () => {
    const withNat = renderNatNftables(input(devResolved))[0]?.content ?? "";
    const withoutNat = renderNatNftables(input(noNatSpec))[0]?.content ?? "";
    withNetns([], (ns) => {
      expect(applyNft(ns, withoutNat).ok).toBe(true); // removing a table that never existed is fine
      for (let i = 0; i < 2; i++) {
        const r = applyNft(ns, withNat);
        if (!r.ok) throw new Error(r.output);
      }
      const listed = run("ip", ["netns", "exec", ns, "nft", "list", "table", "ip", NAT_TABLE]).output;
      expect(listed.match(/snat to/g)).toHaveLength(1);
      expect(listed).toContain("snat to 198.51.100.253");
      expect(applyNft(ns, withoutNat).ok).toBe(true);
      expect(run("ip", ["netns", "exec", ns, "nft", "list", "tables"]).output).not.toContain(NAT_TABLE);
    });
  });

  test("counter-case: a broken rule is rejected", () => {
    const content = renderNatNftables(input(devResolved))[0]?.content ?? "";
    const r = checkNft(content.replace("snat to 198.51.100.253", "snat to 198.51.100.300"));
    expect(r.ok).toBe(false);
    expect(checkNft(content.replace("priority srcnat;", "priority srcnatt;")).ok).toBe(false);
  });

  test("an IPv6 NAT address is refused, not rendered as a table that translates nothing", () => {
    const spec: ResolvedSpec = {
      ...devResolved,
      virtualAddresses: {
        ...devResolved.virtualAddresses,
        nat: { address: "2001:db8::253", family: 6, type: "public" },
      },
    };
    expect(() => renderNatNftables(input(spec))).toThrow(/virtualAddresses\.nat\.address/);
  });
});

describe("determinism and the combined firewall renderer", () => {
  test.each(variantsByHost)(
    "$label: byte-identical output for the same input, also from a deep copy",
    ({ spec, host, backends }) => {
      const render = (i: RenderInput) => [...renderNetworkManager(i), ...renderSysctl(i), ...renderFirewall(i)];
      const a = render({ spec, host, backends });
      const b = render(structuredClone({ spec, host, backends }));
      expect(b).toEqual(a);
      for (const f of a)
        expect(f.content.startsWith("# Managed by edgepair") || f.content.startsWith("<!-- Managed by edgepair")).toBe(
          true,
        );
    },
  );

  test("metadata guard: nft accepts it; only root reaches the metadata addresses from the LB; counter-case", () => {
    const [f] = renderGuard(input(devResolved));
    expect(f?.path).toBe(GUARD_NFT_PATH);
    expect(f?.reload).toEqual({ service: "nftables", commands: [["nft", "-f", GUARD_NFT_PATH]] });
    const content = f?.content ?? "";
    expect(checkNft(content).ok).toBe(true);
    expect(content).toContain(`table inet ${GUARD_TABLE} {`);
    for (const [family, address] of [
      ["ip", METADATA_V4],
      ["ip6", METADATA_V6],
    ]) {
      expect(content).toContain(`${family} daddr ${address} meta skuid != 0 counter reject`);
    }
    // without a sync link nothing in it comes from the spec or the host
    expect(renderGuard(input(openstackSpec, secondaryHost))).toEqual(renderGuard(input(devResolved)));
    expect(content).not.toContain("prerouting");
    expect(checkNft(content.replace("skuid != 0", "skuid !== 0")).ok).toBe(false);
  });

  test("guard with a sync link: the sync network's addresses arriving on any other NIC are dropped before conntrack", () => {
    const { spec } = variants.find((v) => v.name === "sync-link")!;
    for (const host of [primaryHost, secondaryHost].map((h, i) => ({
      ...h,
      syncInterface: { name: `sync${i}`, mac: `52:54:00:ed:03:0${i + 1}` },
    }))) {
      const content = renderGuard({ spec, host, backends: devBackends })[0]?.content ?? "";
      expect(checkNft(content).ok).toBe(true);
      expect(content).toContain("type filter hook prerouting priority raw; policy accept;");
      expect(content).toContain(
        `iifname != "${host.syncInterface.name}" ip saddr ${spec.syncNetwork!.cidr} counter drop`,
      );
    }
  });

  test("renderFirewall = firewalld files + the NAT table, for both dev hosts", () => {
    for (const host of devHosts) {
      const files = renderFirewall(input(devResolved, host));
      expect(files.map((f) => f.path)).toEqual([
        "/etc/firewalld/zones/external.xml",
        "/etc/firewalld/zones/internal.xml",
        `/etc/firewalld/policies/${EGRESS_POLICY}.xml`,
        NAT_NFT_PATH,
        GUARD_NFT_PATH,
      ]);
      expect(checkFirewalld(files).ok).toBe(true);
      expect(checkNftFiles(files).ok).toBe(true);
    }
  });
});
