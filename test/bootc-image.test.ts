/**
 * BootcImage's parts that need no registry: the content hash (deterministic, and sensitive to path, mode, bytes,
 * symlink targets and empty dirs), the exact podman and bootc-image-builder command lines, the temp authfile, the
 * redaction of credentials from errors, and the component's argument rules and resource tree under Pulumi's mocks.
 * bootc-image-builder itself cannot run here (its image cannot be pulled, and it needs loop devices and a bootable
 * base image), so only its command line is asserted; test/bootc-image-engine.test.ts builds and pushes for real.
 */
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
  readFileSync,
  existsSync,
} from "node:fs";
import { execFileSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { BootcImage, type BootcImageBuild } from "../components/bootc-image";
import { bibArgv, DEFAULT_BIB_IMAGE, diskPath, podmanPullArgv } from "../providers/edgepair/image-build-disk";
import { buildTag, contextHash, treeHash } from "../providers/edgepair/image-build-hash";
import { imageBuildProvider, podmanBuildArgv, podmanPushArgv } from "../providers/edgepair/image-build";
import {
  checkAuth,
  redact,
  registryHost,
  run,
  secretsOf,
  withAuthFile,
} from "../providers/edgepair/image-build-podman";
import { recordingMocks, settle, value } from "./fixtures/pulumi-mocks";

const SECRET_SIG = "4dabf18193072939515e22adb298388d";
const PASSWORD = "pw-unit-0c4e9a1f";

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), "edgepair-bootc-unit-"));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let n = 0;
/** A fresh context: Containerfile, a file in a subdir, an empty dir, a symlink. */
function makeContext(): string {
  const dir = join(tmp, `ctx-${n++}`);
  mkdirSync(join(dir, "files/etc"), { recursive: true });
  mkdirSync(join(dir, "empty"));
  writeFileSync(join(dir, "Containerfile"), "FROM scratch\nCOPY files /\n");
  writeFileSync(join(dir, "files/etc/a.conf"), "a=1\n");
  symlinkSync("etc/a.conf", join(dir, "files/link"));
  return dir;
}

describe("content hash", () => {
  test("equal trees hash equal, whatever their location or timestamps", () => {
    const a = makeContext();
    const b = makeContext();
    const h = treeHash(a);
    expect(h).toMatch(/^[0-9a-f]{64}$/);
    writeFileSync(join(b, "Containerfile"), readFileSync(join(b, "Containerfile"))); // rewritten: new mtime
    expect(treeHash(b)).toBe(h);
    expect(contextHash({ context: a })).toBe(contextHash({ context: b }));
  });

  test.each([
    ["a byte", (d: string) => writeFileSync(join(d, "files/etc/a.conf"), "a=2\n")],
    ["a mode", (d: string) => chmodSync(join(d, "files/etc/a.conf"), 0o600)],
    ["a name", (d: string) => execFileSync("mv", [join(d, "files/etc/a.conf"), join(d, "files/etc/b.conf")])],
    [
      "a symlink target",
      (d: string) => {
        rmSync(join(d, "files/link"));
        symlinkSync("etc/other", join(d, "files/link"));
      },
    ],
    ["an empty dir", (d: string) => mkdirSync(join(d, "empty/more"))],
    ["a new file", (d: string) => writeFileSync(join(d, "extra"), "")],
  ])("changing %s changes the hash", (_what, change) => {
    const d = makeContext();
    const before = treeHash(d);
    change(d);
    expect(treeHash(d)).not.toBe(before);
  });

  test("named contexts and an outside Containerfile count; a FIFO is refused with its path", () => {
    const ctx = makeContext();
    const bundle = join(tmp, `bundle-${n++}`);
    mkdirSync(bundle);
    writeFileSync(join(bundle, "edgepair-agent.js"), "console.log(1)\n");
    const base = contextHash({ context: ctx });
    const withBundle = contextHash({ context: ctx, buildContexts: { agent: bundle } });
    expect(withBundle).not.toBe(base);
    writeFileSync(join(bundle, "edgepair-agent.js"), "console.log(2)\n");
    expect(contextHash({ context: ctx, buildContexts: { agent: bundle } })).not.toBe(withBundle);
    const outside = join(tmp, `Containerfile-${n++}`);
    writeFileSync(outside, "FROM scratch\n");
    const withOutside = contextHash({ context: ctx, containerfileOutside: outside });
    writeFileSync(outside, "FROM scratch\nLABEL x=1\n");
    expect(contextHash({ context: ctx, containerfileOutside: outside })).not.toBe(withOutside);
    execFileSync("mkfifo", [join(ctx, "pipe")]);
    expect(() => treeHash(ctx)).toThrow(`${join(ctx, "pipe")} is neither a file, a directory nor a symlink`);
  });

  test("the tag names one build: the hash, the Containerfile and the build args (order-free)", () => {
    const h = "a".repeat(64);
    const t = buildTag(h, "Containerfile", { A: "1", B: "2" });
    expect(t).toMatch(/^[0-9a-f]{64}$/);
    expect(buildTag(h, "Containerfile", { B: "2", A: "1" })).toBe(t);
    expect(buildTag(h, "Containerfile", { A: "1", B: "3" })).not.toBe(t);
    expect(buildTag(h, "Containerfile.alt", { A: "1", B: "2" })).not.toBe(t);
    expect(buildTag("b".repeat(64), "Containerfile", { A: "1", B: "2" })).not.toBe(t);
  });
});

