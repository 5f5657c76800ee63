/**
 * NoCloud seed: an ISO 9660 image with volume id `cidata` holding user-data, meta-data and (optionally)
 * network-config, built where the provider runs (genisoimage, else xorriso) and uploaded into a raw volume, so
 * it works with remote URIs too.
 *
 * Outputs never hold the documents (user-data may carry secrets): only their SHA-256 (`contentSha256`, what diff
 * compares) and the SHA-256 of the uploaded image (`isoSha256`, what refresh compares with the volume's bytes).
 *
 * In place: the documents (the volume is re-created under the same name and key, so a domain's CD-ROM keeps
 * pointing at it; a running guest sees the new image at its next boot, and cloud-init only acts on it for a new
 * instance-id), `uri`. Replaced: name, pool (a new name never collides, so the new seed exists before the old goes).
 */
import * as pulumi from "@pulumi/pulumi";
import { checker, CheckFailure, libvirtProvider, compact, isUnknown, NAME_RE, NAME_RULE, withTempDir } from "./common";
import { fieldError, resolveUri, virsh, virshIfExists } from "./virsh";
import { findVolume, requirePool, volumeByKey } from "./volume";

export const CLOUD_INIT_DISK_KIND = "libvirt:CloudInitDisk";
/** NoCloud user-data is read whole; OpenStack's limit is 64 KiB, a seed ISO has no such limit, but keep it sane. */
const MAX_DOC = 1024 * 1024;

export interface CloudInitDiskInputs {
  kind: typeof CLOUD_INIT_DISK_KIND;
  uri?: string;
  name: string;
  pool: string;
  userData: string;
  /** Default: `instance-id: <name>`. */
  metaData: string;
  networkConfig?: string;
}

export interface CloudInitDiskOutputs {
  kind: typeof CLOUD_INIT_DISK_KIND;
  uri: string;
  name: string;
  pool: string;
  key: string;
  path: string;
  /** Bytes of the image. */
  size: number;
  /** SHA-256 over the documents (user-data, meta-data, network-config). */
  contentSha256: string;
  /** SHA-256 of the image in the volume. */
  isoSha256: string;
}

const FIELDS = ["kind", "uri", "name", "pool", "userData", "metaData", "networkConfig"];

export function checkCloudInitDisk(news: Record<string, unknown>): {
  inputs: CloudInitDiskInputs;
  failures: CheckFailure[];
} {
  const c = checker();
  c.known("", news, FIELDS);
  if (news.kind !== undefined && news.kind !== CLOUD_INIT_DISK_KIND) c.fail("kind", `must be ${CLOUD_INIT_DISK_KIND}`);
  const uri = c.uri("uri", news.uri);
  const name = c.string("name", news.name, { required: true, re: NAME_RE, rule: NAME_RULE });
  const pool = c.string("pool", news.pool, { required: true, re: NAME_RE, rule: NAME_RULE });
  const doc = (field: string, value: unknown, required: boolean): string | undefined => {
    if (value === undefined || value === null) {
      if (required) c.fail(field, "is required");
      return undefined;
    }
    if (isUnknown(value)) return value as string;
    if (typeof value !== "string") {
      c.fail(field, "must be a string (the document's text)");
      return undefined;
    }
    if (Buffer.byteLength(value) > MAX_DOC) c.fail(field, `must be at most ${MAX_DOC} bytes`);
    return value;
  };
  const userData = doc("userData", news.userData, true);
  const metaData = doc("metaData", news.metaData, false) ?? (name !== undefined ? `instance-id: ${name}\n` : undefined);
  const networkConfig = doc("networkConfig", news.networkConfig, false);
  const inputs = compact({
    kind: CLOUD_INIT_DISK_KIND,
    uri,
    name: name as string,
    pool: pool as string,
    userData: userData as string,
    metaData: metaData as string,
    networkConfig,
  }) as CloudInitDiskInputs;
  return { inputs, failures: c.failures };
}

/** SHA-256 over the documents, each length-prefixed so moving text between them changes the hash. */
export function contentSha256(d: Pick<CloudInitDiskInputs, "userData" | "metaData" | "networkConfig">): string {
  const crypto: typeof import("node:crypto") = require("node:crypto");
  const h = crypto.createHash("sha256");
  for (const [label, text] of [
    ["user-data", d.userData],
    ["meta-data", d.metaData],
    ["network-config", d.networkConfig],
  ] as const) {
    if (text === undefined) continue;
    h.update(`${label}\n${Buffer.byteLength(text)}\n`);
    h.update(text);
  }
  return h.digest("hex");
}

