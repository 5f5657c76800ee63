import type { BackendSets, HostFacts, ResolvedSpec } from "../spec/types";
import type { KernelService } from "./service-lb";

/** One per entry of render/services.ts, where everything about each lives. */
export type ServiceName =
  | "haproxy"
  | "keepalived"
  | "conntrackd"
  | "networkmanager"
  | "sysctl"
  | "firewalld"
  | "nftables"
  | "serviceLb"
  | "agent"
  | "none";

/**
 * What the agent runs after writing a changed file. Commands of one service are run once per apply,
 * deduplicated, in the order the files were rendered.
 */
export interface ReloadAction {
  service: ServiceName;
  commands: readonly (readonly string[])[];
}

export interface RenderedFile {
  /** Absolute path on the VM, e.g. /etc/haproxy/haproxy.cfg */
  path: string;
  mode: number;
  owner: string; // user:group
  content: string;
  reload: ReloadAction;
}

export interface RenderInput {
  spec: ResolvedSpec;
  host: HostFacts;
  backends: BackendSets;
  /** The cluster's Services of type LoadBalancer with their addresses (agent/service-lb); absent before any. */
  services?: readonly KernelService[];
}

/** Every renderer has this shape: pure, deterministic, no I/O. */
export type Renderer = (input: RenderInput) => RenderedFile[];