describe("command lines", () => {
  test("podman build and push: exact argv, no credential on it", () => {
    const i = {
      context: "/src/images",
      containerfile: "/src/images/Containerfile",
      buildContexts: { agent: "/src/dist" },
      tag: "f".repeat(64),
      repository: "registry.example:5000/edgepair/appliance",
      buildArgs: { BASE: "quay.io/fedora/fedora-bootc@sha256:" + "1".repeat(64), A: "x" },
    };
    expect(podmanBuildArgv(i)).toEqual([
      "podman",
      "build",
      "--file",
      "/src/images/Containerfile",
      "--tag",
      `registry.example:5000/edgepair/appliance:${"f".repeat(64)}`,
      "--build-arg",
      "A=x",
      "--build-arg",
      `BASE=quay.io/fedora/fedora-bootc@sha256:${"1".repeat(64)}`,
      "--build-context",
      "agent=/src/dist",
      "/src/images",
    ]);
    expect(podmanPushArgv({ ...i, tlsVerify: false }, "/tmp/a/auth.json", "/tmp/w/digest")).toEqual([
      "podman",
      "push",
      "--digestfile",
      "/tmp/w/digest",
      "--authfile",
      "/tmp/a/auth.json",
      "--tls-verify=false",
      `registry.example:5000/edgepair/appliance:${"f".repeat(64)}`,
    ]);
    expect(podmanPushArgv(i, undefined, "/d")).toEqual([
      "podman",
      "push",
      "--digestfile",
      "/d",
      `registry.example:5000/edgepair/appliance:${"f".repeat(64)}`,
    ]);
  });

  test("bootc-image-builder: the exact rootful command line (config mounted read-only, host storage, --rootfs)", () => {
    const ref = `quay.io/example/edgepair@sha256:${"c".repeat(64)}`;
    // bib's current README (reference/anchors.md B.6): no -it (not interactive here), no --local (deprecated:
    // bib always reads the host's container storage, which is mounted), --rootfs because Fedora has no default
    expect(
      bibArgv({ ref, type: "qcow2", rootfs: "ext4", outputDir: "/srv/out", config: "/srv/images/bib/config.toml" }),
    ).toEqual([
      "podman",
      "run",
      "--rm",
      "--privileged",
      "--pull=newer",
      "--security-opt",
      "label=type:unconfined_t",
      "-v",
      "/srv/images/bib/config.toml:/config.toml:ro",
      "-v",
      "/srv/out:/output",
      "-v",
      "/var/lib/containers/storage:/var/lib/containers/storage",
      "quay.io/centos-bootc/bootc-image-builder:latest",
      "--type",
      "qcow2",
      "--rootfs",
      "ext4",
      ref,
    ]);
    // a JSON config goes where bib looks for JSON
    expect(
      bibArgv({ ref, type: "qcow2", rootfs: "xfs", outputDir: "/o", config: "/srv/images/bib/config.json" }).slice(
        7,
        9,
      ),
    ).toEqual(["-v", "/srv/images/bib/config.json:/config.json:ro"]);
    const pinned = `quay.io/centos-bootc/bootc-image-builder@sha256:${"d".repeat(64)}`;
    expect(bibArgv({ ref, type: "qcow2", rootfs: "xfs", outputDir: "/o", builderImage: pinned })).toEqual([
      "podman",
      "run",
      "--rm",
      "--privileged",
      "--pull=newer",
      "--security-opt",
      "label=type:unconfined_t",
      "-v",
      "/o:/output",
      "-v",
      "/var/lib/containers/storage:/var/lib/containers/storage",
      pinned,
      "--type",
      "qcow2",
      "--rootfs",
      "xfs",
      ref,
    ]);
    expect(DEFAULT_BIB_IMAGE).toBe("quay.io/centos-bootc/bootc-image-builder:latest");
    expect(podmanPullArgv(ref, "/t/auth.json", false)).toEqual([
      "podman",
      "pull",
      "--authfile",
      "/t/auth.json",
      "--tls-verify=false",
      ref,
    ]);
    expect(diskPath("/srv/out", "qcow2")).toBe("/srv/out/qcow2/disk.qcow2");
  });
});

