/**
 * How Prometheus scrapes a pair, for a Prometheus without the operator: one `scrape_configs` entry, job `edgepair`,
 * the two LBs' private addresses as static targets with basic auth (user `edgepair`, the stack's metrics password
 * from a file: never inline, so the config can be shown and committed). docs/metrics.md is the endpoint's contract;
 * ClusterAccess's ServiceMonitor (monitoring.ts) is the same scrape for the operator.
 *
 * Each target carries `cluster` and `lb` as target labels, so `up` (EdgepairLbDown) and HAProxy's own series have
 * them too; `honor_labels` keeps the agent's identical labels as they are instead of renaming them `exported_*`.
 */
import { stringify } from "yaml";
import { HAPROXY_METRICS_PATH, hostPort } from "../render/haproxy";
import { lbHostname } from "./names";
import type { ResolvedSpec } from "../spec/types";

export const SCRAPE_JOB = "edgepair";
export const METRICS_USER = "edgepair";
export const METRICS_PATH = HAPROXY_METRICS_PATH;
/** A failover lasts about a second: a longer interval would blur the MASTER timeline and the split-brain hold. */
export const DEFAULT_SCRAPE_INTERVAL = "15s";

/** One LB as a scrape target: its hostname (the `lb` label) and its private address. */
export interface ScrapeLb {
  name: string;
  address: string;
}

/** One pair's scrape targets. */
export interface ScrapePair {
  cluster: string;
  port: number;
  lbs: ScrapeLb[];
}

export interface ScrapeConfigOptions {
  pair: ScrapePair;
  /** The metrics password, in a file Prometheus reads (relative: to prometheus.yml's directory). */
  passwordFile: string;
  scrapeInterval?: string;
  /**
   * Default `edgepair`. Several pairs in one Prometheus need one entry each (one password each) and job_name must be
   * unique, so give them e.g. `edgepair-<cluster>`: the `job` label stays `edgepair`, which the alerts select.
   */
  jobName?: string;
}

export interface PrometheusScrapeConfig {
  job_name: string;
  scrape_interval: string;
  metrics_path: string;
  scheme: "http";
  honor_labels: boolean;
  basic_auth: { username: string; password_file: string };
  static_configs: { targets: string[]; labels: Record<string, string> }[];
  relabel_configs?: { target_label: string; replacement: string }[];
}

/** The pair as the program deploys it: EdgePair's LB hostnames, the spec's LB addresses and metrics port. */
export function scrapePairOf(spec: ResolvedSpec): ScrapePair {
  return {
    cluster: spec.clusterName,
    port: spec.metrics.port,
    lbs: spec.network.lbAddresses.map((address, i) => ({ name: lbHostname(spec.clusterName, i), address })),
  };
}

export function scrapeConfig(options: ScrapeConfigOptions): PrometheusScrapeConfig {
  const jobName = options.jobName ?? SCRAPE_JOB;
  const { pair } = options;
  return {
    job_name: jobName,
    scrape_interval: options.scrapeInterval ?? DEFAULT_SCRAPE_INTERVAL,
    metrics_path: METRICS_PATH,
    scheme: "http",
    honor_labels: true,
    basic_auth: { username: METRICS_USER, password_file: options.passwordFile },
    static_configs: pair.lbs.map((lb) => ({
      targets: [hostPort(lb.address, pair.port)],
      labels: { cluster: pair.cluster, lb: lb.name },
    })),
    ...(jobName === SCRAPE_JOB ? {} : { relabel_configs: [{ target_label: "job", replacement: SCRAPE_JOB }] }),
  };
}

/** A `scrape_configs:` block to paste into prometheus.yml. */
export function scrapeConfigYaml(options: ScrapeConfigOptions): string {
  return stringify({ scrape_configs: [scrapeConfig(options)] }, { lineWidth: 0 });
}
