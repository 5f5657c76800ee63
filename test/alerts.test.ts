/**
 * The alert rules (k8s/alerts.ts) judged by Prometheus' own promtool: the committed rules file is the generator's
 * output and passes `promtool check rules`; `promtool test rules` proves every alert fires where it should and stays
 * silent where it should not (test/fixtures/alerts/cases.ts), also when scoped to one cluster; the PrometheusRule
 * carries the same groups; every series is in the metrics contract (docs/metrics.md) and every runbook_url has its
 * README subsection. Counter-cases: promtool refuses a rule with bad PromQL, and a test expecting an alert that does
 * not fire fails.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { parse } from "yaml";
import {
  ALERT_FOR,
  ALERT_NAMES,
  alertRuleGroups,
  alertRulesFile,
  DEFAULT_RUNBOOK_BASE_URL,
  prometheusRule,
  runbookAnchor,
} from "../k8s/alerts";
import { checkRules, testRules, testRulesFile } from "./checkers/promtool";
import { CASES, CLUSTER, inCluster, promtoolTests } from "./fixtures/alerts/cases";
import { REPO } from "./fixtures/variants";

const RULES_FILE = join(REPO, "k8s", "edgepair-alerts.rules.yaml");
/** The cases as a promtool test file beside them, so `promtool test rules <it>` runs them by hand too. */
const TESTS_FILE = join(REPO, "test", "fixtures", "alerts", "alerts.test.yaml");
const committedTests = () =>
  "# Generated from test/fixtures/alerts/cases.ts (UPDATE_GOLDEN=1 npx jest test/alerts.test.ts rewrites it); do not\n" +
  "# edit. Run by hand: promtool test rules test/fixtures/alerts/alerts.test.yaml\n" +
  promtoolTests(CASES, relative(dirname(TESTS_FILE), RULES_FILE));
const update = process.env.UPDATE_GOLDEN === "1";
const rules = () => alertRuleGroups().flatMap((g) => g.rules);

test("the committed rules file and promtool test file are the generators' output (UPDATE_GOLDEN=1 rewrites them)", () => {
  if (update) {
    writeFileSync(RULES_FILE, alertRulesFile());
    writeFileSync(TESTS_FILE, committedTests());
  }
  expect(readFileSync(RULES_FILE, "utf8")).toBe(alertRulesFile());
  expect(readFileSync(TESTS_FILE, "utf8")).toBe(committedTests());
});

test("promtool check rules accepts the rules file, unscoped and scoped to one cluster", () => {
  for (const text of [readFileSync(RULES_FILE, "utf8"), alertRulesFile({ cluster: CLUSTER })]) {
    const r = checkRules(text);
    expect(r.output).toContain(`SUCCESS: ${ALERT_NAMES.length} rules found`);
    expect(r.ok).toBe(true);
  }
});

test("every alert: an Edgepair name, a severity, its `for` from ALERT_FOR, a summary naming the cluster, a runbook anchor", () => {
  expect(rules().map((r) => r.alert)).toEqual([...ALERT_NAMES]);
  for (const r of rules()) {
    expect(r.alert).toMatch(/^Edgepair[A-Z]\w+$/);
    expect(["critical", "warning"]).toContain(r.labels.severity);
    expect(r.for ?? "0s").toBe(ALERT_FOR[r.alert]);
    expect(r.annotations.summary).toContain("{{ $labels.cluster }}");
    expect(r.annotations.runbook_url).toBe(`${DEFAULT_RUNBOOK_BASE_URL}#${r.alert.toLowerCase()}`);
  }
  const base = "https://git.example/ops/edgepair/blob/main/README.md";
  expect(
    alertRuleGroups({ runbookBaseUrl: base })
      .flatMap((g) => g.rules)
      .map((r) => r.annotations.runbook_url),
  ).toEqual(ALERT_NAMES.map((a) => `${base}#${runbookAnchor(a)}`));
});

test("promtool test rules: every alert fires in its firing cases and stays silent in the others", () => {
  for (const alert of ALERT_NAMES) {
    const mine = CASES.filter((c) => c.alert === alert);
    expect([alert, mine.some((c) => c.fires.length > 0)]).toEqual([alert, true]);
    expect([alert, mine.some((c) => c.fires.length === 0)]).toEqual([alert, true]);
  }
  const r = testRulesFile(TESTS_FILE);
  expect(r.output).toContain("SUCCESS");
  expect(r.ok).toBe(true);
});

