/**
 * BootcImage: the appliance image both LBs boot and switch to, as `registry/repo@sha256:<digest>`. Either
 *
 *   prebuilt  an image built elsewhere, pinned by digest; nothing runs, or
 *   build     podman builds the context (default images/), tags it with the content hash of everything that goes
 *             into the build, pushes it with the registry credentials and outputs the pushed digest; optionally
 *             bootc-image-builder then makes a qcow2 of it (diskImage) and `qcow2Path` is its path.
 *
 * The content hash is computed here, in the program, at preview: `pulumi preview` shows `contextHash`/`tag` changing
 * exactly when an `up` would build, and an unchanged context is no change at all (no build, no push).
 *
 * Why dynamic providers (providers/edgepair/image-build*.ts) and not @pulumi/command's `local.Command`: the command
 * provider's plugin cannot be built or downloaded here (the Go module proxy refuses its module), so a program using
 * it could not run through the real engine in tests or CI; a dynamic provider runs in the Node.js SDK's own plugin.
 * It also lets the credentials reach podman through a 0600 temp authfile rather than a command line or environment.
 *
 * Registry credentials are always stored as a secret (wrapped with pulumi.secret if given plain), are never an
 * output and never appear in a message.
 */
import * as pulumi from "@pulumi/pulumi";
import { existsSync, statSync } from "node:fs";
import { isAbsolute, relative, resolve } from "node:path";
import { DiskImage, fileHash } from "../providers/edgepair/image-build-disk";
import { buildTag, contextHash } from "../providers/edgepair/image-build-hash";
import { ImageBuild } from "../providers/edgepair/image-build";
import type { RegistryAuth } from "../providers/edgepair/image-build-podman";
import { isDigestPinned } from "../spec/image-ref";

export type { RegistryAuth } from "../providers/edgepair/image-build-podman";

/** registry[:port]/path: the registry part has a dot or a port or is localhost (else podman would prefix docker.io). */
const REPOSITORY = /^(localhost|[a-z0-9-]+(\.[a-z0-9-]+)+|[a-z0-9.-]+:[0-9]+)(\/[a-z0-9]+([._-]+[a-z0-9]+)*)+$/;
const BUILD_ARG = /^[A-Za-z_][A-Za-z0-9_]*$/;
const CONTEXT_NAME = /^[a-z0-9][a-z0-9_.-]*$/;

/** A tag can move under a running pair; only a digest names one image for both LBs. */
function checkPinned(ref: string): string {
  if (!isDigestPinned(ref))
    throw new pulumi.RunError(`image.prebuilt: must be pinned by digest (ref@sha256:<64 hex>), got "${ref}"`);
  return ref;
}

function checkRepository(repo: string): string {
  if (!REPOSITORY.test(repo)) {
    throw new pulumi.RunError(
      `image.build.repository: must be registry[:port]/path without tag or digest (e.g. quay.io/example/edgepair), got "${repo}"`,
    );
  }
  return repo;
}

function checkBuildArgs(args: Record<string, string>): Record<string, string> {
  for (const [k, v] of Object.entries(args)) {
    if (!BUILD_ARG.test(k)) throw new pulumi.RunError(`image.build.buildArgs: "${k}" is not a valid ARG name`);
    if (typeof v !== "string") throw new pulumi.RunError(`image.build.buildArgs.${k}: must be a string`);
  }
  return args;
}

function checkAuthShape(auth: RegistryAuth): RegistryAuth {
  // the message names the field, never a value
  if (
    typeof auth?.username !== "string" ||
    auth.username === "" ||
    typeof auth.password !== "string" ||
    auth.password === ""
  ) {
    throw new pulumi.RunError("image.build.registryAuth: username and password must be non-empty strings");
  }
  return auth;
}

/** The hash's errors already name the field and path; a RunError prints them without a stack trace. */
function asRunError<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw new pulumi.RunError((e as Error).message);
  }
}

function existingDir(path: string, field: string): string {
  if (!existsSync(path) || !statSync(path).isDirectory())
    throw new pulumi.RunError(`${field}: ${path} is not a directory`);
  return path;
}

function checkDiskImage(d: BootcDiskImage, config: string | undefined): void {
  if (d.type !== "qcow2")
    throw new pulumi.RunError(`image.build.diskImage.type: must be "qcow2", got "${String(d.type)}"`);
  if (d.rootfs !== "ext4" && d.rootfs !== "xfs") {
    throw new pulumi.RunError(
      `image.build.diskImage.rootfs: must be "ext4" or "xfs" (Fedora has no default), got "${String(d.rootfs)}"`,
    );
  }
  if (typeof d.outputDir !== "string" || d.outputDir === "")
    throw new pulumi.RunError("image.build.diskImage.outputDir: required");
  if (config !== undefined && !/\.(toml|json)$/.test(config)) {
    throw new pulumi.RunError(
      `image.build.diskImage.config: must be a .toml or .json file (bib reads /config.toml or /config.json), got ${config}`,
    );
  }
  if (config !== undefined && (!existsSync(config) || !statSync(config).isFile())) {
    throw new pulumi.RunError(`image.build.diskImage.config: ${config} is not a file`);
  }
}

export interface BootcDiskImage {
  type: "qcow2";
  /** Fedora images have no default: required. */
  rootfs: "ext4" | "xfs";
  /** Directory bib writes into (relative to the project dir); the disk is `<outputDir>/qcow2/disk.qcow2`. */
  outputDir: string;
  /** bootc-image-builder config, .toml or .json (relative to the project dir), mounted read-only, e.g. images/bib/config.json. */
  config?: string;
  /** Default quay.io/centos-bootc/bootc-image-builder:latest; pin it by digest for repeatable disks. */
  builderImage?: string;
}