/** Builds the seed ISO in dir; returns its path. */
export function buildSeedIso(
  dir: string,
  d: Pick<CloudInitDiskInputs, "userData" | "metaData" | "networkConfig">,
): string {
  const fs: typeof import("node:fs") = require("node:fs");
  const pathMod: typeof import("node:path") = require("node:path");
  const cp: typeof import("node:child_process") = require("node:child_process");
  const files = ["user-data", "meta-data"];
  fs.writeFileSync(pathMod.join(dir, "user-data"), d.userData, { mode: 0o600 });
  fs.writeFileSync(pathMod.join(dir, "meta-data"), d.metaData, { mode: 0o600 });
  if (d.networkConfig !== undefined) {
    fs.writeFileSync(pathMod.join(dir, "network-config"), d.networkConfig, { mode: 0o600 });
    files.push("network-config");
  }
  const iso = pathMod.join(dir, "seed.iso");
  const args = ["-quiet", "-output", iso, "-volid", "cidata", "-joliet", "-rock", ...files];
  const tools: Array<[string, string[]]> = [
    ["genisoimage", args],
    ["xorriso", ["-as", "mkisofs", ...args]],
  ];
  const problems: string[] = [];
  for (const [tool, argv] of tools) {
    const r = cp.spawnSync(tool, argv, { cwd: dir, encoding: "utf8", timeout: 60_000, killSignal: "SIGKILL" });
    if (r.error && (r.error as NodeJS.ErrnoException).code === "ENOENT") {
      problems.push(`${tool} not installed`);
      continue;
    }
    if (r.status === 0 && fs.existsSync(iso)) return iso;
    throw new Error(`cloud-init seed: ${tool} failed: ${(r.stderr || r.stdout || String(r.error ?? r.status)).trim()}`);
  }
  throw new Error(`cloud-init seed: no ISO tool (${problems.join(", ")}); install genisoimage or xorriso`);
}

function sha256File(file: string): string {
  const crypto: typeof import("node:crypto") = require("node:crypto");
  const fs: typeof import("node:fs") = require("node:fs");
  return crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}

/** Builds the ISO and uploads it as volume name in pool (which must not exist). */
async function upload(uri: string, inputs: CloudInitDiskInputs): Promise<string> {
  return withTempDir("edgepair-cidata-", async (dir) => {
    const fs: typeof import("node:fs") = require("node:fs");
    const iso = buildSeedIso(dir, inputs);
    const size = fs.statSync(iso).size;
    await virsh(uri, ["vol-create-as", inputs.pool, inputs.name, String(size), "--format", "raw"]);
    try {
      await virsh(uri, ["vol-upload", "--pool", inputs.pool, inputs.name, iso], { timeoutMs: 120_000 });
    } catch (e) {
      await virshIfExists(uri, ["vol-delete", "--pool", inputs.pool, inputs.name]).catch(() => undefined);
      throw e;
    }
    return sha256File(iso);
  });
}

/** The seed as it is in libvirt (its bytes hashed), or undefined when the volume is gone. */
export async function observeCloudInitDisk(
  uri: string,
  key: string,
  props: { contentSha256: string; pool: string },
): Promise<CloudInitDiskOutputs | undefined> {
  const vol = await volumeByKey(uri, key);
  if (!vol) return undefined;
  const isoSha256 = await withTempDir("edgepair-cidata-read-", async (dir) => {
    const pathMod: typeof import("node:path") = require("node:path");
    const file = pathMod.join(dir, "seed.iso");
    await virsh(uri, ["vol-download", key, file], { timeoutMs: 120_000 });
    return sha256File(file);
  });
  return {
    kind: CLOUD_INIT_DISK_KIND,
    uri,
    name: vol.name,
    pool: props.pool,
    key: vol.key,
    path: vol.path,
    size: vol.capacity,
    contentSha256: props.contentSha256,
    isoSha256,
  };
}

export function diffCloudInitDisk(
  olds: CloudInitDiskOutputs,
  news: CloudInitDiskInputs,
): { changes: boolean; replaces: string[]; updates: string[]; deleteBeforeReplace: boolean } {
  const replaces: string[] = [];
  const updates: string[] = [];
  if (isUnknown(news.name) || olds.name !== news.name) replaces.push("name");
  if (isUnknown(news.pool) || olds.pool !== news.pool) replaces.push("pool");
  if (
    isUnknown(news.userData) ||
    isUnknown(news.metaData) ||
    isUnknown(news.networkConfig) ||
    contentSha256(news) !== olds.contentSha256
  ) {
    updates.push("userData/metaData/networkConfig");
  }
  let uri: string | undefined;
  try {
    uri = resolveUri(news.uri);
  } catch {
    uri = undefined;
  }
  if (uri !== olds.uri) updates.push("uri");
  return { changes: replaces.length + updates.length > 0, replaces, updates, deleteBeforeReplace: false };
}

