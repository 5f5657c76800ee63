/**
 * The Kubernetes API server fixture (test/fixtures/kube-apiserver.ts) with real requests: a namespaced CRD with a
 * status subresource, a ServiceAccount whose Role grants exactly one named LoadBalancer (get/list/watch), patch on
 * that object's status and get on one named Secret, and a TokenRequest token that must be refused (403) everything
 * else. Needs ./tools/build-engines (etcd, kube-apiserver, kube-controller-manager); fails, not skips, without them.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SERVICE_ACCOUNT_ISSUER, startKubeApiServer, type KubeApiServer } from "./fixtures/kube-apiserver";
import { k8s, type K8s } from "./fixtures/kube/client-node";
import { processExists } from "./fixtures/kube/daemon";

jest.setTimeout(120_000);

const GROUP = "edgepair.dev";
const VERSION = "v1alpha1";
const PLURAL = "loadbalancers";
const CRD = `${PLURAL}.${GROUP}`;
const NS = "edgepair-system";
const SA = "edgepair-agent";
const LB = "pair-a";
const OTHER_LB = "pair-b";
const SECRET = "pair-a-vrrp";
const OTHER_SECRET = "pair-b-vrrp";
const USER = `system:serviceaccount:${NS}:${SA}`;

const lb = (name: string) => ({ group: GROUP, version: VERSION, namespace: NS, plural: PLURAL, name });
const mergePatch = () => k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Clients {
  core: K8s.CoreV1Api;
  custom: K8s.CustomObjectsApi;
  rbac: K8s.RbacAuthorizationV1Api;
  ext: K8s.ApiextensionsV1Api;
  authn: K8s.AuthenticationV1Api;
}

function clients(kubeConfig: string): Clients {
  const kc = new k8s.KubeConfig();
  kc.loadFromString(kubeConfig);
  return {
    core: kc.makeApiClient(k8s.CoreV1Api),
    custom: kc.makeApiClient(k8s.CustomObjectsApi),
    rbac: kc.makeApiClient(k8s.RbacAuthorizationV1Api),
    ext: kc.makeApiClient(k8s.ApiextensionsV1Api),
    authn: kc.makeApiClient(k8s.AuthenticationV1Api),
  };
}

/** The refusal of a request: HTTP status and the Status object's reason and message. */
async function refusal(request: Promise<unknown>): Promise<{ code: number; reason?: string; message?: string }> {
  try {
    await request;
  } catch (e) {
    if (!(e instanceof k8s.ApiException)) throw e;
    // the body is the server's Status object (as a string for some codes, absent for 401)
    const body: unknown = typeof e.body === "string" && e.body.startsWith("{") ? JSON.parse(e.body) : e.body;
    const status = (body ?? {}) as { reason?: string; message?: string };
    return { code: e.code, reason: status.reason, message: status.message };
  }
  throw new Error("the request succeeded");
}

async function expectForbidden(request: Promise<unknown>, what: RegExp): Promise<void> {
  const r = await refusal(request);
  expect(r.code).toBe(403);
  expect(r.reason).toBe("Forbidden");
  expect(r.message).toContain(`User "${USER}" cannot`);
  expect(r.message).toMatch(what);
}

const jwtClaims = (jwt: string) =>
  JSON.parse(Buffer.from(jwt.split(".")[1]!, "base64url").toString("utf8")) as Record<string, unknown>;

