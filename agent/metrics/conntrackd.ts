/**
 * `conntrackd -s` as numbers: the caches' sizes and the sync link's counters. conntrackd prints a fixed text layout
 * (conntrack-tools 1.4: "cache internal:", "UDP traffic (active device=eth1):" or "Multicast traffic ...",
 * "message tracking:"); a layout without them is refused rather than read as zeros.
 */
import type { CommandRunner } from "../apply";
import { CONNTRACKD_CONFIG_PATH } from "../../render/conntrackd";

export interface ConntrackdStats {
  internalEntries: number;
  externalEntries: number;
  messagesSent: number;
  messagesReceived: number;
  sendErrors: number;
  receiveErrors: number;
  malformed: number;
  lost: number;
}

/** The section that starts with a line matching `head`, up to the next blank line. */
function section(text: string, head: RegExp): string | undefined {
  const lines = text.split("\n");
  const start = lines.findIndex((l) => head.test(l));
  if (start < 0) return undefined;
  const end = lines.findIndex((l, i) => i > start && l.trim() === "");
  return lines.slice(start + 1, end < 0 ? undefined : end).join("\n");
}

function number(text: string | undefined, pattern: RegExp): number | undefined {
  const m = text === undefined ? null : pattern.exec(text);
  return m ? Number(m[1]) : undefined;
}

export function parseConntrackdStats(text: string): ConntrackdStats | undefined {
  const internal = section(text, /^cache internal:/);
  const external = section(text, /^cache external:/);
  const link = section(text, /^(UDP|TCP|Multicast) traffic/);
  const tracking = section(text, /^message tracking:/);
  const active = /current active connections:\s+(\d+)/;
  const values = {
    internalEntries: number(internal, active),
    externalEntries: number(external, active),
    messagesSent: number(link, /(\d+) Pckts sent/),
    messagesReceived: number(link, /(\d+) Pckts recv/),
    sendErrors: number(link, /(\d+) Error send/),
    receiveErrors: number(link, /(\d+) Error recv/),
    malformed: number(tracking, /(\d+) Malformed msgs/),
    lost: number(tracking, /(\d+) Lost msgs/),
  };
  if (Object.values(values).some((v) => v === undefined)) return undefined;
  return values as ConntrackdStats;
}

/** Asks the running conntrackd (through its control socket, named by its config). */
export async function readConntrackdStats(runner: CommandRunner): Promise<ConntrackdStats | undefined> {
  const r = await runner(["conntrackd", "-C", CONNTRACKD_CONFIG_PATH, "-s"], { timeoutMs: 5000 });
  return r.exitCode === 0 ? parseConntrackdStats(r.output) : undefined;
}
