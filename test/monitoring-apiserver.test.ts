/**
 * The scrape objects of k8s/monitoring.ts against a REAL kube-apiserver (test/fixtures/kube-apiserver.ts), then
 * through Prometheus' relabeling: the Service without selector, its Endpoints and the basic-auth Secret are accepted
 * with strict field validation; the targets Prometheus' Kubernetes discovery (role endpoints, as a ServiceMonitor
 * uses) makes of the Endpoints and Service read back from the server go through the rules the Prometheus operator
 * puts first (select the Service by the monitor's labels, the port by name, the job from jobLabel) and the
 * ServiceMonitor's own relabelings, run by `promtool check service-discovery`: two targets, the LBs' addresses on the
 * metrics port, job `edgepair`, `cluster` and `lb` set. Debian's promtool is built without the Kubernetes discovery,
 * so the discovered targets are given as static ones carrying the meta labels that discovery documents for role
 * endpoints (__meta_kubernetes_endpoint_hostname, _port_name, __meta_kubernetes_service_label_*, ...).
 *
 * The ServiceMonitor and PrometheusRule themselves need the operator's CRDs, which are not here: their fields are
 * checked in test/components-cluster-access.test.ts, their rules by promtool in test/alerts.test.ts.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { request, type RequestOptions } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import {
  metricsAuthSecret,
  metricsEndpoints,
  metricsService,
  metricsServiceMonitor,
  type Manifest,
  type Relabeling,
} from "../k8s";
import { run } from "./checkers/run";
import { startKubeApiServer, type KubeApiServer } from "./fixtures/kube-apiserver";
import { k8s, type K8s } from "./fixtures/kube/client-node";

jest.setTimeout(180_000);

const NS = "monitoring";
const ref = { name: "lab", namespace: NS };
const pair = {
  cluster: "lab",
  port: 8404,
  lbs: [
    { name: "lab-lb-1", address: "192.168.100.2" },
    { name: "lab-lb-2", address: "192.168.100.3" },
  ],
};

let kube: KubeApiServer;
let kc: K8s.KubeConfig;
let dir: string;

beforeAll(async () => {
  kube = await startKubeApiServer({ controllerManager: false });
  kc = new k8s.KubeConfig();
  kc.loadFromString(kube.adminKubeConfig);
  dir = mkdtempSync(join(tmpdir(), "ep-monitoring-"));
});

afterAll(async () => {
  await kube?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function call(method: string, path: string, body?: unknown): Promise<{ status: number; body: string }> {
  const url = new URL(kc.getCurrentCluster()!.server + path);
  const opts: RequestOptions = { method, headers: { "Content-Type": "application/json", Accept: "application/json" } };
  await kc.applyToHTTPSOptions(opts);
  return new Promise((resolve, reject) => {
    const req = request(url, opts, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
    });
    req.on("error", reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

const create = (collection: string, m: unknown) => call("POST", `${collection}?fieldValidation=Strict`, m);

/** The ServiceMonitor's camelCase relabelings as Prometheus' relabel_configs. */
const asRelabelConfig = (r: Relabeling) => ({
  ...(r.sourceLabels ? { source_labels: r.sourceLabels } : {}),
  ...(r.separator !== undefined ? { separator: r.separator } : {}),
  ...(r.regex ? { regex: r.regex } : {}),
  target_label: r.targetLabel,
  replacement: r.replacement,
  action: r.action,
});

/** Prometheus' label name for a Kubernetes label key. */
const sdLabel = (key: string) => key.replace(/[^a-zA-Z0-9_]/g, "_");

interface Discovered {
  targets: string[];
  labels: Record<string, string>;
}

/** What the Kubernetes discovery (role endpoints) makes of the Service and Endpoints as the server stored them. */
async function discover(): Promise<Discovered[]> {
  const service = JSON.parse((await call("GET", `/api/v1/namespaces/${NS}/services/lab-metrics`)).body) as {
    metadata: { name: string; labels: Record<string, string> };
  };
  const stored = JSON.parse((await call("GET", `/api/v1/namespaces/${NS}/endpoints/lab-metrics`)).body) as {
    subsets: {
      addresses: { ip: string; hostname?: string }[];
      ports: { name: string; port: number; protocol: string }[];
    }[];
  };
  return stored.subsets.flatMap((s) =>
    s.addresses.flatMap((a) =>
      s.ports.map((p) => ({
        targets: [`${a.ip}:${p.port}`],
        labels: {
          __meta_kubernetes_namespace: NS,
          __meta_kubernetes_service_name: service.metadata.name,
          ...Object.fromEntries(
            Object.entries(service.metadata.labels).flatMap(([k, v]) => [
              [`__meta_kubernetes_service_label_${sdLabel(k)}`, v],
              [`__meta_kubernetes_service_labelpresent_${sdLabel(k)}`, "true"],
            ]),
          ),
          ...(a.hostname ? { __meta_kubernetes_endpoint_hostname: a.hostname } : {}),
          __meta_kubernetes_endpoint_port_name: p.name,
          __meta_kubernetes_endpoint_port_protocol: p.protocol,
          __meta_kubernetes_endpoint_ready: "true",
        },
      })),
    ),
  );
}