export interface BootcImageBuild {
  /** Build context directory, relative to the project dir. Default "images". */
  context?: string;
  /** Relative to the context (or absolute). Default "Containerfile". */
  containerfile?: string;
  /** Named additional contexts (`COPY --from=<name>`), e.g. the agent bundle's dir; part of the content hash. */
  buildContexts?: Record<string, string>;
  /** registry[:port]/path, without tag or digest. */
  repository: pulumi.Input<string>;
  /** Not secret (they are in state and on podman's command line). */
  buildArgs?: pulumi.Input<Record<string, pulumi.Input<string>>>;
  /** Push (and, for diskImage, pull) credentials; stored as a secret. Absent: podman's default credentials. */
  registryAuth?: pulumi.Input<RegistryAuth>;
  /** false for a plain-HTTP or self-signed registry. Default true. */
  tlsVerify?: pulumi.Input<boolean>;
  diskImage?: BootcDiskImage;
}

export interface BootcImageArgs {
  /** A prebuilt image, pinned by digest: `registry/repo[:tag]@sha256:<64 hex>`. */
  prebuilt?: pulumi.Input<string>;
  /** Build and push from a context. Exactly one of prebuilt and build. */
  build?: BootcImageBuild;
}

export class BootcImage extends pulumi.ComponentResource {
  /** The digest-pinned reference the LBs boot and `bootc switch` to. */
  public readonly ref: pulumi.Output<string>;
  /** The qcow2 bootc-image-builder made (build.diskImage), else undefined. */
  public readonly qcow2Path: pulumi.Output<string | undefined>;

  constructor(name: string, args: BootcImageArgs, opts?: pulumi.ComponentResourceOptions) {
    super("edgepair:index:BootcImage", name, {}, opts);
    const hasPrebuilt = args.prebuilt !== undefined && args.prebuilt !== null;
    const hasBuild = args.build !== undefined && args.build !== null;
    if (hasPrebuilt === hasBuild) {
      throw new pulumi.RunError(
        `image: give exactly one of image.prebuilt and image.build (got ${hasPrebuilt ? "both" : "neither"})`,
      );
    }
    if (args.build) {
      const built = this.build(name, args.build);
      this.ref = built.ref;
      this.qcow2Path = built.qcow2Path;
    } else {
      // a plain value is checked at once, so a bad reference stops the preview before anything is planned
      if (typeof args.prebuilt === "string") checkPinned(args.prebuilt);
      this.ref = pulumi.output(args.prebuilt as pulumi.Input<string>).apply(checkPinned);
      this.qcow2Path = pulumi.output(undefined);
    }
    this.registerOutputs({ ref: this.ref, qcow2Path: this.qcow2Path });
  }

  private build(
    name: string,
    b: BootcImageBuild,
  ): { ref: pulumi.Output<string>; qcow2Path: pulumi.Output<string | undefined> } {
    const context = existingDir(resolve(b.context ?? "images"), "image.build.context");
    const containerfile = b.containerfile ?? "Containerfile";
    const containerfilePath = isAbsolute(containerfile) ? containerfile : resolve(context, containerfile);
    if (!existsSync(containerfilePath) || !statSync(containerfilePath).isFile()) {
      throw new pulumi.RunError(`image.build.containerfile: ${containerfilePath} is not a file`);
    }
    const buildContexts: Record<string, string> = {};
    for (const [k, dir] of Object.entries(b.buildContexts ?? {})) {
      if (!CONTEXT_NAME.test(k))
        throw new pulumi.RunError(`image.build.buildContexts: "${k}" is not a valid context name`);
      buildContexts[k] = existingDir(resolve(dir), `image.build.buildContexts.${k}`);
    }
    if (typeof b.repository === "string") checkRepository(b.repository);
    const inside =
      !relative(context, containerfilePath).startsWith("..") && !isAbsolute(relative(context, containerfilePath));
    const hash = asRunError(() =>
      contextHash({ context, buildContexts, ...(inside ? {} : { containerfileOutside: containerfilePath }) }),
    );
    const buildArgs = pulumi.output(b.buildArgs ?? {}).apply((a) => checkBuildArgs(a as Record<string, string>));
    const registryAuth =
      b.registryAuth === undefined ? undefined : pulumi.secret(pulumi.output(b.registryAuth).apply(checkAuthShape));
    const tlsVerify = b.tlsVerify ?? true;
    // every argument is checked before the first resource is registered
    const d = b.diskImage;
    const config = d?.config === undefined ? undefined : resolve(d.config);
    if (d) checkDiskImage(d, config);
    if (d && !relative(context, resolve(d.outputDir)).startsWith("..")) {
      throw new pulumi.RunError(
        "image.build.diskImage.outputDir: must be outside image.build.context (a disk written there would change the image's content hash)",
      );
    }

    const image = new ImageBuild(
      `${name}-build`,
      {
        context,
        containerfile,
        buildContexts,
        contextHash: hash,
        tag: buildArgs.apply((a) => buildTag(hash, containerfile, a)),
        repository: pulumi.output(b.repository).apply(checkRepository),
        buildArgs,
        ...(registryAuth ? { registryAuth } : {}),
        tlsVerify,
      },
      { parent: this },
    );

    if (!d) return { ref: image.ref, qcow2Path: pulumi.output(undefined) };
    const disk = new DiskImage(
      `${name}-disk`,
      {
        ref: image.ref,
        type: d.type,
        rootfs: d.rootfs,
        outputDir: resolve(d.outputDir),
        ...(config ? { config, configHash: fileHash(config) } : {}),
        ...(d.builderImage ? { builderImage: d.builderImage } : {}),
        ...(registryAuth ? { registryAuth } : {}),
        tlsVerify,
      },
      { parent: this },
    );
    return { ref: image.ref, qcow2Path: disk.path };
  }
}
