/** Defaults that work for a lab and for production; every one can be overridden in the spec. */
import type { Distribution } from "./types";

export const DEFAULTS = {
  apiPort: 6443,
  // The largest interval that meets a prompt failover of <= 0.2 s median with room (load bench, vrrp scenario, both
  // LBs' CPUs saturated for 10 minutes per window, 5 unclean failovers each: no spurious transition at any interval;
  // prompt median 0.1 s: 333-357 ms, 0.05 s: 195-207 ms (at the limit), 0.04 s: 160 ms, 0.03 s: 137-141 ms). The
  // largest, because the longer master-down timer (3.6 adverts: 144 ms) leaves the most room for a stalled vCPU.
  vrrpAdvertIntervalSeconds: 0.04,
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
