/**
 * "Does the peer advertise?" — asked after an image switch reboot, while this LB's keepalived is still held down
 * (issue 8 item 5: an LB starts only when it sees the peer's VRRP adverts). keepalived cannot answer it (it does
 * not run), and Node.js cannot open a raw socket for protocol 112 without a native module, so the kernel counts:
 * a throwaway nftables table with one counter on the input hook, read after a window of a few advert intervals.
 *
 * The table hooks at raw priority, before firewalld's filter, so adverts the firewall would drop still count (they
 * prove the peer lives; whether they pass is the rendered firewall's business, checked elsewhere). It is created
 * and deleted around every probe; one left behind by a killed agent is replaced by the next probe.
 */
import { isIPv4 } from "node:net";
import type { CommandRunner } from "../apply/reload";

export const ADVERT_PROBE_TABLE = "edgepair_vrrp_probe";
const NFT_TIMEOUT_MS = 10_000;

export interface AdvertProbeOptions {
  runner: CommandRunner;
  /** The peer's private address (the source of its unicast adverts). */
  peer: string;
  /** How long to count: a few advert intervals (keepalived sends one per interval while it is MASTER or BACKUP). */
  windowMs: number;
  /** How many adverts make "seen" (one could be a last one from a peer that is stopping). Default 2. */
  minAdverts?: number;
}

export interface AdvertProbeResult {
  seen: boolean;
  adverts: number;
}

function ruleset(peer: string): string {
  // `add` then `delete` makes the batch succeed whether or not a previous probe left the table behind
  return [
    `add table ip ${ADVERT_PROBE_TABLE}`,
    `delete table ip ${ADVERT_PROBE_TABLE}`,
    `table ip ${ADVERT_PROBE_TABLE} {`,
    `  chain input {`,
    `    type filter hook input priority raw; policy accept;`,
    `    ip saddr ${peer} ip protocol vrrp counter`,
    `  }`,
    `}`,
    "",
  ].join("\n");
}

/** The packet count of the probe table's one counter, from `nft -j list table`. */
export function countedAdverts(json: string): number {
  const doc = JSON.parse(json) as { nftables?: Array<{ rule?: { expr?: Array<{ counter?: { packets?: number } }> } }> };
  for (const item of doc.nftables ?? []) {
    for (const e of item.rule?.expr ?? []) if (typeof e.counter?.packets === "number") return e.counter.packets;
  }
  throw new Error(`nft: table ip ${ADVERT_PROBE_TABLE} has no counter`);
}

export async function probePeerAdverts(o: AdvertProbeOptions): Promise<AdvertProbeResult> {
  if (!isIPv4(o.peer)) throw new Error(`advert probe: peer must be an IPv4 address, got "${o.peer}"`);
  const nft = async (argv: string[], input?: string): Promise<string> => {
    const r = await o.runner(["nft", ...argv], {
      timeoutMs: NFT_TIMEOUT_MS,
      ...(input !== undefined ? { input } : {}),
    });
    if (r.exitCode !== 0)
      throw new Error(
        `nft ${argv.join(" ")}: exit ${r.exitCode ?? (r.timedOut ? "timeout" : "none")}: ${r.output.trim().slice(-300)}`,
      );
    return r.output;
  };
  await nft(["-f", "-"], ruleset(o.peer));
  try {
    await new Promise((r) => setTimeout(r, o.windowMs));
    const adverts = countedAdverts(await nft(["-j", "list", "table", "ip", ADVERT_PROBE_TABLE]));
    return { seen: adverts >= (o.minAdverts ?? 2), adverts };
  } finally {
    await nft(["delete", "table", "ip", ADVERT_PROBE_TABLE]).catch(() => undefined);
  }
}
