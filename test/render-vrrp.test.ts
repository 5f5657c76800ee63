import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CONNTRACKD_CONFIG_PATH, localAddresses, renderConntrackd } from "../render/conntrackd";
import { HAPROXY_MONITOR_URI } from "../render/haproxy";
import { KEEPALIVED_CONFIG_PATH, renderKeepalived } from "../render/keepalived";
import { NOTIFY_SCRIPT_PATH, renderNotifyScript } from "../render/notify";
import type { RenderedFile, RenderInput } from "../render/types";
import type { HostFacts, ResolvedSpec, VirtualAddress } from "../spec/types";
import { checkConntrackd, runConntrackdClient } from "./checkers/conntrackd";
import { checkKeepalived, runKeepalived } from "./checkers/keepalived";
import { withNetns } from "./checkers/netns";
import { run } from "./checkers/run";
import { checkShellScript } from "./checkers/shell";
import { devBackends, devResolved, primaryHost, secondaryHost } from "./fixtures/resolved";
import { variantsByHost } from "./fixtures/variants";

const hosts: HostFacts[] = [primaryHost, secondaryHost];
const pub4 = (address: string): VirtualAddress => ({ address, family: 4, type: "public" });
const pub6 = (address: string): VirtualAddress => ({ address, family: 6, type: "public" });
const priv4 = (address: string): VirtualAddress => ({ address, family: 4, type: "private" });
const priv6 = (address: string): VirtualAddress => ({ address, family: 6, type: "private" });

// ---- synthetic variations of the dev stack (derived sets written out, as the resolver would) ----

const noNat: ResolvedSpec = {
  ...devResolved,
  virtualAddresses: { ...devResolved.virtualAddresses, nat: undefined },
  derived: {
    ...devResolved.derived,
    privateVips: [priv4("192.168.100.100")],
    publicVips: [pub4("198.51.100.80"), pub4("198.51.100.100")],
  },
};

const publicIpv6: ResolvedSpec = {
  ...devResolved,
  derived: { ...devResolved.derived, publicVips: [...devResolved.derived.publicVips, pub6("2001:db8:100::100")] },
};

const openstack: ResolvedSpec = {
  ...devResolved,
  clusterName: "prod-a",
  vrrp: { routerId: 200, advertIntervalSeconds: 0.2, priority: { primary: 200, secondary: 100 } },
  platform: {
    type: "openstack",
    publicNetwork: {
      cidr: "203.0.113.0/24",
      prefixLength: 24,
      gateway: "203.0.113.1",
      lbAddresses: ["203.0.113.11", "203.0.113.12"],
    },
  },
  derived: {
    ...devResolved.derived,
    publicVips: [pub4("203.0.113.80"), pub4("203.0.113.100"), pub6("2001:db8:100::100")],
  },
};

/** Not reachable through the resolver today (the private network is IPv4), but the renderer must stay valid. */
const privateIpv6: ResolvedSpec = {
  ...devResolved,
  derived: { ...devResolved.derived, privateVips: [...devResolved.derived.privateVips, priv6("fd00:100::100")] },
};

const synthetic: [string, ResolvedSpec][] = [
  ["dev", devResolved],
  ["no-nat", noNat],
  ["public-ipv6", publicIpv6],
  ["openstack", openstack],
  ["private-ipv6", privateIpv6],
];
const syntheticByHost = synthetic.flatMap(([name, spec]) =>
  hosts.map((host) => ({ label: `${name}/${host.role}`, spec, host })),
);

const input = (spec: ResolvedSpec, host: HostFacts): RenderInput => ({ spec, host, backends: devBackends });
const only = (files: RenderedFile[]): RenderedFile => {
  expect(files).toHaveLength(1);
  const [f] = files;
  if (!f) throw new Error("no file rendered");
  return f;
};
const keepalivedFile = (spec: ResolvedSpec, host: HostFacts) => only(renderKeepalived(input(spec, host)));
const conntrackdFile = (spec: ResolvedSpec, host: HostFacts) => only(renderConntrackd(input(spec, host)));
const notifyFile = (spec: ResolvedSpec, host: HostFacts) => only(renderNotifyScript(input(spec, host)));

function expectOk(r: { ok: boolean; output: string }, content: string): void {
  if (!r.ok) throw new Error(`rejected:\n${r.output}\n--- file\n${content}`);
}

