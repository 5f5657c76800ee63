/**
 * The pair's alert rules, written once: the PrometheusRule ClusterAccess deploys and the plain rules file committed as
 * k8s/edgepair-alerts.rules.yaml both come from alertRuleGroups(), so the two cannot drift. Series and labels are the
 * agent's contract (docs/metrics.md); `up` carries `cluster` and `lb` because our scrape configurations add them as
 * target labels (k8s/monitoring.ts, k8s/scrape-config.ts).
 *
 * increase() and rate() see a counter's first step only if the series existed before it: the agent must export the
 * label sets these alerts select (applies_total by result, vrrp_transitions_total{state="MASTER"}, ...) at 0 from its
 * start, or the first failure, the first entry into MASTER, goes unseen.
 *
 * Every summary names the cluster and the LB (or the cluster alone when the whole pair is meant) and says what to look
 * at first; the README's Runbook section has one subsection per alert, which runbook_url points at.
 */
import { Document } from "yaml";
import { agentNames, pairLabels, type LoadBalancerRef, type Manifest } from "./names";

export const ALERT_NAMES = [
  "EdgepairLbNotReady",
  "EdgepairLbDown",
  "EdgepairPairNotRedundant",
  "EdgepairPoolNoServerUp",
  "EdgepairSplitBrain",
  "EdgepairVrrpFlapping",
  "EdgepairConntrackdDown",
  "EdgepairConntrackSyncErrors",
  "EdgepairTokenExpiring",
  "EdgepairImageSwitchFailed",
  "EdgepairImageSwitchStuck",
  "EdgepairAppliesFailing",
  "EdgepairMetricsAuthFailures",
] as const;
export type AlertName = (typeof ALERT_NAMES)[number];
export type Severity = "critical" | "warning";

/** How long each condition must hold before its alert fires; "0s": at the first evaluation that sees it. */
export const ALERT_FOR = {
  EdgepairLbNotReady: "2m",
  EdgepairLbDown: "2m",
  EdgepairPairNotRedundant: "1m",
  EdgepairPoolNoServerUp: "1m",
  // a real failover overlaps well under a second; anything a scrape can see twice is not one
  EdgepairSplitBrain: "15s",
  EdgepairVrrpFlapping: "0s",
  EdgepairConntrackdDown: "2m",
  EdgepairConntrackSyncErrors: "5m",
  EdgepairTokenExpiring: "0s",
  EdgepairImageSwitchFailed: "0s",
  // one LB's switch is a download, a reboot and a health gate: 45 minutes in one phase is not progress
  EdgepairImageSwitchStuck: "45m",
  EdgepairAppliesFailing: "0s",
  EdgepairMetricsAuthFailures: "10m",
} as const satisfies Record<AlertName, string>;

/** The other numbers the expressions hold, for the tests and the runbook. */
export const ALERT_THRESHOLDS = {
  /** Entries into MASTER within flapWindow: more than this on one LB (per VRRP instance)... */
  masterEntriesPerLb: 3,
  /** ...or more than this for the pair (both LBs together, per VRRP instance). */
  masterEntriesPerCluster: 4,
  flapWindow: "15m",
  syncErrorWindow: "5m",
  /** The agent renews its 24 h token well before; 2 h left means renewal has failed for most of a day. */
  tokenRemainingSeconds: 2 * 3600,
  stuckPhases: ["Pending", "Switching", "Verifying", "RollingBack"],
  applyWindow: "15m",
  /**
   * Refused scrapes per second. One Prometheus with a stale password at a 15 s interval refuses 0.07/s, below this:
   * it takes two (an HA pair) or a faster interval. A lone one sees its own `up == 0`, which is EdgepairLbDown.
   */
  authFailuresPerSecond: 0.1,
  authFailureWindow: "5m",
} as const;

export const DEFAULT_RUNBOOK_BASE_URL = "https://github.com/edgepair/edgepair";

export interface AlertRule {
  alert: AlertName;
  expr: string;
  for?: string;
  labels: { severity: Severity };
  annotations: { summary: string; runbook_url: string };
}

export interface AlertRuleGroup {
  name: string;
  /** Evaluation interval of the group; absent: Prometheus' global one. */
  interval?: string;
  rules: AlertRule[];
}

export interface AlertOptions {
  /** Where the README lives; runbook_url is `<base>#<alert name in lower case>` (GitHub's heading anchor). */
  runbookBaseUrl?: string;
  /**
   * Only this cluster's series. The Prometheus operator loads every PrometheusRule into one Prometheus: two pairs
   * deploying unscoped rules there would each fire every alert twice.
   */
  cluster?: string;
}

/** GitHub's anchor of a `### <AlertName>` heading. */
export function runbookAnchor(alert: AlertName): string {
  return alert.toLowerCase();
}

