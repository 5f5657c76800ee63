/**
 * BootcImage's build-and-push path for real: the real Pulumi engine (test/engine/pulumi-program.ts) runs a tiny
 * program whose BootcImage builds a FROM-scratch image with the real podman and pushes it to a real registry on
 * loopback (Debian's docker-registry with htpasswd auth, test/fixtures/registry.ts). Judged: the output is
 * repository@sha256:<digest> and the registry serves that digest; an unchanged context is no change (the engine says
 * "same" and podman records no new event); a changed file builds and pushes a new digest; the state holds the
 * password only as ciphertext; wrong credentials fail with podman's "unauthorized" and never the password.
 *
 * podman runs with its own storage (vfs) and runtime dirs in a temp dir through CONTAINERS_STORAGE_CONF and
 * CONTAINERS_CONF, given to the engine's environment and so to the provider, so the machine's image store is never
 * touched (containers/image still keeps its blob-info cache in /var/lib/containers/cache as root; it is only a cache).
 * A FROM scratch + COPY image needs no container runtime, cgroups or network. Root only (podman's storage as root).
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PulumiWorkspace, REPO_ROOT } from "./engine/pulumi-program";
import { MANIFEST_ACCEPT, startRegistry, type TestRegistry } from "./fixtures/registry";

jest.setTimeout(600_000);

const USER = "edgepair-pusher";
const PASSWORD = "reg-pass-7f3a9c21-correct-horse";
const WRONG = "wrong-pass-5e8d1b77-battery-staple";
const PROJECT = "bootcimage";
const b64 = (u: string, p: string) => Buffer.from(`${u}:${p}`).toString("base64");

const PROGRAM = `import * as pulumi from "@pulumi/pulumi";
import { BootcImage } from "./components/bootc-image";

const cfg = new pulumi.Config();
const image = new BootcImage("appliance", {
  build: {
    context: cfg.require("context"),
    repository: cfg.require("repository"),
    buildArgs: { GREETING: cfg.get("greeting") ?? "hello" },
    registryAuth: { username: cfg.require("registryUser"), password: cfg.requireSecret("registryPassword") },
    tlsVerify: false,
  },
});
export const ref = image.ref;
`;

/** The program's files: index.ts plus the component and its providers, at their repo paths. */
function programFiles(): Record<string, string> {
  const files: Record<string, string> = { "index.ts": PROGRAM };
  const copy = (rel: string) => (files[rel] = readFileSync(join(REPO_ROOT, rel), "utf8"));
  copy("tsconfig.json"); // rootDir "." (TypeScript 6 wants it once files sit in subdirectories)
  copy("components/bootc-image.ts");
  copy("spec/image-ref.ts");
  for (const f of readdirSync(join(REPO_ROOT, "providers/edgepair")).filter((n) => n.startsWith("image-build")))
    copy(`providers/edgepair/${f}`);
  return files;
}

const describeRoot = process.getuid?.() === 0 ? describe : describe.skip;

