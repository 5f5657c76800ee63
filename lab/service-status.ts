/**
 * `edgepair lab status`: the Service frontends an LB's kernel forwards, read from its live table
 * (`nft -j list table ip edgepair_services`, render/service-lb.ts), with each NodePort backend and whether the
 * agent's health checks have pointed it away.
 *
 * The live table alone cannot name a failed backend: health (agent/service-lb/health.ts) rewrites a frontend's slot
 * map so that a failed backend's slots point at healthy ones, and then the failed backend's address is in no slot.
 * Slot i belongs to the i-th backend of the rendered table (the file the agent last applied, before any health
 * overlay), so a backend is down where the live map points one of its slots elsewhere. Without the rendered file (or
 * when it no longer matches the live table: an apply in between), the live targets are listed and the slots that
 * point at another backend than their own are only counted. When every backend of a frontend fails, the agent keeps
 * them all in their slots (as HAProxy does), so the table shows all of them as up: ask the agent's log then.
 *
 * Pure: parsing and formatting only; lab.ts runs nft inside each LB's network namespace and reads the file.
 */
import { compareAddresses } from "../spec/address";
import { slotMap } from "../render/service-lb";
import { formatTable } from "./analysis";

export interface ServiceBackendStatus {
  address: string;
  port: number;
  /** false: health pointed its slots at other backends */
  up: boolean;
}

/** One frontend the kernel forwards: address, protocol and port, from where, to which NodePorts. */
export interface ServiceFrontendStatus {
  /** nft chain: `extra/<name>` or `svc/<namespace>/<name>/<protocol>/<port>` */
  chain: string;
  protocol: "TCP" | "UDP";
  address: string;
  port: number;
  /** the frontend's source ranges; empty: from anywhere */
  sourceRanges: string[];
  backends: ServiceBackendStatus[];
  /** slots that point at another backend than their own when the rendered table was not there to name it */
  slotsPointedAway: number;
}

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

interface Slot {
  address: string;
  port: number;
}
const slotKey = (s: Slot) => `${s.address}:${s.port}`;

/** Slot maps of the rendered file: `map <name> { ... elements = { 0 : a . p, 1 : ... } }` as renderServiceLb writes them. */
export function renderedSlots(nftText: string): Map<string, Slot[]> {
  const out = new Map<string, Slot[]>();
  const re = /^\s*map (\S+) \{[^}]*?elements = \{ ([^}]*) \}/gm;
  for (const m of nftText.matchAll(re)) {
    const slots: Slot[] = [];
    for (const e of (m[2] ?? "").split(",")) {
      const el = /^\s*(\d+) : (\S+) \. (\d+)\s*$/.exec(e);
      if (el) slots[Number(el[1])] = { address: el[2]!, port: Number(el[3]) };
    }
    out.set(m[1]!, slots);
  }
  return out;
}

/** The slots of every map in the live table (index = slot), from `nft -j` objects. */
function liveSlots(objects: Json[]): Map<string, Slot[]> {
  const out = new Map<string, Slot[]>();
  for (const o of objects) {
    const map = o.map;
    if (!isObj(map) || typeof map.name !== "string") continue;
    const slots: Slot[] = [];
    for (const el of arr(map.elem)) {
      const [key, value] = arr(el);
      const parts = isObj(value) ? arr(value.concat) : [];
      if (typeof key === "number" && typeof parts[0] === "string" && typeof parts[1] === "number")
        slots[key] = { address: parts[0], port: parts[1] };
    }
    out.set(map.name, slots);
  }
  return out;
}

/** `10.0.0.0/8`, `192.0.2.1`: a prefix or an address of a match's right-hand side. */
function rangeText(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (isObj(v) && isObj(v.prefix)) return `${String(v.prefix.addr)}/${String(v.prefix.len)}`;
  return undefined;
}

/** `ip saddr != { ... } return` in a frontend's chain: its source ranges (one range is listed without a set). */
function sourceRangesOf(rules: Json[]): string[] {
  for (const r of rules) {
    for (const e of arr(r.expr)) {
      const m = isObj(e) ? e.match : undefined;
      if (!isObj(m) || m.op !== "!=") continue;
      const left = isObj(m.left) && isObj(m.left.payload) ? m.left.payload : undefined;
      if (left?.protocol !== "ip" || left.field !== "saddr") continue;
      const right = isObj(m.right) && Array.isArray(m.right.set) ? m.right.set : [m.right];
      return right.map(rangeText).filter((x): x is string => x !== undefined);
    }
  }
  return [];
}

/** The prerouting verdict map: address . protocol . port -> goto chain. */
function frontendsOf(rules: Json[]): { address: string; protocol: "TCP" | "UDP"; port: number; chain: string }[] {
  const out: { address: string; protocol: "TCP" | "UDP"; port: number; chain: string }[] = [];
  for (const r of rules) {
    for (const e of arr(r.expr)) {
      const vmap = isObj(e) ? e.vmap : undefined;
      const data = isObj(vmap) && isObj(vmap.data) ? vmap.data.set : undefined;
      for (const el of arr(data)) {
        const [key, verdict] = arr(el);
        const [address, proto, port] = isObj(key) ? arr(key.concat) : [];
        const to = isObj(verdict) ? (verdict.goto ?? verdict.jump) : undefined;
        const chain = isObj(to) ? to.target : undefined;
        if (typeof address !== "string" || typeof port !== "number" || typeof chain !== "string") continue;
        if (proto !== "tcp" && proto !== "udp") continue;
        out.push({ address, protocol: proto === "tcp" ? "TCP" : "UDP", port, chain });
      }
    }
  }
  return out;
}