describe("credentials", () => {
  const auth = { username: "pusher", password: PASSWORD };

  test("the authfile is 0600 in a 0700 dir, keyed by the registry, and gone afterwards, also on failure", async () => {
    let seen = "";
    await withAuthFile(registryHost("127.0.0.1:5000/edgepair/x"), auth, async (file) => {
      seen = file as string;
      expect(statSync(file as string).mode & 0o777).toBe(0o600);
      expect(statSync(join(file as string, "..")).mode & 0o777).toBe(0o700);
      const json = JSON.parse(readFileSync(file as string, "utf8")) as { auths: Record<string, { auth: string }> };
      expect(Object.keys(json.auths)).toEqual(["127.0.0.1:5000"]);
      expect(Buffer.from(json.auths["127.0.0.1:5000"]?.auth ?? "", "base64").toString()).toBe(`pusher:${PASSWORD}`);
    });
    expect(existsSync(seen)).toBe(false);
    let seen2 = "";
    await expect(
      withAuthFile("r.example", auth, async (file) => {
        seen2 = file as string;
        throw new Error("push failed");
      }),
    ).rejects.toThrow("push failed");
    expect(existsSync(join(seen2, ".."))).toBe(false);
    expect(await withAuthFile("r.example", undefined, async (file) => file)).toBeUndefined();
  });

  test("a failing command's message is redacted (password and base64 auth); a timeout kills it", async () => {
    const secrets = secretsOf(auth);
    const b64 = Buffer.from(`pusher:${PASSWORD}`).toString("base64");
    const err = await run(["sh", "-c", `echo "denied for ${PASSWORD} / ${b64}" >&2; exit 3`], {
      timeoutMs: 10_000,
      secrets,
      what: "image push",
    }).catch((e: Error) => e);
    expect(String(err)).toContain("image push: `sh -c` exited with 3: denied for [secret] / [secret]");
    expect(String(err)).not.toContain(PASSWORD);
    const started = Date.now();
    await expect(run(["sleep", "30"], { timeoutMs: 300, what: "slow" })).rejects.toThrow(
      "slow: `sleep 30` did not finish within 0 s",
    );
    expect(Date.now() - started).toBeLessThan(5000);
    expect(redact("a pw b", ["pw"])).toBe("a [secret] b");
  });

  test("bad credential shapes are refused naming the field, never the value", () => {
    expect(() => checkAuth({ username: "u", password: "" }, "image.build.registryAuth")).toThrow(
      "image.build.registryAuth: username and password must be non-empty strings",
    );
    expect(() => checkAuth({ username: "a:b", password: PASSWORD }, "f")).toThrow('f.username: must not contain ":"');
    expect(checkAuth(undefined, "f")).toBeUndefined();
  });
});