test("rules scoped to one cluster fire for it as before and never for another cluster's series", () => {
  const scoped = alertRuleGroups({ cluster: CLUSTER });
  const exprs = scoped.flatMap((g) => g.rules).map((r) => r.expr);
  expect(exprs).toContain(`up{job="edgepair", cluster="${CLUSTER}"} == 0`);
  const cases = [...CASES, ...CASES.filter((c) => c.fires.length > 0).map((c) => inCluster(c, "c2"))];
  const r = testRules(alertRulesFile({ cluster: CLUSTER }), promtoolTests(cases, "rules.yaml", scoped));
  expect(r.output).toContain("SUCCESS");
  expect(r.ok).toBe(true);
});

test("the PrometheusRule carries exactly the rules file's groups", () => {
  const pr = prometheusRule({ ref: { name: "lab", namespace: "monitoring" }, labels: { release: "prom" } });
  expect(pr.apiVersion).toBe("monitoring.coreos.com/v1");
  expect(pr.kind).toBe("PrometheusRule");
  expect(pr.metadata).toEqual({
    name: "lab-alerts",
    namespace: "monitoring",
    labels: {
      release: "prom",
      "app.kubernetes.io/name": "edgepair",
      "app.kubernetes.io/instance": "lab",
      "app.kubernetes.io/component": "alerts",
    },
  });
  expect(pr.spec).toEqual(parse(readFileSync(RULES_FILE, "utf8")));
  const scoped = prometheusRule({ ref: { name: "lab" }, cluster: "lab" });
  expect(scoped.spec.groups).toEqual(alertRuleGroups({ cluster: "lab" }));
});

test("every series an alert reads is in the metrics contract (docs/metrics.md)", () => {
  const contract = readFileSync(join(REPO, "docs", "metrics.md"), "utf8");
  const used = new Set(rules().flatMap((r) => r.expr.match(/edgepair_\w+/g) ?? []));
  expect(used.size).toBeGreaterThan(10);
  for (const name of used) expect([name, contract.includes(`\`${name}\``)]).toEqual([name, true]);
});

test("the README's Runbook has one subsection per alert, at the anchor its runbook_url names", () => {
  const readme = readFileSync(join(REPO, "README.md"), "utf8");
  const section = /^## Runbook\n([\s\S]*?)(?=^## )/m.exec(readme)?.[1] ?? "";
  const headings = [...section.matchAll(/^### (\S+)$/gm)].map((m) => m[1]!);
  expect(headings).toEqual([...ALERT_NAMES]);
  for (const r of rules()) {
    expect(r.annotations.runbook_url.split("#")[1]).toBe(r.alert.toLowerCase());
    // the hold the runbook states is the rule's
    const body = section.split(`### ${r.alert}\n`)[1]!.split(/^### /m)[0]!;
    const hold = ALERT_FOR[r.alert] === "0s" ? "at once" : `for ${ALERT_FOR[r.alert]}`;
    expect([r.alert, body.includes(hold)]).toEqual([r.alert, true]);
  }
});

describe("counter-cases: promtool is a real judge", () => {
  test("a rule with bad PromQL is refused", () => {
    const broken = readFileSync(RULES_FILE, "utf8").replace("expr: edgepair_ready == 0", "expr: edgepair_ready == (0");
    expect(broken).not.toBe(readFileSync(RULES_FILE, "utf8"));
    const r = checkRules(broken);
    expect(r.ok).toBe(false);
    expect(r.output).toMatch(/parse error/);
  });

  test("a test expecting an alert that does not fire fails", () => {
    const silent = CASES.find((c) => c.alert === "EdgepairSplitBrain" && c.fires.length === 0)!;
    const claimed = { ...silent, fires: [{ cluster: CLUSTER, vrrp_instance: CLUSTER }] };
    const r = testRules(readFileSync(RULES_FILE, "utf8"), promtoolTests([claimed], "rules.yaml"));
    expect(r.ok).toBe(false);
    expect(r.output).toContain("FAILED");
    expect(r.output).toContain("alertname: EdgepairSplitBrain");
  });
});
