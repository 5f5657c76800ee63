/**
 * The libvirt provider without a daemon: every rendered document passes virt-xml-validate (and the validator does
 * reject a broken one), the renderers escape values and are deterministic, parse(render(x)) gives x back, check
 * names each problem as `field: rule`, diff sorts changes into in-place and replace (with deleteBeforeReplace
 * where names, bridges, subnets, MACs or disks would collide), unknown values (preview) are handled, the URI rules,
 * and the NoCloud ISO.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import {
  buildSeedIso,
  checkCloudInitDisk,
  checkDomain,
  checkNetwork,
  checkVolume,
  contentSha256,
  diffCloudInitDisk,
  diffDomain,
  diffNetwork,
  diffVolume,
  parseDomainXml,
  parseNetworkXml,
  parseVolumeXml,
  renderDomainXml,
  renderNetworkXml,
  renderVolumeXml,
  resolveUri,
  UNKNOWN,
  uriProblem,
} from "../providers/libvirt";
import type {
  CloudInitDiskOutputs,
  DomainInputs,
  DomainOutputs,
  NetworkInputs,
  NetworkOutputs,
  VolumeOutputs,
} from "../providers/libvirt";
import { escapeXml, el, renderXml, textEl } from "../providers/libvirt/xml";
import { must } from "./checkers/run";
import { virtXmlValidate } from "./fixtures/libvirtd";

const URI = "qemu:///system";

function ok<T>(r: { inputs: T; failures: Array<{ property: string; reason: string }> }): T {
  expect(r.failures).toEqual([]);
  return r.inputs;
}

function problems(r: { failures: Array<{ property: string; reason: string }> }): string[] {
  return r.failures.map((f) => `${f.property}: ${f.reason}`);
}

const lanPrivate = () =>
  ok(
    checkNetwork({
      name: "lab-private",
      mode: "isolated",
      cidr: "192.168.100.0/24",
      bridge: "lab-priv",
      dhcp: {
        router: "192.168.100.1",
        hosts: [
          { mac: "52:54:00:EC:02:01", ip: "192.168.100.2", hostname: "lb1" },
          { mac: "52:54:00:ec:02:02", ip: "192.168.100.3", hostname: "lb2" },
        ],
      },
    }),
  );

const lanPublic = () =>
  ok(
    checkNetwork({
      name: "lab-public",
      mode: "nat",
      cidr: "198.51.100.0/24",
      bridge: "lab-pub",
      mtu: 1500,
      dhcp: {
        start: "198.51.100.100",
        end: "198.51.100.200",
        hosts: [{ mac: "52:54:00:ec:01:01", ip: "198.51.100.2" }],
      },
      routes: [{ cidr: "203.0.113.0/24", gateway: "198.51.100.10" }],
    }),
  );

const domainInputs = (): DomainInputs =>
  ok(
    checkDomain({
      name: "lab-lb1",
      vcpu: 2,
      memoryMiB: 2048,
      disks: [
        { pool: "default", volume: "lb1.qcow2" },
        { pool: "default", volume: "data.raw", bus: "sata" },
      ],
      cloudInit: { pool: "default", volume: "lb1-seed.iso" },
      nics: [
        { network: "lab-public", mac: "52:54:00:ec:01:01" },
        { network: "lab-private", mac: "52:54:00:ec:02:01", model: "e1000e" },
      ],
    }),
  );

const renderDomain = (d: DomainInputs, virtType: "kvm" | "qemu" = "qemu", uuid?: string) =>
  renderDomainXml({
    ...d,
    uuid,
    virtType,
    disks: d.disks.map((x) => ({ ...x, format: x.volume.endsWith(".raw") ? "raw" : "qcow2" })),
  });

describe("rendered XML passes virt-xml-validate", () => {
  test.each([
    ["isolated, DHCP reservations only, router option", () => renderNetworkXml(lanPrivate())],
    ["NAT, range + reservation, route via a VIP, mtu", () => renderNetworkXml(lanPublic())],
    [
      "routed, no DHCP, no DNS, libvirt-named bridge",
      () => renderNetworkXml(ok(checkNetwork({ name: "r", mode: "route", cidr: "10.1.0.0/16", dns: false }))),
    ],
    ["redefinition with a UUID", () => renderNetworkXml(lanPrivate(), "0b5b6ea1-5a3e-4f8c-9d6f-6c0e8c1f2a10")],
  ])("network: %s", (_name, render) => {
    const r = virtXmlValidate(render(), "network");
    expect(r).toEqual({ ok: true, output: expect.stringContaining("validates") });
  });

  test.each([
    ["empty, sized", { name: "empty.qcow2", format: "qcow2" as const, capacity: 2 ** 30 }],
    ["raw", { name: "seed.iso", format: "raw" as const, capacity: 374784 }],
    [
      "overlay on a base",
      {
        name: "lb1.qcow2",
        format: "qcow2" as const,
        capacity: 2 ** 30,
        backing: { path: "/var/lib/libvirt/images/base.qcow2", format: "qcow2" },
      },
    ],
  ])("volume: %s", (_name, v) => {
    expect(virtXmlValidate(renderVolumeXml(v), "storagevol").ok).toBe(true);
  });

  test.each([
    ["kvm, 2 NICs, virtio + SATA disks, cloud-init CD-ROM", () => renderDomain(domainInputs(), "kvm")],
    [
      "qemu (TCG), no CD-ROM, pc machine, with UUID",
      () =>
        renderDomain(
          { ...domainInputs(), cloudInit: undefined, machine: "pc" },
          "qemu",
          "7c1d8f4e-2b1a-4c3d-9e8f-0a1b2c3d4e5f",
        ),
    ],
  ])("domain: %s", (_name, render) => {
    expect(virtXmlValidate(render(), "domain").ok).toBe(true);
  });

  test("counter-cases: the validator rejects what libvirt would (bad MAC, unknown forward mode, no name)", () => {
    const badMac = renderDomain(domainInputs()).replace("52:54:00:ec:01:01", "zz:54:00:ec:01:01");
    const badMode = renderNetworkXml(lanPublic()).replace('<forward mode="nat"/>', '<forward mode="bogus"/>');
    const noName = renderVolumeXml({ name: "x", format: "qcow2", capacity: 1 }).replace("<name>x</name>", "");
    expect(badMode).toContain('mode="bogus"');
    for (const [xml, schema] of [
      [badMac, "domain"],
      [badMode, "network"],
      [noName, "storagevol"],
    ] as const) {
      const r = virtXmlValidate(xml, schema);
      expect(r.ok).toBe(false);
      expect(r.output).toMatch(/fails to validate/);
    }
  });
});

describe("renderers", () => {
  test("escape every attribute value and text, keep attribute order, and are deterministic", () => {
    expect(escapeXml(`a&b<c>d"e'f`)).toBe("a&amp;b&lt;c&gt;d&quot;e&apos;f");
    const x = renderXml(el("a", { z: `1"&'<`, b: 2, skip: undefined, yes: true }, textEl("t", "<&>")));
    expect(x).toBe(`<a z="1&quot;&amp;&apos;&lt;" b="2" yes="yes">\n  <t>&lt;&amp;&gt;</t>\n</a>\n`);
    expect(renderNetworkXml(lanPublic())).toBe(renderNetworkXml(lanPublic()));
    expect(renderDomain(domainInputs())).toBe(renderDomain(domainInputs()));
  });

  test("network: the host side of the bridge takes the last address, never the gateway; router option and route", () => {
    const xml = renderNetworkXml(lanPrivate());
    expect(xml).toContain('<ip address="192.168.100.254" prefix="24">');
    expect(xml).toContain('<dnsmasq:option value="dhcp-option=option:router,192.168.100.1"/>');
    expect(xml).not.toContain("<forward");
    const pub = renderNetworkXml(lanPublic());
    expect(pub).toContain('<forward mode="nat"/>');
    expect(pub).toContain('<route address="203.0.113.0" prefix="24" gateway="198.51.100.10"/>');
    expect(pub).toContain('<range start="198.51.100.100" end="198.51.100.200"/>');
  });

  test("domain: first disk boots as vda, SATA disk then the CD-ROM, NICs in order with their MACs, serial console", () => {
    const xml = renderDomain(domainInputs(), "kvm");
    expect(xml).toMatch(/^<domain type="kvm">/);
    expect(xml).toContain('<source pool="default" volume="lb1.qcow2"/>\n      <target dev="vda" bus="virtio"/>');
    expect(xml).toContain('<target dev="sda" bus="sata"/>');
    expect(xml).toMatch(
      /device="cdrom">[\s\S]*<source pool="default" volume="lb1-seed.iso"\/>\s*<target dev="sdb" bus="sata"\/>/,
    );
    expect(xml.indexOf("52:54:00:ec:01:01")).toBeLessThan(xml.indexOf("52:54:00:ec:02:01"));
    expect(xml).toContain('<serial type="pty">');
    expect(xml).toContain('<console type="pty">');
    expect(xml).toContain('<memory unit="MiB">2048</memory>');
  });

  test("parse(render(x)) gives the inputs back (what refresh compares)", () => {
    for (const n of [lanPrivate(), lanPublic()]) {
      const o = parseNetworkXml(renderNetworkXml(n));
      expect({
        name: o.name,
        mode: o.mode,
        cidr: o.cidr,
        hostAddress: o.hostAddress,
        dhcp: o.dhcp,
        routes: o.routes,
        mtu: o.mtu,
        dns: o.dns,
        bridge: o.bridge,
      }).toEqual({
        name: n.name,
        mode: n.mode,
        cidr: n.cidr,
        hostAddress: n.hostAddress,
        dhcp: n.dhcp,
        routes: n.routes,
        mtu: n.mtu,
        dns: n.dns,
        bridge: n.bridge,
      });
    }
    const d = domainInputs();
    const o = parseDomainXml(renderDomain(d));
    expect(o).toMatchObject({
      name: d.name,
      vcpu: d.vcpu,
      memoryMiB: d.memoryMiB,
      disks: d.disks,
      cloudInit: d.cloudInit,
      nics: d.nics,
      virtType: "qemu",
      cdromIndex: 1,
    });
    const v = parseVolumeXml(
      renderVolumeXml({
        name: "o.qcow2",
        format: "qcow2",
        capacity: 2 ** 30,
        backing: { path: "/b.qcow2", format: "qcow2" },
      }),
    );
    expect(v).toMatchObject({
      name: "o.qcow2",
      capacity: 2 ** 30,
      format: "qcow2",
      backingPath: "/b.qcow2",
      backingFormat: "qcow2",
    });
  });
});

describe("check: every problem as `field: rule`, all at once", () => {
  test("network", () => {
    const r = checkNetwork({
      name: "-bad",
      mode: "bridge",
      cidr: "10.0.0.1/24",
      bridge: "a-bridge-name-too-long",
      typo: 1,
      uri: "qemu+ssh://root:hunter2@host/system",
      dhcp: { start: "10.0.0.50", hosts: [{ mac: "01:00:5e:00:00:01", ip: "10.9.9.9" }, { ip: "10.0.0.3" }] },
      routes: [{ cidr: "198.51.100.0/24", gateway: "not-an-ip" }],
      mtu: 100,
    });
    expect(problems(r)).toEqual([
      "typo: is not a known field (known: kind, uri, name, mode, cidr, hostAddress, bridge, dhcp, routes, mtu, dns, autostart)",
      "uri: must not carry a password (user:password@); use SSH keys/agent or libvirt's auth file (LIBVIRT_AUTH_FILE)",
      expect.stringMatching(/^name: must be 1-100 characters/),
      "mode: must be one of isolated, nat, route",
      expect.stringMatching(/^bridge: must be a Linux interface name/),
      "mtu: must be an integer from 576 to 9216",
      "cidr: must be a network address: 10.0.0.0/24, not 10.0.0.1/24",
      "dhcp.end: is required when the other end of the range is given",
      "dhcp.hosts[0].mac: must be a unicast MAC address such as 52:54:00:12:34:56",
      "dhcp.hosts[1].mac: is required",
      "routes[0].gateway: must be an IPv4 address",
    ]);
    // With a valid cidr, addresses are checked against it.
    const r2 = checkNetwork({
      name: "n",
      mode: "nat",
      cidr: "10.0.0.0/24",
      hostAddress: "10.0.0.255",
      dhcp: { start: "10.0.0.90", end: "10.0.0.80", hosts: [{ mac: "52:54:00:00:00:01", ip: "10.0.1.9" }] },
      routes: [{ cidr: "10.0.0.128/25", gateway: "10.0.0.1" }],
    });
    expect(problems(r2)).toEqual([
      "hostAddress: must be a host address of 10.0.0.0/24, not its network or broadcast address",
      "dhcp.end: must not be before dhcp.start (10.0.0.90)",
      "dhcp.hosts[0].ip: must be inside 10.0.0.0/24",
      "routes[0].cidr: must not overlap the network's own 10.0.0.0/24",
    ]);
    const r3 = checkNetwork({
      name: "n",
      mode: "nat",
      cidr: "10.0.0.0/24",
      dhcp: { hosts: [{ mac: "52:54:00:00:00:01", ip: "10.0.0.254" }] },
      routes: [{ cidr: "1.2.3.0/24", gateway: "10.0.0.254" }],
    });
    expect(problems(r3)).toEqual([
      "dhcp.hosts[0].ip: must not be hostAddress (10.0.0.254)",
      "routes[0].gateway: must not be hostAddress (10.0.0.254): the next hop is a guest address, e.g. a VIP",
    ]);
  });

  test("domain: a bad MAC, a multicast MAC, duplicates, missing and unknown fields", () => {
    const r = checkDomain({
      name: "vm",
      vcpu: 0,
      disks: [],
      nics: [
        { network: "n", mac: "52:54:00:zz:00:01" },
        { network: "n", mac: "03:00:00:00:00:01" },
        { network: "n", mac: "52:54:00:00:00:01", model: "rtl" },
        { network: "n", mac: "52:54:00:00:00:01" },
        { network: "n" },
      ],
      type: "xen",
      shutdownTimeoutSeconds: 601,
      cloudInit: { pool: "p" },
      cdrom: true,
    });
    expect(problems(r)).toEqual([
      expect.stringMatching(/^cdrom: is not a known field/),
      "vcpu: must be an integer from 1 to 256",
      "memoryMiB: is required",
      "type: must be one of auto, kvm, qemu",
      "shutdownTimeoutSeconds: must be an integer from 0 to 600",
      "disks: must have at least 1 entry",
      "cloudInit.volume: is required",
      'nics[0].mac: must be a unicast MAC address such as 52:54:00:12:34:56, not "52:54:00:zz:00:01"',
      'nics[1].mac: must be a unicast MAC address such as 52:54:00:12:34:56, not "03:00:00:00:00:01"',
      "nics[2].model: must be one of virtio, e1000e, e1000",
      "nics[3].mac: duplicates nics[2].mac",
      "nics[4].mac: is required (a fixed MAC keeps DHCP reservations and interface names stable)",
    ]);
  });

  test("volume and cloud-init disk", () => {
    expect(problems(checkVolume({ name: "v", pool: "p" }))).toEqual(["size: is required for a volume without base"]);
    expect(problems(checkVolume({ name: "v", pool: "p", base: "b", format: "raw", size: 10 }))).toEqual([
      "size: must be an integer from 1048576 to 70368744177664",
      "format: must be qcow2 for an overlay on base",
    ]);
    expect(problems(checkVolume({ name: "v", pool: "p", base: "v" }))).toEqual(["base: must not be the volume itself"]);
    expect(problems(checkCloudInitDisk({ name: "s", pool: "p", userData: 5 }))).toEqual([
      "userData: must be a string (the document's text)",
    ]);
    expect(checkCloudInitDisk({ name: "s", pool: "p", userData: "#cloud-config\n" }).inputs.metaData).toBe(
      "instance-id: s\n",
    );
  });

  test("defaults and canonical forms: MACs lower-case, hostAddress the last host, autostart/running on", () => {
    expect(lanPrivate()).toMatchObject({ hostAddress: "192.168.100.254", dns: true, autostart: true, routes: [] });
    expect(lanPrivate().dhcp?.hosts[0]?.mac).toBe("52:54:00:ec:02:01");
    expect(ok(checkNetwork({ name: "n", mode: "nat", cidr: "10.0.0.0/30" })).hostAddress).toBe("10.0.0.2");
    expect(domainInputs()).toMatchObject({
      type: "auto",
      machine: "q35",
      autostart: true,
      running: true,
      shutdownTimeoutSeconds: 30,
    });
    expect(ok(checkVolume({ name: "v", pool: "p", base: "b" }))).toEqual({
      kind: "libvirt:Volume",
      name: "v",
      pool: "p",
      format: "qcow2",
      base: "b",
      basePool: "p",
    });
  });

  test("unknown values (preview before a dependency exists) pass check", () => {
    expect(
      problems(
        checkDomain({
          name: "vm",
          vcpu: 1,
          memoryMiB: 64,
          disks: [{ pool: UNKNOWN, volume: UNKNOWN }],
          nics: [{ network: UNKNOWN, mac: "52:54:00:00:00:01" }],
          cloudInit: UNKNOWN,
        }),
      ),
    ).toEqual([]);
    expect(problems(checkNetwork({ name: UNKNOWN, mode: "nat", cidr: UNKNOWN, dhcp: { router: UNKNOWN } }))).toEqual(
      [],
    );
    // A whole list or object not known yet stays unknown, so diff sees it as a change.
    const d = checkDomain({ name: "vm", vcpu: 1, memoryMiB: 64, disks: UNKNOWN, nics: UNKNOWN, cloudInit: UNKNOWN });
    expect(d.failures).toEqual([]);
    expect(d.inputs).toMatchObject({ disks: UNKNOWN, nics: UNKNOWN, cloudInit: UNKNOWN });
    expect(
      checkNetwork({ name: "n", mode: "nat", cidr: "10.0.0.0/24", dhcp: UNKNOWN, routes: UNKNOWN }).inputs,
    ).toMatchObject({ dhcp: UNKNOWN, routes: UNKNOWN });
  });

  test("every resource carries its kind, and a wrong kind is refused", () => {
    expect(lanPrivate().kind).toBe("libvirt:Network");
    expect(domainInputs().kind).toBe("libvirt:Domain");
    expect(ok(checkVolume({ name: "v", pool: "p", size: 2 ** 20 })).kind).toBe("libvirt:Volume");
    expect(ok(checkCloudInitDisk({ name: "s", pool: "p", userData: "" })).kind).toBe("libvirt:CloudInitDisk");
    expect(problems(checkVolume({ kind: "libvirt:Domain", name: "v", pool: "p", size: 2 ** 20 }))).toEqual([
      "kind: must be libvirt:Volume",
    ]);
  });
});

describe("diff: in place vs replace, deleteBeforeReplace where they would collide", () => {
  const netOuts = (n: NetworkInputs): NetworkOutputs => ({
    ...n,
    uri: URI,
    uuid: "u",
    bridge: n.bridge ?? "virbr0",
    active: true,
  });
  const domOuts = (d: DomainInputs): DomainOutputs => ({
    ...d,
    uri: URI,
    uuid: "u",
    virtType: "qemu",
    state: "running",
    restartRequired: false,
  });
  const withHosts = (n: NetworkInputs, hosts: NonNullable<NetworkInputs["dhcp"]>["hosts"]): NetworkInputs => ({
    ...n,
    dhcp: { ...n.dhcp!, hosts },
  });

  beforeEach(() => {
    delete process.env.EDGEPAIR_LIBVIRT_URI;
    delete process.env.LIBVIRT_DEFAULT_URI;
  });

  test("network", () => {
    const n = lanPrivate();
    const o = netOuts(n);
    expect(diffNetwork(o, n)).toEqual({ changes: false, replaces: [], updates: [], deleteBeforeReplace: false });
    expect(
      diffNetwork(o, withHosts(n, [...n.dhcp!.hosts, { mac: "52:54:00:00:00:09", ip: "192.168.100.9" }])),
    ).toMatchObject({ replaces: [], updates: ["dhcp.hosts"] });
    expect(diffNetwork(o, { ...n, autostart: false })).toMatchObject({ replaces: [], updates: ["autostart"] });
    expect(diffNetwork({ ...o, active: false }, n)).toMatchObject({ changes: true, replaces: [], updates: ["active"] });
    // Same name: the old network must go first.
    // Routes change in place (a floating IP added on day 2 must not cut the LBs' NICs).
    expect(diffNetwork(o, { ...n, routes: [{ cidr: "203.0.113.0/24", gateway: "192.168.100.10" }] })).toMatchObject({
      replaces: [],
      updates: ["routes"],
      deleteBeforeReplace: false,
    });
    expect(diffNetwork(o, { ...n, dhcp: { ...n.dhcp!, router: "192.168.100.5" } })).toMatchObject({
      replaces: ["dhcp.router"],
      deleteBeforeReplace: true,
    });
    // New name, new bridge, disjoint subnet: create the new one first.
    const moved = ok(checkNetwork({ name: "other", mode: "isolated", cidr: "10.9.0.0/24", bridge: "other-br" }));
    expect(diffNetwork(o, moved)).toMatchObject({
      replaces: ["name", "cidr", "hostAddress", "bridge", "dhcp"],
      deleteBeforeReplace: false,
    });
    // New name but overlapping subnet: libvirt would refuse to start it next to the old one.
    expect(
      diffNetwork(o, { ...moved, cidr: "192.168.100.0/25", hostAddress: "192.168.100.126", dhcp: n.dhcp }),
    ).toMatchObject({ deleteBeforeReplace: true });
    // The URI moves (e.g. another SSH jump name for the same host): in place, verified by update.
    expect(diffNetwork(o, { ...n, uri: "qemu+ssh://root@hv1/system" })).toMatchObject({
      replaces: [],
      updates: ["uri"],
    });
    process.env.EDGEPAIR_LIBVIRT_URI = "qemu+ssh://root@hv2/system";
    expect(diffNetwork(o, n)).toMatchObject({ updates: ["uri"] });
  });

  test("domain", () => {
    const d = domainInputs();
    const o = domOuts(d);
    expect(diffDomain(o, d)).toMatchObject({ changes: false });
    expect(
      diffDomain(o, { ...d, memoryMiB: 4096, vcpu: 4, autostart: false, running: false, shutdownTimeoutSeconds: 5 }),
    ).toMatchObject({
      replaces: [],
      updates: ["vcpu", "memoryMiB", "autostart", "running", "shutdownTimeoutSeconds"],
    });
    expect(diffDomain(o, { ...d, cloudInit: { pool: "default", volume: "lb1-seed-2.iso" } })).toMatchObject({
      replaces: [],
      updates: ["cloudInit"],
    });
    expect(diffDomain(o, { ...d, cloudInit: undefined })).toMatchObject({
      replaces: ["cloudInit"],
      deleteBeforeReplace: true,
    });
    const newMac = { ...d, nics: [d.nics[0]!, { ...d.nics[1]!, mac: "52:54:00:ec:02:99" }] };
    expect(diffDomain(o, newMac)).toMatchObject({ replaces: ["nics"], deleteBeforeReplace: true });
    // Another name, other MACs, other disks: the new VM can exist beside the old one.
    const twin: DomainInputs = {
      ...d,
      name: "lab-lb1-new",
      disks: [{ pool: "default", volume: "new.qcow2", bus: "virtio" }],
      nics: d.nics.map((n, i) => ({ ...n, mac: `52:54:00:aa:00:0${i}` })),
    };
    expect(diffDomain(o, twin)).toMatchObject({ replaces: ["name", "disks", "nics"], deleteBeforeReplace: false });
    // ...but not when they would share a disk (QEMU's image lock) or a MAC.
    expect(diffDomain(o, { ...twin, disks: d.disks })).toMatchObject({ deleteBeforeReplace: true });
    expect(diffDomain(o, { ...twin, type: "kvm" })).toMatchObject({ replaces: ["name", "type", "disks", "nics"] });
    expect(diffDomain(o, { ...d, type: "qemu" })).toMatchObject({ replaces: [], updates: ["type"] }); // auto resolved to qemu already
    // A replaced network (dependency unknown during preview) replaces the domain, old one first.
    expect(diffDomain(o, { ...d, nics: [{ ...d.nics[0]!, network: UNKNOWN }, d.nics[1]!] })).toMatchObject({
      replaces: ["nics"],
      deleteBeforeReplace: true,
    });
  });

  test("volume and cloud-init disk", () => {
    const v: VolumeOutputs = {
      kind: "libvirt:Volume",
      uri: URI,
      name: "d.qcow2",
      pool: "p",
      format: "qcow2",
      base: "b",
      basePool: "p",
      key: "/p/d.qcow2",
      path: "/p/d.qcow2",
      capacity: 2 ** 30,
    };
    const vin = {
      kind: "libvirt:Volume" as const,
      name: "d.qcow2",
      pool: "p",
      format: "qcow2" as const,
      base: "b",
      basePool: "p",
    };
    expect(diffVolume(v, vin)).toMatchObject({ changes: false });
    expect(diffVolume(v, { ...vin, size: 2 ** 31 })).toMatchObject({ replaces: [], updates: ["size"] });
    expect(diffVolume(v, { ...vin, size: 2 ** 29 })).toMatchObject({ replaces: ["size"], deleteBeforeReplace: true });
    expect(diffVolume(v, { ...vin, base: "b2" })).toMatchObject({ replaces: ["base"], deleteBeforeReplace: true });
    expect(diffVolume(v, { ...vin, name: "e.qcow2" })).toMatchObject({
      replaces: ["name"],
      deleteBeforeReplace: false,
    });

    const docs = { userData: "#cloud-config\n", metaData: "instance-id: a\n" };
    const c: CloudInitDiskOutputs = {
      kind: "libvirt:CloudInitDisk",
      uri: URI,
      name: "s.iso",
      pool: "p",
      key: "/p/s.iso",
      path: "/p/s.iso",
      size: 1,
      contentSha256: contentSha256(docs),
      isoSha256: "x",
    };
    const cin = { kind: "libvirt:CloudInitDisk" as const, name: "s.iso", pool: "p", ...docs };
    expect(diffCloudInitDisk(c, cin)).toMatchObject({ changes: false });
    expect(diffCloudInitDisk(c, { ...cin, userData: "#cloud-config\nhostname: b\n" })).toMatchObject({
      replaces: [],
      updates: ["userData/metaData/networkConfig"],
    });
    expect(diffCloudInitDisk(c, { ...cin, name: "s2.iso" })).toMatchObject({
      replaces: ["name"],
      deleteBeforeReplace: false,
    });
    // moving text from one document to another is a change
    expect(contentSha256({ userData: "ab", metaData: "c" })).not.toBe(contentSha256({ userData: "a", metaData: "bc" }));
  });
});

describe("connection URI", () => {
  afterEach(() => {
    delete process.env.EDGEPAIR_LIBVIRT_URI;
    delete process.env.LIBVIRT_DEFAULT_URI;
  });

  test("input, then EDGEPAIR_LIBVIRT_URI, then LIBVIRT_DEFAULT_URI, then qemu:///system, read at call time", () => {
    delete process.env.EDGEPAIR_LIBVIRT_URI;
    delete process.env.LIBVIRT_DEFAULT_URI;
    expect(resolveUri(undefined)).toBe("qemu:///system");
    process.env.LIBVIRT_DEFAULT_URI = "qemu+ssh://a@h1/system";
    expect(resolveUri(undefined)).toBe("qemu+ssh://a@h1/system");
    process.env.EDGEPAIR_LIBVIRT_URI = "qemu+ssh://a@h2/system?keyfile=/k";
    expect(resolveUri(undefined)).toBe("qemu+ssh://a@h2/system?keyfile=/k");
    expect(resolveUri("qemu:///session")).toBe("qemu:///session");
  });

  test("credentials are refused, from an input or from the environment", () => {
    expect(uriProblem("qemu+ssh://root:pw@h/system")).toMatch(/must not carry a password/);
    expect(uriProblem("qemu+tcp://h/system?password=x")).toMatch(/must not carry the credential parameter "password"/);
    expect(uriProblem("not a uri")).toMatch(/must be a libvirt URI/);
    expect(uriProblem("qemu+ssh://root@h:2222/system?no_tty=1")).toBeUndefined();
    process.env.EDGEPAIR_LIBVIRT_URI = "qemu+ssh://u:secret@h/system";
    expect(() => resolveUri(undefined)).toThrow(/^EDGEPAIR_LIBVIRT_URI: must not carry a password/);
  });
});

describe("NoCloud seed ISO", () => {
  test("volume id cidata, the three documents by name", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "edgepair-seed-test-"));
    try {
      const iso = buildSeedIso(dir, {
        userData: "#cloud-config\nhostname: lb1\n",
        metaData: "instance-id: i-1\n",
        networkConfig: "version: 2\n",
      });
      expect(must("isoinfo", ["-d", "-i", iso]).stdout).toMatch(/^Volume id: cidata$/m);
      const files = must("isoinfo", ["-R", "-f", "-i", iso])
        .stdout.split("\n")
        .filter((l) => l !== "")
        .sort();
      expect(files).toEqual(["/meta-data", "/network-config", "/user-data"]);
      expect(must("isoinfo", ["-R", "-i", iso, "-x", "/user-data"]).stdout).toBe("#cloud-config\nhostname: lb1\n");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
