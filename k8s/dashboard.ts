/**
 * A Grafana dashboard of one pair at a glance: who is MASTER over time, failovers, backends UP per pool, applies,
 * conntrack sync health, Ready/Redundant, token expiry, image switch phase, refused scrapes. Committed as
 * k8s/edgepair-dashboard.json (generated: UPDATE_GOLDEN=1 npx jest test/dashboard.test.ts rewrites it) for import.
 *
 * The data source is a `datasource` variable and the pair a `cluster` variable (from edgepair_info), so one import
 * serves every Prometheus and every pair; series and labels are the agent's contract (docs/metrics.md). Thresholds
 * shown in colour are the alerts' (k8s/alerts.ts), so a red stat and a firing alert mean the same thing.
 */
import { ALERT_THRESHOLDS } from "./alerts";
import type { JsonValue } from "./crd";

type JsonObject = { [key: string]: JsonValue };

export interface DashboardTarget {
  datasource: { type: "prometheus"; uid: string };
  expr: string;
  legendFormat: string;
  refId: string;
  instant?: boolean;
  range?: boolean;
  format?: "time_series" | "table";
}

export interface DashboardPanel {
  id: number;
  type: string;
  title: string;
  description?: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { type: "prometheus"; uid: string };
  targets?: DashboardTarget[];
  fieldConfig?: { defaults: JsonObject; overrides: JsonValue[] };
  options?: JsonObject;
  transformations?: JsonValue[];
  collapsed?: boolean;
  panels?: DashboardPanel[];
}

export interface GrafanaDashboard {
  uid: string;
  title: string;
  description: string;
  tags: string[];
  schemaVersion: number;
  version: number;
  editable: boolean;
  graphTooltip: number;
  time: { from: string; to: string };
  refresh: string;
  timezone: string;
  templating: { list: JsonObject[] };
  annotations: { list: JsonObject[] };
  links: JsonValue[];
  panels: DashboardPanel[];
}

const DATASOURCE = { type: "prometheus", uid: "${datasource}" } as const;
/** Every query is one pair's. */
const C = 'cluster="$cluster"';

const target = (expr: string, legendFormat: string, refId = "A"): DashboardTarget => ({
  datasource: DATASOURCE,
  expr,
  legendFormat,
  refId,
});

const green = (value: number | null) => ({ color: "green", value });
const red = (value: number | null) => ({ color: "red", value });
const thresholds = (...steps: { color: string; value: number | null }[]) => ({ mode: "absolute", steps });

/** 0/1 series shown as words and colours. */
const flag = (one: string, zero: string, zeroColor = "red") => [
  {
    type: "value",
    options: {
      "1": { text: one, color: "green", index: 0 },
      "0": { text: zero, color: zeroColor, index: 1 },
    },
  },
];

interface PanelSpec {
  type: string;
  title: string;
  description: string;
  w: number;
  targets: DashboardTarget[];
  defaults?: JsonObject;
  overrides?: JsonValue[];
  options?: JsonObject;
  transformations?: JsonValue[];
}

const withOverrides = (p: PanelSpec, overrides: JsonValue[]): PanelSpec => ({ ...p, overrides });
const colourByName = (regex: string, color: string): JsonValue => ({
  matcher: { id: "byRegexp", options: `.*${regex}` },
  properties: [{ id: "color", value: { mode: "fixed", fixedColor: color } }],
});

const stat = (
  title: string,
  description: string,
  w: number,
  targets: DashboardTarget[],
  defaults: JsonObject,
  textMode = "value_and_name",
): PanelSpec => ({
  type: "stat",
  title,
  description,
  w,
  targets,
  defaults: { color: { mode: "thresholds" }, ...defaults },
  options: {
    reduceOptions: { calcs: ["lastNotNull"], fields: "", values: false },
    colorMode: "background",
    graphMode: "none",
    textMode,
    justifyMode: "auto",
    orientation: "auto",
  },
});

