/**
 * The failover picture (pure: returns SVG text). Requests of DESIGN.md's client, binned by their start time
 * relative to the fault, stacked: succeeded at once, succeeded late (over 1 s: the first SYN was lost and the
 * kernel's retransmission got through), failed (error or timeout). The fault and the moves of keepalived's VIP
 * and of the public next hop are marked. Every picture of one bench run uses the same axes, so two
 * configurations compare at a glance.
 */
import type { RequestRecord } from "../lab/analysis";

export interface TimelineBin {
  /** bin start, ms relative to the fault */
  fromMs: number;
  ok: number;
  late: number;
  failed: number;
}

export const LATE_MS = 1000;

export function binRequests(
  records: readonly RequestRecord[],
  faultMs: number,
  fromMs: number,
  toMs: number,
  binMs: number,
): TimelineBin[] {
  const n = Math.max(1, Math.ceil((toMs - fromMs) / binMs));
  const bins: TimelineBin[] = Array.from({ length: n }, (_, i) => ({
    fromMs: fromMs + i * binMs,
    ok: 0,
    late: 0,
    failed: 0,
  }));
  for (const r of records) {
    const i = Math.floor((r.start - faultMs - fromMs) / binMs);
    const b = bins[i];
    if (!b) continue;
    if (!r.ok) b.failed++;
    else if (r.end - r.start > LATE_MS) b.late++;
    else b.ok++;
  }
  return bins;
}

export interface TimelinePicture {
  title: string;
  subtitle: string;
  bins: TimelineBin[];
  binMs: number;
  /** x axis, ms relative to the fault */
  fromMs: number;
  toMs: number;
  /** y axis top (requests per bin) */
  yMax: number;
  marks: { atMs: number; label: string; color: string }[];
  /** summary lines under the chart */
  notes: string[];
  /** another kind of picture on the same axes: its own labels (the bins' ok/late/failed become its three series) */
  labels?: { x: string; y: string; legend: [ok: string, late: string, failed: string]; stoppedShade: boolean };
}

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