/**
 * An LB's frontends from `nft -j list table ip edgepair_services` and, when at hand, the rendered services.nft the
 * live table was applied from. Sorted by address, protocol, port.
 */
export function parseServiceTable(json: string, renderedFile?: string): ServiceFrontendStatus[] {
  const parsed = JSON.parse(json) as unknown;
  const objects = arr(isObj(parsed) ? parsed.nftables : undefined).filter(isObj);
  const rulesOf = (chain: string) => objects.map((o) => o.rule).filter((r): r is Json => isObj(r) && r.chain === chain);
  const live = liveSlots(objects);
  const own = renderedFile !== undefined ? renderedSlots(renderedFile) : new Map<string, Slot[]>();

  const out = frontendsOf(rulesOf("prerouting")).map((f): ServiceFrontendStatus => {
    // Array.from: holes (a slot missing from a map) become undefined instead of being skipped
    const slots = Array.from(live.get(slotMap(f.chain)) ?? []);
    const rendered = own.get(slotMap(f.chain));
    const mine = rendered ? Array.from(rendered) : undefined;
    let backends: ServiceBackendStatus[];
    let slotsPointedAway = 0;
    if (mine && mine.length === slots.length && mine.every((s) => s !== undefined)) {
      // a backend is down when any of its own slots points elsewhere
      const seen = new Map<string, ServiceBackendStatus>();
      mine.forEach((s, i) => {
        if (!s) return;
        const b = seen.get(slotKey(s)) ?? { ...s, up: true };
        const target = slots[i];
        if (!target || slotKey(target) !== slotKey(s)) b.up = false;
        seen.set(slotKey(s), b);
      });
      backends = [...seen.values()];
    } else {
      // without the rendered slots: the live targets, and how many slots share a target (pointed away)
      const seen = new Map<string, ServiceBackendStatus>();
      for (const s of slots) if (s && !seen.has(slotKey(s))) seen.set(slotKey(s), { ...s, up: true });
      backends = [...seen.values()];
      slotsPointedAway = slots.filter((s) => s !== undefined).length - backends.length;
    }
    return { ...f, sourceRanges: sourceRangesOf(rulesOf(f.chain)), backends, slotsPointedAway };
  });
  return out.sort(
    (a, b) => compareAddresses(a.address, b.address) || a.protocol.localeCompare(b.protocol) || a.port - b.port,
  );
}

/** What a frontend is: `extra db` (spec.extraServices), `apps/dns` (a Service), else its chain. */
export function frontendName(chain: string): string {
  const parts = chain.split("/");
  if (parts[0] === "extra" && parts.length === 2) return `extra ${parts[1]}`;
  if (parts[0] === "svc" && parts.length === 5) return `${parts[1]}/${parts[2]}`;
  return chain;
}

/** The NodePort all backends share (one per frontend, as rendered), or undefined when they differ. */
function sharedPort(f: ServiceFrontendStatus): number | undefined {
  const ports = new Set(f.backends.map((b) => b.port));
  return ports.size === 1 ? f.backends[0]?.port : undefined;
}

function backendsText(f: ServiceFrontendStatus): string {
  const port = sharedPort(f);
  const list = f.backends
    .map((b) => `${b.address}${port === undefined ? `:${b.port}` : ""}${b.up ? "" : " DOWN"}`)
    .join(", ");
  const away = f.slotsPointedAway > 0 ? ` +${f.slotsPointedAway} slot(s) pointed away (down, unnamed)` : "";
  return `${list || "-"}${away}`;
}

/**
 * One row per frontend: protocol and address:port, what it is, from where, its NodePort and backends (DOWN: health
 * pointed its slots at the others) and the LBs forwarding it. Rows the LBs agree on are shown once; where they
 * differ (a frontend on one LB only, a backend down on one), each LB gets its own row.
 */
export function formatServiceFrontends(perLb: readonly { key: string; frontends: ServiceFrontendStatus[] }[]): string {
  const rows = new Map<string, { cells: string[]; lbs: string[]; order: ServiceFrontendStatus }>();
  for (const { key, frontends } of perLb) {
    for (const f of frontends) {
      const cells = [
        `${f.protocol} ${f.address}:${f.port}`,
        frontendName(f.chain),
        f.sourceRanges.join(", ") || "anywhere",
        String(sharedPort(f) ?? "-"),
        backendsText(f),
      ];
      const id = cells.join("\u0000");
      const row = rows.get(id) ?? { cells, lbs: [], order: f };
      row.lbs.push(key);
      rows.set(id, row);
    }
  }
  if (rows.size === 0) return "Service frontends: none forwarded (no extraServices, no Service of type LoadBalancer)\n";
  const sorted = [...rows.values()].sort(
    (a, b) =>
      compareAddresses(a.order.address, b.order.address) ||
      a.order.protocol.localeCompare(b.order.protocol) ||
      a.order.port - b.order.port ||
      a.lbs.join().localeCompare(b.lbs.join()),
  );
  return formatTable(
    ["Service frontend", "name", "from", "NodePort", "backends (DOWN: failed health check)", "LBs"],
    sorted.map((r) => [...r.cells, r.lbs.join(", ")]),
  );
}
