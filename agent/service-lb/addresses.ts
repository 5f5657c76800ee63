/**
 * Service addresses on the cluster network (private pools) sit on the private NIC of both LBs as /32s, so the
 * kernel answers ARP for them wherever the ARP guard lets it (render/service-lb.ts: only the MASTER) and accepts their
 * packets on either LB (a planned failover's stragglers). Both LBs hold the same set at all times, so a failover
 * changes no address: only the guard's holder set and a burst of gratuitous ARP.
 *
 * The sync touches only /32s inside the spec's private pools: an address the operator or keepalived put there is
 * never removed.
 */
import { canonical, parseIp } from "../../spec/address";
import { poolHolds } from "../../spec/pools";
import type { ResolvedSpec } from "../../spec/types";
import type { CommandRunner } from "../apply";

/**
 * `ip -4 -br addr show dev X` ("eth1 UP 192.168.100.2/24 192.168.100.200/32 ..."): the /32s on it. The brief form,
 * because the runner keeps 64 KiB of output and the JSON form of 500 addresses is larger.
 */
export function hostAddressesOf(brief: string): string[] {
  return brief.split(/\s+/).flatMap((w) => {
    const m = /^(\d+\.\d+\.\d+\.\d+)\/32$/.exec(w);
    return m ? [m[1]!] : [];
  });
}

/** What to add and remove so the NIC holds exactly `desired` among the /32s inside the private pools. */
export function addressPlan(
  spec: ResolvedSpec,
  present: readonly string[],
  desired: readonly string[],
): { add: string[]; remove: string[] } {
  const pools = (spec.serviceLoadBalancers?.pools ?? []).filter((p) => p.type === "private");
  const ours = (a: string) => pools.some((p) => poolHolds(p, a));
  const want = new Set(desired.map((a) => canonical(parseIp(a)!)));
  const have = new Set(present.filter(ours).map((a) => canonical(parseIp(a)!)));
  return { add: [...want].filter((a) => !have.has(a)), remove: [...have].filter((a) => !want.has(a)) };
}

export async function syncServiceAddresses(
  runner: CommandRunner,
  spec: ResolvedSpec,
  dev: string,
  desired: readonly string[],
): Promise<{ add: string[]; remove: string[]; error?: string }> {
  const shown = await runner(["ip", "-4", "-br", "addr", "show", "dev", dev], { timeoutMs: 10_000 });
  if (shown.exitCode !== 0) return { add: [], remove: [], error: `ip addr show dev ${dev}: ${shown.output.trim()}` };
  const plan = addressPlan(spec, hostAddressesOf(shown.output), desired);
  const batch = [
    ...plan.remove.map((a) => `addr del ${a}/32 dev ${dev}`),
    // noprefixroute: the cluster network's route is the NIC's own; a /32 needs none
    ...plan.add.map((a) => `addr add ${a}/32 dev ${dev} noprefixroute`),
  ];
  if (batch.length === 0) return plan;
  const r = await runner(["ip", "-batch", "-"], { timeoutMs: 30_000, input: `${batch.join("\n")}\n` });
  return r.exitCode === 0 ? plan : { ...plan, error: `ip -batch: ${r.output.trim().slice(-300)}` };
}