export function alertRuleGroups(options: AlertOptions = {}): AlertRuleGroup[] {
  const base = options.runbookBaseUrl ?? DEFAULT_RUNBOOK_BASE_URL;
  // a DNS label (the spec checks clusterName), so it needs no escaping inside a PromQL string
  const scope = options.cluster === undefined ? [] : [`cluster="${options.cluster}"`];
  const sel = (metric: string, ...matchers: string[]): string => {
    const all = [...matchers, ...scope];
    return all.length === 0 ? metric : `${metric}{${all.join(", ")}}`;
  };
  const rule = (alert: AlertName, severity: Severity, expr: string, summary: string): AlertRule => ({
    alert,
    expr,
    ...(ALERT_FOR[alert] === "0s" ? {} : { for: ALERT_FOR[alert] }),
    labels: { severity },
    annotations: { summary, runbook_url: `${base}#${runbookAnchor(alert)}` },
  });
  const t = ALERT_THRESHOLDS;
  const lb = "edgepair LB {{ $labels.lb }} of cluster {{ $labels.cluster }}";
  const status = "`edgepair status --name {{ $labels.cluster }}`";
  const masterEntries = `increase(${sel("edgepair_vrrp_transitions_total", 'state="MASTER"')}[${t.flapWindow}])`;

  return [
    {
      name: "edgepair-availability",
      rules: [
        rule(
          "EdgepairLbNotReady",
          "warning",
          `${sel("edgepair_ready")} == 0`,
          `${lb} has not been Ready for ${ALERT_FOR.EdgepairLbNotReady}: its agent found a service, a rendered file or a backend pool failing. Run ${status} for its conditions and last error, then \`journalctl -u edgepair-agent\` on {{ $labels.lb }}.`,
        ),
        rule(
          "EdgepairLbDown",
          "critical",
          `${sel("up", 'job="edgepair"')} == 0`,
          `Prometheus has not reached ${lb} ({{ $labels.instance }}) for ${ALERT_FOR.EdgepairLbDown}: the VM, its HAProxy or its agent is down, or the path to it. Check the VM runs and \`systemctl status haproxy edgepair-agent\` on it; ${status} shows whether its peer holds the VIPs.`,
        ),
        rule(
          "EdgepairPairNotRedundant",
          "critical",
          `max by (cluster) (${sel("edgepair_pair_redundant")}) == 0 or count by (cluster) (${sel("edgepair_ready")} == 1) < 2`,
          `The edgepair pair of cluster {{ $labels.cluster }} has not been redundant for ${ALERT_FOR.EdgepairPairNotRedundant}: fewer than two LBs are Ready, so one more failure takes the cluster's API, ingress and egress down. Run ${status} to see which LB and why, and bring that LB back first.`,
        ),
        rule(
          "EdgepairPoolNoServerUp",
          "critical",
          `${sel("edgepair_pool_servers", 'state="up"')} == 0 and on (cluster, lb, pool) ${sel("edgepair_pool_servers", 'state="down"')} > 0`,
          `Pool {{ $labels.pool }} on ${lb} has servers but none has passed its health check for ${ALERT_FOR.EdgepairPoolNoServerUp}: its traffic fails. Check the backends themselves (api: the control-plane Nodes' /readyz; ingress: the router pods), then ${status} for the pool's servers.`,
        ),
      ],
    },
    {
      name: "edgepair-vrrp",
      // the split-brain rule's 15 s hold means nothing at a 30-60 s global evaluation interval
      interval: ALERT_FOR.EdgepairSplitBrain,
      rules: [
        rule(
          "EdgepairSplitBrain",
          "critical",
          `count by (cluster, vrrp_instance) (${sel("edgepair_vrrp_state", 'state="MASTER"')} == 1) > 1`,
          `Split brain in cluster {{ $labels.cluster }}: both LBs have been VRRP MASTER of {{ $labels.vrrp_instance }} for ${ALERT_FOR.EdgepairSplitBrain} and both answer for its VIPs. Check that each LB receives the other's adverts (\`journalctl -u keepalived\`, \`ip addr\` on both LBs, the firewall and the sync link); stop keepalived on one LB to end it.`,
        ),
        rule(
          "EdgepairVrrpFlapping",
          "warning",
          // one LB entering MASTER too often; else the pair as a whole (ping-pong between the two): per VRRP
          // instance, since one failover moves every instance at once
          `max by (cluster, lb) (${masterEntries}) > ${t.masterEntriesPerLb} or on (cluster) max by (cluster) (sum by (cluster, vrrp_instance) (${masterEntries})) > ${t.masterEntriesPerCluster}`,
          `VRRP is flapping in cluster {{ $labels.cluster }}{{ if $labels.lb }} on {{ $labels.lb }}{{ end }}: the VIPs moved to one LB more than ${t.masterEntriesPerLb} times, or within the pair more than ${t.masterEntriesPerCluster} times, in ${t.flapWindow}; every move risks connections. Look for the reason in \`journalctl -u keepalived\` on both LBs (a failing track script, lost adverts) and in ${status}.`,
        ),
      ],
    },
    {
      name: "edgepair-conntrack",
      rules: [
        rule(
          "EdgepairConntrackdDown",
          "warning",
          `${sel("edgepair_conntrackd_up")} == 0`,
          `conntrackd on ${lb} has not answered for ${ALERT_FOR.EdgepairConntrackdDown}: connection states are not synchronised, so a failover now would cut established connections (egress NAT flows too). Run \`conntrackd -s\` and \`systemctl status conntrackd\` on {{ $labels.lb }}.`,
        ),
        rule(
          "EdgepairConntrackSyncErrors",
          "warning",
          `sum by (cluster, lb) (increase(${sel("edgepair_conntrackd_sync_errors_total")}[${t.syncErrorWindow}])) > 0`,
          `conntrackd on ${lb} has counted sync errors for ${ALERT_FOR.EdgepairConntrackSyncErrors}: the peer's copy of the connection states is incomplete and a failover would cut some connections. Compare \`conntrackd -s\` on both LBs (errors by kind) and check the sync link and the firewall between them.`,
        ),
      ],
    },
    {
      name: "edgepair-agent",
      rules: [
        rule(
          "EdgepairTokenExpiring",
          "warning",
          `${sel("edgepair_token_expiry_timestamp_seconds")} - time() < ${t.tokenRemainingSeconds}`,
          `The cluster token of ${lb} expires in {{ $value | humanizeDuration }}: its agent has not renewed it. Look for the TokenRequest error in \`journalctl -u edgepair-agent\` on {{ $labels.lb }}; without a token the LB keeps serving but stops following Nodes and spec changes.`,
        ),
        rule(
          "EdgepairImageSwitchFailed",
          "warning",
          `${sel("edgepair_image_switch_phase", 'phase="Failed"')} == 1`,
          `The image switch of ${lb} failed and was rolled back; the peer will not switch. Read why in ${status} (image switch message, last error) and \`journalctl -u edgepair-agent -b -1\` on {{ $labels.lb }}, fix the image, then publish a new one.`,
        ),
        rule(
          "EdgepairImageSwitchStuck",
          "warning",
          `${sel("edgepair_image_switch_phase", `phase=~"${t.stuckPhases.join("|")}"`)} == 1`,
          `The image switch of ${lb} has been in phase {{ $labels.phase }} for ${ALERT_FOR.EdgepairImageSwitchStuck}. Run ${status} (whose turn it is, the message) and \`journalctl -u edgepair-agent\` on {{ $labels.lb }}: a peer that is not Ready holds a Pending switch.`,
        ),
        rule(
          "EdgepairAppliesFailing",
          "warning",
          `sum by (cluster, lb, service) (increase(${sel("edgepair_applies_total", 'result=~"failed|reverted"')}[${t.applyWindow}])) > 0`,
          `${lb} could not apply a change to {{ $labels.service }} in the last ${t.applyWindow} (failed or reverted by the health gate): it still runs the previous configuration. Read the last error in ${status} and \`journalctl -u edgepair-agent\` on {{ $labels.lb }}.`,
        ),
        rule(
          "EdgepairMetricsAuthFailures",
          "warning",
          `rate(${sel("edgepair_metrics_auth_failures_total")}[${t.authFailureWindow}]) > ${t.authFailuresPerSecond}`,
          `${lb} has refused scrapes with a wrong or missing password for ${ALERT_FOR.EdgepairMetricsAuthFailures}: a scraper holds a stale metrics password. Give every scraper of this pair the stack's current metricsPassword (the ServiceMonitor's Secret, or the scrape config's password_file).`,
        ),
      ],
    },
  ];
}

