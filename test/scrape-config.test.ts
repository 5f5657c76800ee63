/**
 * The plain scrape config (k8s/scrape-config.ts) for a Prometheus without the operator, judged by `promtool check
 * config` in a whole prometheus.yml that also loads the committed rules file: job `edgepair`, both LBs as targets with
 * `cluster` and `lb`, basic auth from a password file. Counter-cases: promtool refuses an inline password beside the
 * file, and two pairs under one job name (what the jobName option is for).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { scrapeConfig, scrapeConfigYaml, scrapePairOf, type PrometheusScrapeConfig } from "../k8s/scrape-config";
import { checkConfig } from "./checkers/promtool";
import { devSpecRaw, REPO } from "./fixtures/variants";
import { resolveSpec } from "../spec/resolve";

const RULES = readFileSync(join(REPO, "k8s", "edgepair-alerts.rules.yaml"), "utf8");
const PASSWORD_FILE = "edgepair-metrics-password";

function prometheusYml(scrapes: PrometheusScrapeConfig[]): string {
  return stringify({
    global: { scrape_interval: "30s", evaluation_interval: "15s" },
    rule_files: ["edgepair-alerts.rules.yaml"],
    scrape_configs: scrapes,
  });
}
const check = (scrapes: PrometheusScrapeConfig[]) =>
  checkConfig(prometheusYml(scrapes), { "edgepair-alerts.rules.yaml": RULES, [PASSWORD_FILE]: "secret\n" });

const dev = () => scrapePairOf(resolveSpec(devSpecRaw()));

test("the dev pair's scrape: job edgepair, both LBs with cluster and lb, basic auth from a file", () => {
  const yaml = scrapeConfigYaml({ pair: dev(), passwordFile: PASSWORD_FILE });
  expect(parse(yaml)).toEqual({
    scrape_configs: [
      {
        job_name: "edgepair",
        scrape_interval: "15s",
        metrics_path: "/metrics",
        scheme: "http",
        honor_labels: true,
        basic_auth: { username: "edgepair", password_file: PASSWORD_FILE },
        static_configs: [
          { targets: ["192.168.100.2:8404"], labels: { cluster: "lab", lb: "lab-lb-1" } },
          { targets: ["192.168.100.3:8404"], labels: { cluster: "lab", lb: "lab-lb-2" } },
        ],
      },
    ],
  });
  const r = check(parse(yaml).scrape_configs);
  expect(r.output).toMatch(/SUCCESS: \S*prometheus\.yml is valid prometheus config/);
  expect(r.output).toContain("SUCCESS: 13 rules found");
  expect(r.ok).toBe(true);
});

test("two pairs in one Prometheus (one job each, the job label still edgepair), IPv6 targets in brackets", () => {
  const lab = scrapeConfig({ pair: dev(), passwordFile: PASSWORD_FILE, jobName: "edgepair-lab" });
  const v6 = scrapeConfig({
    pair: {
      cluster: "v6",
      port: 9404,
      lbs: [
        { name: "v6-lb-1", address: "2001:db8:100::2" },
        { name: "v6-lb-2", address: "2001:db8:100::3" },
      ],
    },
    passwordFile: PASSWORD_FILE,
    jobName: "edgepair-v6",
  });
  expect(v6.static_configs.map((s) => s.targets)).toEqual([["[2001:db8:100::2]:9404"], ["[2001:db8:100::3]:9404"]]);
  for (const c of [lab, v6]) expect(c.relabel_configs).toEqual([{ target_label: "job", replacement: "edgepair" }]);
  const r = check([lab, v6]);
  expect(r.output).toMatch(/SUCCESS: \S*prometheus\.yml is valid prometheus config/);
  expect(r.ok).toBe(true);
});

describe("counter-cases: promtool check config is a real judge", () => {
  test("an inline password beside the password file is refused", () => {
    const c = scrapeConfig({ pair: dev(), passwordFile: PASSWORD_FILE });
    const r = check([{ ...c, basic_auth: { ...c.basic_auth, password: "inline" } as typeof c.basic_auth }]);
    expect(r.ok).toBe(false);
    expect(r.output).toMatch(/at most one of basic_auth password & password_file/);
  });

  test("two pairs under the one job name are refused", () => {
    const c = scrapeConfig({ pair: dev(), passwordFile: PASSWORD_FILE });
    const r = check([c, { ...c, static_configs: c.static_configs.map((s) => ({ ...s, labels: { ...s.labels } })) }]);
    expect(r.ok).toBe(false);
    expect(r.output).toMatch(/multiple scrape configs with job name "edgepair"/);
  });
});
