/**
 * ClusterAccess through the real engine and the real Kubernetes provider (pulumi-resource-kubernetes, built from
 * Go modules by ./tools/build-engines) against the real API server fixture (etcd, kube-apiserver and the controller
 * manager that fills the token Secret and deletes namespaces): no mocks.
 * - `pulumi up` creates the CRD (Established), the LoadBalancer carrying the spec, the namespace, the ServiceAccount,
 *   the Role/ClusterRole and their bindings, the token Secret, and the monitoring (PrometheusRule, ServiceMonitor,
 *   the metrics Service, its Endpoints and the basic-auth Secret); the token and the metrics password are Pulumi
 *   secrets: "[secret]" in the outputs, ciphertext in every file of the backend, absent from the CLI's output;
 * - the lab's agent, given that token, runs the LB from that LoadBalancer;
 * - `pulumi preview --diff` of a spec change shows the LoadBalancer's change and nothing else; `pulumi up` updates it
 *   in place (same uid) and the agent applies it;
 * - `pulumi destroy` removes every object, the namespace included.
 * The mock tests (components-cluster-access.test.ts) stay for what they check fast. Root only (the lab).
 *
 * The Prometheus operator is not here: its two CRDs stand in as schemaless ones (any spec is kept), so the provider
 * creates and deletes real custom resources of those kinds; their fields are checked by test/alerts.test.ts
 * (promtool) and test/components-cluster-access.test.ts.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import {
  agentNames,
  agentRbac,
  agentRbacManifests,
  CRD_NAME,
  GROUP,
  loadBalancerResource,
  metricsAuthSecret,
  metricsServiceMetadata,
  metricsServiceMonitor,
  PLURAL,
  prometheusRule,
  VERSION,
} from "../k8s";
import { checkSpec } from "../spec/checked";
import { PulumiWorkspace } from "./engine/pulumi-program";
import { adminCall, adminKubeConfig, attachAgentCluster, COLLECTIONS } from "./fixtures/agent-cluster";
import { startAgentOnLab, type AgentOnLab } from "./fixtures/agent-on-lab";
import { startKubeApiServer, type KubeApiServer } from "./fixtures/kube-apiserver";
import type { K8s } from "./fixtures/kube/client-node";
import { programFiles } from "./fixtures/stack-program";
import { devSpecRaw } from "./fixtures/variants";

jest.setTimeout(600_000);

const PROJECT = "cluster-access";
const NAME = "lab"; // the dev spec's clusterName: the lab's LBs report under it
const PROGRAM = `import * as pulumi from "@pulumi/pulumi";
import { ClusterAccess } from "./components/cluster-access";

const cfg = new pulumi.Config();
const access = new ClusterAccess("pair", {
  spec: cfg.requireObject("spec"),
  kubeconfig: cfg.requireSecret("kubeconfig"),
  monitoring: { prometheusRule: true, serviceMonitor: true, metricsPassword: cfg.requireSecret("metricsPassword") },
});
export const namespace = access.namespace;
export const loadBalancerName = access.loadBalancerName;
export const token = access.token;
`;

const METRICS_PASSWORD = "engine-metrics-password-b7e1c4";

/** A schemaless stand-in for one of the Prometheus operator's CRDs (see the module comment). */
function operatorCrd(kind: string, plural: string): Record<string, unknown> {
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: `${plural}.monitoring.coreos.com` },
    spec: {
      group: "monitoring.coreos.com",
      scope: "Namespaced",
      names: { kind, plural, singular: kind.toLowerCase(), listKind: `${kind}List` },
      versions: [
        {
          name: "v1",
          served: true,
          storage: true,
          schema: { openAPIV3Schema: { type: "object", "x-kubernetes-preserve-unknown-fields": true } },
        },
      ],
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const suite = process.getuid?.() === 0 ? describe : describe.skip;

/** The spec with HAProxy's check interval changed: a change every LB's haproxy.cfg shows. */
function respaced(intervalSeconds: number): Record<string, unknown> {
  const spec = devSpecRaw();
  return { ...spec, healthCheck: { ...((spec.healthCheck as object | undefined) ?? {}), intervalSeconds } };
}

suite("ClusterAccess through the real engine and Kubernetes provider, against a real API server", () => {
  let kube: KubeApiServer;
  let ws: PulumiWorkspace;
  let h: AgentOnLab | undefined;
  let token = "";
  const figures: Record<string, number> = {};
  const spec = devSpecRaw();
  const names = agentNames({ name: NAME });
  const objects = agentRbacManifests(agentRbac({ name: NAME, createNamespace: true, services: false }));
  const lbPath = `/apis/${GROUP}/${VERSION}/namespaces/${names.namespace}/${PLURAL}/${NAME}`;

  let admin: K8s.KubeConfig;
  const get = (path: string) => adminCall(admin, "GET", path);
  const ref = { name: NAME, namespace: names.namespace };
  const objectPaths = (): string[] => [
    `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${CRD_NAME}`,
    `/apis/monitoring.coreos.com/v1/namespaces/${names.namespace}/prometheusrules/${prometheusRule({ ref, cluster: NAME }).metadata.name}`,
    `/apis/monitoring.coreos.com/v1/namespaces/${names.namespace}/servicemonitors/${metricsServiceMonitor({ ref, cluster: NAME }).metadata.name}`,
    `/api/v1/namespaces/${names.namespace}/services/${metricsServiceMetadata(ref).name}`,
    `/api/v1/namespaces/${names.namespace}/endpoints/${metricsServiceMetadata(ref).name}`,
    `/api/v1/namespaces/${names.namespace}/secrets/${metricsAuthSecret(ref).metadata.name}`,
    lbPath,
    `/api/v1/namespaces/${names.namespace}/secrets/${names.tokenSecret}`,
    ...objects.map((m) => {
      const collection = COLLECTIONS(names.namespace)[m.kind] as string;
      return `${collection}/${m.metadata.name}`;
    }),
  ];
  const timed = async <T>(label: string, fn: () => Promise<T>): Promise<T> => {
    const t = Date.now();
    try {
      return await fn();
    } finally {
      figures[label] = Math.round((Date.now() - t) / 100) / 10;
    }
  };

  beforeAll(async () => {
    kube = await startKubeApiServer();
    admin = adminKubeConfig(kube);
    for (const crd of [
      operatorCrd("PrometheusRule", "prometheusrules"),
      operatorCrd("ServiceMonitor", "servicemonitors"),
    ]) {
      const r = await adminCall(admin, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd);
      expect(r.status).toBe(201);
    }
    ws = await PulumiWorkspace.create({
      name: PROJECT,
      files: programFiles(PROGRAM),
      config: { [`${PROJECT}:spec`]: JSON.stringify(spec) },
      secrets: { [`${PROJECT}:kubeconfig`]: kube.adminKubeConfig, [`${PROJECT}:metricsPassword`]: METRICS_PASSWORD },
    });
  });

  afterAll(async () => {
    await h?.stop();
    await ws?.dispose().catch((e) => console.error(`dispose: ${e}`));
    await kube?.stop();
    console.log(
      `ClusterAccess through the real engine (s): ${Object.entries(figures)
        .map(([k, v]) => `${k} ${v}`)
        .join(", ")}`,
    );
  });

  test("pulumi up creates the CRD, the LoadBalancer with the spec, the namespace, the agent's RBAC and its token; the token is a secret everywhere", async () => {
    const up = await timed("up", () => ws.up());
    expect(up.summary.result).toBe("succeeded");
    for (const path of objectPaths()) expect([path, (await get(path)).status]).toEqual([path, 200]);
    const crd = (await get(`/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${CRD_NAME}`)).body as {
      status: { conditions: { type: string; status: string }[] };
    };
    expect(crd.status.conditions).toContainEqual(expect.objectContaining({ type: "Established", status: "True" }));
    const lb = (await get(lbPath)).body as { spec: unknown };
    expect(lb.spec).toEqual(
      JSON.parse(JSON.stringify(loadBalancerResource(checkSpec(spec as never), { name: NAME }).spec)),
    );

    // the token the controller manager put in the Secret is the stack's output, and only as a secret
    const cluster = await attachAgentCluster(kube, { name: NAME });
    token = cluster.token;
    expect(token.length).toBeGreaterThan(100);
    expect((await ws.outputs()).token).toBe("[secret]");
    expect((await ws.outputs({ showSecrets: true })).token).toBe(token);
    const state = (await ws.exportState()).text;
    const clientKey = (parse(kube.adminKubeConfig) as { users: { user: Record<string, string> }[] }).users[0]!.user[
      "client-key-data"
    ]!;
    const secrets = [token, Buffer.from(token).toString("base64"), clientKey, METRICS_PASSWORD];
    secrets.push(Buffer.from(METRICS_PASSWORD).toString("base64"));
    for (const secret of secrets) {
      expect(state).not.toContain(secret);
      expect(`${up.stdout}${up.stderr}`).not.toContain(secret);
    }
    // every file of the file backend (state, history, backups), not only what `stack export` prints
    const backend = ws.files(ws.backendDir);
    expect(backend.some((f) => f.content.includes(names.tokenSecret))).toBe(true);
    for (const secret of secrets)
      expect(backend.filter((f) => f.content.includes(secret)).map((f) => f.path)).toEqual([]);

    // the lab's agent runs the LB from this LoadBalancer with this token, and reports under its hostname
    h = await startAgentOnLab({ existing: { kube, cluster } });
    const hostname = h.lab.state.hostFacts[h.key]!.hostname;
    let reported = false;
    for (let i = 0; i < 200 && !reported; i++) {
      const body = (await get(lbPath)).body as { status?: { loadBalancers?: { name: string }[] } };
      reported = body.status?.loadBalancers?.some((e) => e.name === hostname) ?? false;
      if (!reported) await sleep(100);
    }
    expect(reported).toBe(true);
  });

  test("a spec change: preview --diff shows the LoadBalancer's change alone; up updates it in place and the agent applies it", async () => {
    const haproxyCfg = () => readFileSync(join(h!.lab.renderedRoot(h!.key), "etc/haproxy/haproxy.cfg"), "utf8");
    expect(haproxyCfg()).toContain("default-server inter 2000ms");
    const before = (await get(lbPath)).body as { metadata: { uid: string; generation: number } };
    await ws.setConfig(`${PROJECT}:spec`, JSON.stringify(respaced(3)));

    const preview = await timed("previewDiff", () => ws.preview({ diff: true }));
    expect(preview.stdout).toMatch(/~ kubernetes:edgepair\.io\/v1alpha1:LoadBalancer/);
    // the dev spec leaves healthCheck to its defaults: the CR gains the field
    expect(preview.stdout).toMatch(/~ spec: \{\s*\+ healthCheck: \{\s*\+ intervalSeconds: 3\s*\}/);
    expect(preview.stdout).not.toContain(token);
    const plan = await ws.previewJson();
    const changed = plan.steps.filter((s) => s.op !== "same" && !s.type.startsWith("pulumi:providers:"));
    expect(changed.map((s) => [s.name, s.op])).toEqual([["pair-loadbalancer", "update"]]);

    // watched beside `pulumi up`: the agent often has the change applied before up has returned
    const upStarted = Date.now();
    const seen = (async () => {
      for (let i = 0; i < 600 && !haproxyCfg().includes("default-server inter 3000ms"); i++) await sleep(50);
      figures.upStartToAgentApplied = Math.round((Date.now() - upStarted) / 100) / 10;
    })();
    const up = await timed("upChange", () => ws.up());
    expect(up.summary.resourceChanges).toMatchObject({ update: 1 });
    const after = (await get(lbPath)).body as {
      metadata: { uid: string; generation: number };
      spec: { healthCheck?: { intervalSeconds?: number } };
    };
    expect(after.metadata.uid).toBe(before.metadata.uid);
    expect(after.metadata.generation).toBeGreaterThan(before.metadata.generation);
    expect(after.spec.healthCheck?.intervalSeconds).toBe(3);
    await seen;
    expect(haproxyCfg()).toContain("default-server inter 3000ms");
    expect(h!.log.join("\n")).not.toContain(token);
    await ws.preview({ expectNoChanges: true });
  });

  test("pulumi destroy removes every object, the namespace included", async () => {
    await h?.stop();
    h = undefined;
    const down = await timed("destroy", () => ws.destroy());
    expect(down.summary.result).toBe("succeeded");
    for (const path of objectPaths()) expect([path, (await get(path)).status]).toEqual([path, 404]);
    expect(await ws.resources()).toEqual([]);
  });
});
