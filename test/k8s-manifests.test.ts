/**
 * k8s/ manifests against a REAL kube-apiserver (test/fixtures/kube-apiserver.ts, started once for the file): the CRD
 * derived from the zod models is accepted and Established, every spec variant is stored as written, bad specs and
 * changes to immutable fields are refused, status is a subresource where each LB applies its own entry, and the
 * agent's tokens (the controller-filled Secret and a TokenRequest) can do exactly what its RBAC lists: with and
 * without Services of type LoadBalancer (k8s/rbac.ts `services`), both directions proven on the server.
 *
 * Requests go out as raw JSON over the client's credentials (KubeConfig.applyToHTTPSOptions), never through
 * @kubernetes/client-node's typed serializer, which would silently drop keys it does not model (e.g.
 * x-kubernetes-validations): the server sees the manifests byte for byte, with strict field validation.
 */
import { request } from "node:https";
import { z } from "zod";
import {
  agentNames,
  agentRbac,
  agentRbacManifests,
  API_VERSION,
  CRD_NAME,
  DEFAULT_NAMESPACE,
  GROUP,
  KIND,
  loadBalancerCrd,
  loadBalancerEntryApply,
  loadBalancerResource,
  PLURAL,
  PRINTER_COLUMNS,
  statusFieldManager,
  structuralSchemaOf,
  VERSION,
  type LoadBalancerEntryStatus,
  type Manifest,
} from "../k8s";
import { SpecError } from "../spec/errors";
import { SERVICE_ACCOUNT_ISSUER, startKubeApiServer, type KubeApiServer } from "./fixtures/kube-apiserver";
import { k8s, type K8s } from "./fixtures/kube/client-node";
import { devSpecRaw, variants } from "./fixtures/variants";
import { checkSpec } from "../spec/checked";
import { FINALIZER } from "../agent/service-lb/view";
import { REPORTING_CONTROLLER } from "../agent/kube/events";
import { CONDITION_TYPE } from "../agent/service-lb/writer";

jest.setTimeout(120_000);

const NS = DEFAULT_NAMESPACE;
const LAB = "lab";
const OTHER = "other";
/** A third pair whose spec has serviceLoadBalancers (RBAC `services: true`); LAB and OTHER have none. */
const SVC = "svc";
const lab = agentNames({ name: LAB });
const other = agentNames({ name: OTHER });
const svc = agentNames({ name: SVC });
/** A user's Service of type LoadBalancer in a namespace of its own (not the pairs'). */
const APPS = "apps";
const WEB = "web";
const servicePath = (name = WEB) => `/api/v1/namespaces/${APPS}/services/${name}`;
const leasePath = (ns: string, name?: string) =>
  `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases${name === undefined ? "" : `/${name}`}`;
