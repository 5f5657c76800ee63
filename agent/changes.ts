/**
 * What a new render changes, and how the agent must roll it out (issue 8 item 2):
 * - backend membership only (haproxy.cfg differs in `server` lines alone): through HAProxy's runtime API, no reload;
 *   the file is still written so a restart finds the same servers;
 * - changes that could break serving (VIPs, ports, services, firewall, addressing: keepalived, the firewall files,
 *   our nftables tables, NetworkManager profiles, sysctl, or haproxy.cfg beyond its server lines) go to the BACKUP
 *   first, health-gated, and to the MASTER only once the BACKUP reports them applied and Ready;
 * - everything else (conntrackd, the notify script) applies on both at once.
 */
import { createHash } from "node:crypto";
import { HAPROXY_CONFIG_PATH } from "../render/haproxy";
import type { RenderedFile } from "../render/types";

export type RolloutKind = "none" | "servers-only" | "safe" | "risky";

export interface ChangeSet {
  kind: RolloutKind;
  /** paths whose content or mode differ (or that are new) */
  changed: string[];
  /** paths that need the BACKUP-first rollout */
  risky: string[];
  /** hash of every rendered file together: the MASTER waits until its peer reports this one */
  desiredHash: string;
}

const RISKY_SERVICES = new Set(["keepalived", "firewalld", "nftables", "networkmanager", "sysctl"]);

/** haproxy.cfg without its server lines: equal before and after means only membership changed. */
export function withoutServerLines(cfg: string): string {
  return cfg
    .split("\n")
    .filter((l) => !/^\s+server\s/.test(l))
    .join("\n");
}

export function renderHash(files: readonly RenderedFile[]): string {
  const h = createHash("sha256");
  for (const f of [...files].sort((a, b) => a.path.localeCompare(b.path))) h.update(`${f.path}\0${f.mode}\0${f.content}\0`);
  return h.digest("hex");
}

/** `live` maps path -> {content, mode} of what is applied now (absent: never written). */
export function classifyChanges(next: readonly RenderedFile[], live: ReadonlyMap<string, { content: string; mode: number }>): ChangeSet {
  const changed: string[] = [];
  const risky: string[] = [];
  let serversOnly = true;
  for (const f of next) {
    const now = live.get(f.path);
    if (now && now.content === f.content && now.mode === f.mode) continue;
    changed.push(f.path);
    if (f.path === HAPROXY_CONFIG_PATH && now && now.mode === f.mode && withoutServerLines(now.content) === withoutServerLines(f.content)) continue;
    serversOnly = false;
    if (RISKY_SERVICES.has(f.reload.service) || f.path === HAPROXY_CONFIG_PATH) risky.push(f.path);
  }
  const kind: RolloutKind = changed.length === 0 ? "none" : serversOnly ? "servers-only" : risky.length > 0 ? "risky" : "safe";
  return { kind, changed, risky, desiredHash: renderHash(next) };
}
