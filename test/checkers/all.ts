/**
 * Dispatches every file of a rendered tree to the real program that reads it (DESIGN.md's table). A path with no
 * checker fails, so a new rendered file cannot slip through unchecked.
 */
import { NO_RELOAD } from "../../render/common";
import { serviceOfPath } from "../../render/services";
import type { RenderedFile, ServiceName } from "../../render/types";
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

type Single = { checker: string; check: (f: TreeFile) => { ok: boolean; output: string } };

/** Interfaces named in per-interface keys (net.ipv4.conf.<if>.x), which must exist for sysctl -p to apply them. */
function sysctlInterfaces(content: string): string[] {
  const dotted = [...content.matchAll(/^net\.ipv[46]\.conf\.([^.\s]+)\./gm)].map((m) => m[1] ?? "");
  const slashed = [...content.matchAll(/^net\/ipv[46]\/conf\/([^/\s]+)\//gm)].map((m) => m[1] ?? "");
  const names = [...dotted, ...slashed];
  return [...new Set(names)].filter((n) => n !== "all" && n !== "default" && n !== "");
}

/** The test-side checker of each service's files (the VM's own live in render/services.ts). */
const SINGLE: Record<Exclude<ServiceName, "firewalld" | "agent">, Single> = {
  haproxy: { checker: "haproxy -c", check: (f) => checkHaproxy(f.content) },
  keepalived: { checker: "keepalived -t", check: (f) => checkKeepalived(f.content) },
  conntrackd: { checker: "conntrackd run", check: (f) => checkConntrackd(f.content) },
  none: { checker: "shellcheck", check: (f) => checkShellScript(f.content) },
  nftables: { checker: "nft -c", check: (f) => checkNft(f.content) },
  serviceLb: { checker: "nft -c", check: (f) => checkNft(f.content) },
  networkmanager: { checker: "nmcli --offline", check: (f) => checkNmKeyfile(f.content) },
  sysctl: { checker: "sysctl -p", check: (f) => checkSysctl(f.content, sysctlInterfaces(f.content)) },
};

export function checkRenderedTree(tree: readonly TreeFile[]): FileCheck[] {
  const firewalld = tree.filter((f) => serviceOfPath(f.path) === "firewalld");
  // firewalld cross-checks zones, policies and services together, so they are checked as one directory.
  const firewalldResult =
    firewalld.length > 0
      ? checkFirewalld(firewalld.map((f): RenderedFile => ({ ...f, owner: "root:root", reload: NO_RELOAD })))
      : undefined;
  return tree.map((f) => {
    const service = serviceOfPath(f.path);
    if (service === "firewalld" && firewalldResult) {
      return { path: f.path, checker: "firewall-offline-cmd --check-config", ...firewalldResult };
    }
    const single =
      service === undefined || service === "firewalld" || service === "agent" ? undefined : SINGLE[service];
    if (!single) return { path: f.path, checker: "none", ok: false, output: "no checker knows this path" };
    return { path: f.path, checker: single.checker, ...single.check(f) };
  });
}
