import type { ReloadAction, RenderedFile, ServiceName } from "./types";
import type { HostFacts, VirtualAddress } from "../spec/types";

/** First line(s) of every rendered text file: who owns it, so an operator does not hand-edit it. */
export function header(commentPrefix: string): string {
  return `${commentPrefix} Managed by edgepair: rendered from the LoadBalancer spec. Local edits are overwritten.\n`;
}

export function reload(service: ServiceName, ...commands: string[][]): ReloadAction {
  return { service, commands };
}

export const NO_RELOAD: ReloadAction = reload("none");

export function file(
  path: string,
  content: string,
  reloadAction: ReloadAction,
  mode = 0o644,
  owner = "root:root",
): RenderedFile {
  return { path, mode, owner, content, reload: reloadAction };
}

/** Joins lines and guarantees exactly one trailing newline, so outputs are byte-stable. */
export function lines(...parts: (string | string[] | false | undefined)[]): string {
  const out: string[] = [];
  for (const p of parts) {
    if (p === false || p === undefined) continue;
    if (Array.isArray(p)) out.push(...p);
    else out.push(p);
  }
  return out.join("\n").replace(/\n*$/, "\n");
}

/** Host prefix length for an address family: /32 or /128. */
export function hostPrefix(a: Pick<VirtualAddress, "family">): number {
  return a.family === 4 ? 32 : 128;
}

/** This LB's and its peer's entry of a [primary, secondary] pair (the LB addresses of a network). */
export function ownAndPeer<T>(pair: readonly [T, T], host: Pick<HostFacts, "role">): { own: T; peer: T } {
  const [primary, secondary] = pair;
  return host.role === "primary" ? { own: primary, peer: secondary } : { own: secondary, peer: primary };
}
