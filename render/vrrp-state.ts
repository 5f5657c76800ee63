/**
 * The VRRP state in its two spellings, and the one conversion between them:
 * - keepalived's (KeepalivedState): what its notify script passes and the agent's FIFO carries, MASTER BACKUP FAULT
 *   STOP; the agent's own view is INIT before the first of them (AgentVrrpState);
 * - the status' (StatusVrrpState): the LoadBalancer's loadBalancers[].vrrpState, in Kubernetes' CamelCase, Init for
 *   an LB whose agent has not seen a state yet.
 */
export const KEEPALIVED_STATES = ["MASTER", "BACKUP", "FAULT", "STOP"] as const;
export type KeepalivedState = (typeof KEEPALIVED_STATES)[number];
export type AgentVrrpState = KeepalivedState | "INIT";

export const STATUS_VRRP_STATES = ["Init", "Backup", "Master", "Fault", "Stop"] as const;
export type StatusVrrpState = (typeof STATUS_VRRP_STATES)[number];

const TO_STATUS: Readonly<Record<AgentVrrpState, StatusVrrpState>> = {
  INIT: "Init",
  MASTER: "Master",
  BACKUP: "Backup",
  FAULT: "Fault",
  STOP: "Stop",
};

export function statusVrrpState(s: AgentVrrpState): StatusVrrpState {
  return TO_STATUS[s];
}

export function isKeepalivedState(s: string): s is KeepalivedState {
  return (KEEPALIVED_STATES as readonly string[]).includes(s);
}