export interface PrometheusRuleManifest extends Manifest {
  spec: { groups: AlertRuleGroup[] };
}

export interface PrometheusRuleOptions extends AlertOptions {
  /** The pair's LoadBalancer (names the object) and the namespace the object goes to. */
  ref: LoadBalancerRef;
  /** Extra labels, e.g. the ones a Prometheus' ruleSelector picks (`release: kube-prometheus-stack`). */
  labels?: Record<string, string>;
}

/** The rules as a monitoring.coreos.com/v1 PrometheusRule for the Prometheus operator. */
export function prometheusRule(options: PrometheusRuleOptions): PrometheusRuleManifest {
  const { ref, labels, ...alertOptions } = options;
  const n = agentNames(ref);
  return {
    apiVersion: "monitoring.coreos.com/v1",
    kind: "PrometheusRule",
    metadata: {
      name: n.prometheusRule,
      namespace: n.namespace,
      labels: { ...labels, ...pairLabels(n.loadBalancer, "alerts") },
    },
    spec: { groups: alertRuleGroups(alertOptions) },
  };
}

/** The same rules as a Prometheus rules file (`rule_files:`), for a Prometheus without the operator. */
export function alertRulesFile(options: AlertOptions = {}): string {
  const doc = new Document({ groups: alertRuleGroups(options) });
  doc.commentBefore =
    " Generated from k8s/alerts.ts (UPDATE_GOLDEN=1 npx jest test/alerts.test.ts rewrites it); do not edit.\n" +
    " The edgepair alert rules for a Prometheus without the operator: add this file to rule_files.";
  return doc.toString({ lineWidth: 0 });
}
