/**
 * ClusterAccess's monitoring option under Pulumi's mocks (why mocks: test/components.test.ts): off by default it
 * creates none of it; on, the PrometheusRule scoped to the pair's cluster, a selector-less Service with Endpoints at
 * both LBs' private addresses on the metrics port, a ServiceMonitor with basic auth from a Secret. The metrics password
 * reaches the engine only as a secret: in no plain input and in no output that is not marked secret.
 */
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { optionsRecorder, recordingMocks, settle, value, type Registered } from "./fixtures/pulumi-mocks";
import { ClusterAccess, EdgePair, type ClusterAccessArgs, type EdgePairArgs } from "../components";
import { alertRuleGroups } from "../k8s/alerts";
import { devSpecRaw } from "./fixtures/variants";

/** The mock monitor receives a secret as { <secret signature>: ..., value }. */
const SECRET_SIG = "4dabf18193072939515e22adb298388d";
const PASSWORD = "metrics-password-value-123";
const DIGEST = `registry.example/edgepair/appliance@sha256:${"a".repeat(64)}`;
const KUBECONFIG = "apiVersion: v1\nkind: Config\n";

const T = {
  rule: "kubernetes:monitoring.coreos.com/v1:PrometheusRule",
  monitor: "kubernetes:monitoring.coreos.com/v1:ServiceMonitor",
  service: "kubernetes:core/v1:Service",
  endpoints: "kubernetes:core/v1:Endpoints",
  secret: "kubernetes:core/v1:Secret",
};

let mocks: ReturnType<typeof recordingMocks>;
beforeAll(() => {
  mocks = recordingMocks((type) =>
    type === T.secret ? { data: { token: Buffer.from("token").toString("base64") } } : {},
  );
});
beforeEach(() => mocks.reset());

const ofType = (t: string) => mocks.recorded.filter((r) => r.type === t);
const one = (t: string) => {
  const found = ofType(t);
  expect(found).toHaveLength(1);
  return found[0]!;
};

/** Drops every secret-wrapped value: what is left is what the engine would hold in plaintext. */
function withoutSecrets(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(withoutSecrets);
  if (v && typeof v === "object") {
    if (SECRET_SIG in v) return "[secret]";
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, withoutSecrets(x)]));
  }
  return v;
}

function secretValue(v: unknown): unknown {
  if (v && typeof v === "object" && SECRET_SIG in v) return (v as unknown as { value: unknown }).value;
  throw new Error(`not a secret: ${JSON.stringify(v)?.slice(0, 80)}`);
}

/** Every Output property of every registered resource that holds `needle` must be a secret Output. */
async function plaintextOutputsHolding(registered: readonly Registered[], needle: string): Promise<string[]> {
  const found: string[] = [];
  for (const r of registered) {
    for (const [key, o] of Object.entries(r.resource)) {
      if (!pulumi.Output.isInstance(o)) continue;
      const [v, secret] = await Promise.all([value(o), (o as any).isSecret as Promise<boolean>]);
      if (!secret && JSON.stringify(v ?? null).includes(needle)) found.push(`${r.type} ${r.name}.${key}`);
    }
  }
  return found;
}

const args = (over: Partial<ClusterAccessArgs> = {}): ClusterAccessArgs => ({
  spec: devSpecRaw() as ClusterAccessArgs["spec"],
  kubeconfig: KUBECONFIG,
  ...over,
});

test("off by default: no PrometheusRule, ServiceMonitor, Service, Endpoints, and no Secret but the token's", async () => {
  new ClusterAccess("ca", args());
  new ClusterAccess("cb", args({ monitoring: {} }));
  await settle(mocks);
  for (const t of [T.rule, T.monitor, T.service, T.endpoints]) expect(ofType(t)).toEqual([]);
  expect(ofType(T.secret).map((r) => r.name)).toEqual(["ca-token", "cb-token"]);
});

