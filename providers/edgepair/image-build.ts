/**
 * ImageBuild: `podman build` of the appliance's context, then `podman push` to `repository:<tag>`, recording the
 * pushed manifest's digest so the LBs get `repository@sha256:<digest>`. The tag is the content hash computed in the
 * program (image-build-hash.ts), so the diff is decided before anything runs: an unchanged context, Containerfile,
 * build args and repository is no change (nothing is built or pushed); any change is an in-place update that builds
 * and pushes again; a new repository is a replacement.
 *
 * Credentials (`registryAuth`) are a secret input: the engine keeps them encrypted in state, they are never an
 * output, and they reach podman only through a temp authfile (image-build-podman.ts). Deleting the resource leaves
 * the image in the registry: a running LB may still boot it, and the registry's garbage collection is its owner's.
 */
import * as pulumi from "@pulumi/pulumi";
import { checkAuth, registryHost, run, secretsOf, withAuthFile, type RegistryAuth } from "./image-build-podman";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface ImageBuildArgs {
  /** Build context directory (absolute). */
  context: pulumi.Input<string>;
  /** Containerfile path relative to the context, or absolute. */
  containerfile: pulumi.Input<string>;
  buildContexts?: pulumi.Input<Record<string, string>>;
  /** contextHash() of the context (and named contexts): shown in the diff. */
  contextHash: pulumi.Input<string>;
  /** buildTag(): the image tag. */
  tag: pulumi.Input<string>;
  /** registry[:port]/path, without tag or digest. */
  repository: pulumi.Input<string>;
  /** Not secret: they are on podman's command line and in state. */
  buildArgs?: pulumi.Input<Record<string, pulumi.Input<string>>>;
  /** Secret (the component makes sure). */
  registryAuth?: pulumi.Input<RegistryAuth>;
  /** false: the registry may be plain HTTP or have an untrusted certificate. Default true. */
  tlsVerify?: pulumi.Input<boolean>;
  /** For build and push each. Default 3600. */
  timeoutSeconds?: pulumi.Input<number>;
}

export interface BuildInputs {
  context: string;
  containerfile: string;
  buildContexts?: Record<string, string>;
  contextHash: string;
  tag: string;
  repository: string;
  buildArgs?: Record<string, string>;
  registryAuth?: RegistryAuth;
  tlsVerify?: boolean;
  timeoutSeconds?: number;
}

interface BuildOutputs {
  repository: string;
  contextHash: string;
  containerfile: string;
  buildArgs: Record<string, string>;
  tag: string;
  digest: string;
  ref: string;
}

const DIGEST = /^sha256:[0-9a-f]{64}$/;
/** What distribution, quay and harbor answer to missing or wrong credentials (podman passes it through). */
const AUTH_REFUSED = /unauthorized|authentication required|denied/i;

/** `podman build` argv: tagged by content hash, build args and named contexts sorted (a stable command line). */
export function podmanBuildArgv(
  i: Pick<BuildInputs, "context" | "containerfile" | "buildContexts" | "tag" | "repository" | "buildArgs">,
): string[] {
  const argv = ["podman", "build", "--file", i.containerfile, "--tag", `${i.repository}:${i.tag}`];
  for (const k of Object.keys(i.buildArgs ?? {}).sort()) argv.push("--build-arg", `${k}=${(i.buildArgs ?? {})[k]}`);
  for (const k of Object.keys(i.buildContexts ?? {}).sort())
    argv.push("--build-context", `${k}=${(i.buildContexts ?? {})[k]}`);
  argv.push(i.context);
  return argv;
}

/** `podman push` argv; the credentials are in the authfile, never here. */
export function podmanPushArgv(
  i: Pick<BuildInputs, "tag" | "repository" | "tlsVerify">,
  authFile: string | undefined,
  digestFile: string,
): string[] {
  const argv = ["podman", "push", "--digestfile", digestFile];
  if (authFile) argv.push("--authfile", authFile);
  if (i.tlsVerify === false) argv.push("--tls-verify=false");
  argv.push(`${i.repository}:${i.tag}`);
  return argv;
}

async function buildAndPush(i: BuildInputs): Promise<BuildOutputs> {
  const auth = checkAuth(i.registryAuth, "image.build.registryAuth");
  const secrets = secretsOf(auth);
  const timeoutMs = (i.timeoutSeconds ?? 3600) * 1000;
  const containerfile = i.containerfile.startsWith("/") ? i.containerfile : join(i.context, i.containerfile);
  await run(podmanBuildArgv({ ...i, containerfile }), {
    timeoutMs,
    secrets,
    what: `image build of ${i.repository}:${i.tag}`,
  });
  const work = mkdtempSync(join(tmpdir(), "edgepair-push-"));
  try {
    const digestFile = join(work, "digest");
    await withAuthFile(registryHost(i.repository), auth, (authFile) =>
      run(podmanPushArgv(i, authFile, digestFile), {
        timeoutMs,
        secrets,
        what: `image push to ${i.repository}:${i.tag}`,
      }),
    ).catch((e: Error) => {
      // podman's own words end the message; say which input to look at
      throw AUTH_REFUSED.test(e.message)
        ? new Error(`${e.message}\n=> the registry refused the credentials (image.build.registryAuth)`)
        : e;
    });
    const digest = readFileSync(digestFile, "utf8").trim();
    if (!DIGEST.test(digest))
      throw new Error(`image push to ${i.repository}: podman wrote no sha256 digest (got "${digest.slice(0, 80)}")`);
    return {
      repository: i.repository,
      contextHash: i.contextHash,
      containerfile: i.containerfile,
      buildArgs: i.buildArgs ?? {},
      tag: i.tag,
      digest,
      ref: `${i.repository}@${digest}`,
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

const sameArgs = (a: Record<string, string> | undefined, b: Record<string, string> | undefined): boolean => {
  const ka = Object.keys(a ?? {}).sort();
  const kb = Object.keys(b ?? {}).sort();
  return ka.length === kb.length && ka.every((k, n) => k === kb[n] && (a ?? {})[k] === (b ?? {})[k]);
};

export const imageBuildProvider: pulumi.dynamic.ResourceProvider<BuildInputs, BuildOutputs> = {
  async create(inputs: BuildInputs) {
    return { id: inputs.repository, outs: await buildAndPush(inputs) };
  },
  async diff(_id: string, olds: BuildOutputs, news: BuildInputs) {
    const replaces = olds.repository !== news.repository ? ["repository"] : [];
    const changes =
      replaces.length > 0 ||
      olds.contextHash !== news.contextHash ||
      olds.tag !== news.tag ||
      olds.containerfile !== news.containerfile ||
      !sameArgs(olds.buildArgs, news.buildArgs);
    return { changes, replaces, deleteBeforeReplace: false };
  },
  async update(_id: string, _olds: BuildOutputs, news: BuildInputs) {
    return { outs: await buildAndPush(news) };
  },
};

export class ImageBuild extends pulumi.dynamic.Resource {
  /** repository@sha256:<digest> of the pushed manifest. */
  declare public readonly ref: pulumi.Output<string>;
  declare public readonly digest: pulumi.Output<string>;
  declare public readonly tag: pulumi.Output<string>;

  constructor(name: string, args: ImageBuildArgs, opts?: pulumi.CustomResourceOptions) {
    super(imageBuildProvider, name, { ...args, ref: undefined, digest: undefined }, opts, "edgepair", "ImageBuild");
  }
}