/** Somebody else's finalizer on the Service: the agent's patches must keep it. */
const FOREIGN_FINALIZER = "example.com/keep";
const lbPath = (name: string) => `/apis/${GROUP}/${VERSION}/namespaces/${NS}/${PLURAL}/${name}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Reply {
  status: number;
  body: unknown;
  warnings: string[];
}

const MERGE = "application/merge-patch+json";
const APPLY = "application/apply-patch+yaml";
const STRATEGIC = "application/strategic-merge-patch+json";
const TABLE = "application/json;as=Table;g=meta.k8s.io;v=v1";

/** One request with the kubeconfig's credentials; a watch resolves on its response headers. */
async function call(
  kc: K8s.KubeConfig,
  method: string,
  path: string,
  body?: unknown,
  contentType = "application/json",
  accept = "application/json",
): Promise<Reply> {
  const url = new URL(kc.getCurrentCluster()!.server + path);
  const opts: import("node:https").RequestOptions = {
    method,
    headers: { Accept: accept, ...(body === undefined ? {} : { "Content-Type": contentType }) },
    timeout: 30_000,
  };
  await kc.applyToHTTPSOptions(opts);
  const watch = url.searchParams.get("watch") === "true";
  return new Promise((resolve, reject) => {
    const req = request(url, opts, (res) => {
      const warnings = [res.headers.warning ?? []].flat();
      if (watch && res.statusCode === 200) {
        res.destroy();
        resolve({ status: 200, body: undefined, warnings });
        return;
      }
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        resolve({ status: res.statusCode ?? 0, body: text.startsWith("{") ? JSON.parse(text) : text, warnings });
      });
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`${method} ${path}: timeout`)));
    req.on("error", reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

const message = (r: Reply) => String((r.body as { message?: unknown } | undefined)?.message ?? r.body);

function kubeConfig(text: string): K8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  kc.loadFromString(text);
  return kc;
}

/** The collection a manifest is created in. */
function collectionOf(m: Manifest): string {
  const plural: Record<string, string> = {
    Namespace: "namespaces",
    ServiceAccount: "serviceaccounts",
    Secret: "secrets",
    ClusterRole: "clusterroles",
    ClusterRoleBinding: "clusterrolebindings",
    Role: "roles",
    RoleBinding: "rolebindings",
    CustomResourceDefinition: "customresourcedefinitions",
    Node: "nodes",
    Service: "services",
    Lease: "leases",
    [KIND]: PLURAL,
  };
  const base = m.apiVersion === "v1" ? "/api/v1" : `/apis/${m.apiVersion}`;
  const ns = m.metadata.namespace ? `/namespaces/${m.metadata.namespace}` : "";
  return `${base}${ns}/${plural[m.kind] ?? `unknown-kind-${m.kind}`}`;
}

function everyString(v: unknown): string[] {
  if (typeof v === "string") return [v];
  if (Array.isArray(v)) return v.flatMap(everyString);
  if (typeof v === "object" && v !== null) return Object.entries(v).flatMap(([k, x]) => [k, ...everyString(x)]);
  return [];
}

const NOW = "2025-01-02T03:04:05Z";
const ready = (status: "True" | "False") => ({
  type: "Ready",
  status,
  reason: status === "True" ? "Serving" : "HaproxyDown",
  message: "",
  lastTransitionTime: NOW,
});
const entry = (
  name: string,
  role: "primary" | "secondary",
  vrrpState: "Master" | "Backup",
  heartbeat = NOW,
): LoadBalancerEntryStatus => ({
  name,
  role,
  vrrpState,
  configHashes: { "/etc/haproxy/haproxy.cfg": `sha256:${name}` },
  rendererVersion: "0.1.0",
  bootedImage: `registry.example/edgepair@sha256:${"a".repeat(64)}`,
  heartbeat,
  conditions: [ready("True")],
});

interface ServiceObject {
  metadata: { name: string; namespace: string; uid: string; resourceVersion: string; finalizers?: string[] };
  spec: Record<string, unknown>;
  status: { loadBalancer?: { ingress?: { ip: string; ipMode?: string }[] }; conditions?: unknown[] };
}
interface LeaseObject {
  metadata: { resourceVersion: string };
  spec: { holderIdentity?: string };
}
/** The agent's Lease as agent/service-lb/lease.ts writes it (a create without, an update with a resourceVersion). */
const lease = (name: string, holder: string, resourceVersion?: string) => ({
  apiVersion: "coordination.k8s.io/v1",
  kind: "Lease",
  metadata: { name, namespace: NS, ...(resourceVersion === undefined ? {} : { resourceVersion }) },
  spec: {
    holderIdentity: holder,
    leaseDurationSeconds: 15,
    acquireTime: "2025-01-02T03:04:05.000000Z",
    renewTime: "2025-01-02T03:04:05.000000Z",
    leaseTransitions: 0,
  },
});
/** An Event on a Service, in its namespace, as agent/service-lb/writer.ts records it (named `<service>.<hex>`). */
let events = 0;
const serviceEvent = (s: ServiceObject, instance: string) => ({
  apiVersion: "events.k8s.io/v1",
  kind: "Event",
  metadata: { name: `${s.metadata.name}.${(0x18f00000000 + ++events).toString(16)}`, namespace: s.metadata.namespace },
  eventTime: "2025-01-02T03:04:05.000000Z",
  reportingController: REPORTING_CONTROLLER,
  reportingInstance: instance,
  action: "Allocate",
  reason: "AddressAllocated",
  note: "192.168.100.200 from pool default",
  type: "Normal",
  regarding: {
    apiVersion: "v1",
    kind: "Service",
    namespace: s.metadata.namespace,
    name: s.metadata.name,
    uid: s.metadata.uid,
  },
});

describe("k8s manifests, pure", () => {
  test("same input, byte-identical output", () => {
    expect(JSON.stringify(loadBalancerCrd())).toBe(JSON.stringify(loadBalancerCrd()));
    expect(JSON.stringify(agentRbac({ name: LAB, createNamespace: true }))).toBe(
      JSON.stringify(agentRbac({ name: LAB, createNamespace: true })),
    );
  });

  test("the RBAC holds no wildcard anywhere and no access to Secrets; its rules are exactly these", () => {
    const rbac = agentRbac({ name: LAB, createNamespace: true });
    const strings = everyString(agentRbacManifests(rbac));
    expect(strings.length).toBeGreaterThan(50);
    expect(strings.filter((s) => s.includes("*"))).toEqual([]);
    const rules = [...rbac.clusterRole.rules, ...rbac.role.rules];
    expect(rules.filter((r) => r.resources.some((res) => res.startsWith("secrets")))).toEqual([]);
    expect(rbac.clusterRole.rules).toEqual([
      { apiGroups: [""], resources: ["nodes"], verbs: ["get", "list", "watch"] },
    ]);
    expect(rbac.role.rules).toEqual([
      { apiGroups: [GROUP], resources: [PLURAL], resourceNames: [LAB], verbs: ["get", "list", "watch"] },
      { apiGroups: [GROUP], resources: [`${PLURAL}/status`], resourceNames: [LAB], verbs: ["get", "patch", "update"] },
      { apiGroups: [""], resources: ["serviceaccounts/token"], resourceNames: [lab.serviceAccount], verbs: ["create"] },
      { apiGroups: ["events.k8s.io"], resources: ["events"], verbs: ["create"] },
    ]);
    expect(rbac.tokenSecret).toMatchObject({
      type: "kubernetes.io/service-account-token",
      metadata: { annotations: { "kubernetes.io/service-account.name": lab.serviceAccount } },
    });
    expect(agentRbacManifests(agentRbac({ name: LAB })).map((m) => m.kind)).toEqual([
      "ServiceAccount",
      "ClusterRole",
      "ClusterRoleBinding",
      "Role",
      "RoleBinding",
      "Secret",
    ]);
  });

  test("with services the rules grow by exactly these (Services, their status, Events, one Lease); still no wildcard, no Secrets", () => {
    const without = agentRbac({ name: SVC });
    const rbac = agentRbac({ name: SVC, services: true });
    expect(everyString(agentRbacManifests(rbac)).filter((s) => s.includes("*"))).toEqual([]);
    const rules = [...rbac.clusterRole.rules, ...rbac.role.rules];
    expect(rules.filter((r) => r.resources.some((res) => res.startsWith("secrets")))).toEqual([]);
    expect(rbac.clusterRole.rules).toEqual([
      ...without.clusterRole.rules,
      { apiGroups: [""], resources: ["services"], verbs: ["get", "list", "watch", "patch"] },
      { apiGroups: [""], resources: ["services/status"], verbs: ["patch"] },
      { apiGroups: ["events.k8s.io"], resources: ["events"], verbs: ["create"] },
    ]);
    expect(rbac.role.rules).toEqual([
      ...without.role.rules,
      { apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["create"] },
      {
        apiGroups: ["coordination.k8s.io"],
        resources: ["leases"],
        resourceNames: [svc.servicesLease],
        verbs: ["get", "update"],
      },
    ]);
    expect(svc.servicesLease).toBe("svc-services");
    // nothing else moves: same objects, same names
    expect(agentRbacManifests(rbac).map((m) => [m.kind, m.metadata.name])).toEqual(
      agentRbacManifests(without).map((m) => [m.kind, m.metadata.name]),
    );
  });

  test("bad names and bad specs are errors naming the field", () => {
    expect(() => agentNames({ name: "Lab_1" })).toThrow(/^metadata\.name: must be a DNS label/);
    expect(() => agentRbac({ name: LAB, namespace: "x".repeat(64) })).toThrow(
      /^metadata\.namespace: must be a DNS label/,
    );
    // a spec is checked once, before it reaches the resource (spec/checked.ts)
    const bad = { ...devSpecRaw(), distribution: "rke2" } as never;
    expect(() => checkSpec(bad)).toThrow(SpecError);
    expect(() => checkSpec(bad)).toThrow(/^distribution: must be one of openshift, talos, generic$/);
    const badEntry = {
      ...entry("lab-lb-1", "primary", "Master"),
      vrrpState: "MASTER",
    } as unknown as LoadBalancerEntryStatus;
    expect(() => loadBalancerEntryApply({ name: LAB }, badEntry)).toThrow(
      /^status\.loadBalancers\[0\]\.vrrpState: must be one of Init, Backup, Master, Fault, Stop$/,
    );
  });

  test("zod constructs a structural schema cannot express throw `path: rule` instead of being dropped", () => {
    expect(() => structuralSchemaOf(z.strictObject({ a: z.union([z.string(), z.number()]) }), "x")).toThrow(
      /^x\.a: is a union of different shapes/,
    );
    expect(() => structuralSchemaOf(z.strictObject({ t: z.tuple([z.string(), z.number()]) }), "x")).toThrow(
      /^x\.t\[\]: is a union of different shapes/,
    );
    expect(() => structuralSchemaOf(z.strictObject({ s: z.string().meta({ examples: ["a"] }) }), "x")).toThrow(
      /^x\.s\.examples: has no equivalent/,
    );
    // what it does express: literal unions -> one enum, equal tuple items -> one items schema, nullable kept
    expect(
      structuralSchemaOf(
        z.strictObject({
          u: z.union([z.literal("a"), z.literal("b")]),
          t: z.tuple([z.string(), z.string()]),
          n: z.string().nullable(),
        }),
        "x",
      ),
    ).toEqual({
      type: "object",
      properties: {
        u: { type: "string", enum: ["a", "b"] },
        t: { type: "array", items: { type: "string" }, minItems: 2, maxItems: 2 },
        n: { nullable: true, type: "string" },
      },
      required: ["u", "t", "n"],
    });
  });
});

describe("k8s manifests against a real kube-apiserver", () => {
  let kube: KubeApiServer | undefined;
  let admin: K8s.KubeConfig;
  type Credentials = Record<"secret" | "tokenRequest", K8s.KubeConfig>;
  /** The agent's two credentials: the long-lived token from the Secret, and a TokenRequest token it made with it. */
  const agent: Credentials = {} as Credentials;
  /** The same two for the pair with Services (SVC). */
  const servicesAgent: Credentials = {} as Credentials;

  const create = async (m: Manifest) => {
    const r = await call(admin, "POST", `${collectionOf(m)}?fieldValidation=Strict`, m);
    if (r.status !== 201) throw new Error(`create ${m.kind} ${m.metadata.name}: ${r.status} ${message(r)}`);
    return r;
  };
  const getLb = async (name: string) =>
    (await call(admin, "GET", lbPath(name))).body as {
      metadata: { generation: number; managedFields: { manager: string; subresource?: string; fieldsV1: unknown }[] };
      spec: Record<string, unknown>;
      status?: Record<string, unknown>;
    };

  const getService = async (name = WEB) => (await call(admin, "GET", servicePath(name))).body as ServiceObject;
  const rvOf = async (path: string) =>
    ((await call(admin, "GET", path)).body as { metadata: { resourceVersion: string } }).metadata.resourceVersion;

  beforeAll(async () => {
    const server = await startKubeApiServer();
    kube = server;
    admin = kubeConfig(server.adminKubeConfig);

    await create(loadBalancerCrd());
    const deadline = Date.now() + 30_000;
    while (
      !(
        (await call(admin, "GET", `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${CRD_NAME}`)).body as {
          status?: { conditions?: { type: string; status: string }[] };
        }
      ).status?.conditions?.some((c) => c.type === "Established" && c.status === "True")
    ) {
      if (Date.now() > deadline) throw new Error(`${CRD_NAME} not Established`);
      await sleep(100);
    }
    for (const m of [
      ...agentRbacManifests(agentRbac({ name: LAB, createNamespace: true })),
      ...agentRbacManifests(agentRbac({ name: OTHER })),
      ...agentRbacManifests(agentRbac({ name: SVC, services: true })),
    ])
      await create(m);
    await create(loadBalancerResource(checkSpec(devSpecRaw() as never), { name: LAB }));
    await create(loadBalancerResource(checkSpec(devSpecRaw() as never), { name: OTHER }));
    await create({
      apiVersion: "v1",
      kind: "Node",
      metadata: { name: "cp-0", labels: { "node-role.kubernetes.io/control-plane": "" } },
    } as Manifest);

    // the controller manager fills each Secret with a token for its ServiceAccount
    const credentials = async (names: typeof lab, into: Credentials) => {
      let secretToken: string | undefined;
      while (!secretToken) {
        const s = (await call(admin, "GET", `/api/v1/namespaces/${NS}/secrets/${names.tokenSecret}`)).body as {
          data?: { token?: string };
        };
        secretToken = s.data?.token && Buffer.from(s.data.token, "base64").toString("utf8");
        if (Date.now() > deadline + 30_000) throw new Error("the token controller did not fill the Secret");
        if (!secretToken) await sleep(100);
      }
      into.secret = kubeConfig(server.kubeConfigFor(secretToken, `${names.serviceAccount}-secret`));
      const tr = await call(
        into.secret,
        "POST",
        `/api/v1/namespaces/${NS}/serviceaccounts/${names.serviceAccount}/token`,
        {
          apiVersion: "authentication.k8s.io/v1",
          kind: "TokenRequest",
          spec: { audiences: [SERVICE_ACCOUNT_ISSUER], expirationSeconds: 600 },
        },
      );
      if (tr.status !== 201) throw new Error(`TokenRequest: ${tr.status} ${message(tr)}`);
      into.tokenRequest = kubeConfig(
        server.kubeConfigFor(
          (tr.body as { status: { token: string } }).status.token,
          `${names.serviceAccount}-token-request`,
        ),
      );
    };
    await credentials(lab, agent);
    await credentials(svc, servicesAgent);

    // a user's Service of type LoadBalancer for the pairs' class, in another namespace, with a finalizer of its own;
    // two Leases the services pair must not touch: the other pair's, and another name in its own namespace
    await create({ apiVersion: "v1", kind: "Namespace", metadata: { name: APPS } });
    await create({
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: WEB, namespace: APPS, finalizers: [FOREIGN_FINALIZER] },
      spec: {
        type: "LoadBalancer",
        loadBalancerClass: "edgepair.io/pair",
        selector: { app: WEB },
        ports: [{ name: "http", protocol: "TCP", port: 80, targetPort: 8080 }],
      },
    } as Manifest);
    for (const name of [other.servicesLease, `${svc.servicesLease}-old`])
      await create({
        apiVersion: "coordination.k8s.io/v1",
        kind: "Lease",
        metadata: { name, namespace: NS },
        spec: { holderIdentity: "someone-else", leaseDurationSeconds: 15 },
      } as Manifest);
  }, 180_000);

  afterAll(async () => {
    await kube?.stop();
  }, 60_000);

  describe("the CRD", () => {
    test("is Established with its names accepted, structural, with the printer columns and immutability rules stored", async () => {
      const crd = (await call(admin, "GET", `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${CRD_NAME}`))
        .body as {
        status: { conditions: { type: string; status: string }[] };
        spec: {
          versions: {
            additionalPrinterColumns: { name: string; jsonPath: string }[];
            schema: { openAPIV3Schema: { properties: { spec: unknown } } };
          }[];
        };
      };
      const cond = Object.fromEntries(crd.status.conditions.map((c) => [c.type, c.status]));
      expect(cond).toMatchObject({ Established: "True", NamesAccepted: "True" });
      expect(cond.NonStructuralSchema).toBeUndefined();
      const [v] = crd.spec.versions;
      expect(v!.additionalPrinterColumns.map((c) => [c.name, c.jsonPath])).toEqual(
        PRINTER_COLUMNS.map((c) => [c.name, c.jsonPath]),
      );
      expect(everyString(v!.schema.openAPIV3Schema.properties.spec).filter((s) => s.includes("oldSelf"))).toHaveLength(
        5,
      );
    });

    test.each(variants.map((v) => [v.name, v.raw] as const))(
      "variant %s is accepted with strict field validation and stored exactly as written",
      async (name, raw) => {
        const cr = loadBalancerResource(checkSpec(raw as never), { name: `variant-${name}` });
        const r = await create(cr);
        expect(r.warnings).toEqual([]);
        expect((await getLb(`variant-${name}`)).spec).toEqual(raw);
      },
    );

    test("a wrong type, an unknown value and (strict) an unknown field are refused by the server (counter-cases)", async () => {
      const bad = (spec: Record<string, unknown>, name: string) => ({
        apiVersion: API_VERSION,
        kind: KIND,
        metadata: { name, namespace: NS },
        spec,
      });
      const wrongType = await call(
        admin,
        "POST",
        `${collectionOf(bad({}, "x"))}?fieldValidation=Strict`,
        bad({ ...devSpecRaw(), clusterName: 42 }, "bad-type"),
      );
      expect(wrongType.status).toBe(422);
      expect(message(wrongType)).toContain(
        'spec.clusterName: Invalid value: "integer": spec.clusterName in body must be of type string',
      );
      const enumValue = await call(
        admin,
        "POST",
        collectionOf(bad({}, "x")),
        bad({ ...devSpecRaw(), distribution: "rke2" }, "bad-enum"),
      );
      expect(enumValue.status).toBe(422);
      expect(message(enumValue)).toContain('spec.distribution: Unsupported value: "rke2"');
      const missing = await call(
        admin,
        "POST",
        collectionOf(bad({}, "x")),
        bad({ ...devSpecRaw(), network: {} }, "bad-missing"),
      );
      expect(message(missing)).toContain("spec.network.cidr: Required value");
      const unknown = await call(
        admin,
        "POST",
        `${collectionOf(bad({}, "x"))}?fieldValidation=Strict`,
        bad({ ...devSpecRaw(), clustername: "typo" }, "bad-unknown"),
      );
      expect(unknown.status).toBeGreaterThanOrEqual(400);
      expect(message(unknown)).toContain('unknown field "spec.clustername"');
      expect((await call(admin, "GET", lbPath("bad-type"))).status).toBe(404);
    });

    test("clusterName, network.cidr, lbAddresses, vrrp.routerId and syncNetwork are immutable with the CEL message; backends may change", async () => {
      const patch = (name: string, spec: unknown) => call(admin, "PATCH", lbPath(name), { spec }, MERGE);
      const refused = async (name: string, spec: unknown, field: string) => {
        const r = await patch(name, spec);
        expect(r.status).toBe(422);
        expect(message(r)).toMatch(
          new RegExp(
            `${field.replace(/[.[\]]/g, "\\$&")}: Invalid value: (.*?: )?is immutable: the two LBs would apply a change at different moments`,
          ),
        );
      };
      await refused(LAB, { clusterName: "lab2" }, "spec.clusterName");
      await refused(LAB, { network: { cidr: "192.168.0.0/16" } }, "spec.network.cidr");
      await refused(LAB, { network: { lbAddresses: ["192.168.100.2", "192.168.100.4"] } }, "spec.network.lbAddresses");
      await refused(LAB, { vrrp: { routerId: 7 } }, "spec.vrrp.routerId");
      // optional ones: setting them where they were absent counts as a change, and so does removing them
      await refused(
        "variant-talos-minimal",
        { network: { lbAddresses: ["10.20.30.2", "10.20.30.3"] } },
        "spec.network.lbAddresses",
      );
      await refused(LAB, { network: { lbAddresses: null } }, "spec.network.lbAddresses");
      await refused(LAB, { syncNetwork: { cidr: "172.31.255.248/29" } }, "spec.syncNetwork");
      await refused("variant-sync-link", { syncNetwork: { cidr: "172.31.255.240/29" } }, "spec.syncNetwork");
      await refused("variant-sync-link", { syncNetwork: null }, "spec.syncNetwork");

      const before = await getLb(LAB);
      const ok = await patch(LAB, {
        apiBackend: { addresses: ["192.168.100.10", "192.168.100.13"] },
        ingressBackend: { nodeSelector: { matchLabels: { "node-role.kubernetes.io/infra": "" } } },
      });
      expect(ok.status).toBe(200);
      const after = await getLb(LAB);
      expect(after.spec.clusterName).toBe("lab");
      expect((after.spec.apiBackend as { addresses: string[] }).addresses).toEqual([
        "192.168.100.10",
        "192.168.100.13",
      ]);
      expect(after.metadata.generation).toBe(before.metadata.generation + 1);
    });
  });

  describe("status", () => {
    test("spec written through /status is ignored, and status written through the main resource is ignored", async () => {
      const before = await getLb(LAB);
      const viaStatus = await call(
        admin,
        "PATCH",
        `${lbPath(LAB)}/status`,
        {
          spec: { apiBackend: { addresses: ["192.168.100.99"] } },
          status: { conditions: [{ ...ready("True"), type: "Redundant", reason: "BothReady" }] },
        },
        MERGE,
      );
      expect(viaStatus.status).toBe(200);
      const afterStatus = await getLb(LAB);
      expect(afterStatus.spec).toEqual(before.spec);
      expect(afterStatus.metadata.generation).toBe(before.metadata.generation);
      expect(afterStatus.status?.conditions).toEqual([{ ...ready("True"), type: "Redundant", reason: "BothReady" }]);

      const viaMain = await call(
        admin,
        "PATCH",
        lbPath(LAB),
        { status: { conditions: null, imageSwitch: { phase: "Pending" } } },
        MERGE,
      );
      expect(viaMain.status).toBe(200);
      expect((await getLb(LAB)).status).toEqual(afterStatus.status);
    });

    test("the status schema refuses a wrong VRRP state and a Condition without a reason (counter-cases)", async () => {
      const apply = (status: unknown) =>
        call(
          admin,
          "PATCH",
          `${lbPath(LAB)}/status?fieldManager=test-bad`,
          { apiVersion: API_VERSION, kind: KIND, metadata: { name: LAB, namespace: NS }, status },
          APPLY,
        );
      const state = await apply({
        loadBalancers: [{ ...entry("lab-lb-1", "primary", "Master"), vrrpState: "MASTER" }],
      });
      expect(state.status).toBe(422);
      expect(message(state)).toContain('status.loadBalancers[0].vrrpState: Unsupported value: "MASTER"');
      const { reason: _, ...noReason } = ready("True");
      const cond = await apply({
        loadBalancers: [{ ...entry("lab-lb-1", "primary", "Master"), conditions: [noReason] }],
      });
      expect(cond.status).toBe(422);
      expect(message(cond)).toContain("status.loadBalancers[0].conditions[0].reason: Required value");
    });

    test("two field managers (lb1, lb2) each apply their own status.loadBalancers entry without conflict; both survive", async () => {
      const kc = agent.tokenRequest;
      const apply = (lb: string, e: LoadBalancerEntryStatus, force = false) =>
        call(
          kc,
          "PATCH",
          `${lbPath(LAB)}/status?fieldManager=${encodeURIComponent(statusFieldManager(lb))}${force ? "&force=true" : ""}`,
          loadBalancerEntryApply({ name: LAB }, e),
          APPLY,
        );
      expect((await apply("lab-lb-1", entry("lab-lb-1", "primary", "Master"))).status).toBe(200);
      expect((await apply("lab-lb-2", entry("lab-lb-2", "secondary", "Backup"))).status).toBe(200);
      const later = "2025-01-02T03:05:00Z";
      expect((await apply("lab-lb-1", entry("lab-lb-1", "primary", "Master", later))).status).toBe(200);

      const lb = await getLb(LAB);
      const entries = (lb.status as { loadBalancers: LoadBalancerEntryStatus[] }).loadBalancers;
      expect(entries.map((e) => [e.name, e.vrrpState, e.heartbeat])).toEqual([
        ["lab-lb-1", "Master", later],
        ["lab-lb-2", "Backup", NOW],
      ]);
      // each manager owns exactly its own entry
      const owned = (m: string) =>
        JSON.stringify(
          lb.metadata.managedFields.find((f) => f.manager === m && f.subresource === "status")?.fieldsV1 ?? {},
        );
      expect(owned(statusFieldManager("lab-lb-1"))).toContain('k:{\\"name\\":\\"lab-lb-1\\"}');
      expect(owned(statusFieldManager("lab-lb-1"))).not.toContain("lab-lb-2");
      expect(owned(statusFieldManager("lab-lb-2"))).toContain('k:{\\"name\\":\\"lab-lb-2\\"}');
      expect(owned(statusFieldManager("lab-lb-2"))).not.toContain("lab-lb-1");

      // counter-case: writing the peer's entry is a conflict, so the key really separates the owners
      const clash = await apply("lab-lb-2", { ...entry("lab-lb-1", "primary", "Backup") });
      expect(clash.status).toBe(409);
      expect(message(clash)).toContain(`conflicts with "${statusFieldManager("lab-lb-1")}" with subresource "status"`);
      expect(message(clash)).toContain('.status.loadBalancers[name="lab-lb-1"].vrrpState');
    });

    test("printer columns show cluster, API VIP, the active LB and Redundant", async () => {
      const table = (await call(admin, "GET", lbPath(LAB), undefined, undefined, TABLE)).body as {
        columnDefinitions: { name: string }[];
        rows: { cells: unknown[] }[];
      };
      const cols = table.columnDefinitions.map((c) => c.name);
      expect(cols).toEqual(["Name", ...PRINTER_COLUMNS.map((c) => c.name)]);
      const cell = (name: string) => table.rows[0]!.cells[cols.indexOf(name)];
      expect([cell("Name"), cell("Cluster"), cell("API VIP"), cell("Active"), cell("Redundant")]).toEqual([
        LAB,
        "lab",
        "192.168.100.100",
        "lab-lb-1",
        "True",
      ]);
    });
  });

  describe.each(["secret", "tokenRequest"] as const)("RBAC with the agent's %s token", (source) => {
    const as = () => agent[source];
    const asServices = () => servicesAgent[source];
    const forbiddenAs =
      (kc: () => K8s.KubeConfig, user: string) =>
      async (method: string, path: string, body?: unknown, contentType?: string) => {
        const r = await call(kc(), method, path, body, contentType);
        expect([method, path, r.status]).toEqual([method, path, 403]);
        expect(message(r)).toContain(`User "${user}" cannot`);
      };
    const okAs =
      (kc: () => K8s.KubeConfig) =>
      async (method: string, path: string, body?: unknown, contentType?: string, code = 200) => {
        const r = await call(kc(), method, path, body, contentType);
        expect([method, path, r.status, r.status === code ? "" : message(r)]).toEqual([method, path, code, ""]);
        return r;
      };
    const expectForbidden = forbiddenAs(as, lab.user);

    test("the server authenticates the token as the agent's ServiceAccount", async () => {
      const r = await call(as(), "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", {
        apiVersion: "authentication.k8s.io/v1",
        kind: "SelfSubjectReview",
      });
      expect((r.body as { status: { userInfo: { username: string } } }).status.userInfo.username).toBe(lab.user);
      const s = await call(asServices(), "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", {
        apiVersion: "authentication.k8s.io/v1",
        kind: "SelfSubjectReview",
      });
      expect((s.body as { status: { userInfo: { username: string } } }).status.userInfo.username).toBe(svc.user);
    });

    test("allowed: read and watch Nodes, get and watch its own LoadBalancer, patch its status, renew its token, record an Event", async () => {
      const ok = okAs(as);
      await ok("GET", "/api/v1/nodes/cp-0");
      await ok("GET", "/api/v1/nodes");
      await ok("GET", "/api/v1/nodes?watch=true&timeoutSeconds=5");
      expect(((await ok("GET", lbPath(LAB))).body as { spec: { clusterName: string } }).spec.clusterName).toBe("lab");
      const byName = `fieldSelector=${encodeURIComponent(`metadata.name=${LAB}`)}`;
      await ok("GET", `/apis/${GROUP}/${VERSION}/namespaces/${NS}/${PLURAL}?${byName}`);
      await ok("GET", `/apis/${GROUP}/${VERSION}/namespaces/${NS}/${PLURAL}?${byName}&watch=true&timeoutSeconds=5`);
      await ok("GET", `${lbPath(LAB)}/status`);
      await ok(
        "PATCH",
        `${lbPath(LAB)}/status?fieldManager=${encodeURIComponent(statusFieldManager("lab-lb-2"))}`,
        loadBalancerEntryApply({ name: LAB }, entry("lab-lb-2", "secondary", "Backup")),
        APPLY,
      );
      await ok(
        "POST",
        `/api/v1/namespaces/${NS}/serviceaccounts/${lab.serviceAccount}/token`,
        { apiVersion: "authentication.k8s.io/v1", kind: "TokenRequest", spec: { expirationSeconds: 600 } },
        undefined,
        201,
      );
      await ok(
        "POST",
        `/apis/events.k8s.io/v1/namespaces/${NS}/events`,
        {
          apiVersion: "events.k8s.io/v1",
          kind: "Event",
          metadata: { generateName: "lab-" },
          eventTime: "2025-01-02T03:04:05.000000Z",
          reportingController: "edgepair.io/agent",
          reportingInstance: "lab-lb-1",
          action: "Failover",
          reason: "BecameMaster",
          type: "Normal",
          regarding: { apiVersion: API_VERSION, kind: KIND, name: LAB, namespace: NS },
        },
        undefined,
        201,
      );
    });

    test("forbidden (403): Secrets, the spec, the other pair, other ServiceAccounts' tokens, deleting Nodes, Leases", async () => {
      await expectForbidden("GET", `/api/v1/namespaces/${NS}/secrets`);
      await expectForbidden("GET", `/api/v1/namespaces/${NS}/secrets/${lab.tokenSecret}`);
      await expectForbidden("GET", "/api/v1/secrets");
      await expectForbidden("PATCH", lbPath(LAB), { spec: { apiBackend: { addresses: ["192.168.100.66"] } } }, MERGE);
      await expectForbidden("PUT", lbPath(LAB), await getLb(LAB));
      await expectForbidden("DELETE", lbPath(LAB));
      await expectForbidden("GET", lbPath(OTHER));
      await expectForbidden(
        "PATCH",
        `${lbPath(OTHER)}/status?fieldManager=x`,
        loadBalancerEntryApply({ name: OTHER }, entry("other-lb-1", "primary", "Master")),
        APPLY,
      );
      // resourceNames cannot restrict a list or watch that does not select the name
      await expectForbidden("GET", `/apis/${GROUP}/${VERSION}/namespaces/${NS}/${PLURAL}`);
      await expectForbidden("GET", `/apis/${GROUP}/${VERSION}/namespaces/${NS}/${PLURAL}?watch=true`);
      await expectForbidden("POST", `/api/v1/namespaces/${NS}/serviceaccounts/${other.serviceAccount}/token`, {
        apiVersion: "authentication.k8s.io/v1",
        kind: "TokenRequest",
        spec: {},
      });
      await expectForbidden("DELETE", "/api/v1/nodes/cp-0");
      await expectForbidden("PATCH", "/api/v1/nodes/cp-0", { metadata: { labels: { x: "y" } } }, MERGE);
      await expectForbidden("POST", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases", {
        apiVersion: "coordination.k8s.io/v1",
        kind: "Lease",
        metadata: { name: "edgepair" },
      });
      // this pair has no Services: Events in its own namespace only (the services pair's may go anywhere, below)
      await expectForbidden("POST", "/apis/events.k8s.io/v1/namespaces/default/events", {
        apiVersion: "events.k8s.io/v1",
        kind: "Event",
        metadata: { name: "x" },
      });
      await expectForbidden("GET", `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${CRD_NAME}`);

      // nothing of it happened
      expect(((await getLb(LAB)).spec.apiBackend as { addresses: string[] }).addresses).not.toContain("192.168.100.66");
      expect((await call(admin, "GET", "/api/v1/nodes/cp-0")).status).toBe(200);
    });

    test("without services (this pair): forbidden (403): list, watch and get Services, patch a finalizer or a status, an Event beside a Service, its Lease", async () => {
      const before = await getService();
      await expectForbidden("GET", "/api/v1/services");
      await expectForbidden("GET", "/api/v1/services?watch=true&allowWatchBookmarks=true&timeoutSeconds=5");
      await expectForbidden("GET", `/api/v1/namespaces/${APPS}/services`);
      await expectForbidden("GET", servicePath());
      await expectForbidden("PATCH", servicePath(), { metadata: { finalizers: [FINALIZER] } }, STRATEGIC);
      await expectForbidden(
        "PATCH",
        `${servicePath()}/status`,
        { status: { loadBalancer: { ingress: [{ ip: "192.168.100.66", ipMode: "VIP" }] } } },
        MERGE,
      );
      await expectForbidden(
        "POST",
        `/apis/events.k8s.io/v1/namespaces/${APPS}/events`,
        serviceEvent(before, "lab-lb-1"),
      );
      await expectForbidden("POST", leasePath(NS), lease(lab.servicesLease, "lab-lb-1"));
      await expectForbidden("GET", leasePath(NS, lab.servicesLease));

      // nothing of it happened
      expect((await getService()).metadata.resourceVersion).toBe(before.metadata.resourceVersion);
      expect((await call(admin, "GET", leasePath(NS, lab.servicesLease))).status).toBe(404);
    });

    test("with services (pair svc): allowed: list and watch Services cluster-wide, get one, add and remove its finalizer, patch its status, record an Event on it, create, get and update its own Lease", async () => {
      const ok = okAs(asServices);
      const list = (await ok("GET", "/api/v1/services")).body as { items: ServiceObject[] };
      expect(list.items.map((i) => `${i.metadata.namespace}/${i.metadata.name}`)).toContain(`${APPS}/${WEB}`);
      await ok("GET", "/api/v1/services?watch=true&allowWatchBookmarks=true&timeoutSeconds=5");
      const before = await getService();
      expect(((await ok("GET", servicePath())).body as ServiceObject).metadata.uid).toBe(before.metadata.uid);

      // the finalizer: a strategic merge patch merges into the list (a JSON merge patch would replace it), the
      // directive removes ours only; somebody else's finalizer and the spec stay as they were
      const added = (await ok("PATCH", servicePath(), { metadata: { finalizers: [FINALIZER] } }, STRATEGIC))
        .body as ServiceObject;
      expect([...(added.metadata.finalizers ?? [])].sort()).toEqual([FINALIZER, FOREIGN_FINALIZER].sort());
      const removed = (
        await ok(
          "PATCH",
          servicePath(),
          { metadata: { "$deleteFromPrimitiveList/finalizers": [FINALIZER] } },
          STRATEGIC,
        )
      ).body as ServiceObject;
      expect(removed.metadata.finalizers).toEqual([FOREIGN_FINALIZER]);

      // the status: a merge patch guarded by resourceVersion, as the writer sends it
      const condition = {
        type: CONDITION_TYPE,
        status: "True",
        reason: "Allocated",
        message: "192.168.100.200 from pool default",
        lastTransitionTime: NOW,
      };
      const ingress = [{ ip: "192.168.100.200", ipMode: "VIP" }];
      const statusPatch = (resourceVersion: string) => ({
        metadata: { resourceVersion },
        status: { loadBalancer: { ingress }, conditions: [condition] },
      });
      await ok("PATCH", `${servicePath()}/status`, statusPatch(removed.metadata.resourceVersion), MERGE);
      // a stale resourceVersion (before the finalizer patches) is a conflict, not a lost update
      await ok("PATCH", `${servicePath()}/status`, statusPatch(before.metadata.resourceVersion), MERGE, 409);
      const after = await getService();
      expect(after.spec).toEqual(before.spec);
      expect(after.metadata.finalizers).toEqual([FOREIGN_FINALIZER]);
      expect(after.status).toEqual({ loadBalancer: { ingress }, conditions: [condition] });

      // an Event on the Service, in the Service's namespace
      await ok(
        "POST",
        `/apis/events.k8s.io/v1/namespaces/${APPS}/events`,
        serviceEvent(after, "svc-lb-1"),
        undefined,
        201,
      );

      // its Lease: created (the other token's run created it already: an admin removes it first), read, updated
      expect([200, 404]).toContain((await call(admin, "DELETE", leasePath(NS, svc.servicesLease))).status);
      const created = (await ok("POST", leasePath(NS), lease(svc.servicesLease, "svc-lb-1"), undefined, 201))
        .body as LeaseObject;
      const read = (await ok("GET", leasePath(NS, svc.servicesLease))).body as LeaseObject;
      expect(read.spec.holderIdentity).toBe("svc-lb-1");
      const updated = (
        await ok(
          "PUT",
          leasePath(NS, svc.servicesLease),
          lease(svc.servicesLease, "svc-lb-2", read.metadata.resourceVersion),
        )
      ).body as LeaseObject;
      expect(updated.spec.holderIdentity).toBe("svc-lb-2");
      // guarded too: the peer's update from the older record loses
      await ok(
        "PUT",
        leasePath(NS, svc.servicesLease),
        lease(svc.servicesLease, "svc-lb-1", created.metadata.resourceVersion),
        undefined,
        409,
      );
    });

    test("with services (pair svc): forbidden (403): create, update or delete a Service, update its status, Endpoints and EndpointSlices, other Leases, Leases elsewhere, Secrets", async () => {
      const forbidden = forbiddenAs(asServices, svc.user);
      const before = await getService();
      const otherLeases = [other.servicesLease, `${svc.servicesLease}-old`];
      const leasesBefore = await Promise.all(otherLeases.map((name) => rvOf(leasePath(NS, name))));

      await forbidden("POST", `/api/v1/namespaces/${APPS}/services`, {
        apiVersion: "v1",
        kind: "Service",
        metadata: { name: "evil", namespace: APPS },
        spec: { type: "LoadBalancer", ports: [{ port: 80 }] },
      });
      await forbidden("PUT", servicePath(), { ...before, metadata: { ...before.metadata, labels: { x: "y" } } });
      await forbidden("DELETE", servicePath());
      await forbidden("PUT", `${servicePath()}/status`, {
        ...before,
        status: { loadBalancer: { ingress: [{ ip: "192.168.100.66", ipMode: "VIP" }] } },
      });
      await forbidden("GET", `/api/v1/namespaces/${APPS}/endpoints/${WEB}`);
      await forbidden("GET", "/api/v1/endpoints");
      await forbidden("GET", `/apis/discovery.k8s.io/v1/namespaces/${APPS}/endpointslices`);
      await forbidden("GET", "/apis/discovery.k8s.io/v1/endpointslices?watch=true");
      // get and update name the Lease: pinned to its own; another pair's and another name beside it are refused
      for (const name of otherLeases) {
        await forbidden("GET", leasePath(NS, name));
        await forbidden("PUT", leasePath(NS, name), lease(name, "svc-lb-1"));
        await forbidden("PATCH", leasePath(NS, name), { spec: { holderIdentity: "svc-lb-1" } }, MERGE);
        await forbidden("DELETE", leasePath(NS, name));
      }
      await forbidden("GET", leasePath(NS));
      await forbidden("GET", `${leasePath(NS)}?watch=true`);
      // its own: get and update only
      await forbidden("PATCH", leasePath(NS, svc.servicesLease), { spec: { holderIdentity: "x" } }, MERGE);
      await forbidden("DELETE", leasePath(NS, svc.servicesLease));
      // create names no object, but the Role holds it in its own namespace only
      await forbidden("POST", leasePath(APPS), lease(svc.servicesLease, "svc-lb-1"));
      await forbidden("POST", leasePath("kube-system"), lease("edgepair", "svc-lb-1"));
      // Events: create only
      await forbidden("GET", `/apis/events.k8s.io/v1/namespaces/${APPS}/events`);
      await forbidden("GET", "/apis/events.k8s.io/v1/events?watch=true");
      // Secrets, still
      await forbidden("GET", "/api/v1/secrets");
      await forbidden("GET", `/api/v1/namespaces/${APPS}/secrets`);
      await forbidden("GET", `/api/v1/namespaces/${NS}/secrets/${svc.tokenSecret}`);
      // and the pair rules stay its own
      await forbidden("GET", lbPath(LAB));

      // nothing of it happened
      const after = await getService();
      expect(after.metadata.resourceVersion).toBe(before.metadata.resourceVersion);
      expect(after).toEqual(before);
      const inApps = (await call(admin, "GET", `/api/v1/namespaces/${APPS}/services`)).body as {
        items: ServiceObject[];
      };
      expect(inApps.items.map((i) => i.metadata.name)).toEqual([WEB]);
      expect(await Promise.all(otherLeases.map((name) => rvOf(leasePath(NS, name))))).toEqual(leasesBefore);
      expect((await call(admin, "GET", leasePath(APPS, svc.servicesLease))).status).toBe(404);
    });
  });
});