test("on: the pair's alerts, a selector-less Service and Endpoints at both LBs, a ServiceMonitor with basic auth from a Secret", async () => {
  const recorder = optionsRecorder();
  new ClusterAccess(
    "ca",
    args({
      monitoring: {
        prometheusRule: true,
        serviceMonitor: true,
        metricsPassword: pulumi.secret(PASSWORD),
        labels: { release: "kube-prometheus-stack" },
      },
    }),
    { transformations: [recorder.transformation] },
  );
  await settle(mocks);

  const rule = one(T.rule);
  expect(rule.name).toBe("ca-alerts");
  expect(rule.inputs.metadata).toMatchObject({
    name: "lab-alerts",
    namespace: "edgepair-system",
    labels: { release: "kube-prometheus-stack", "app.kubernetes.io/instance": "lab" },
  });
  // scoped: a second pair's rules in the same Prometheus never fire for this one's series, nor twice
  expect(rule.inputs.spec).toEqual(JSON.parse(JSON.stringify({ groups: alertRuleGroups({ cluster: "lab" }) })));

  const service = one(T.service);
  const spec = service.inputs.spec as { selector?: unknown; clusterIP: string; ports: unknown[] };
  expect(spec.selector).toBeUndefined();
  expect(spec.clusterIP).toBe("None");
  expect(spec.ports).toEqual([{ name: "metrics", port: 8404, targetPort: 8404, protocol: "TCP" }]);

  const endpoints = one(T.endpoints);
  expect((endpoints.inputs.metadata as { name: string }).name).toBe((service.inputs.metadata as { name: string }).name);
  expect(endpoints.inputs.subsets).toEqual([
    {
      addresses: [
        { ip: "192.168.100.2", hostname: "lab-lb-1" },
        { ip: "192.168.100.3", hostname: "lab-lb-2" },
      ],
      ports: [{ name: "metrics", port: 8404, protocol: "TCP" }],
    },
  ]);

  const monitor = one(T.monitor);
  const m = monitor.inputs.spec as any;
  expect(monitor.inputs.metadata).toMatchObject({
    namespace: "edgepair-system",
    labels: { release: "kube-prometheus-stack" },
  });
  // the Service's labels are what the ServiceMonitor selects, and the job label names job "edgepair"
  const serviceLabels = (service.inputs.metadata as { labels: Record<string, string> }).labels;
  expect(serviceLabels).toMatchObject(m.selector.matchLabels);
  expect(serviceLabels[m.jobLabel]).toBe("edgepair");
  expect(m.namespaceSelector).toEqual({ matchNames: ["edgepair-system"] });
  const endpoint = m.endpoints[0];
  expect(endpoint).toMatchObject({ port: "metrics", path: "/metrics", honorLabels: true });
  expect(endpoint.relabelings).toContainEqual({ targetLabel: "cluster", replacement: "lab", action: "replace" });

  const secret = ofType(T.secret).find((r) => r.name === "ca-metrics-auth")!;
  expect(secret.inputs.type).toBe("kubernetes.io/basic-auth");
  expect(endpoint.basicAuth).toEqual({
    username: { name: (secret.inputs.metadata as { name: string }).name, key: "username" },
    password: { name: (secret.inputs.metadata as { name: string }).name, key: "password" },
  });
  expect((secret.inputs.metadata as { namespace: string }).namespace).toBe("edgepair-system");
  expect(secretValue(secret.inputs.stringData)).toEqual({ username: "edgepair", password: PASSWORD });

  // the password: a secret in the inputs, in no plain input, in no output that is not a secret
  expect(JSON.stringify(withoutSecrets(mocks.recorded))).not.toContain(PASSWORD);
  expect(await plaintextOutputsHolding(recorder.registered, PASSWORD)).toEqual([]);
  const secretRes = recorder.registered.find((r) => r.name === "ca-metrics-auth")!.resource as any;
  expect(await secretRes.stringData.isSecret).toBe(true);
});