/**
 * The targets Prometheus scrapes for the ServiceMonitor: the operator's rules (select the Service by the monitor's
 * labels, the port by name, the job from jobLabel) and then `relabelings`, run by promtool. Sorted by address.
 */
function relabel(discovered: Discovered[], relabelings: Relabeling[]): Record<string, string>[] {
  const monitor = metricsServiceMonitor({ ref, cluster: pair.cluster });
  const endpoint = monitor.spec.endpoints[0]!;
  const job = `serviceMonitor/${NS}/${monitor.metadata.name}/0`;
  const config = {
    scrape_configs: [
      {
        job_name: job,
        honor_labels: endpoint.honorLabels,
        metrics_path: endpoint.path,
        scheme: endpoint.scheme,
        scrape_interval: endpoint.interval,
        basic_auth: { username: "edgepair", password_file: "password" },
        static_configs: discovered,
        relabel_configs: [
          ...Object.entries(monitor.spec.selector.matchLabels).map(([k, v]) => ({
            action: "keep",
            source_labels: [
              `__meta_kubernetes_service_label_${sdLabel(k)}`,
              `__meta_kubernetes_service_labelpresent_${sdLabel(k)}`,
            ],
            regex: `(${v});true`,
          })),
          { action: "keep", source_labels: ["__meta_kubernetes_endpoint_port_name"], regex: endpoint.port },
          {
            source_labels: [`__meta_kubernetes_service_label_${sdLabel(monitor.spec.jobLabel)}`],
            regex: "(.+)",
            target_label: "job",
            replacement: "${1}",
          },
          ...relabelings.map(asRelabelConfig),
        ],
      },
    ],
  };
  writeFileSync(join(dir, "password"), "pw\n");
  writeFileSync(join(dir, "prometheus.yml"), stringify(config));
  // static targets are there at once: a short timeout is enough
  const r = run("promtool", ["check", "service-discovery", "--timeout=1s", join(dir, "prometheus.yml"), job]);
  if (r.status !== 0) throw new Error(r.output);
  return (JSON.parse(r.stdout) as { labels: Record<string, string> }[])
    .map((t) => t.labels)
    .sort((a, b) => String(a.__address__).localeCompare(String(b.__address__)));
}

const summary = (labels: Record<string, string>[]) =>
  labels.map((l) => ({ address: l.__address__, job: l.job, cluster: l.cluster, lb: l.lb }));

test("the API server takes the Service, Endpoints and Secret; the ServiceMonitor's scrape finds both LBs with job, cluster and lb", async () => {
  const nsReply = await create("/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: NS } });
  expect(nsReply.status).toBe(201);
  const secret = { ...metricsAuthSecret(ref), stringData: { username: "edgepair", password: "pw" } };
  for (const [collection, m] of [
    ["services", metricsService(ref, pair.port)],
    ["endpoints", metricsEndpoints(ref, pair)],
    ["secrets", secret],
  ] as [string, Manifest][]) {
    const r = await create(`/api/v1/namespaces/${NS}/${collection}`, m);
    expect([m.kind, r.status, r.status === 201 ? "" : r.body]).toEqual([m.kind, 201, ""]);
  }
  const monitor = metricsServiceMonitor({ ref, cluster: pair.cluster });
  expect(summary(relabel(await discover(), monitor.spec.endpoints[0]!.relabelings))).toEqual(
    pair.lbs.map((lb) => ({ address: `${lb.address}:8404`, job: "edgepair", cluster: "lab", lb: lb.name })),
  );
});

describe("counter-cases", () => {
  test("strict field validation is on: a misspelt Endpoints field is refused", async () => {
    const bad = structuredClone(metricsEndpoints({ ...ref, name: "bad" }, pair)) as any;
    bad.subsets[0].addresses[0].hostName = bad.subsets[0].addresses[0].hostname;
    delete bad.subsets[0].addresses[0].hostname;
    const r = await create(`/api/v1/namespaces/${NS}/endpoints`, bad);
    expect(r.status).toBe(400);
    expect(r.body).toMatch(/unknown field.*hostName/);
  });

  test("without the ServiceMonitor's relabelings the targets have no cluster and no lb", async () => {
    expect(summary(relabel(await discover(), []))).toEqual(
      pair.lbs.map((lb) => ({ address: `${lb.address}:8404`, job: "edgepair", cluster: undefined, lb: undefined })),
    );
  });
});
