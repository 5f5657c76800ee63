/**
 * DESIGN.md: fields that would split the pair if the two LBs applied a change at different moments (clusterName and
 * the VRRP router ID derived from it, network.cidr, the LB addresses). The CRD refuses a change of them (CEL rules on
 * update), but a LoadBalancer deleted and created again passes those rules; so the agent holds every new spec against
 * the one its VM booted with, with defaults applied (a router ID derived from a new clusterName is a change too).
 */
import type { SpecProblem } from "./errors";
import type { ResolvedSpec } from "./types";

const RULE =
  "cannot change on a running pair: the two LBs would apply it at different moments and split the pair (create a new pair instead)";

export function immutableChanges(running: ResolvedSpec, next: ResolvedSpec): SpecProblem[] {
  const fields: [string, unknown, unknown][] = [
    ["clusterName", running.clusterName, next.clusterName],
    ["network.cidr", running.network.cidr, next.network.cidr],
    ["network.lbAddresses", running.network.lbAddresses.join(", "), next.network.lbAddresses.join(", ")],
    ["vrrp.routerId", running.vrrp.routerId, next.vrrp.routerId],
    ["syncNetwork", syncText(running), syncText(next)],
  ];
  return fields.filter(([, a, b]) => a !== b).map(([path, a]) => ({ path, rule: `${RULE}; it runs ${String(a)}` }));
}

/** The link VRRP and the sync run on: moving them, or adding or removing it, splits the pair like a router ID change. */
function syncText(s: ResolvedSpec): string {
  return s.syncNetwork
    ? `${s.syncNetwork.cidr} (${s.syncNetwork.lbAddresses.join(", ")})`
    : "none (the cluster network)";
}