const timeseries = (
  title: string,
  description: string,
  w: number,
  targets: DashboardTarget[],
  defaults: JsonObject = {},
  bars = false,
): PanelSpec => ({
  type: "timeseries",
  title,
  description,
  w,
  targets,
  defaults: {
    color: { mode: "palette-classic" },
    custom: bars ? { drawStyle: "bars", fillOpacity: 80, lineWidth: 1 } : { drawStyle: "line", lineWidth: 1 },
    ...defaults,
  },
  options: {
    legend: { displayMode: "list", placement: "bottom", showLegend: true },
    tooltip: { mode: "multi", sort: "none" },
  },
});

const timeline = (
  title: string,
  description: string,
  w: number,
  targets: DashboardTarget[],
  mappings: JsonValue[],
): PanelSpec => ({
  type: "state-timeline",
  title,
  description,
  w,
  targets,
  defaults: { color: { mode: "thresholds" }, mappings, thresholds: thresholds(red(null), green(1)) },
  options: {
    mergeValues: true,
    showValue: "auto",
    alignValue: "left",
    rowHeight: 0.9,
    legend: { displayMode: "list", placement: "bottom", showLegend: false },
    tooltip: { mode: "single", sort: "none" },
  },
});

interface RowSpec {
  title: string;
  height: number;
  panels: PanelSpec[];
}

const stuckPhases = ALERT_THRESHOLDS.stuckPhases.join("|");

