/**
 * The Grafana dashboard (k8s/dashboard.ts): the committed JSON is the generator's output; every panel's query parses
 * as PromQL, judged by promtool (each expression, with Grafana's variables given values, becomes a recording rule that
 * `promtool check rules` parses), reads only series of the metrics contract and only the chosen pair; the layout fits
 * Grafana's grid. Counter-case: a broken expression is refused.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { dashboardJson, edgepairDashboard, type DashboardPanel } from "../k8s/dashboard";
import { checkRules } from "./checkers/promtool";
import { REPO } from "./fixtures/variants";

const FILE = join(REPO, "k8s", "edgepair-dashboard.json");
const update = process.env.UPDATE_GOLDEN === "1";

const panels = (): DashboardPanel[] => edgepairDashboard().panels.filter((p) => p.type !== "row");
const queries = () => panels().flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p, target: t })));

/** Grafana's variables as a query sent to Prometheus has them. */
const substituted = (expr: string) =>
  expr
    .replaceAll("$cluster", "c1")
    .replaceAll("$__rate_interval", "1m")
    .replaceAll("$__interval", "1m")
    .replaceAll("$__range", "1h");

/** One recording rule per query: promtool parses each expression with Prometheus' own parser. */
function asRules(exprs: readonly { record: string; expr: string }[]): string {
  return stringify({ groups: [{ name: "edgepair-dashboard", rules: exprs }] });
}

const recordings = () =>
  queries().map(({ panel, target }) => ({
    record: `edgepair_dashboard:panel${panel.id}_${target.refId}`,
    expr: substituted(target.expr),
  }));

test("the committed dashboard is the generator's output (UPDATE_GOLDEN=1 rewrites it)", () => {
  if (update) writeFileSync(FILE, dashboardJson());
  expect(readFileSync(FILE, "utf8")).toBe(dashboardJson());
});

test("every panel query parses as PromQL (promtool check rules)", () => {
  const rules = recordings();
  expect(rules.length).toBeGreaterThan(15);
  expect(rules.every((r) => !r.expr.includes("$"))).toBe(true);
  const r = checkRules(asRules(rules));
  expect(r.output).toContain(`SUCCESS: ${rules.length} rules found`);
  expect(r.ok).toBe(true);
});

test("counter-case: a broken panel expression is refused", () => {
  const rules = recordings();
  rules[3] = { ...rules[3]!, expr: `${rules[3]!.expr} by (lb` };
  const r = checkRules(asRules(rules));
  expect(r.ok).toBe(false);
  expect(r.output).toMatch(/parse error/);
});

test("every query reads one pair through the datasource variable, and only series of the metrics contract", () => {
  const contract = readFileSync(join(REPO, "docs", "metrics.md"), "utf8");
  for (const { panel, target } of queries()) {
    expect([panel.title, target.expr.includes('cluster="$cluster"')]).toEqual([panel.title, true]);
    expect(target.datasource).toEqual({ type: "prometheus", uid: "${datasource}" });
    expect(panel.datasource).toEqual({ type: "prometheus", uid: "${datasource}" });
    for (const name of target.expr.match(/edgepair_\w+/g) ?? []) {
      const series = name.replace(/_bucket$/, "");
      expect([series, contract.includes(`\`${series}\``)]).toEqual([series, true]);
    }
  }
  const vars = edgepairDashboard().templating.list;
  expect(vars.map((v) => [v.name, v.type])).toEqual([
    ["datasource", "datasource"],
    ["cluster", "query"],
  ]);
  expect(vars[0]!.query).toBe("prometheus");
  expect(vars[1]!.definition).toBe("label_values(edgepair_info, cluster)");
});

test("the pair at a glance: MASTER over time per LB, and a panel per subject the brief names", () => {
  const byTitle = new Map(panels().map((p) => [p.title, p]));
  const master = byTitle.get("MASTER")!;
  expect(master.type).toBe("state-timeline");
  expect(master.targets![0]!.expr).toContain('edgepair_vrrp_state{cluster="$cluster", state="MASTER"}');
  const exprs = queries()
    .map((q) => q.target.expr)
    .join("\n");
  for (const series of [
    "edgepair_vrrp_transitions_total",
    "edgepair_pool_servers",
    "edgepair_applies_total",
    "edgepair_conntrackd_sync_messages_total",
    "edgepair_conntrackd_sync_errors_total",
    "edgepair_conntrackd_cache_entries",
    "edgepair_ready",
    "edgepair_pair_redundant",
    "edgepair_token_expiry_timestamp_seconds",
    "edgepair_image_switch_phase",
    "edgepair_metrics_auth_failures_total",
  ])
    expect([series, exprs.includes(series)]).toEqual([series, true]);
});

test("the layout fits Grafana's 24-column grid without overlaps; ids and refIds are unique", () => {
  const d = edgepairDashboard();
  expect(d.schemaVersion).toBe(39);
  const cells = new Set<string>();
  for (const p of d.panels) {
    const { x, y, w, h } = p.gridPos;
    expect(x + w).toBeLessThanOrEqual(24);
    for (let i = x; i < x + w; i++)
      for (let j = y; j < y + h; j++) {
        expect([p.title, cells.has(`${i},${j}`)]).toEqual([p.title, false]);
        cells.add(`${i},${j}`);
      }
    const refIds = (p.targets ?? []).map((t) => t.refId);
    expect(new Set(refIds).size).toBe(refIds.length);
  }
  expect(new Set(d.panels.map((p) => p.id)).size).toBe(d.panels.length);
});
