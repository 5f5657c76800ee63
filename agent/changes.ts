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
import { SERVICES } from "../render/services";
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

/** haproxy.cfg without its server lines: equal before and after means only membership changed. */
export function withoutServerLines(cfg: string): string {
  return cfg
    .split("\n")
    .filter((l) => !/^\s+server\s/.test(l))
    .join("\n");
}

/**
 * Per backend section, how its servers are reached (port and options), names and addresses left out. Membership
 * changes leave it as it is; a new port or check (apiBackend.port, ingressBackend.healthPort) changes it. A section
 * without servers before or after is left out: its first server returning is membership.
 */
export function serverShapesChanged(before: string, after: string): boolean {
  const shapes = (cfg: string): Map<string, Set<string>> => {
    const m = new Map<string, Set<string>>();
    let section = "";
    for (const l of cfg.split("\n")) {
      if (/^\S/.test(l)) section = l.trim();
      const s = /^\s+server\s+\S+\s+\S*:(\d+)(\s.*)?$/.exec(l);
      if (s) m.set(section, (m.get(section) ?? new Set()).add(`${s[1]} ${(s[2] ?? "").trim()}`));
    }
    return m;
  };
  const b = shapes(before);
  const a = shapes(after);
  for (const [section, now] of a) {
    const was = b.get(section);
    if (was && (was.size !== now.size || [...now].some((x) => !was.has(x)))) return true;
  }
  return false;
}

/** The desired state's own hash, the same on both LBs (their renders differ: hostname, MACs, role, addresses). */
export function desiredStateHash(spec: unknown, backends: unknown, services: readonly unknown[] = []): string {
  // without Services the hash is what it was before they existed, so a pair mid-upgrade agrees on it
  const state = services.length > 0 ? { spec, backends, services } : { spec, backends };
  return createHash("sha256").update(JSON.stringify(state)).digest("hex");
}

export function renderHash(files: readonly RenderedFile[]): string {
  const h = createHash("sha256");
  for (const f of [...files].sort((a, b) => a.path.localeCompare(b.path)))
    h.update(`${f.path}\0${f.mode}\0${f.content}\0`);
  return h.digest("hex");
}

/** `live` maps path -> {content, mode} of what is applied now (absent: never written). */
/** `desiredHash`: the rollout key when the caller has one (agent run: desiredStateHash); else the render's own hash. */
export function classifyChanges(
  next: readonly RenderedFile[],
  live: ReadonlyMap<string, { content: string; mode: number }>,
  desiredHash?: string,
): ChangeSet {
  const changed: string[] = [];
  const risky: string[] = [];
  let serversOnly = true;
  for (const f of next) {
    const now = live.get(f.path);
    if (now && now.content === f.content && now.mode === f.mode) continue;
    changed.push(f.path);
    if (
      f.path === HAPROXY_CONFIG_PATH &&
      now &&
      now.mode === f.mode &&
      withoutServerLines(now.content) === withoutServerLines(f.content) &&
      !serverShapesChanged(now.content, f.content)
    )
      continue;
    serversOnly = false;
    if (SERVICES[f.reload.service].risky) risky.push(f.path);
  }
  const kind: RolloutKind =
    changed.length === 0 ? "none" : serversOnly ? "servers-only" : risky.length > 0 ? "risky" : "safe";
  return { kind, changed, risky, desiredHash: desiredHash ?? renderHash(next) };
}