describe("provider diff: what rebuilds", () => {
  const olds = {
    repository: "r.example/a",
    contextHash: "h1",
    containerfile: "Containerfile",
    buildArgs: { A: "1" },
    tag: "t1",
    digest: "sha256:x",
    ref: "r.example/a@sha256:x",
  };
  const news = {
    context: "/c",
    containerfile: "Containerfile",
    contextHash: "h1",
    tag: "t1",
    repository: "r.example/a",
    buildArgs: { A: "1" },
  };
  const diff = (over: Partial<typeof news>) => imageBuildProvider.diff?.("r.example/a", olds, { ...news, ...over });

  test("same inputs (credentials and context path aside) are no change; content/args/file are updates; repository replaces", async () => {
    expect(await diff({})).toMatchObject({ changes: false, replaces: [] });
    expect(await diff({ context: "/moved" })).toMatchObject({ changes: false });
    expect(await diff({ contextHash: "h2", tag: "t2" })).toMatchObject({ changes: true, replaces: [] });
    expect(await diff({ buildArgs: { A: "2" } })).toMatchObject({ changes: true, replaces: [] });
    expect(await diff({ containerfile: "Containerfile.alt" })).toMatchObject({ changes: true });
    expect(await diff({ repository: "r.example/b" })).toMatchObject({ changes: true, replaces: ["repository"] });
  });
});