const ROWS: RowSpec[] = [
  {
    title: "The pair",
    height: 5,
    panels: [
      stat(
        "Redundant",
        "The pair's Redundant condition as its agents report it: both LBs Ready and reporting.",
        4,
        [target(`max(edgepair_pair_redundant{${C}})`, "Redundant")],
        { mappings: flag("Redundant", "NOT redundant"), thresholds: thresholds(red(null), green(1)) },
        "value",
      ),
      stat(
        "Ready",
        "Each LB's Ready condition (its services, files and pools).",
        5,
        [target(`max by (lb) (edgepair_ready{${C}})`, "{{lb}}")],
        { mappings: flag("Ready", "NOT Ready"), thresholds: thresholds(red(null), green(1)) },
      ),
      stat(
        "Scraped",
        "Whether Prometheus reaches each LB's metrics (job edgepair).",
        4,
        [target(`max by (lb) (up{job="edgepair", ${C}})`, "{{lb}}")],
        { mappings: flag("up", "DOWN"), thresholds: thresholds(red(null), green(1)) },
      ),
      stat(
        "Token expires in",
        "The agent's cluster token; renewed well before its 24 h. Red below the EdgepairTokenExpiring threshold.",
        5,
        [target(`min by (lb) (edgepair_token_expiry_timestamp_seconds{${C}}) - time()`, "{{lb}}")],
        { unit: "s", thresholds: thresholds(red(null), green(ALERT_THRESHOLDS.tokenRemainingSeconds)) },
      ),
      withOverrides(
        stat(
          "Image switch",
          "Each LB's image-switch phase (Idle when none runs). Orange while a switch runs, red when it Failed.",
          6,
          [target(`max by (lb, phase) (edgepair_image_switch_phase{${C}}) == 1`, "{{lb}}: {{phase}}")],
          { thresholds: thresholds(green(null)) },
          "name",
        ),
        [
          // the value is always 1: the phase, in the series' name, gives the colour
          colourByName(`: (${stuckPhases})$`, "orange"),
          colourByName(": Failed$", "red"),
        ],
      ),
    ],
  },
  {
    title: "VRRP",
    height: 6,
    panels: [
      timeline(
        "MASTER",
        "Which LB holds the VIPs, over time. Both MASTER at once is a split brain (EdgepairSplitBrain).",
        16,
        [target(`max by (lb) (edgepair_vrrp_state{${C}, state="MASTER"})`, "{{lb}}")],
        flag("MASTER", "not MASTER", "blue"),
      ),
      timeseries(
        "Failovers",
        "Entries into MASTER per LB: each is a failover (EdgepairVrrpFlapping past the thresholds).",
        8,
        [
          target(
            `sum by (lb) (increase(edgepair_vrrp_transitions_total{${C}, state="MASTER"}[$__rate_interval]))`,
            "{{lb}}",
          ),
        ],
        { decimals: 0 },
        true,
      ),
    ],
  },
  {
    title: "Backends and applies",
    height: 7,
    panels: [
      timeseries(
        "Backends UP per pool",
        "Servers HAProxy holds UP and DOWN per LB and pool. A pool with servers and none UP fails (EdgepairPoolNoServerUp).",
        9,
        [
          target(`sum by (lb, pool) (edgepair_pool_servers{${C}, state="up"})`, "{{lb}} {{pool}} up"),
          target(`sum by (lb, pool) (edgepair_pool_servers{${C}, state="down"})`, "{{lb}} {{pool}} down", "B"),
        ],
        { decimals: 0, min: 0 },
      ),
      timeseries(
        "Applies by result",
        "Applies of a changed service's files per second: failed and reverted ones leave the previous configuration running (EdgepairAppliesFailing).",
        5,
        [target(`sum by (lb, result) (rate(edgepair_applies_total{${C}}[$__rate_interval]))`, "{{lb}} {{result}}")],
        { unit: "ops" },
      ),
      timeseries(
        "Apply duration (p95)",
        "From writing the files to the end of the health gate.",
        5,
        [
          target(
            `histogram_quantile(0.95, sum by (lb, le) (rate(edgepair_apply_duration_seconds_bucket{${C}}[$__rate_interval])))`,
            "{{lb}}",
          ),
        ],
        { unit: "s" },
      ),
      timeseries(
        "Reconcile errors",
        "Failed reconciles per second by reason; the agent retries them with back-off.",
        5,
        [
          target(
            `sum by (lb, reason) (rate(edgepair_reconcile_errors_total{${C}}[$__rate_interval]))`,
            "{{lb}} {{reason}}",
          ),
        ],
        { unit: "ops" },
      ),
    ],
  },
  {
    title: "conntrack sync",
    height: 7,
    panels: [
      timeline(
        "conntrackd answers",
        "`conntrackd -s` answered at the agent's last look (EdgepairConntrackdDown).",
        6,
        [target(`max by (lb) (edgepair_conntrackd_up{${C}})`, "{{lb}}")],
        flag("up", "DOWN"),
      ),
      timeseries(
        "Sync messages",
        "Messages sent to and received from the peer per second.",
        6,
        [
          target(
            `sum by (lb, direction) (rate(edgepair_conntrackd_sync_messages_total{${C}}[$__rate_interval]))`,
            "{{lb}} {{direction}}",
          ),
        ],
        { unit: "ops" },
      ),
      timeseries(
        "Sync errors",
        "Errors by kind; a steady rate leaves the peer's states incomplete (EdgepairConntrackSyncErrors).",
        6,
        [
          target(
            `sum by (lb, kind) (increase(edgepair_conntrackd_sync_errors_total{${C}}[$__rate_interval]))`,
            "{{lb}} {{kind}}",
          ),
        ],
        { decimals: 0 },
        true,
      ),
      timeseries(
        "Cache entries",
        "Flows this LB tracks (internal) and flows its peer sent (external): after a failover the new MASTER's external cache becomes its flows.",
        6,
        [target(`sum by (lb, cache) (edgepair_conntrackd_cache_entries{${C}})`, "{{lb}} {{cache}}")],
        { decimals: 0 },
      ),
    ],
  },
  {
    title: "Agent",
    height: 7,
    panels: [
      timeseries(
        "Heartbeat age",
        "Seconds since each LB's last status write the API server accepted.",
        6,
        [target(`time() - max by (lb) (edgepair_heartbeat_timestamp_seconds{${C}})`, "{{lb}}")],
        { unit: "s" },
      ),
      timeline(
        "Image switch phase",
        `The phase each LB was in, over time; a switch in ${stuckPhases} for long is stuck (EdgepairImageSwitchStuck).`,
        6,
        [target(`max by (lb, phase) (edgepair_image_switch_phase{${C}}) == 1`, "{{lb}} {{phase}}")],
        [{ type: "value", options: { "1": { text: "in phase", color: "blue", index: 0 } } }],
      ),
      timeseries(
        "Refused scrapes",
        "Scrapes refused for a wrong or missing password per second: a scraper with a stale password (EdgepairMetricsAuthFailures).",
        6,
        [target(`sum by (lb) (rate(edgepair_metrics_auth_failures_total{${C}}[$__rate_interval]))`, "{{lb}}")],
        {
          unit: "reqps",
          thresholds: thresholds(green(null), red(ALERT_THRESHOLDS.authFailuresPerSecond)),
          custom: { drawStyle: "line", lineWidth: 1, thresholdsStyle: { mode: "line" } },
        },
      ),
      {
        type: "table",
        title: "What runs",
        description: "Each LB's booted image, renderer version and the hash of the desired state it last applied.",
        w: 6,
        targets: [
          {
            ...target(`max by (lb, image, renderer_version, config_hash) (edgepair_info{${C}})`, ""),
            instant: true,
            range: false,
            format: "table",
          },
        ],
        transformations: [
          {
            id: "organize",
            options: { excludeByName: { Time: true, Value: true }, indexByName: {}, renameByName: {} },
          },
        ],
        options: { showHeader: true, cellHeight: "sm" },
      },
    ],
  },
];

