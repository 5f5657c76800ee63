/**
 * A deployed pair at a glance, from its LoadBalancer's status (what `edgepair status` prints): each LB's role, VRRP
 * state, image, renderer version, heartbeat age, conditions and pools, the pair's Redundant condition, the last
 * error. Pure: the object and the clock in, a view and its text out. The status carries no secret (custom-resource.ts).
 */
import { z } from "zod";

const condition = z.object({
  type: z.string(),
  status: z.string(),
  reason: z.string().optional(),
  message: z.string().optional(),
});
const pool = z.object({
  serverCount: z.number(),
  servers: z.array(z.object({ name: z.string(), address: z.string() })),
});
const entry = z.object({
  name: z.string(),
  role: z.string(),
  vrrpState: z.string().optional(),
  rendererVersion: z.string().optional(),
  bootedImage: z.string().optional(),
  lastError: z.string().optional(),
  heartbeat: z.string(),
  conditions: z.array(condition).optional(),
  backends: z.object({ api: pool, ingress: pool.optional() }).optional(),
});
const wire = z.object({
  metadata: z.object({ name: z.string(), namespace: z.string() }),
  status: z.object({ loadBalancers: z.array(entry).optional(), conditions: z.array(condition).optional() }).optional(),
});

export interface PairStatusView {
  name: string;
  namespace: string;
  redundant: { status: string; reason: string; message: string };
  lbs: {
    name: string;
    role: string;
    vrrpState: string;
    image: string;
    rendererVersion: string;
    heartbeatAgeS: number | null;
    conditions: Record<string, string>;
    pools: Record<string, { servers: number; addresses: string[] }>;
    lastError?: string;
  }[];
}

export function pairStatusView(obj: unknown, nowMs: number): PairStatusView {
  const r = wire.safeParse(obj);
  if (!r.success) throw new Error("not a LoadBalancer object (metadata.name/namespace missing)");
  const s = r.data.status ?? {};
  const red = (s.conditions ?? []).find((c) => c.type === "Redundant");
  return {
    name: r.data.metadata.name,
    namespace: r.data.metadata.namespace,
    redundant: {
      status: red?.status ?? "Unknown",
      reason: red?.reason ?? "NoStatus",
      message: red?.message ?? "no LB has reported the pair's redundancy",
    },
    lbs: (s.loadBalancers ?? [])
      .map((e) => {
        const beat = Date.parse(e.heartbeat);
        return {
          name: e.name,
          role: e.role,
          vrrpState: e.vrrpState ?? "-",
          image: e.bootedImage ?? "-",
          rendererVersion: e.rendererVersion ?? "-",
          heartbeatAgeS: Number.isNaN(beat) ? null : Math.max(0, Math.round((nowMs - beat) / 1000)),
          conditions: Object.fromEntries(
            (e.conditions ?? []).map((c) => [c.type, c.reason ? `${c.status} (${c.reason})` : c.status]),
          ),
          pools: Object.fromEntries(
            Object.entries(e.backends ?? {}).flatMap(([k, p]) =>
              p ? [[k, { servers: p.serverCount, addresses: p.servers.map((x) => x.address) }]] : [],
            ),
          ),
          ...(e.lastError ? { lastError: e.lastError } : {}),
        };
      })
      .sort((a, b) => (a.role < b.role ? -1 : a.role > b.role ? 1 : a.name < b.name ? -1 : 1)),
  };
}

/** Readable text: one block per LB, the pair's verdict first. */
export function formatPairStatus(v: PairStatusView): string {
  const lines = [
    `LoadBalancer ${v.namespace}/${v.name}: Redundant ${v.redundant.status} (${v.redundant.reason}): ${v.redundant.message}`,
  ];
  const headers = ["LB", "role", "VRRP", "heartbeat", "renderer", "Ready", "Degraded", "pools", "image"];
  const rows = v.lbs.map((l) => [
    l.name,
    l.role,
    l.vrrpState,
    l.heartbeatAgeS === null ? "-" : `${l.heartbeatAgeS} s ago`,
    l.rendererVersion,
    l.conditions.Ready ?? "-",
    l.conditions.Degraded ?? "-",
    Object.entries(l.pools)
      .map(([k, p]) => `${k} ${p.servers}`)
      .join(", ") || "-",
    l.image.replace(/^(.*@sha256:)([0-9a-f]{12})[0-9a-f]*$/, "$1$2…"),
  ]);
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  lines.push("", line(headers), line(widths.map((w) => "-".repeat(w))), ...rows.map(line));
  if (v.lbs.length === 0) lines.push("(no LB has reported yet)");
  for (const l of v.lbs) if (l.lastError) lines.push(`${l.name}: last error: ${l.lastError}`);
  for (const l of v.lbs)
    for (const [k, p] of Object.entries(l.pools))
      lines.push(`${l.name} ${k}: ${p.addresses.join(", ") || "no server"}`);
  return `${lines.join("\n")}\n`;
}