/** The lines between `name {` and its closing brace (one nesting level), trimmed. */
function block(content: string, name: string): string[] {
  const all = content.split("\n").map((l) => l.trim());
  const start = all.indexOf(`${name} {`);
  if (start < 0) return [];
  const out: string[] = [];
  let depth = 0;
  for (const l of all.slice(start + 1)) {
    if (l.endsWith("{")) depth++;
    if (l === "}") {
      if (depth === 0) break;
      depth--;
    }
    out.push(l);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------

describe("keepalived.conf", () => {
  test.each(syntheticByHost)("$label: accepted by keepalived -t", ({ spec, host }) => {
    const f = keepalivedFile(spec, host);
    expectOk(checkKeepalived(f.content), f.content);
  });

  test.each(hosts)("$role: path, mode and reload", (host) => {
    const f = keepalivedFile(devResolved, host);
    expect(f.path).toBe(KEEPALIVED_CONFIG_PATH);
    expect(f.mode).toBe(0o644);
    expect(f.reload).toEqual({ service: "keepalived", commands: [["systemctl", "reload", "keepalived.service"]] });
    expect(f.content.startsWith("# Managed by edgepair")).toBe(true);
  });

  test("both LBs start BACKUP without preemption; priorities and unicast addresses mirror each other", () => {
    const [p, s] = hosts.map((h) => keepalivedFile(devResolved, h).content);
    for (const c of [p, s]) {
      expect(c).toMatch(/^\s+state BACKUP$/m);
      expect(c).toMatch(/^\s+nopreempt$/m);
      expect(c).toMatch(/^\s+vrrp_version 3$/m);
      expect(c).toMatch(/^\s+check_unicast_src$/m);
      expect(c).toMatch(/^\s+virtual_router_id 51$/m);
      expect(c).toMatch(/^\s+advert_int 0\.1$/m);
      expect(c).toMatch(/^\s+interface eth1$/m);
      expect(c).toContain(`notify ${NOTIFY_SCRIPT_PATH}`);
      // VRRPv3 has no authentication; a password would only be a secret in a file the preview shows.
      expect(c).not.toMatch(/authentication|auth_pass|auth_type/);
      expect(c).not.toMatch(/^\s+preempt/m);
    }
    expect(p).toMatch(/^\s+priority 150$/m);
    expect(s).toMatch(/^\s+priority 100$/m);
    expect(p).toMatch(/^\s+unicast_src_ip 192\.168\.100\.2$/m);
    expect(block(p ?? "", "unicast_peer")).toEqual(["192.168.100.3"]);
    expect(s).toMatch(/^\s+unicast_src_ip 192\.168\.100\.3$/m);
    expect(block(s ?? "", "unicast_peer")).toEqual(["192.168.100.2"]);
    expect(p).toMatch(/^\s+router_id lab-lb-1$/m);
    expect(s).toMatch(/^\s+router_id lab-lb-2$/m);
  });

  test("VRRP VIPs are the private VIPs (gateway included with NAT), never a public address", () => {
    const c = keepalivedFile(devResolved, primaryHost).content;
    expect(block(c, "virtual_ipaddress")).toEqual(["192.168.100.1/32 dev eth1", "192.168.100.100/32 dev eth1"]);
    expect(block(c, "virtual_ipaddress_excluded")).toEqual([]);
    for (const v of devResolved.derived.publicVips) expect(c).not.toContain(v.address);
    expect(c).not.toContain("172.31.250.10"); // the libvirt next hop moves in the notify script, after conntrackd
  });

  test("no NAT: no gateway VIP", () => {
    const c = keepalivedFile(noNat, primaryHost).content;
    expect(block(c, "virtual_ipaddress")).toEqual(["192.168.100.100/32 dev eth1"]);
    expect(c).not.toContain("192.168.100.1/");
  });

  test("IPv6 VIPs go to virtual_ipaddress_excluded (adverts are IPv4)", () => {
    const c = keepalivedFile(privateIpv6, primaryHost).content;
    expect(block(c, "virtual_ipaddress_excluded")).toEqual(["fd00:100::100/128 dev eth1"]);
    expect(block(c, "virtual_ipaddress")).not.toContain("fd00:100::100/128 dev eth1");
  });

  test("HAProxy is tracked: a failing check means FAULT, and the LB starts failed until HAProxy answers", () => {
    const c = keepalivedFile(devResolved, secondaryHost).content;
    const check = block(c, "vrrp_script haproxy");
    expect(check).toContain(
      `script "/usr/bin/curl -fsS -o /dev/null --max-time 3 http://192.168.100.3:8404${HAPROXY_MONITOR_URI}"`,
    );
    expect(check).toContain("weight 0");
    expect(check).toContain("init_fail");
    expect(block(c, "track_script")).toEqual(["haproxy"]);
    // the private NIC is tracked implicitly; naming it is a keepalived warning (and -t failure)
    expect(block(c, "track_interface")).toEqual(["eth0"]);
    expect(c).toMatch(/^\s+enable_script_security$/m);
  });

  test("openstack: router ID, priorities and advert interval come from the spec", () => {
    const c = keepalivedFile(openstack, secondaryHost).content;
    expect(c).toMatch(/^vrrp_instance prod-a \{$/m);
    expect(c).toMatch(/^\s+virtual_router_id 200$/m);
    expect(c).toMatch(/^\s+priority 100$/m);
    expect(c).toMatch(/^\s+advert_int 0\.2$/m);
  });

  test("a spec without any private VIP is refused with a field: rule message, not rendered broken", () => {
    const spec: ResolvedSpec = { ...noNat, derived: { ...noNat.derived, privateVips: [] } };
    expect(() => keepalivedFile(spec, primaryHost)).toThrow(/^virtualAddresses: needs a private address or nat/);
    const forced = keepalivedFile(noNat, primaryHost).content.replace(/ {4}virtual_ipaddress \{\n[^}]*\}\n/, "");
    const r = checkKeepalived(forced); // what keepalived would say about such a file
    expect(r.ok).toBe(false);
    expect(r.output).toContain("No VIP specified");
  });

  describe("counter-cases: keepalived -t rejects", () => {
    const good = () => keepalivedFile(devResolved, primaryHost).content;
    test("virtual_router_id 300", () => {
      const r = checkKeepalived(good().replace(/virtual_router_id \d+/, "virtual_router_id 300"));
      expect(r.ok).toBe(false);
    });
    test("advert_int 0.001", () => {
      const r = checkKeepalived(good().replace(/advert_int \S+/, "advert_int 0.001"));
      expect(r.ok).toBe(false);
    });
    test("tracking the instance's own interface (a warning, which fails -t)", () => {
      expect(checkKeepalived(good()).ok).toBe(true);
      const r = checkKeepalived(
        good().replace("track_interface {\n        eth0", "track_interface {\n        eth0\n        eth1"),
      );
      expect(r.ok).toBe(false);
      expect(r.output).toContain("Ignoring track_interface eth1 since own interface");
    });
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe("keepalived for real (netns + private mount namespace, rendered files at their real paths)", () => {
  const interfacesFor = (spec: ResolvedSpec, host: HostFacts, own: string) => [
    { name: host.privateInterface.name, addresses: [`${own}/${spec.network.prefixLength}`] },
    {
      name: host.publicInterface.name,
      addresses: [
        `${spec.platform.publicNetwork.lbAddresses[host.role === "primary" ? 0 : 1]}/${spec.platform.publicNetwork.prefixLength}`,
      ],
    },
  ];

  test("libvirt primary: HAProxy answers -> MASTER with VIPs and next hop; stop releases all, agent told in order", () => {
    const files = [
      ...renderNotifyScript(input(devResolved, primaryHost)),
      ...renderKeepalived(input(devResolved, primaryHost)),
    ];
    const r = runKeepalived(files, {
      interfaces: interfacesFor(devResolved, primaryHost, "192.168.100.2"),
      healthy: { address: "192.168.100.2", port: devResolved.metrics.port, path: HAPROXY_MONITOR_URI },
      seconds: 15,
      until: "MASTER",
    });
    const ctx = r.output;
    expect({ ctx, ok: /Entering MASTER STATE/.test(r.log) }).toEqual({ ctx, ok: true });
    expect(r.log).not.toMatch(/Unsafe permissions|cannot be accessed|disabling|WARNING|Killed/i);
    expect(r.addressesRunning).toContain("inet 192.168.100.1/32");
    expect(r.addressesRunning).toContain("inet 192.168.100.100/32");
    expect(r.addressesRunning).toContain("inet 172.31.250.10/24");
    for (const v of devResolved.derived.publicVips) expect(r.addressesRunning).not.toContain(v.address);
    expect(r.addressesStopped).not.toMatch(/192\.168\.100\.1\/32|192\.168\.100\.100|172\.31\.250\.10/);
    expect(r.fifo.split("\n").filter(Boolean)).toEqual(["FAULT 150", "BACKUP 150", "MASTER 150", "STOP 150"]);
  });

  test("openstack secondary: the public VIPs are on the public NIC only while MASTER", () => {
    const files = [
      ...renderNotifyScript(input(openstack, secondaryHost)),
      ...renderKeepalived(input(openstack, secondaryHost)),
    ];
    const r = runKeepalived(files, {
      interfaces: interfacesFor(openstack, secondaryHost, "192.168.100.3"),
      healthy: { address: "192.168.100.3", port: openstack.metrics.port, path: HAPROXY_MONITOR_URI },
      seconds: 15,
      until: "MASTER",
    });
    const ctx = r.output;
    expect({ ctx, master: r.fifo.includes("MASTER 100") }).toEqual({ ctx, master: true });
    for (const a of ["203.0.113.80/32", "203.0.113.100/32", "2001:db8:100::100/128"]) {
      expect(r.addressesRunning).toMatch(new RegExp(`eth0\\s+inet6? ${a.replace(/\./g, "\\.")}`));
      expect(r.addressesStopped).not.toContain(a);
    }
  });

  test("HAProxy not answering: the instance stays in FAULT and takes no address", () => {
    const files = [
      ...renderNotifyScript(input(devResolved, primaryHost)),
      ...renderKeepalived(input(devResolved, primaryHost)),
    ];
    const r = runKeepalived(files, {
      interfaces: interfacesFor(devResolved, primaryHost, "192.168.100.2"),
      seconds: 3,
    });
    expect(r.log).toContain("VRRP_Script(haproxy) failed");
    expect(r.log).not.toContain("Entering MASTER STATE");
    expect(r.fifo.split("\n").filter(Boolean)).toEqual(["FAULT 150", "STOP 150"]); // init_fail: FAULT from the start
    expect(r.addressesRunning).not.toMatch(/192\.168\.100\.100|172\.31\.250\.10/);
  });

  // HAProxy's check against time: a check that cannot run is not a dead HAProxy. On the e2e's TCG VMs, with the
  // host's two cores running three VMs, keepalived killed curls that had not finished in 2 s, twice in a row, and
  // the LB went FAULT: a false failover, on both LBs in turn. A stalled check here is one whose curl sleeps before
  // it starts, as on a VM that the host does not run; HAProxy itself answers at once throughout.
  describe("HAProxy's check: stalls are not failures, a dead or hung HAProxy is", () => {
    const files = () => [
      ...renderNotifyScript(input(devResolved, primaryHost)),
      ...renderKeepalived(input(devResolved, primaryHost)),
    ];
    const masterThen = (fs: RenderedFile[], script: string, seconds: number) =>
      runKeepalived(fs, {
        interfaces: interfacesFor(devResolved, primaryHost, "192.168.100.2"),
        healthy: { address: "192.168.100.2", port: devResolved.metrics.port, path: HAPROXY_MONITOR_URI },
        seconds: 15,
        until: "MASTER",
        then: { script, seconds },
      });
    /** how long each check that ended took (ms), from the wrapper's lines "<ms> start <pid> ..." / "<ms> end <pid> ..." */
    const durations = (checks: string) => {
      const started = new Map<string, number>();
      const out: number[] = [];
      for (const [at, what, pid] of checks.split("\n").map((l) => l.split(" "))) {
        if (what === "start" && pid) started.set(pid, Number(at));
        const t0 = pid ? started.get(pid) : undefined;
        if (what === "end" && t0 !== undefined) out.push(Number(at) - t0);
      }
      return out;
    };
    /** the FIFO's lines after the first MASTER; none when it never was MASTER (the startup FAULT is not one after) */
    const afterMaster = (fifo: string) => {
      const all = fifo.split("\n").filter(Boolean);
      const at = all.indexOf("MASTER 150");
      return at < 0 ? ["(never MASTER)"] : all.slice(at + 1);
    };
    // every check started in these 10 s takes 8 s to start curl (keepalived 2.2.7 runs them side by side, one a
    // second; a keepalived that runs one at a time fewer); then 10 s for the last of them to end
    const stall10s = 'echo 8 > "$stall"; sleep 10; rm -f "$stall"; sleep 10';

    test("every check slow to start for 10 s (8 s each, a starved VM): the LB stays MASTER", () => {
      const r = masterThen(files(), stall10s, 25);
      const ctx = r.output;
      // the checks did stall: at least two took 8 s
      const slow = durations(r.checks).filter((ms) => ms >= 8000).length;
      expect({ ctx, slow: slow >= 2 }).toEqual({ ctx, slow: true });
      expect({ ctx, after: afterMaster(r.fifo) }).toEqual({ ctx, after: ["STOP 150"] });
      expect(r.addressesRunning).toContain("inet 192.168.100.100/32");
    });

    test("counter-case: the same stall with the check's old times (curl 1 s, timeout 2, fall 2) goes FAULT", () => {
      const old = files().map((f) =>
        f.path === KEEPALIVED_CONFIG_PATH
          ? {
              ...f,
              content: f.content
                .replace(/--max-time \d+/, "--max-time 1")
                .replace(/^(\s+)timeout \d+$/m, "$1timeout 2")
                .replace(/^(\s+)fall \d+$/m, "$1fall 2"),
            }
          : f,
      );
      expect(old.find((f) => f.path === KEEPALIVED_CONFIG_PATH)?.content).toMatch(/^\s+fall 2$/m);
      const r = masterThen(old, stall10s, 25);
      const ctx = r.output;
      // keepalived names the overrun "timed_out", or "failed (due to signal 15)" when another check of the same script
      // was started meanwhile (2.2.7 keeps one state for all of them)
      expect({ ctx, overrun: /VRRP_Script\(haproxy\) (timed_out|failed \(due to signal)/.test(r.log) }).toEqual({
        ctx,
        overrun: true,
      });
      expect({ ctx, after: afterMaster(r.fifo)[0] }).toEqual({ ctx, after: "FAULT 150" });
    });

    // how long a dead (refusing) and a hung (accepting, never answering) HAProxy take to become a FAULT
    const faultAfter = (how: string) =>
      [
        "t0=$(date +%s%N)",
        how,
        // a FAULT after the MASTER (init_fail wrote one before it)
        `i=0; while [ $i -lt 250 ] && [ $(sed -n '/^MASTER /,$p' "$fifo" | grep -c '^FAULT ') -lt 1 ]; do sleep 0.1; i=$((i+1)); done`,
        'echo "fault-after-ms $(( ($(date +%s%N) - t0) / 1000000 ))"',
        "kill -CONT $web 2>/dev/null || true",
      ].join("\n");
    const faultMs = (output: string) => Number(/fault-after-ms (\d+)/.exec(output)?.[1] ?? NaN);

    test.each([
      // not on the first refused check: fall 3, a check a second
      { what: "gone (connections refused)", how: "kill $web", minMs: 1500, maxMs: 5000 },
      // three curls give up after their 3 s: a second apart on keepalived 2.2.7 (~5.5 s), one after the other on a
      // keepalived that runs one check at a time (~12 s)
      { what: "hung (accepts, never answers)", how: "kill -STOP $web", minMs: 3000, maxMs: 14_000 },
    ])("HAProxy $what: a FAULT within $minMs-$maxMs ms", ({ what, how, minMs, maxMs }) => {
      const r = masterThen(files(), faultAfter(how), 35);
      const ctx = r.output;
      expect({ ctx, after: afterMaster(r.fifo)[0] }).toEqual({ ctx, after: "FAULT 150" });
      const ms = faultMs(r.output);
      process.stdout.write(`[keepalived] HAProxy ${what} -> FAULT: ${ms} ms\n`);
      expect({ ctx, inRange: ms >= minMs && ms < maxMs }).toEqual({ ctx, inRange: true });
    });
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe("conntrackd.conf", () => {
  // One host per synthetic spec: each run takes a second, and the variants below run both hosts.
  test.each(synthetic)("%s: accepted by a short conntrackd run", (_name, spec) => {
    const f = conntrackdFile(spec, primaryHost);
    expectOk(checkConntrackd(f.content), f.content);
  });

  test.each(hosts)("$role: path, mode and reload (restart: conntrackd has no reload)", (host) => {
    const f = conntrackdFile(devResolved, host);
    expect(f.path).toBe(CONNTRACKD_CONFIG_PATH);
    expect(f.mode).toBe(0o644);
    expect(f.reload).toEqual({ service: "conntrackd", commands: [["systemctl", "restart", "conntrackd.service"]] });
  });

  test("FT-FW over UDP unicast from this LB to its peer, on the private NIC, checksummed", () => {
    const [p, s] = hosts.map((h) => conntrackdFile(devResolved, h).content);
    expect(block(p ?? "", "Mode FTFW")).toContain("StartupResync on");
    expect(block(p ?? "", "UDP Default")).toEqual([
      "IPv4_address 192.168.100.2",
      "IPv4_Destination_Address 192.168.100.3",
      "Port 3780",
      "Interface eth1",
      "SndSocketBuffer 1249280",
      "RcvSocketBuffer 1249280",
      "Checksum on",
    ]);
    expect(block(s ?? "", "UDP Default").slice(0, 2)).toEqual([
      "IPv4_address 192.168.100.3",
      "IPv4_Destination_Address 192.168.100.2",
    ]);
    expect(p).not.toMatch(/Multicast/);
  });

  test("syncs TCP, UDP and ICMP (egress NAT carries all of them)", () => {
    const c = conntrackdFile(devResolved, primaryHost).content;
    expect(block(c, "Protocol Accept")).toEqual(["TCP", "UDP", "ICMP", "IPv6-ICMP"]);
  });

  test("ignores every address of the pair: loopback, LB addresses, gateway, next hop, all private and public VIPs", () => {
    const ignored = block(conntrackdFile(publicIpv6, primaryHost).content, "Address Ignore");
    const want = [
      "127.0.0.1",
      "::1",
      "192.168.100.1",
      "192.168.100.2",
      "192.168.100.3",
      "172.31.250.2",
      "172.31.250.3",
      "172.31.250.10",
      "192.168.100.100",
      "198.51.100.80",
      "198.51.100.100",
      "198.51.100.253",
    ];
    for (const a of want)
      expect(ignored).toContain(`IPv4_address ${a}`.replace(/^IPv4_address ::1$/, "IPv6_address ::1"));
    expect(ignored).toContain("IPv6_address 2001:db8:100::100");
    expect(ignored).toHaveLength(want.length + 1);
  });

  test("its cache may hold twice the kernel table of the 2 GiB LB VM (conntrack-tools' rule for HashLimit)", () => {
    // the kernel's default nf_conntrack_max is its bucket count: 65,536 with more than 1 GiB and at most 4 GiB of RAM
    // (nf_conntrack_core.c since 5.15); the LB VM has 2 GiB by default (components/platforms/libvirt.ts)
    const vmConntrackMax = 65_536;
    const c = conntrackdFile(devResolved, primaryHost).content;
    expect(Number(/HashLimit (\d+)/.exec(c)?.[1])).toBeGreaterThanOrEqual(2 * vmConntrackMax);
  });

  test("no NAT: the gateway stays ignored (it is still the pair's address on the cluster network)", () => {
    expect(localAddresses(noNat)).toContain("192.168.100.1");
    expect(localAddresses(noNat)).not.toContain("198.51.100.253");
  });

  test("counter-case: a broken value exits at once with a parse error", () => {
    const bad = conntrackdFile(devResolved, primaryHost).content.replace("PurgeTimeout 60", "PurgeTimeout five");
    const r = checkConntrackd(bad);
    expect(r.ok).toBe(false);
    expect(r.output).toContain("parsing config file");
  });

  test("the client calls of the notify script work against a daemon running this file at the default path", () => {
    const c = conntrackdFile(devResolved, primaryHost).content;
    const r = runConntrackdClient(c, [["-c"], ["-f"], ["-R"], ["-B"], ["-t"], ["-n"]]);
    expectOk(r, c);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe("keepalived-notify.sh", () => {
  test.each(syntheticByHost)("$label: sh -n and shellcheck -s sh are clean", ({ spec, host }) => {
    const f = notifyFile(spec, host);
    expectOk(checkShellScript(f.content), f.content);
  });

  test("path, mode 0700 root (keepalived's script security), no reload", () => {
    const f = notifyFile(devResolved, primaryHost);
    expect(f.path).toBe(NOTIFY_SCRIPT_PATH);
    expect(f.mode).toBe(0o700);
    expect(f.owner).toBe("root:root");
    expect(f.reload.service).toBe("none");
    expect(f.content.startsWith("#!/bin/sh\n# Managed by edgepair")).toBe(true);
    expect(f.content).not.toMatch(/\bnode\b|edgepair agent/);
  });

  test("counter-cases: a syntax error and a bashism are rejected", () => {
    const good = notifyFile(devResolved, primaryHost).content;
    expect(checkShellScript(good.replace("esac", "")).ok).toBe(false);
    const bashism = checkShellScript(good.replace('if [ "$state" = MASTER ]', 'if [[ "$state" == MASTER ]]'));
    expect(bashism.ok).toBe(false);
    expect(bashism.output).toContain("SC3010");
  });

  describe("run with stub conntrackd/ip/arping/logger that log their argv", () => {
    interface NotifyRun {
      status: number | null;
      calls: string[];
      fifo: string;
      elapsedMs: number;
      output: string;
    }

    /**
     * Runs the script in a private mount namespace (tmpfs on /run) with stubs first on PATH. The stub `ip` reports
     * keepalived's VIP as held when vipHeld. fifo: none, a FIFO nobody reads, or one read by an agent-like reader.
     */
    function runNotify(
      script: string,
      state: string,
      opts: { vipHeld: boolean; fifo: "none" | "no-reader" | "reader" },
    ): NotifyRun {
      const dir = mkdtempSync(join(tmpdir(), "ep-notify-"));
      try {
        const bin = join(dir, "bin");
        mkdirSync(bin);
        const log = join(dir, "calls.log");
        const stub = (name: string, body = "") => {
          writeFileSync(join(bin, name), `#!/bin/sh\necho "${name} $*" >>${log}\n${body}\nexit 0\n`);
          chmodSync(join(bin, name), 0o755);
        };
        stub("conntrackd");
        stub("arping");
        stub("logger");
        stub("nft");
        stub(
          "ip",
          opts.vipHeld
            ? 'case "$*" in *"addr show"*) echo "3: eth1 inet 192.168.100.1/32 scope global eth1";; esac'
            : "",
        );
        const path = join(dir, "notify.sh");
        writeFileSync(path, script, { mode: 0o700 });
        const fifoOut = join(dir, "fifo.out");
        const sh = [
          "set -e",
          "mount -t tmpfs tmpfs /run",
          "mkdir -p /run/edgepair",
          opts.fifo !== "none" ? "mkfifo /run/edgepair/vrrp.fifo" : "",
          opts.fifo === "reader"
            ? `exec 3<>/run/edgepair/vrrp.fifo; cat <&3 >${fifoOut} & reader=$!; exec 3<&-`
            : "reader=",
          `start=$(date +%s%N)`,
          `rc=0; PATH=${bin}:$PATH sh ${path} INSTANCE lab ${state} 150 || rc=$?`,
          `echo "elapsed $(( ($(date +%s%N) - start) / 1000000 ))"`,
          "sleep 0.2", // background announcements and the reader catch up
          '[ -n "$reader" ] && kill $reader',
          "exit $rc",
        ].join("\n");
        const r = run("unshare", ["-m", "--propagation", "private", "sh", "-c", sh], { timeoutMs: 15_000 });
        let calls: string[] = [];
        try {
          calls = readFileSync(log, "utf8").split("\n").filter(Boolean);
        } catch {
          calls = [];
        }
        let fifo = "";
        try {
          fifo = readFileSync(fifoOut, "utf8");
        } catch {
          fifo = "";
        }
        const elapsed = Number(/elapsed (\d+)/.exec(r.stdout)?.[1] ?? "NaN");
        return { status: r.status, calls, fifo, elapsedMs: elapsed, output: `${r.output}\n${calls.join("\n")}` };
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }

    const HANDOFF_ON = "nft add element ip edgepair_handoff handoff_on { eth0, eth1 }";
    const HANDOFF_OFF = "nft flush set ip edgepair_handoff handoff_on";
    const libvirtScript = () => notifyFile(devResolved, primaryHost).content;
    const work = (calls: string[]) => calls.filter((c) => !c.startsWith("logger") && !c.includes("addr show"));

    test("MASTER: handoff on, then commit before the next hop moves; flush, resync and bulk send after; agent told", () => {
      const r = runNotify(libvirtScript(), "MASTER", { vipHeld: true, fifo: "reader" });
      expect(r.status).toBe(0);
      const calls = work(r.calls);
      expect(calls.filter((c) => !c.startsWith("arping"))).toEqual([
        HANDOFF_ON,
        "conntrackd -c",
        "ip -4 addr replace 172.31.250.10/24 dev eth0",
        "conntrackd -f",
        "conntrackd -R",
        "conntrackd -B",
      ]);
      // the announcement runs in the background, so only its place after the address is fixed
      expect(calls.indexOf("arping -U -c 2 -I eth0 172.31.250.10")).toBeGreaterThan(
        calls.indexOf("ip -4 addr replace 172.31.250.10/24 dev eth0"),
      );
      expect(r.fifo).toBe("MASTER 150\n");
    });

    test("openstack MASTER: every public VIP moves after the commit", () => {
      const r = runNotify(notifyFile(openstack, primaryHost).content, "MASTER", { vipHeld: true, fifo: "none" });
      const calls = work(r.calls);
      const commit = calls.indexOf("conntrackd -c");
      const firstMove = calls.findIndex((c) => c.includes("addr replace"));
      expect(calls[0]).toBe(HANDOFF_ON);
      expect(commit).toBe(1);
      expect(firstMove).toBeGreaterThan(commit);
      expect(calls.filter((c) => c.includes("addr replace"))).toHaveLength(3);
    });

    test("BACKUP: release the next hop first, then purge and resync request", () => {
      const r = runNotify(libvirtScript(), "BACKUP", { vipHeld: false, fifo: "reader" });
      expect(work(r.calls)).toEqual([
        "ip -4 addr flush dev eth0 to 172.31.250.10/32",
        HANDOFF_OFF,
        "conntrackd -t",
        "conntrackd -n",
      ]);
      expect(r.fifo).toBe("BACKUP 150\n");
    });

    test.each(["FAULT", "STOP", "DELETED"])("%s: release the next hop, then purge", (state) => {
      const r = runNotify(libvirtScript(), state, { vipHeld: false, fifo: "reader" });
      expect(work(r.calls)).toEqual(["ip -4 addr flush dev eth0 to 172.31.250.10/32", HANDOFF_OFF, "conntrackd -t"]);
      expect(r.fifo).toBe(`${state === "DELETED" ? "STOP" : state} 150\n`);
    });

    test("a FIFO without a reader does not block the script", () => {
      const r = runNotify(libvirtScript(), "BACKUP", { vipHeld: false, fifo: "no-reader" });
      expect(r.status).toBe(0);
      expect(r.elapsedMs).toBeLessThan(2000);
      expect(r.calls).toContain("logger -t edgepair-notify -- agent not listening on the FIFO");
    });

    test("a stale copy (MASTER called, but keepalived no longer holds its VIP) changes nothing", () => {
      const r = runNotify(libvirtScript(), "MASTER", { vipHeld: false, fifo: "reader" });
      expect(r.status).toBe(0);
      expect(work(r.calls)).toEqual([]);
      expect(r.calls).toContain("logger -t edgepair-notify -- skipping MASTER: keepalived has moved on");
      expect(r.fifo).toBe("");
    });

    test("an unknown state is refused", () => {
      const r = runNotify(libvirtScript(), "BOGUS", { vipHeld: false, fifo: "none" });
      expect(r.status).toBe(2);
      expect(work(r.calls)).toEqual([]);
    });
  });

  test("concurrent copies (real ip in a netns): a slow MASTER copy overtaken by STOP ends released", () => {
    const script = notifyFile(devResolved, primaryHost).content;
    const dir = mkdtempSync(join(tmpdir(), "ep-notify-race-"));
    try {
      const bin = join(dir, "bin");
      mkdirSync(bin);
      for (const [name, body] of [
        ["conntrackd", "sleep 0.5"],
        ["arping", ""],
        ["logger", ""],
      ] as const) {
        writeFileSync(join(bin, name), `#!/bin/sh\necho "${name} $*" >>${dir}/calls.log\n${body}\nexit 0\n`);
        chmodSync(join(bin, name), 0o755);
      }
      writeFileSync(join(dir, "notify.sh"), script, { mode: 0o700 });
      const notify = (state: string) => `PATH=${bin}:$PATH sh ${dir}/notify.sh INSTANCE lab ${state} 150`;
      const sh = [
        "mount -t tmpfs tmpfs /run",
        // keepalived enters MASTER: VIP first, then the notify copy (slow: conntrackd -c takes 0.5 s here)
        "ip addr add 192.168.100.1/32 dev eth1",
        `${notify("MASTER")} & m=$!`,
        "sleep 0.2",
        // keepalived stops: VIP removed, STOP copy started while the MASTER copy still runs
        "ip addr del 192.168.100.1/32 dev eth1",
        `${notify("STOP")} & s=$!`,
        "wait $m $s",
        "echo '--- after race'; ip -o addr show dev eth0",
        // a MASTER copy that starts only now (keepalived long stopped) must not take the address back
        notify("MASTER"),
        "echo '--- after stale'; ip -o addr show dev eth0",
      ].join("\n");
      const r = withNetns(
        [
          { name: "eth0", addresses: ["172.31.250.2/24"] },
          { name: "eth1", addresses: ["192.168.100.2/24"] },
        ],
        (ns) =>
          run("ip", ["netns", "exec", ns, "unshare", "-m", "--propagation", "private", "sh", "-c", sh], {
            timeoutMs: 20_000,
          }),
      );
      const afterRace = r.stdout.split("--- after stale")[0] ?? "";
      const afterStale = r.stdout.split("--- after stale")[1] ?? "";
      expect(afterRace).toContain("--- after race");
      expect(afterRace.split("--- after race")[1]).not.toContain("172.31.250.10");
      expect(afterStale).not.toContain("172.31.250.10");
      expect(afterStale).toContain("172.31.250.2/24");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe("every spec variant x host", () => {
  test.each(variantsByHost)(
    "$label: keepalived -t, conntrackd run and shellcheck accept the files",
    ({ spec, host, backends }) => {
      const files = [
        ...renderKeepalived({ spec, host, backends }),
        ...renderConntrackd({ spec, host, backends }),
        ...renderNotifyScript({ spec, host, backends }),
      ];
      const byPath = (p: string) => files.find((f) => f.path === p)?.content ?? "";
      expectOk(checkKeepalived(byPath(KEEPALIVED_CONFIG_PATH)), byPath(KEEPALIVED_CONFIG_PATH));
      expectOk(checkConntrackd(byPath(CONNTRACKD_CONFIG_PATH)), byPath(CONNTRACKD_CONFIG_PATH));
      expectOk(checkShellScript(byPath(NOTIFY_SCRIPT_PATH)), byPath(NOTIFY_SCRIPT_PATH));
      // the public side never enters keepalived.conf, and every public VIP is ignored by conntrackd
      for (const v of spec.derived.publicVips) {
        expect(byPath(KEEPALIVED_CONFIG_PATH)).not.toContain(v.address);
        expect(byPath(CONNTRACKD_CONFIG_PATH)).toContain(` ${v.address}\n`);
      }
    },
  );

  test.each(variantsByHost)("$label: rendering is deterministic", ({ spec, host, backends }) => {
    const once = () =>
      [renderKeepalived, renderConntrackd, renderNotifyScript].flatMap((r) =>
        r({ spec, host, backends: structuredClone(backends) }),
      );
    expect(JSON.stringify(once())).toBe(JSON.stringify(once()));
  });
});
