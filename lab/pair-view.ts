/**
 * The lab pair as `edgepair status` shows a deployed one: the lab has no LoadBalancer object (no agent reports), so
 * its facts (VRRP state, daemons, HAProxy's view of the backends, links) are put in the shape of the LoadBalancer's
 * status, with the agent's own condition and Redundant rules, and printed by the same printer (k8s/pair-status.ts).
 */
import { lbConditionInputs, redundantInput } from "../agent/kube/status";
import { selectBackends } from "../agent/kube/backends";
import { pairStatusView, type PairStatusView } from "../k8s/pair-status";
import { RENDERER_VERSION } from "../render";
import { isKeepalivedState, statusVrrpState } from "../render/vrrp-state";
import type { Lab, LbStatus } from "./lab";

/** `heartbeat` stands for "its facts were read just now"; a cut LB is one whose heartbeat no peer would see. */
export function labPairView(lab: Lab, rows: readonly LbStatus[], now = new Date()): PairStatusView {
  const pools = selectBackends(lab.state.spec, lab.plan.nodes ?? []).pools;
  const entries = rows.map((r) => {
    const facts = lab.state.hostFacts[r.key]!;
    const vrrpState = isKeepalivedState(r.vrrp) ? statusVrrpState(r.vrrp) : undefined;
    const byBackend = new Map<string, boolean>();
    for (const b of r.backends) byBackend.set(b.backend, (byBackend.get(b.backend) ?? false) || b.status === "UP");
    const servicesUp =
      (r.daemons.haproxy ?? false) && (r.daemons.keepalived ?? false) && [...byBackend.values()].every(Boolean);
    const conditions = lbConditionInputs({
      ...(vrrpState ? { vrrpState } : {}),
      servicesUp,
      ...(servicesUp ? {} : { lastError: downReason(r) }),
    });
    return {
      name: facts.hostname,
      role: facts.role,
      ready: conditions[0]?.status === "True",
      reachable: r.links === "up",
      status: {
        name: facts.hostname,
        role: facts.role,
        ...(vrrpState ? { vrrpState } : {}),
        rendererVersion: RENDERER_VERSION,
        bootedImage: "(lab: this machine's daemons)",
        heartbeat: now.toISOString(),
        conditions,
        backends: Object.fromEntries(
          Object.entries({ api: pools.api, ingress: pools.ingress }).flatMap(([k, p]) =>
            p ? [[k, { serverCount: p.servers.length, servers: p.servers }]] : [],
          ),
        ),
      },
    };
  });
  const master = entries.find((e) => e.status.vrrpState === "Master");
  const redundant = master
    ? redundantInput(
        { name: master.name, ready: master.ready && master.reachable },
        entries
          .filter((e) => e !== master)
          .map((e) => ({ name: e.name, ready: e.ready, heartbeatAgeMs: e.reachable ? 0 : Infinity })),
        0,
      )
    : { type: "Redundant", status: "False", reason: "NoMaster", message: "no LB holds the VIPs" };
  return pairStatusView(
    {
      metadata: { name: lab.state.spec.clusterName, namespace: `lab ${lab.prefix}` },
      status: { conditions: [redundant], loadBalancers: entries.map((e) => e.status) },
    },
    now.getTime(),
  );
}

function downReason(r: LbStatus): string {
  const down = Object.entries(r.daemons)
    .filter(([, up]) => !up)
    .map(([d]) => d);
  if (down.length > 0) return `not running: ${down.join(", ")}`;
  const empty = [...new Set(r.backends.map((b) => b.backend))].filter(
    (be) => !r.backends.some((b) => b.backend === be && b.status === "UP"),
  );
  return `no server UP in ${empty.join(", ")}`;
}