test("a namespace of its own, given LB addresses and port (Inputs), a scrape interval and runbook base", async () => {
  new ClusterAccess(
    "ca",
    args({
      monitoring: {
        prometheusRule: true,
        serviceMonitor: true,
        namespace: "monitoring",
        metricsPassword: pulumi.secret(PASSWORD),
        lbs: [
          { name: pulumi.output("lab-lb-1"), address: pulumi.output("10.0.0.5") },
          { name: "lab-lb-2", address: "2001:db8::6" },
        ],
        port: pulumi.output(9404),
        scrapeInterval: "30s",
        runbookBaseUrl: "https://git.example/ops/edgepair",
      },
    }),
  );
  await settle(mocks);
  for (const t of [T.rule, T.monitor, T.service, T.endpoints])
    expect([t, (one(t).inputs.metadata as { namespace: string }).namespace]).toEqual([t, "monitoring"]);
  expect((one(T.endpoints).inputs.subsets as any)[0]).toEqual({
    addresses: [
      { ip: "10.0.0.5", hostname: "lab-lb-1" },
      { ip: "2001:db8::6", hostname: "lab-lb-2" },
    ],
    ports: [{ name: "metrics", port: 9404, protocol: "TCP" }],
  });
  expect((one(T.monitor).inputs.spec as any).endpoints[0].interval).toBe("30s");
  expect((one(T.monitor).inputs.spec as any).namespaceSelector).toEqual({ matchNames: ["monitoring"] });
  expect(JSON.stringify(one(T.rule).inputs.spec)).toContain("https://git.example/ops/edgepair#edgepairsplitbrain");
  // the agent's own objects stay in the pair's namespace
  expect((one("kubernetes:edgepair.io/v1alpha1:LoadBalancer").inputs.metadata as any).namespace).toBe(
    "edgepair-system",
  );
});

test("only the rule, or only the scrape; a ServiceMonitor without a password is refused, naming the field", async () => {
  new ClusterAccess("ca", args({ monitoring: { prometheusRule: true } }));
  await settle(mocks);
  expect(ofType(T.rule)).toHaveLength(1);
  for (const t of [T.monitor, T.service, T.endpoints]) expect(ofType(t)).toEqual([]);
  mocks.reset();
  new ClusterAccess("cb", args({ monitoring: { serviceMonitor: true, metricsPassword: pulumi.secret(PASSWORD) } }));
  await settle(mocks);
  expect(ofType(T.rule)).toEqual([]);
  for (const t of [T.monitor, T.service, T.endpoints]) expect(ofType(t)).toHaveLength(1);
  expect(() => new ClusterAccess("cc", args({ monitoring: { serviceMonitor: true } }))).toThrow(
    /monitoring\.metricsPassword: required with monitoring\.serviceMonitor/,
  );
});

test("EdgePair's clusterAccess.monitoring: the ServiceMonitor's Secret holds the stack's metrics password, as a secret", async () => {
  const recorder = optionsRecorder();
  const pair = new EdgePair(
    "lab",
    {
      spec: devSpecRaw() as EdgePairArgs["spec"],
      image: { prebuilt: DIGEST },
      platform: { libvirt: { pool: "default", baseImage: "edgepair-appliance.qcow2" } },
      metricsPassword: PASSWORD,
      clusterAccess: {
        kubeconfig: KUBECONFIG,
        apiServers: ["https://192.168.100.10:6443"],
        tlsServerName: "api.lab.example",
        monitoring: { prometheusRule: true, serviceMonitor: true },
      },
    },
    { transformations: [recorder.transformation] },
  );
  await value(pair.imageRef);
  await settle(mocks);
  const secret = ofType(T.secret).find((r) => r.name === "lab-cluster-metrics-auth")!;
  expect(secretValue(secret.inputs.stringData)).toEqual({ username: "edgepair", password: PASSWORD });
  // the Endpoints name the LBs as EdgePair names its VMs' hostnames
  expect((one(T.endpoints).inputs.subsets as any)[0].addresses).toEqual(
    pair.lbs.map((lb) => ({ ip: lb.privateAddress, hostname: lb.hostname })),
  );
  expect(await plaintextOutputsHolding(recorder.registered, PASSWORD)).toEqual([]);
});

test("counter-case: the output check finds a password in a plain output", async () => {
  const recorder = optionsRecorder();
  const parent = new pulumi.ComponentResource(
    "edgepair:test:Leak",
    "leak",
    {},
    {
      transformations: [recorder.transformation],
    },
  );
  new k8s.core.v1.ConfigMap("leak", { data: { password: PASSWORD } }, { parent });
  await settle(mocks);
  expect(JSON.stringify(withoutSecrets(mocks.recorded))).toContain(PASSWORD);
  expect(await plaintextOutputsHolding(recorder.registered, PASSWORD)).toEqual([
    "kubernetes:core/v1:ConfigMap leak.data",
  ]);
});
