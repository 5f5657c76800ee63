/**
 * lab/poc-config.ts: the lab-only PoC-equivalent transform of the rendered keepalived.conf and notify script (the
 * failover bench's comparison). Run on the golden files, so a renderer change that the transform no longer
 * understands fails here, not half-way through a bench run.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pocKeepalivedConf, pocNotifyScript, POC } from "../lab/poc-config";
import { checkKeepalived } from "./checkers/keepalived";
import { checkShellScript } from "./checkers/shell";

const golden = (lb: string, path: string) => readFileSync(join(__dirname, "golden", lb, path), "utf8");
const CONF = "etc/keepalived/keepalived.conf";
const NOTIFY = "etc/edgepair/keepalived-notify.sh";

describe("PoC-equivalent keepalived.conf", () => {
  test.each([
    ["dev-lb1", "primary"],
    ["dev-lb2", "secondary"],
  ] as const)("%s: VRRPv2, advert 3 s, preemption, no tracking, PoC priority", (lb, role) => {
    const c = pocKeepalivedConf(golden(lb, CONF), role);
    expect(c).toMatch(/^\s*vrrp_version 2$/m);
    expect(c).toMatch(/^\s*advert_int 3$/m);
    expect(c).toMatch(new RegExp(`^\\s*priority ${POC.priority[role]}$`, "m"));
    expect(c).toMatch(/auth_type PASS/);
    for (const gone of [
      "nopreempt",
      "vrrp_script",
      "track_script",
      "track_interface",
      "check_unicast_src",
      "vrrp_priority",
      "max_auto_priority",
      "vrrp_version 3",
    ]) {
      expect(c).not.toContain(gone);
    }
    // what stays: VIPs, unicast peer, the notify hook
    expect(c).toContain("192.168.100.1/32 dev");
    expect(c).toContain("unicast_peer");
    expect(c).toContain("notify /etc/edgepair/keepalived-notify.sh");
  });

  test("keepalived -t accepts the result", () => {
    const r = checkKeepalived(pocKeepalivedConf(golden("dev-lb1", CONF), "primary"));
    expect({ ok: r.ok, output: r.output }).toEqual({ ok: true, output: r.output });
  });

  test("a rendered file it does not understand is refused, not half-transformed", () => {
    expect(() => pocKeepalivedConf(golden("dev-lb1", CONF).replace("nopreempt\n", ""), "primary")).toThrow(/nopreempt/);
    expect(() =>
      pocKeepalivedConf(golden("dev-lb1", CONF).replace("vrrp_version 3", "vrrp_version 2"), "primary"),
    ).toThrow(/vrrp_version/);
  });
});

describe("PoC-equivalent notify script", () => {
  test("only the address moves: every conntrackd call is gone, the move, announcement and FIFO line stay", () => {
    const s = pocNotifyScript(golden("dev-lb1", NOTIFY));
    expect(s).not.toMatch(/^[^#]*conntrackd/m);
    expect(s).toContain("step ip -4 addr replace 172.31.250.10/24 dev enp1s0");
    expect(s).toContain("announce arping -U -c 2 -I enp1s0 172.31.250.10");
    expect(s).toContain("step ip -4 addr flush dev enp1s0 to 172.31.250.10/32");
    expect(s).toContain("/run/edgepair/vrrp.fifo");
    expect(s.startsWith("#!/bin/sh\n# LAB ONLY")).toBe(true);
    const r = checkShellScript(s);
    expect({ ok: r.ok, output: r.output }).toEqual({ ok: true, output: r.output });
  });

  test("a script without conntrackd calls is refused", () => {
    expect(() => pocNotifyScript(pocNotifyScript(golden("dev-lb1", NOTIFY)))).toThrow(/nothing to remove/);
  });
});