/** Rows one under the other, each row's panels left to right (Grafana's grid is 24 wide). */
function layout(rows: readonly RowSpec[]): DashboardPanel[] {
  let id = 1;
  let y = 0;
  const out: DashboardPanel[] = [];
  for (const row of rows) {
    out.push({
      id: id++,
      type: "row",
      title: row.title,
      collapsed: false,
      gridPos: { x: 0, y, w: 24, h: 1 },
      panels: [],
    });
    y += 1;
    let x = 0;
    for (const p of row.panels) {
      if (x + p.w > 24) throw new Error(`row ${row.title}: panels wider than 24`);
      out.push({
        id: id++,
        type: p.type,
        title: p.title,
        description: p.description,
        gridPos: { x, y, w: p.w, h: row.height },
        datasource: DATASOURCE,
        targets: p.targets,
        fieldConfig: { defaults: p.defaults ?? {}, overrides: p.overrides ?? [] },
        options: p.options ?? {},
        ...(p.transformations ? { transformations: p.transformations } : {}),
      });
      x += p.w;
    }
    y += row.height;
  }
  return out;
}

export function edgepairDashboard(): GrafanaDashboard {
  return {
    uid: "edgepair-pair",
    title: "edgepair: the pair at a glance",
    description: "One edgepair HA load-balancer pair: VRRP, backends, applies, conntrack sync, the agent.",
    tags: ["edgepair"],
    schemaVersion: 39,
    version: 1,
    editable: true,
    // a shared crosshair: a failover lines up with the pools and the conntrack caches below it
    graphTooltip: 1,
    time: { from: "now-6h", to: "now" },
    refresh: "30s",
    timezone: "browser",
    templating: {
      list: [
        {
          name: "datasource",
          label: "Data source",
          type: "datasource",
          query: "prometheus",
          current: {},
          hide: 0,
          refresh: 1,
          regex: "",
          options: [],
        },
        {
          name: "cluster",
          label: "Cluster",
          type: "query",
          datasource: DATASOURCE,
          query: { query: "label_values(edgepair_info, cluster)", refId: "cluster" },
          definition: "label_values(edgepair_info, cluster)",
          current: {},
          hide: 0,
          // on time range change: a pair deployed meanwhile appears without a reload
          refresh: 2,
          sort: 1,
          includeAll: false,
          multi: false,
          options: [],
          regex: "",
        },
      ],
    },
    annotations: {
      list: [
        {
          builtIn: 1,
          datasource: { type: "grafana", uid: "-- Grafana --" },
          enable: true,
          hide: true,
          iconColor: "rgba(0, 211, 255, 1)",
          name: "Annotations & Alerts",
          type: "dashboard",
        },
      ],
    },
    links: [],
    panels: layout(ROWS),
  };
}

/** The dashboard as the committed file holds it. */
export function dashboardJson(): string {
  return `${JSON.stringify(edgepairDashboard(), null, 2)}\n`;
}