describe("component", () => {
  let mocks: ReturnType<typeof recordingMocks>;
  beforeAll(() => {
    mocks = recordingMocks((type, _name, inputs) =>
      type === "pulumi-nodejs:dynamic/edgepair:ImageBuild"
        ? { ref: `${String(inputs.repository)}@sha256:${"e".repeat(64)}` }
        : type === "pulumi-nodejs:dynamic/edgepair:DiskImage"
          ? { path: `${String(inputs.outputDir)}/qcow2/disk.qcow2` }
          : {},
    );
  });
  beforeEach(() => mocks.reset());
  const dyn = (kind: string) => mocks.recorded.filter((r) => r.type === `pulumi-nodejs:dynamic/edgepair:${kind}`);

  test("exactly one of prebuilt and build, else an error naming both fields", () => {
    const ctx = makeContext();
    expect(() => new BootcImage("x", {})).toThrow(
      "image: give exactly one of image.prebuilt and image.build (got neither)",
    );
    expect(
      () =>
        new BootcImage("y", {
          prebuilt: `r.example/a@sha256:${"a".repeat(64)}`,
          build: { context: ctx, repository: "r.example/a" },
        }),
    ).toThrow("image: give exactly one of image.prebuilt and image.build (got both)");
  });

  test("prebuilt: unchanged (digest required), no build resource", async () => {
    expect(() => new BootcImage("p1", { prebuilt: "r.example/a:latest" })).toThrow(
      'image.prebuilt: must be pinned by digest (ref@sha256:<64 hex>), got "r.example/a:latest"',
    );
    const ref = `r.example/a@sha256:${"a".repeat(64)}`;
    const img = new BootcImage("p2", { prebuilt: ref });
    expect(await value(img.ref)).toBe(ref);
    expect(await value(img.qcow2Path)).toBeUndefined();
    await settle(mocks);
    expect(dyn("ImageBuild")).toEqual([]);
  });

  type Over = (ctx: string) => Partial<BootcImageBuild>;
  test.each<[string, Over, string]>([
    [
      "a tagged repository",
      () => ({ repository: "r.example/a:tag" }),
      "image.build.repository: must be registry[:port]/path without tag or digest",
    ],
    ["a repository without registry", () => ({ repository: "edgepair/appliance" }), "image.build.repository"],
    [
      "a missing context",
      () => ({ context: "/nonexistent-edgepair" }),
      "image.build.context: /nonexistent-edgepair is not a directory",
    ],
    ["a missing Containerfile", () => ({ containerfile: "Nope" }), "image.build.containerfile:"],
    [
      "rootfs btrfs",
      () => ({ diskImage: { type: "qcow2", rootfs: "btrfs" as "ext4", outputDir: "/o" } }),
      'image.build.diskImage.rootfs: must be "ext4" or "xfs"',
    ],
    [
      "a config neither .toml nor .json",
      (ctx) => ({ diskImage: { type: "qcow2", rootfs: "xfs", outputDir: "/o", config: join(ctx, "Containerfile") } }),
      "image.build.diskImage.config: must be a .toml or .json file",
    ],
    [
      "a disk output inside the context",
      (ctx) => ({ diskImage: { type: "qcow2", rootfs: "xfs", outputDir: join(ctx, "out") } }),
      "image.build.diskImage.outputDir: must be outside image.build.context",
    ],
  ])("build: %s is refused naming the field", (_what, over, message) => {
    const ctx = makeContext();
    expect(
      () => new BootcImage(`bad-${n++}`, { build: { context: ctx, repository: "r.example/a", ...over(ctx) } }),
    ).toThrow(message);
  });

  test("build: an ImageBuild with the content hash and tag computed at preview, credentials as a secret; a DiskImage with resolved paths", async () => {
    const ctx = makeContext();
    const config = join(ctx, "config.toml");
    writeFileSync(config, '[[customizations.user]]\nname = "core"\n');
    const img = new BootcImage("app", {
      build: {
        context: ctx,
        repository: "registry.example/edgepair/appliance",
        buildArgs: { BASE: pulumi.output("quay.io/fedora/fedora-bootc@sha256:" + "1".repeat(64)) },
        registryAuth: { username: "pusher", password: PASSWORD },
        tlsVerify: false,
        diskImage: { type: "qcow2", rootfs: "ext4", outputDir: join(tmp, "out"), config },
      },
    });
    expect(await value(img.ref)).toBe(`registry.example/edgepair/appliance@sha256:${"e".repeat(64)}`);
    expect(await value(img.qcow2Path)).toBe(join(tmp, "out", "qcow2", "disk.qcow2"));
    await settle(mocks);
    expect(dyn("ImageBuild").map((r) => r.name)).toEqual(["app-build"]); // the refused ones registered nothing
    const [build] = dyn("ImageBuild");
    expect(build?.name).toBe("app-build");
    const inputs = build?.inputs as Record<string, unknown>;
    const hash = contextHash({ context: ctx });
    expect(inputs.contextHash).toBe(hash);
    expect(inputs.tag).toBe(
      buildTag(hash, "Containerfile", { BASE: "quay.io/fedora/fedora-bootc@sha256:" + "1".repeat(64) }),
    );
    expect(inputs.context).toBe(ctx);
    expect(inputs.tlsVerify).toBe(false);
    // a plain registryAuth is made a secret: the monitor receives it wrapped
    expect(SECRET_SIG in (inputs.registryAuth as object)).toBe(true);
    const [disk] = dyn("DiskImage");
    const d = disk?.inputs as Record<string, unknown>;
    expect(disk?.name).toBe("app-disk");
    expect(d.outputDir).toBe(join(tmp, "out"));
    expect(d.config).toBe(config);
    expect(d.configHash).toMatch(/^[0-9a-f]{64}$/);
    expect(SECRET_SIG in (d.registryAuth as object)).toBe(true);
    expect(readdirSync(tmp).some((f) => f.startsWith("edgepair-auth-"))).toBe(false);
  });
});
