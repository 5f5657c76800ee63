import { floatingIpHandler, isAnnouncement, type Command } from "../render/floating-ip";
import { KEEPALIVED_STATES, type KeepalivedState } from "../render/vrrp-state";
import type { ResolvedSpec, VirtualAddress } from "../spec/types";
import { withNetns } from "./checkers/netns";
import { run } from "./checkers/run";
import { devResolved, primaryHost, secondaryHost } from "./fixtures/resolved";

const STATES: readonly KeepalivedState[] = KEEPALIVED_STATES;
const v4 = (address: string): VirtualAddress => ({ address, family: 4, type: "public" });
const v6 = (address: string): VirtualAddress => ({ address, family: 6, type: "public" });

const openstack: ResolvedSpec = {
  ...devResolved,
  platform: {
    type: "openstack",
    publicNetwork: {
      cidr: "203.0.113.0/24",
      prefixLength: 24,
      gateway: "203.0.113.1",
      lbAddresses: ["203.0.113.11", "203.0.113.12"],
    },
  },
  derived: { ...devResolved.derived, publicVips: [v4("203.0.113.80"), v4("203.0.113.100"), v6("2001:db8:100::100")] },
};

const text = (cmds: Command[]) => cmds.map((c) => c.join(" "));

describe("floating-IP handler, libvirt (routed floating IPs)", () => {
  const h = floatingIpHandler(devResolved, primaryHost);

  test("MASTER puts the next hop on the public NIC with the public prefix, then announces it", () => {
    expect(h.platform).toBe("libvirt");
    expect(text(h.onTransition("MASTER"))).toEqual([
      "ip -4 addr replace 172.31.250.10/24 dev eth0",
      "arping -U -c 2 -I eth0 172.31.250.10",
    ]);
  });

  test.each(["BACKUP", "FAULT", "STOP"] as const)("%s removes only the next hop, tolerating its absence", (state) => {
    expect(text(h.onTransition(state))).toEqual(["ip -4 addr flush dev eth0 to 172.31.250.10/32"]);
  });

  test("the floating IPs themselves never move (they stay on both LBs)", () => {
    for (const s of STATES)
      for (const vip of devResolved.derived.publicVips)
        expect(text(h.onTransition(s)).join("\n")).not.toContain(vip.address);
  });

  test("uses the host's public interface name", () => {
    const other = floatingIpHandler(devResolved, {
      ...secondaryHost,
      publicInterface: { name: "enp1s0", mac: "52:54:00:00:00:01" },
    });
    expect(text(other.onTransition("MASTER"))[0]).toBe("ip -4 addr replace 172.31.250.10/24 dev enp1s0");
  });

  test("a libvirt spec without a next hop is refused, naming the field", () => {
    const { nextHop: _, ...noHop } = devResolved.platform.publicNetwork;
    const spec: ResolvedSpec = { ...devResolved, platform: { type: "libvirt", publicNetwork: noHop } };
    expect(() => floatingIpHandler(spec, primaryHost)).toThrow("platform.publicNetwork.nextHop");
  });
});

describe("floating-IP handler, openstack (NAT floating IPs)", () => {
  const h = floatingIpHandler(openstack, secondaryHost);

  test("MASTER adds every public VIP as a host address, announcing IPv4 ones after all adds", () => {
    expect(text(h.onTransition("MASTER"))).toEqual([
      "ip -4 addr replace 203.0.113.80/32 dev eth0",
      "ip -4 addr replace 203.0.113.100/32 dev eth0",
      "ip -6 addr replace 2001:db8:100::100/128 dev eth0 preferred_lft 0",
      "arping -U -c 2 -I eth0 203.0.113.80",
      "arping -U -c 2 -I eth0 203.0.113.100",
    ]);
  });

  test("other states remove every public VIP", () => {
    for (const s of ["BACKUP", "FAULT", "STOP"] as const) {
      expect(text(h.onTransition(s))).toEqual([
        "ip -4 addr flush dev eth0 to 203.0.113.80/32",
        "ip -4 addr flush dev eth0 to 203.0.113.100/32",
        "ip -6 addr flush dev eth0 to 2001:db8:100::100/128",
      ]);
    }
  });

  test("reassert re-establishes exactly what the transition does", () => {
    for (const s of STATES) expect(h.reassert(s)).toEqual(h.onTransition(s));
  });

  test("only arping is an announcement", () => {
    expect(
      h
        .onTransition("MASTER")
        .filter(isAnnouncement)
        .every((c) => c[0] === "arping"),
    ).toBe(true);
    expect(h.onTransition("BACKUP").some(isAnnouncement)).toBe(false);
  });
});

describe("handler commands run for real in a throwaway netns", () => {
  function apply(ns: string, cmds: Command[]): void {
    for (const c of cmds) {
      const r = run("ip", ["netns", "exec", ns, ...c], { timeoutMs: 10_000 });
      if (r.status !== 0) throw new Error(`${c.join(" ")} exited ${r.status}: ${r.output}`);
    }
  }
  const addrs = (ns: string) => run("ip", ["-n", ns, "-o", "addr", "show", "dev", "eth0"]).stdout;

  test("libvirt: MASTER twice, then FAULT twice, all exit 0; the LB's own address survives", () => {
    const h = floatingIpHandler(devResolved, primaryHost);
    withNetns([{ name: "eth0", addresses: ["172.31.250.2/24"] }], (ns) => {
      apply(ns, h.onTransition("MASTER"));
      apply(ns, h.reassert("MASTER"));
      expect(addrs(ns)).toContain("inet 172.31.250.10/24");
      apply(ns, h.onTransition("FAULT"));
      apply(ns, h.reassert("FAULT"));
      expect(addrs(ns)).not.toContain("172.31.250.10");
      expect(addrs(ns)).toContain("inet 172.31.250.2/24");
    });
  });

  test("openstack: IPv4 and IPv6 VIPs come and go idempotently", () => {
    const h = floatingIpHandler(openstack, primaryHost);
    withNetns([{ name: "eth0", addresses: ["203.0.113.11/24"] }], (ns) => {
      apply(ns, h.onTransition("MASTER"));
      apply(ns, h.onTransition("MASTER"));
      const held = addrs(ns);
      for (const a of ["203.0.113.80/32", "203.0.113.100/32", "2001:db8:100::100/128"]) expect(held).toContain(a);
      apply(ns, h.onTransition("BACKUP"));
      apply(ns, h.onTransition("STOP"));
      const released = addrs(ns);
      for (const a of ["203.0.113.80", "203.0.113.100", "2001:db8:100::100"]) expect(released).not.toContain(a);
      expect(released).toContain("203.0.113.11/24");
    });
  });
});
