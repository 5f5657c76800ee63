/**
 * DiskImage: the appliance's qcow2, made by bootc-image-builder (bib) from the pushed image. bib runs in rootful
 * podman (it needs loop devices and the host's container storage), so this step needs Pulumi to run as root. bib
 * takes the image from the host's container storage, mounted into it (its `--local` flag is deprecated: local
 * storage is always used since bib PR #423), so the image is first pulled by digest into that storage, with the
 * registry credentials in a temp authfile. Fedora images have no default root filesystem: `--rootfs` is always
 * given. bib writes `<outputDir>/qcow2/disk.qcow2`. Source: reference/anchors.md B.6 (bib README).
 *
 * Re-runs (in place) when the image ref, the type, the rootfs, the output dir, bib's image or the config file's
 * content change; nothing else. Deleting the resource leaves the file.
 */
import * as pulumi from "@pulumi/pulumi";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { checkAuth, registryHost, run, secretsOf, withAuthFile, type RegistryAuth } from "./image-build-podman";

/** README's image; pin it by digest through `builderImage` for repeatable disks. */
export const DEFAULT_BIB_IMAGE = "quay.io/centos-bootc/bootc-image-builder:latest";
/** Where rootful podman keeps images: bib reads the image from here. */
export const HOST_CONTAINER_STORAGE = "/var/lib/containers/storage";

export interface BibInvocation {
  /** The image to turn into a disk, digest-pinned. */
  ref: string;
  type: "qcow2";
  rootfs: "ext4" | "xfs";
  /** Absolute. */
  outputDir: string;
  /** Absolute path of a bib config (.toml or .json), mounted read-only where bib looks for it. */
  config?: string;
  builderImage?: string;
}

/** bib finds its config at /config.toml or /config.json (by format; the file's own name does not matter). */
export function configMount(config: string): "/config.json" | "/config.toml" {
  return config.endsWith(".json") ? "/config.json" : "/config.toml";
}

/** The exact bib command line (rootful podman; no `-it`: nothing is interactive here). */
export function bibArgv(b: BibInvocation): string[] {
  return [
    "podman",
    "run",
    "--rm",
    "--privileged",
    "--pull=newer",
    "--security-opt",
    "label=type:unconfined_t",
    ...(b.config ? ["-v", `${b.config}:${configMount(b.config)}:ro`] : []),
    "-v",
    `${b.outputDir}:/output`,
    "-v",
    `${HOST_CONTAINER_STORAGE}:${HOST_CONTAINER_STORAGE}`,
    b.builderImage ?? DEFAULT_BIB_IMAGE,
    "--type",
    b.type,
    "--rootfs",
    b.rootfs,
    b.ref,
  ];
}

/** Puts the image into the host's container storage, where bib looks for it. */
export function podmanPullArgv(ref: string, authFile: string | undefined, tlsVerify: boolean | undefined): string[] {
  return [
    "podman",
    "pull",
    ...(authFile ? ["--authfile", authFile] : []),
    ...(tlsVerify === false ? ["--tls-verify=false"] : []),
    ref,
  ];
}

/** Where bib leaves the disk of one type. */
export function diskPath(outputDir: string, type: "qcow2"): string {
  return join(outputDir, type, "disk.qcow2");
}

export interface DiskImageArgs {
  ref: pulumi.Input<string>;
  type: pulumi.Input<"qcow2">;
  rootfs: pulumi.Input<"ext4" | "xfs">;
  outputDir: pulumi.Input<string>;
  config?: pulumi.Input<string>;
  /** SHA-256 of the config file: a changed config makes a new disk. */
  configHash?: pulumi.Input<string>;
  builderImage?: pulumi.Input<string>;
  registryAuth?: pulumi.Input<RegistryAuth>;
  tlsVerify?: pulumi.Input<boolean>;
  /** Default 5400 (bib installs a whole OS). */
  timeoutSeconds?: pulumi.Input<number>;
}

interface DiskInputs extends BibInvocation {
  configHash?: string;
  registryAuth?: RegistryAuth;
  tlsVerify?: boolean;
  timeoutSeconds?: number;
}

interface DiskOutputs {
  ref: string;
  type: "qcow2";
  rootfs: "ext4" | "xfs";
  outputDir: string;
  configHash: string;
  builderImage: string;
  path: string;
}

/** SHA-256 of a file (hex), for configHash. */
export function fileHash(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

async function makeDisk(i: DiskInputs): Promise<DiskOutputs> {
  if (process.getuid?.() !== 0) {
    throw new Error(
      "image.build.diskImage: bootc-image-builder needs rootful podman; run `pulumi up` as root (or drop diskImage)",
    );
  }
  const auth = checkAuth(i.registryAuth, "image.build.registryAuth");
  const secrets = secretsOf(auth);
  const timeoutMs = (i.timeoutSeconds ?? 5400) * 1000;
  mkdirSync(i.outputDir, { recursive: true });
  await withAuthFile(registryHost(i.ref), auth, (authFile) =>
    run(podmanPullArgv(i.ref, authFile, i.tlsVerify), {
      timeoutMs,
      secrets,
      what: `pull of ${i.ref} for bootc-image-builder`,
    }),
  );
  await run(bibArgv(i), { timeoutMs, secrets, what: `bootc-image-builder (${i.type}) of ${i.ref}` });
  const path = diskPath(i.outputDir, i.type);
  if (!existsSync(path)) throw new Error(`bootc-image-builder finished but left no ${path}`);
  return {
    ref: i.ref,
    type: i.type,
    rootfs: i.rootfs,
    outputDir: i.outputDir,
    configHash: i.configHash ?? "",
    builderImage: i.builderImage ?? DEFAULT_BIB_IMAGE,
    path,
  };
}

export const diskImageProvider: pulumi.dynamic.ResourceProvider<DiskInputs, DiskOutputs> = {
  async create(inputs: DiskInputs) {
    return { id: diskPath(inputs.outputDir, inputs.type), outs: await makeDisk(inputs) };
  },
  async diff(_id: string, olds: DiskOutputs, news: DiskInputs) {
    const changes =
      olds.ref !== news.ref ||
      olds.type !== news.type ||
      olds.rootfs !== news.rootfs ||
      olds.outputDir !== news.outputDir ||
      olds.configHash !== (news.configHash ?? "") ||
      olds.builderImage !== (news.builderImage ?? DEFAULT_BIB_IMAGE);
    return { changes, replaces: [], deleteBeforeReplace: false };
  },
  async update(_id: string, _olds: DiskOutputs, news: DiskInputs) {
    return { outs: await makeDisk(news) };
  },
};

export class DiskImage extends pulumi.dynamic.Resource {
  /** `<outputDir>/qcow2/disk.qcow2`. */
  declare public readonly path: pulumi.Output<string>;

  constructor(name: string, args: DiskImageArgs, opts?: pulumi.CustomResourceOptions) {
    super(diskImageProvider, name, { ...args, path: undefined }, opts, "edgepair", "DiskImage");
  }
}
