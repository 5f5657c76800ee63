/**
 * Dispatches every file of a rendered tree to the real program that reads it (DESIGN.md's table). A path with no
 * checker fails, so a new rendered file cannot slip through unchecked.
 */
import { NO_RELOAD } from "../../render/common";
import type { RenderedFile } from "../../render/types";
import { checkConntrackd } from "./conntrackd";
import { checkFirewalld } from "./firewalld";
import { checkHaproxy } from "./haproxy";
import { checkKeepalived } from "./keepalived";
import { checkNft } from "./nft";
import { checkNmKeyfile } from "./nmcli";
import { checkShellScript } from "./shell";
import { checkSysctl } from "./sysctl";

export interface TreeFile {
  path: string;
  mode: number;
  content: string;
}

export interface FileCheck {
  path: string;
  checker: string;
  ok: boolean;
  output: string;
}

type Single = { checker: string; test: (path: string) => boolean; check: (f: TreeFile) => { ok: boolean; output: string } };

/** Interfaces named in per-interface keys (net.ipv4.conf.<if>.x), which must exist for sysctl -p to apply them. */
function sysctlInterfaces(content: string): string[] {
  const dotted = [...content.matchAll(/^net\.ipv[46]\.conf\.([^.\s]+)\./gm)].map((m) => m[1] ?? "");
  const slashed = [...content.matchAll(/^net\/ipv[46]\/conf\/([^/\s]+)\//gm)].map((m) => m[1] ?? "");
  const names = [...dotted, ...slashed];
  return [...new Set(names)].filter((n) => n !== "all" && n !== "default" && n !== "");
}

const SINGLE: Single[] = [
  { checker: "haproxy -c", test: (p) => p === "/etc/haproxy/haproxy.cfg", check: (f) => checkHaproxy(f.content) },
  { checker: "keepalived -t", test: (p) => p.startsWith("/etc/keepalived/"), check: (f) => checkKeepalived(f.content) },
  { checker: "conntrackd run", test: (p) => p.startsWith("/etc/conntrackd/"), check: (f) => checkConntrackd(f.content) },
  { checker: "shellcheck", test: (p) => p.endsWith(".sh"), check: (f) => checkShellScript(f.content) },
  { checker: "nft -c", test: (p) => p.endsWith(".nft"), check: (f) => checkNft(f.content) },
  { checker: "nmcli --offline", test: (p) => p.endsWith(".nmconnection"), check: (f) => checkNmKeyfile(f.content) },
  { checker: "sysctl -p", test: (p) => p.startsWith("/etc/sysctl.d/"), check: (f) => checkSysctl(f.content, sysctlInterfaces(f.content)) },
];

export function checkRenderedTree(tree: readonly TreeFile[]): FileCheck[] {
  const firewalld = tree.filter((f) => f.path.startsWith("/etc/firewalld/"));
  // firewalld cross-checks zones, policies and services together, so they are checked as one directory.
  const firewalldResult = firewalld.length > 0
    ? checkFirewalld(firewalld.map((f): RenderedFile => ({ ...f, owner: "root:root", reload: NO_RELOAD })))
    : undefined;
  return tree.map((f) => {
    if (f.path.startsWith("/etc/firewalld/") && firewalldResult) {
      return { path: f.path, checker: "firewall-offline-cmd --check-config", ...firewalldResult };
    }
    const single = SINGLE.find((s) => s.test(f.path));
    if (!single) return { path: f.path, checker: "none", ok: false, output: "no checker knows this path" };
    return { path: f.path, checker: single.checker, ...single.check(f) };
  });
}