describe("Kubernetes API server fixture (etcd + kube-apiserver + kube-controller-manager on 127.0.0.1)", () => {
  let kube: KubeApiServer | undefined;
  let admin: Clients;
  let agent: Clients;
  let token: string;

  beforeAll(async () => {
    kube = await startKubeApiServer();
    admin = clients(kube.adminKubeConfig);

    await admin.ext.createCustomResourceDefinition({
      body: {
        apiVersion: "apiextensions.k8s.io/v1",
        kind: "CustomResourceDefinition",
        metadata: { name: CRD },
        spec: {
          group: GROUP,
          scope: "Namespaced",
          names: { plural: PLURAL, singular: "loadbalancer", kind: "LoadBalancer", listKind: "LoadBalancerList" },
          versions: [
            {
              name: VERSION,
              served: true,
              storage: true,
              subresources: { status: {} },
              schema: {
                openAPIV3Schema: {
                  type: "object",
                  properties: {
                    spec: { type: "object", properties: { vip: { type: "string" } } },
                    status: {
                      type: "object",
                      properties: { phase: { type: "string" }, activeNode: { type: "string" } },
                    },
                  },
                },
              },
            },
          ],
        },
      },
    });
    const deadline = Date.now() + 30_000;
    for (;;) {
      const crd = await admin.ext.readCustomResourceDefinition({ name: CRD });
      if (crd.status?.conditions?.some((c) => c.type === "Established" && c.status === "True")) break;
      if (Date.now() > deadline) throw new Error(`CRD ${CRD} not Established: ${JSON.stringify(crd.status)}`);
      await sleep(100);
    }

    await admin.core.createNamespace({ body: { metadata: { name: NS } } });
    await admin.core.createNamespacedServiceAccount({ namespace: NS, body: { metadata: { name: SA } } });
    for (const name of [LB, OTHER_LB]) {
      const body = {
        apiVersion: `${GROUP}/${VERSION}`,
        kind: "LoadBalancer",
        metadata: { name },
        spec: { vip: "192.0.2.10" },
      };
      await admin.custom.createNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace: NS,
        plural: PLURAL,
        body,
      });
    }
    for (const name of [SECRET, OTHER_SECRET]) {
      await admin.core.createNamespacedSecret({
        namespace: NS,
        body: { metadata: { name }, stringData: { password: `${name}-password` } },
      });
    }
    await admin.rbac.createNamespacedRole({
      namespace: NS,
      body: {
        metadata: { name: SA },
        rules: [
          { apiGroups: [GROUP], resources: [PLURAL], resourceNames: [LB], verbs: ["get", "list", "watch"] },
          { apiGroups: [GROUP], resources: [`${PLURAL}/status`], resourceNames: [LB], verbs: ["patch"] },
          { apiGroups: [""], resources: ["secrets"], resourceNames: [SECRET], verbs: ["get"] },
        ],
      },
    });
    await admin.rbac.createNamespacedRoleBinding({
      namespace: NS,
      body: {
        metadata: { name: SA },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: SA },
        subjects: [{ kind: "ServiceAccount", name: SA, namespace: NS }],
      },
    });

    const tr = await admin.core.createNamespacedServiceAccountToken({
      name: SA,
      namespace: NS,
      body: { spec: { audiences: [SERVICE_ACCOUNT_ISSUER], expirationSeconds: 600 } },
    });
    token = tr.status!.token;
    agent = clients(kube.kubeConfigFor(token));
  }, 120_000);

  afterAll(async () => {
    await kube?.stop();
  }, 60_000);

  test("the controller manager made the namespace usable: default ServiceAccount and kube-root-ca.crt with the fixture CA", async () => {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const refused = await refusal(admin.core.readNamespacedServiceAccount({ name: "default", namespace: NS })).catch(
        () => undefined,
      );
      if (refused === undefined) break; // read succeeded
      expect(refused.code).toBe(404);
      if (Date.now() > deadline) throw new Error(`no default ServiceAccount in ${NS}`);
      await sleep(100);
    }
    let cm: K8s.V1ConfigMap | undefined;
    while (!cm && Date.now() < deadline) {
      cm = await admin.core.readNamespacedConfigMap({ name: "kube-root-ca.crt", namespace: NS }).catch(() => undefined);
      if (!cm) await sleep(100);
    }
    expect(cm?.data?.["ca.crt"]?.trim()).toBe(kube!.caPem.trim());
  });

  test("the TokenRequest token is a JWT of the ServiceAccount; the server authenticates it as that ServiceAccount", async () => {
    const claims = jwtClaims(token);
    expect(claims.iss).toBe(SERVICE_ACCOUNT_ISSUER);
    expect(claims.sub).toBe(USER);
    expect(claims.aud).toEqual([SERVICE_ACCOUNT_ISSUER]);

    const review = await agent.authn.createSelfSubjectReview({
      body: { apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" },
    });
    expect(review.status?.userInfo?.username).toBe(USER);
    expect(review.status?.userInfo?.groups).toEqual(
      expect.arrayContaining(["system:serviceaccounts", `system:serviceaccounts:${NS}`, "system:authenticated"]),
    );
  });

  test("a made-up token is unauthenticated (401), not forbidden", async () => {
    const stranger = clients(kube!.kubeConfigFor("not-a-token"));
    expect((await refusal(stranger.core.listNamespacedSecret({ namespace: NS }))).code).toBe(401);
  });

  test("the ServiceAccount can do what its Role grants", async () => {
    const got = (await agent.custom.getNamespacedCustomObject(lb(LB))) as {
      metadata: { name: string };
      spec: { vip: string };
    };
    expect(got.metadata.name).toBe(LB);
    expect(got.spec.vip).toBe("192.0.2.10");

    // list/watch with resourceNames works for a field selector on that one name
    const list = (await agent.custom.listNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: NS,
      plural: PLURAL,
      fieldSelector: `metadata.name=${LB}`,
    })) as {
      items: { metadata: { name: string } }[];
    };
    expect(list.items.map((i) => i.metadata.name)).toEqual([LB]);

    const patched = (await agent.custom.patchNamespacedCustomObjectStatus(
      { ...lb(LB), body: { status: { phase: "Active", activeNode: "lb-0" } } },
      mergePatch(),
    )) as { status: { phase: string; activeNode: string } };
    expect(patched.status).toEqual({ phase: "Active", activeNode: "lb-0" });
    const seenByAdmin = (await admin.custom.getNamespacedCustomObject(lb(LB))) as { status?: { phase?: string } };
    expect(seenByAdmin.status?.phase).toBe("Active");

    const secret = await agent.core.readNamespacedSecret({ name: SECRET, namespace: NS });
    expect(Buffer.from(secret.data!.password!, "base64").toString()).toBe(`${SECRET}-password`);
  });

  test("everything else is refused with 403 Forbidden for system:serviceaccount:<ns>:<sa>", async () => {
    await expectForbidden(
      agent.custom.getNamespacedCustomObject(lb(OTHER_LB)),
      /cannot get resource "loadbalancers" in API group "edgepair.dev"/,
    );
    await expectForbidden(
      agent.custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NS, plural: PLURAL }),
      /cannot list resource "loadbalancers"/,
    );
    await expectForbidden(
      agent.custom.patchNamespacedCustomObjectStatus(
        { ...lb(OTHER_LB), body: { status: { phase: "Active" } } },
        mergePatch(),
      ),
      /cannot patch resource "loadbalancers\/status"/,
    );
    await expectForbidden(agent.core.listNamespacedSecret({ namespace: NS }), /cannot list resource "secrets"/);
    await expectForbidden(
      agent.core.readNamespacedSecret({ name: OTHER_SECRET, namespace: NS }),
      /cannot get resource "secrets"/,
    );
    await expectForbidden(agent.custom.deleteNamespacedCustomObject(lb(LB)), /cannot delete resource "loadbalancers"/);
    await expectForbidden(
      agent.custom.patchNamespacedCustomObject({ ...lb(LB), body: { spec: { vip: "192.0.2.99" } } }, mergePatch()),
      /cannot patch resource "loadbalancers" in API group/,
    );
    await expectForbidden(
      agent.custom.createNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace: NS,
        plural: PLURAL,
        body: {
          apiVersion: `${GROUP}/${VERSION}`,
          kind: "LoadBalancer",
          metadata: { name: "pair-c" },
          spec: { vip: "192.0.2.30" },
        },
      }),
      /cannot create resource "loadbalancers"/,
    );
    await expectForbidden(agent.core.listNode(), /cannot list resource "nodes" in API group "" at the cluster scope/);

    // nothing of it happened
    const after = (await admin.custom.getNamespacedCustomObject(lb(LB))) as { spec: { vip: string } };
    expect(after.spec.vip).toBe("192.0.2.10");
    const names = (
      (await admin.custom.listNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace: NS,
        plural: PLURAL,
      })) as {
        items: { metadata: { name: string } }[];
      }
    ).items.map((i) => i.metadata.name);
    expect(names.sort()).toEqual([LB, OTHER_LB]);
  });

  test("stop() ends every daemon, frees the API port and removes the temp dir", async () => {
    const { dir, pids, server } = kube!;
    const all = [pids.etcd, pids.apiServer, pids.controllerManager!];
    expect(all.every((pid) => pid > 0 && processExists(pid))).toBe(true);
    expect(existsSync(dir)).toBe(true);

    await kube!.stop();

    expect(all.filter((pid) => processExists(pid))).toEqual([]);
    expect(existsSync(dir)).toBe(false);
    const port = Number(new URL(server).port);
    const refused = await new Promise<string>((resolve) => {
      const s = connect(port, "127.0.0.1");
      s.once("connect", () => (s.destroy(), resolve("connected")));
      s.once("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    });
    expect(refused).toBe("ECONNREFUSED");
    await kube!.stop(); // idempotent
  });
});

describe("Kubernetes API server fixture failures", () => {
  test("missing binaries: an error that says to run ./tools/build-engines", async () => {
    await expect(startKubeApiServer({ binDir: "/nonexistent/edgepair-engines/bin" })).rejects.toThrow(
      /\.\/tools\/build-engines/,
    );
  });

  test("a start that fails halfway stops what it started, removes its temp dir and shows the daemon log", async () => {
    const tmpRoot = mkdtempSync(join(tmpdir(), "edgepair-kube-fail-"));
    try {
      const err = await startKubeApiServer({ tmpRoot, apiServerArgs: ["--no-such-flag"] }).then(
        () => undefined,
        (e: Error) => e,
      );
      expect(err?.message).toMatch(/kube-apiserver exited with code \d+/);
      expect(err?.message).toContain("unknown flag: --no-such-flag");
      expect(readdirSync(tmpRoot)).toEqual([]);
      // no process is left with an argument under tmpRoot (etcd's --data-dir was there)
      const leftovers = readdirSync("/proc")
        .filter((p) => /^\d+$/.test(p))
        .filter((p) => {
          try {
            return readFileSync(`/proc/${p}/cmdline`, "utf8").includes(tmpRoot);
          } catch {
            return false;
          }
        });
      expect(leftovers).toEqual([]);
    } finally {
      rmSync(tmpRoot, { recursive: true, force: true });
    }
  });
});
