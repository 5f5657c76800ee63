/**
 * Pure: this pair's Services with the address their status records -> the frontends the kernel forwards
 * (render/service-lb.ts). Both LBs render from the statuses the writer recorded, never from a private allocation,
 * so they forward the same frontends.
 *
 * - One frontend per port of the Service, on its address; backends are the Nodes' NodePorts (BackendSets.serviceNodes).
 * - externalTrafficPolicy Local: every Node stays in the slot map, and the health check asks the Service's
 *   healthCheckNodePort, which answers 200 only where the Service has a local endpoint; the others are pointed away.
 * - loadBalancerSourceRanges: IPv4 entries only (the address is IPv4); none means from anywhere. Ranges that are all
 *   IPv6 or malformed never mean "anyone": allocate() refuses such a Service.
 * - A Service whose recorded address is not (any more) one allocate() gives it is not served: a stale or foreign
 *   status never opens a port.
 */
import type { Backend } from "../../spec/types";
import type { BackendCheck, KernelService } from "../../render/service-lb";
import type { Assignment } from "./allocate";
import { ipv4SourceRanges, type ServiceView } from "./view";

/** The nft chain of one port of a Service: namespaces and names hold no `/` (render/service-lb.ts). */
export function serviceChain(s: Pick<ServiceView, "namespace" | "name">, port: { protocol: string; port: number }) {
  return `svc/${s.namespace}/${s.name}/${port.protocol.toLowerCase()}/${port.port}`;
}

/** kube-proxy's health-check server answers on this path of healthCheckNodePort. */
export const HEALTH_CHECK_PATH = "/healthz";

export function serviceFrontends(
  services: readonly ServiceView[],
  assignments: ReadonlyMap<string, Assignment>,
  nodes: readonly Backend[],
): KernelService[] {
  const out: KernelService[] = [];
  const sorted = [...services].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  for (const s of sorted) {
    const a = assignments.get(s.key);
    const recorded = s.ingressIps[0];
    if (s.deleting || !a || !("address" in a) || recorded !== a.address) continue;
    const sourceRanges = ipv4SourceRanges(s);
    for (const p of s.ports) {
      if (p.nodePort === undefined || (p.protocol !== "TCP" && p.protocol !== "UDP")) continue;
      const check: BackendCheck =
        s.externalTrafficPolicy === "Local" && s.healthCheckNodePort !== undefined
          ? { kind: "http", port: s.healthCheckNodePort, path: HEALTH_CHECK_PATH }
          : p.protocol === "TCP"
            ? { kind: "tcp" }
            : { kind: "none" };
      out.push({
        chain: serviceChain(s, p),
        name: `${s.key}:${p.port}/${p.protocol}`,
        protocol: p.protocol,
        address: a.address,
        port: p.port,
        sourceRanges,
        backends: nodes.map((n) => ({ address: n.address, port: p.nodePort! })),
        check,
      });
    }
  }
  return out;
}