describeRoot("BootcImage build through the real engine, podman and a loopback registry", () => {
  let registry: TestRegistry;
  let ws: PulumiWorkspace;
  let tmp: string;
  let context: string;
  let repository: string;
  let providerTmp: string;
  const refs: string[] = [];

  /** podman's event log (events_logger=file): one line per build, tag, push. */
  const podmanEvents = () => {
    try {
      return readFileSync(join(tmp, "podman", "events.log"), "utf8")
        .split("\n")
        .filter((l) => l.trim() !== "").length;
    } catch {
      return 0;
    }
  };
  const buildOp = async () =>
    (await ws.previewJson()).steps.find((s) => s.type === "pulumi-nodejs:dynamic/edgepair:ImageBuild");
  const manifest = (digest: string) =>
    registry.get(`edgepair/test-appliance/manifests/${digest}`, { Accept: MANIFEST_ACCEPT });

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), "edgepair-bootc-image-"));
    const podman = join(tmp, "podman");
    providerTmp = join(tmp, "provider-tmp");
    for (const d of [podman, join(podman, "tmp"), providerTmp]) mkdirSync(d, { recursive: true });
    writeFileSync(
      join(podman, "storage.conf"),
      `[storage]\ndriver = "vfs"\nrunroot = "${podman}/run"\ngraphroot = "${podman}/root"\n`,
    );
    writeFileSync(
      join(podman, "containers.conf"),
      `[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\nevents_logfile_path = "${podman}/events.log"\n` +
        `tmp_dir = "${podman}/tmp"\nimage_copy_tmp_dir = "${podman}/tmp"\n`,
    );
    context = join(tmp, "context");
    mkdirSync(context);
    writeFileSync(
      join(context, "Containerfile"),
      "FROM scratch\nARG GREETING\nLABEL org.example.greeting=$GREETING\nCOPY hello.txt /hello.txt\n",
    );
    writeFileSync(join(context, "hello.txt"), "first\n");

    registry = await startRegistry({ username: USER, password: PASSWORD });
    repository = `${registry.host}/edgepair/test-appliance`;
    ws = await PulumiWorkspace.create({
      name: PROJECT,
      files: programFiles(),
      config: {
        [`${PROJECT}:context`]: context,
        [`${PROJECT}:repository`]: repository,
        [`${PROJECT}:registryUser`]: USER,
      },
      secrets: { [`${PROJECT}:registryPassword`]: PASSWORD },
      env: {
        CONTAINERS_STORAGE_CONF: join(podman, "storage.conf"),
        CONTAINERS_CONF: join(podman, "containers.conf"),
        TMPDIR: providerTmp,
      },
    });
  });

  afterAll(async () => {
    await ws?.dispose().catch((e) => console.error(`dispose: ${e}`));
    await registry?.stop();
    if (tmp) {
      // vfs layers are plain dirs; podman may have left read-only ones
      try {
        execFileSync("chmod", ["-R", "u+rwx", tmp], { timeout: 60_000 });
      } catch {
        // best effort before rm
      }
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  test("up builds and pushes; the output is repository@sha256:<digest> and the registry serves that digest", async () => {
    expect((await buildOp())?.op).toBe("create");
    const started = Date.now();
    await ws.up();
    console.log(`first up (build + push): ${Date.now() - started} ms`);
    const { ref } = (await ws.outputs()) as { ref: string };
    expect(ref).toMatch(new RegExp(`^${repository.replace(/[.]/g, "\\.")}@sha256:[0-9a-f]{64}$`));
    refs.push(ref);
    const digest = ref.split("@")[1] as string;
    const res = await manifest(digest);
    expect(res.status).toBe(200);
    expect(res.headers.get("docker-content-digest")).toBe(digest);
    const body = JSON.parse(await res.text()) as { layers?: unknown[] };
    expect(body.layers).toHaveLength(1);
    // the registry really enforces auth: without the right credentials it refuses
    const anon = await registry.get(
      `edgepair/test-appliance/manifests/${digest}`,
      { Accept: MANIFEST_ACCEPT },
      { username: USER, password: WRONG },
    );
    expect(anon.status).toBe(401);
  });

  test("a second up with nothing changed does not rebuild: the engine reports it unchanged, podman sees nothing", async () => {
    const events = podmanEvents();
    expect(events).toBeGreaterThan(0);
    expect((await buildOp())?.op).toBe("same");
    const r = await ws.up();
    expect(r.summary.resourceChanges).toEqual({ same: 3 });
    expect(podmanEvents()).toBe(events);
    expect(((await ws.outputs()) as { ref: string }).ref).toBe(refs[0]);
  });

  test("a changed file in the context rebuilds with a new tag and digest; both digests stay served", async () => {
    writeFileSync(join(context, "hello.txt"), "second\n");
    const step = await buildOp();
    expect(step?.op).toBe("update");
    expect(step?.diffs).toEqual(expect.arrayContaining(["contextHash", "tag"]));
    const diff = await ws.preview({ diff: true });
    expect(diff.stdout).toMatch(/contextHash/);
    expect(diff.stdout).not.toContain(PASSWORD);
    await ws.up();
    const { ref } = (await ws.outputs()) as { ref: string };
    expect(ref).not.toBe(refs[0]);
    expect(ref.startsWith(`${repository}@sha256:`)).toBe(true);
    refs.push(ref);
    for (const r of refs) expect((await manifest(r.split("@")[1] as string)).status).toBe(200);
  });

  test("the state holds the password only as a secret: not in the export, the backend files or the outputs", async () => {
    const plain = (await ws.exportState()).text;
    for (const s of [PASSWORD, b64(USER, PASSWORD)]) expect(plain).not.toContain(s);
    // it is there, encrypted: --show-secrets reveals it (so the check above is not vacuous)
    expect((await ws.exportState({ showSecrets: true })).text).toContain(PASSWORD);
    for (const f of ws.files()) expect(f.content.includes(PASSWORD)).toBe(false);
    expect(JSON.stringify(await ws.outputs({ showSecrets: true }))).not.toContain(PASSWORD);
    // every temp authfile is gone
    expect(readdirSync(providerTmp).filter((n) => n.startsWith("edgepair-auth-"))).toEqual([]);
  });

  test("wrong credentials fail the push with a clear error that never contains the password", async () => {
    await ws.setConfig(`${PROJECT}:registryPassword`, WRONG, { secret: true });
    writeFileSync(join(context, "hello.txt"), "third\n");
    const r = await ws.run(["up", "--yes", "--skip-preview", "--color", "never"], { allowFailure: true });
    expect(r.code).not.toBe(0);
    const text = r.stdout + r.stderr;
    expect(text).toMatch(/image push to 127\.0\.0\.1:\d+\/edgepair\/test-appliance:[0-9a-f]{64}/);
    expect(text).toMatch(/unauthorized: authentication required/);
    expect(text).toContain("the registry refused the credentials (image.build.registryAuth)");
    for (const s of [WRONG, b64(USER, WRONG), PASSWORD]) expect(text).not.toContain(s);
    expect(readdirSync(providerTmp).filter((n) => n.startsWith("edgepair-auth-"))).toEqual([]);
    // the stack still points at the last good image
    expect(((await ws.outputs()) as { ref: string }).ref).toBe(refs[1]);
  });
});
