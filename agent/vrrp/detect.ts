/**
 * The VRRP state at agent start, before any transition arrived on the FIFO: keepalived holds its first VIP on the
 * private NIC exactly while MASTER (the notify script asks the same question). Re-asserting an assumed state
 * instead would strip the next hop off a running MASTER.
 */
import type { KeepalivedState } from "../../render/vrrp-state";
import type { HostFacts, ResolvedSpec } from "../../spec/types";
import type { CommandRunner } from "../apply/reload";

export async function detectVrrpState(
  spec: ResolvedSpec,
  host: HostFacts,
  runner: CommandRunner,
): Promise<KeepalivedState | undefined> {
  const vip = spec.derived.privateVips[0];
  if (!vip) return undefined;
  const r = await runner(
    [
      "ip",
      "-o",
      `-${vip.family}`,
      "addr",
      "show",
      "dev",
      host.privateInterface.name,
      "to",
      `${vip.address}/${vip.family === 4 ? 32 : 128}`,
    ],
    { timeoutMs: 5000 },
  );
  if (r.exitCode !== 0) return undefined;
  return r.output.trim() === "" ? "BACKUP" : "MASTER";
}
