/**
 * LAB ONLY: the proof of concept's VRRP behaviour, made from edgepair's rendered files, so the failover bench can
 * run the same scenarios on the same lab with the PoC's settings (reference/seed-poc.md §3.6.3, gaps 22-23).
 * Nothing outside lab/ and bench/ uses this; edgepair never renders these files.
 *
 * keepalived.conf: VRRPv2 with the PoC's plain-text authentication, advert_int 3, priorities 200 (primary) /
 * 100 (secondary) and preemption (no nopreempt: the primary takes mastership back), the PoC's GARP timers
 * (delay 5 s, refresh 30 s), no HAProxy tracking (no vrrp_script, no track_script), no track_interface (the VRRP
 * interface is still tracked implicitly, as in the PoC), no check_unicast_src, and none of edgepair's process
 * scheduling settings. The VIPs, unicast addresses and router ID stay as rendered.
 *
 * notify script: only moves the public address. Every conntrackd call is removed (the PoC never commits, flushes
 * or resyncs on a transition); what remains is the address change, its announcement and the FIFO line the lab
 * reads transitions from. conntrackd itself keeps running and syncing, as in the PoC ("synced, never committed").
 * The PoC moved the address through Floaty and a cloud API call; here the lab's floating-IP handler moves it at
 * once, which, if anything, favours the PoC.
 *
 * sysctl: nf_conntrack_tcp_loose back to the kernel's default (1), which the PoC left alone (§2.8, §3.6.9);
 * edgepair renders 0 (a new MASTER must not adopt mid-stream packets before conntrackd's commit), and without a
 * commit that would stall every TCP flow on the new MASTER, a failure of edgepair's setting, not the PoC's.
 * Everything else (firewall, NAT, conntrackd.conf, HAProxy) stays edgepair's: the PoC SNATed TCP only and
 * masqueraded other egress to the LB's own address, which would break UDP flows on every move; keeping edgepair's
 * NAT favours the PoC too.
 *
 * Each edit asserts that the rendered text it expects is there, so a renderer change breaks this loudly instead
 * of producing a half-transformed file.
 */

export type LbRole = "primary" | "secondary";

export const POC = {
  vrrpVersion: 2,
  advertIntSeconds: 3,
  priority: { primary: 200, secondary: 100 } as Record<LbRole, number>,
  garpMasterDelay: 5,
  garpMasterRefresh: 30,
  authPass: "insec_0",
} as const;

/** Applied in each LB's network namespace (`sysctl -w`) after the rendered sysctl file. */
export const POC_SYSCTLS: Record<string, string> = { "net.netfilter.nf_conntrack_tcp_loose": "1" };

function replaceOnce(text: string, pattern: RegExp, replacement: string, what: string): string {
  const hits = text.match(
    new RegExp(pattern.source, pattern.flags.includes("g") ? pattern.flags : `${pattern.flags}g`),
  );
  if (!hits || hits.length !== 1)
    throw new Error(`poc-config: expected exactly one ${what} in the rendered file, found ${hits?.length ?? 0}`);
  return text.replace(pattern, replacement);
}

/** Removes a `name { ... }` block (one level of nesting at most), asserting that it was there once. */
function removeBlock(text: string, header: RegExp, what: string): string {
  return replaceOnce(
    text,
    new RegExp(`^[ \\t]*${header.source}[ \\t]*\\{[^{}]*\\}[ \\t]*\\n(?:[ \\t]*\\n)?`, "m"),
    "",
    what,
  );
}

export function pocKeepalivedConf(rendered: string, role: LbRole): string {
  let c = `# LAB ONLY (lab/poc-config.ts): the proof of concept's VRRP settings, made from edgepair's rendered file.\n${rendered}`;
  c = replaceOnce(c, /^(\s*)vrrp_version 3$/m, `$1vrrp_version ${POC.vrrpVersion}`, "vrrp_version 3");
  c = replaceOnce(
    c,
    /^(\s*)vrrp_garp_master_delay \d+$/m,
    `$1vrrp_garp_master_delay ${POC.garpMasterDelay}`,
    "vrrp_garp_master_delay",
  );
  c = replaceOnce(
    c,
    /^(\s*)vrrp_garp_master_refresh \d+$/m,
    `$1vrrp_garp_master_refresh ${POC.garpMasterRefresh}`,
    "vrrp_garp_master_refresh",
  );
  c = replaceOnce(c, /^\s*vrrp_priority -?\d+\n/m, "", "vrrp_priority");
  c = replaceOnce(c, /^\s*max_auto_priority -?\d+\n/m, "", "max_auto_priority");
  c = removeBlock(c, /vrrp_script \S+/, "vrrp_script block");
  c = replaceOnce(c, /^\s*nopreempt\n/m, "", "nopreempt");
  c = replaceOnce(c, /^(\s*)priority \d+$/m, `$1priority ${POC.priority[role]}`, "priority");
  c = replaceOnce(c, /^(\s*)advert_int [\d.]+$/m, `$1advert_int ${POC.advertIntSeconds}`, "advert_int");
  c = replaceOnce(c, /^\s*check_unicast_src\n/m, "", "check_unicast_src");
  c = removeBlock(c, /track_interface/, "track_interface block");
  c = removeBlock(c, /track_script/, "track_script block");
  c = replaceOnce(
    c,
    /^(\s*)(notify \S+)$/m,
    `$1authentication {\n$1    auth_type PASS\n$1    auth_pass ${POC.authPass}\n$1}\n$1$2`,
    "notify line",
  );
  return c;
}

export function pocNotifyScript(rendered: string): string {
  const lines = rendered.split("\n");
  const calls = lines.filter((l) => /^\s*step timeout \d+ conntrackd /.test(l));
  if (calls.length === 0)
    throw new Error("poc-config: the rendered notify script calls no conntrackd: nothing to remove");
  if (!lines.some((l) => /^\s*step ip .*addr (replace|add) /.test(l)))
    throw new Error("poc-config: the rendered notify script moves no address");
  const kept = lines.filter((l) => !calls.includes(l));
  const shebang = kept.shift();
  return [
    shebang,
    "# LAB ONLY (lab/poc-config.ts): the PoC's behaviour, every conntrackd call removed; only addresses move.",
    ...kept,
  ].join("\n");
}