async function createCloudInitDisk(inputs: CloudInitDiskInputs): Promise<{ id: string; outs: CloudInitDiskOutputs }> {
  const uri = resolveUri(inputs.uri);
  await requirePool(uri, inputs.pool);
  if (await findVolume(uri, inputs.pool, inputs.name)) {
    throw fieldError(
      "name",
      `a volume named "${inputs.name}" already exists in pool "${inputs.pool}" on ${uri}; choose another name or remove it (virsh vol-delete)`,
    );
  }
  await upload(uri, inputs);
  const vol = await findVolume(uri, inputs.pool, inputs.name);
  const outs =
    vol && (await observeCloudInitDisk(uri, vol.key, { contentSha256: contentSha256(inputs), pool: inputs.pool }));
  if (!outs) throw new Error(`libvirt: volume "${inputs.name}" vanished right after it was created on ${uri}`);
  return { id: outs.key, outs };
}

async function updateCloudInitDisk(
  id: string,
  olds: CloudInitDiskOutputs,
  news: CloudInitDiskInputs,
): Promise<{ outs: CloudInitDiskOutputs }> {
  const uri = resolveUri(news.uri);
  const vol = await volumeByKey(uri, id);
  if (!vol) {
    throw new Error(
      uri === olds.uri
        ? `libvirt: cloud-init volume ${id} no longer exists on ${uri}; run pulumi refresh`
        : `uri: cloud-init volume ${id} was not found on ${uri}; a volume moves to another host only by replacement (change its name)`,
    );
  }
  const sha = contentSha256(news);
  if (sha !== olds.contentSha256 || olds.isoSha256 === "") {
    await virsh(uri, ["vol-delete", id]);
    await upload(uri, news);
  }
  const outs = await observeCloudInitDisk(uri, id, { contentSha256: sha, pool: news.pool });
  if (!outs) throw new Error(`libvirt: cloud-init volume ${id} vanished during the update on ${uri}`);
  return { outs };
}

export const cloudInitDiskProvider = libvirtProvider<CloudInitDiskInputs, CloudInitDiskOutputs>({
  check: checkCloudInitDisk,
  diff: diffCloudInitDisk,
  create: createCloudInitDisk,
  observe: async (uri, id, recorded) => {
    const outs = await observeCloudInitDisk(uri, id, {
      contentSha256: recorded?.contentSha256 ?? "",
      pool: recorded?.pool ?? "",
    });
    // An image changed behind our back no longer holds the documents we recorded.
    if (outs && recorded && outs.isoSha256 !== recorded.isoSha256) outs.contentSha256 = "";
    return outs;
  },
  update: updateCloudInitDisk,
  remove: async (id, props) => {
    await virshIfExists(props.uri ?? resolveUri(undefined), ["vol-delete", id]);
  },
});

export interface CloudInitDiskArgs {
  uri?: pulumi.Input<string>;
  /** Volume name; default: the resource name. */
  name?: pulumi.Input<string>;
  pool: pulumi.Input<string>;
  /** user-data (e.g. "#cloud-config\n..."); pass a secret when it holds one. */
  userData: pulumi.Input<string>;
  metaData?: pulumi.Input<string>;
  networkConfig?: pulumi.Input<string>;
}

export class CloudInitDisk extends pulumi.dynamic.Resource {
  declare public readonly kind: pulumi.Output<typeof CLOUD_INIT_DISK_KIND>;
  declare public readonly uri: pulumi.Output<string>;
  declare public readonly name: pulumi.Output<string>;
  declare public readonly pool: pulumi.Output<string>;
  declare public readonly key: pulumi.Output<string>;
  declare public readonly path: pulumi.Output<string>;
  declare public readonly size: pulumi.Output<number>;
  declare public readonly contentSha256: pulumi.Output<string>;
  declare public readonly isoSha256: pulumi.Output<string>;

  constructor(name: string, args: CloudInitDiskArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      cloudInitDiskProvider,
      name,
      {
        ...args,
        name: args.name ?? name,
        kind: CLOUD_INIT_DISK_KIND,
        key: undefined,
        path: undefined,
        size: undefined,
        contentSha256: undefined,
        isoSha256: undefined,
      },
      opts,
      "libvirt",
      "CloudInitDisk",
    );
  }
}
