/**
 * Every file of one LB, in apply order: kernel settings and links first, then the firewall, then the services that
 * bind on them. The same function runs in the Pulumi program (preview diff), the CLI and the agent.
 */
import { renderConntrackd } from "./conntrackd";
import { renderFirewall } from "./firewall";
import { renderHandoff } from "./handoff";
import { renderHaproxy } from "./haproxy";
import { renderKeepalived } from "./keepalived";
import { renderNetworkManager } from "./networkmanager";
import { renderNotifyScript } from "./notify";
import { renderServiceLb } from "./service-lb";
import { renderSysctl } from "./sysctl";
import type { Renderer, RenderedFile, RenderInput } from "./types";

export const RENDERERS: readonly Renderer[] = [
  renderSysctl,
  renderNetworkManager,
  renderFirewall,
  renderServiceLb,
  renderHandoff,
  renderHaproxy,
  renderConntrackd,
  renderNotifyScript,
  renderKeepalived,
];

export function renderAll(input: RenderInput): RenderedFile[] {
  const files = RENDERERS.flatMap((r) => r(input));
  const seen = new Set<string>();
  for (const f of files) {
    if (seen.has(f.path)) throw new Error(`two renderers produced ${f.path}`);
    seen.add(f.path);
  }
  return files;
}

/**
 * Changes whenever any renderer's output can change for the same input. The program shows it in the rendered view
 * and the agent reports its own in status, so a pair running other renderers than the stack's is visible.
 */
export const RENDERER_VERSION = "0.8.0";
