/** Defaults that work for a lab and for production; every one can be overridden in the spec. */
import type { Distribution } from "./types";

export const DEFAULTS = {
  apiPort: 6443,
  // The largest interval that meets a prompt failover of <= 0.2 s median (load bench, vrrp scenario: 0.1 s gave
  // ~0.35 s, 0.05 s ~0.2 s, 0.03 s ~0.14 s; none a spurious transition with both LBs' CPUs saturated for 10
  // minutes). The largest, because a longer master-down timer leaves the most room for a stalled vCPU.
  vrrpAdvertIntervalSeconds: 0.05,
  vrrpPriority: { primary: 150, secondary: 100 },
  conntrackPort: 3780,
  healthCheck: { intervalSeconds: 2, rise: 2, fall: 3 },
  metricsPort: 8404,
  /** n-th host of the public network used as the routed floating IPs' next hop (libvirt) */
  publicNextHopHost: 4,
  loadBalancerClass: "edgepair.io/pair",
} as const;

/** Where ingress traffic goes on the nodes and how its health is checked, per distribution. */
export const INGRESS_DEFAULTS: Record<
  Distribution,
  { httpPort: number; httpsPort: number; healthPort: number; healthPath: string }
> = {
  // The OpenShift router answers /healthz/ready in plain HTTP on 1936.
  openshift: { httpPort: 80, httpsPort: 443, healthPort: 1936, healthPath: "/healthz/ready" },
  // Talos has no host-network ingress by default: an ingress controller exposed on NodePorts.
  talos: { httpPort: 30080, httpsPort: 30443, healthPort: 30080, healthPath: "" },
  generic: { httpPort: 80, httpsPort: 443, healthPort: 80, healthPath: "" },
};