export function timelineSvg(p: TimelinePicture): string {
  const W = 960;
  const left = 60;
  const right = 20;
  const top = 84;
  const plotH = 260;
  const bottom = top + plotH;
  const H = bottom + 60 + 18 * p.notes.length;
  const plotW = W - left - right;
  const x = (ms: number) => left + ((ms - p.fromMs) / (p.toMs - p.fromMs)) * plotW;
  const y = (n: number) => bottom - (n / p.yMax) * plotH;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
  );
  out.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`);
  out.push(`<text x="${left}" y="24" font-size="16" font-weight="bold">${esc(p.title)}</text>`);
  out.push(`<text x="${left}" y="44" fill="#444">${esc(p.subtitle)}</text>`);
  // grid and axes
  const yStep = p.yMax <= 12 ? 2 : Math.ceil(p.yMax / 6);
  for (let v = 0; v <= p.yMax; v += yStep) {
    out.push(`<line x1="${left}" y1="${y(v)}" x2="${W - right}" y2="${y(v)}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${left - 6}" y="${y(v) + 4}" text-anchor="end" fill="#444">${v}</text>`);
  }
  const span = p.toMs - p.fromMs;
  const xStep = span <= 6000 ? 500 : span <= 12_000 ? 1000 : 2000;
  for (let t = Math.ceil(p.fromMs / xStep) * xStep; t <= p.toMs; t += xStep) {
    out.push(`<line x1="${x(t)}" y1="${bottom}" x2="${x(t)}" y2="${bottom + 4}" stroke="#444"/>`);
    out.push(
      `<text x="${x(t)}" y="${bottom + 18}" text-anchor="middle" fill="#444">${(t / 1000).toFixed(xStep < 1000 ? 1 : 0)}</text>`,
    );
  }
  out.push(
    `<text x="${left + plotW / 2}" y="${bottom + 36}" text-anchor="middle" fill="#444">${esc(p.labels?.x ?? "request start, seconds after the fault")} (bins of ${p.binMs} ms)</text>`,
  );
  out.push(
    `<text x="16" y="${top + plotH / 2}" transform="rotate(-90 16 ${top + plotH / 2})" text-anchor="middle" fill="#444">${esc(p.labels?.y ?? "requests per bin")}</text>`,
  );
  // bars: ok (bottom), late, failed (top)
  const bw = Math.max(1, (p.binMs / span) * plotW - 1);
  for (const b of p.bins) {
    let base = 0;
    for (const [n, color] of [
      [b.ok, "#2e9e4f"],
      [b.late, "#f0a020"],
      [b.failed, "#d62f2f"],
    ] as const) {
      if (n === 0) continue;
      const n1 = Math.min(p.yMax, base + n);
      out.push(
        `<rect x="${x(b.fromMs).toFixed(1)}" y="${y(n1).toFixed(1)}" width="${bw.toFixed(1)}" height="${(y(base) - y(n1)).toFixed(1)}" fill="${color}"/>`,
      );
      base = n1;
    }
  }
  out.push(`<line x1="${left}" y1="${bottom}" x2="${W - right}" y2="${bottom}" stroke="#222"/>`);
  out.push(`<line x1="${left}" y1="${top}" x2="${left}" y2="${bottom}" stroke="#222"/>`);
  // after the last request: the client had stopped (the scenario ended), not an outage
  const lastWithData = [...p.bins].reverse().find((b) => b.ok + b.late + b.failed > 0);
  if ((p.labels?.stoppedShade ?? true) && lastWithData && lastWithData.fromMs + p.binMs < p.toMs) {
    const x0 = x(lastWithData.fromMs + p.binMs);
    out.push(
      `<rect x="${x0.toFixed(1)}" y="${top}" width="${(W - right - x0).toFixed(1)}" height="${plotH}" fill="#f2f2f2"/>`,
    );
    if (W - right - x0 > 200) {
      out.push(
        `<text x="${((x0 + W - right) / 2).toFixed(1)}" y="${top + plotH / 2}" text-anchor="middle" fill="#888">client stopped: scenario over</text>`,
      );
    }
  }
  // marks, labels with a white halo so crossing lines do not hide them
  p.marks.forEach((m, i) => {
    if (m.atMs < p.fromMs || m.atMs > p.toMs) return;
    out.push(
      `<line x1="${x(m.atMs)}" y1="${top - 4}" x2="${x(m.atMs)}" y2="${bottom}" stroke="${m.color}" stroke-width="2" stroke-dasharray="${i === 0 ? "none" : "6 3"}"/>`,
    );
    out.push(
      `<text x="${x(m.atMs) + 4}" y="${top + 12 + 14 * i}" fill="${m.color}" stroke="#ffffff" stroke-width="3" paint-order="stroke">${esc(m.label)}</text>`,
    );
  });
  // legend
  const labels = p.labels?.legend ?? [
    "succeeded",
    `succeeded after > ${LATE_MS / 1000} s (SYN retransmitted)`,
    "failed (error or 3 s timeout)",
  ];
  const legend = [
    ["#2e9e4f", labels[0]],
    ["#f0a020", labels[1]],
    ["#d62f2f", labels[2]],
  ] as const;
  let lx = left;
  for (const [color, label] of legend) {
    if (label === "") continue;
    out.push(`<rect x="${lx}" y="54" width="10" height="10" fill="${color}"/>`);
    out.push(`<text x="${lx + 14}" y="63" fill="#222">${esc(label)}</text>`);
    lx += 24 + label.length * 6.5;
  }
  p.notes.forEach((n, i) => out.push(`<text x="${left}" y="${bottom + 56 + 18 * i}" fill="#222">${esc(n)}</text>`));
  out.push("</svg>");
  return `${out.join("\n")}\n`;
}
