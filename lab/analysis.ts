/**
 * Pure helpers over what the lab records: the client's request log (DESIGN.md's outage window) and plain-text
 * tables. No I/O besides reading a log file.
 */
import { existsSync, readFileSync } from "node:fs";

/** One finished request of lab/helper.ts `client` (times in epoch ms). */
export interface RequestRecord {
  i: number;
  start: number;
  end: number;
  ok: boolean;
  status?: number;
  server?: string;
  /** the address the backend saw: the private address of the LB whose HAProxy forwarded the request */
  peer?: string;
  err?: string;
}

export function readRequests(path: string): RequestRecord[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "")
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as RequestRecord];
      } catch {
        return []; // a line cut short by a kill
      }
    })
    .sort((a, b) => a.start - b.start);
}

export interface OutageSummary {
  total: number;
  failed: number;
  /** requests started from the fault on */
  afterFault: number;
  /**
   * DESIGN.md: from the fault to the start of the first request started after it that succeeds through the peer
   * (the LB named by `via`, when given). Undefined when none did.
   */
  outageMs?: number;
  maxLatencyMs: number;
  /**
   * Successful requests that took over 1 s: a SYN lost in the outage is retransmitted after the kernel's initial
   * RTO (1 s) and then succeeds, so such a request counts as recovered by DESIGN.md's definition although its
   * client waited.
   */
  slow: number;
  /** first and last start time of the failed requests, relative to the fault */
  failedFromMs?: number;
  failedToMs?: number;
  errors: Record<string, number>;
}

export function summarize(records: readonly RequestRecord[], faultMs: number, via?: string): OutageSummary {
  const failed = records.filter((r) => !r.ok);
  const after = records.filter((r) => r.start >= faultMs);
  const recovered = after.find((r) => r.ok && (via === undefined || r.peer === via));
  const errors: Record<string, number> = {};
  for (const r of failed) {
    const k = r.err ?? `HTTP ${r.status ?? "?"}`;
    errors[k] = (errors[k] ?? 0) + 1;
  }
  const starts = failed.map((r) => r.start - faultMs);
  return {
    total: records.length,
    failed: failed.length,
    afterFault: after.length,
    ...(recovered ? { outageMs: recovered.start - faultMs } : {}),
    maxLatencyMs: records.reduce((m, r) => Math.max(m, r.end - r.start), 0),
    slow: records.filter((r) => r.ok && r.end - r.start > 1000).length,
    ...(starts.length > 0 ? { failedFromMs: Math.min(...starts), failedToMs: Math.max(...starts) } : {}),
    errors,
  };
}

/** A plain table: a header row, a rule, then the rows, each column as wide as its widest cell. */
export function formatTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  return [line(headers), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n") + "\n";
}

export function ms(n: number | undefined): string {
  return n === undefined ? "-" : `${Math.round(n)} ms`;
}
