/**
 * libvirt storage volume: a copy-on-write overlay on a base image (backing store, qcow2), or an empty volume of a
 * given size.
 *
 * In place: a larger `size` (`virsh vol-resize`, or `virsh blockresize` through QEMU when a running domain holds
 * the image's write lock), `uri` (re-pointed after checking the volume is there). Replaced: name, pool,
 * format, base, basePool, and a smaller size (shrinking an image loses data; a new volume is what it means),
 * deleting the old one first when the name and pool stay the same.
 */
import * as pulumi from "@pulumi/pulumi";
import { checker, CheckFailure, libvirtProvider, compact, isUnknown, NAME_RE, NAME_RULE, same } from "./common";
import { fieldError, resolveUri, virsh, virshIfExists, virshXml } from "./virsh";
import { child, childrenOf, el, parseXml, renderXml, textEl } from "./xml";

export const VOLUME_KIND = "libvirt:Volume";
export type VolumeFormat = "qcow2" | "raw";
export const VOLUME_FORMATS: readonly VolumeFormat[] = ["qcow2", "raw"];
/** 1 TiB * 64: anything larger is a typo. */
const MAX_SIZE = 64 * 2 ** 40;

export interface VolumeInputs {
  kind: typeof VOLUME_KIND;
  uri?: string;
  name: string;
  pool: string;
  format: VolumeFormat;
  /** Bytes. Required without base; with base, default (and minimum) the base's capacity. */
  size?: number;
  /** A volume (name) the new one is an overlay of. */
  base?: string;
  /** The base's pool; default: pool. */
  basePool?: string;
}

export interface VolumeOutputs extends VolumeInputs {
  uri: string;
  /** libvirt's key (the path, for a directory pool); the resource id. */
  key: string;
  path: string;
  /** Actual capacity in bytes. */
  capacity: number;
  /** Backing file of an overlay. */
  backingPath?: string;
}

const FIELDS = ["kind", "uri", "name", "pool", "format", "size", "base", "basePool"];

export function checkVolume(news: Record<string, unknown>): { inputs: VolumeInputs; failures: CheckFailure[] } {
  const c = checker();
  c.known("", news, FIELDS);
  if (news.kind !== undefined && news.kind !== VOLUME_KIND) c.fail("kind", `must be ${VOLUME_KIND}`);
  const uri = c.uri("uri", news.uri);
  const name = c.string("name", news.name, { required: true, re: NAME_RE, rule: NAME_RULE });
  const pool = c.string("pool", news.pool, { required: true, re: NAME_RE, rule: NAME_RULE });
  const format = c.oneOf("format", news.format, VOLUME_FORMATS, "qcow2");
  const size = c.integer("size", news.size, { min: 1024 * 1024, max: MAX_SIZE });
  const base = c.string("base", news.base, { re: NAME_RE, rule: NAME_RULE });
  const basePool = c.string("basePool", news.basePool, { re: NAME_RE, rule: NAME_RULE });
  if (base === undefined && news.size === undefined) c.fail("size", "is required for a volume without base");
  if (base !== undefined && format === "raw") c.fail("format", "must be qcow2 for an overlay on base");
  if (basePool !== undefined && base === undefined) c.fail("basePool", "is only valid with base");
  if (base !== undefined && !isUnknown(base) && base === name && (basePool ?? pool) === pool)
    c.fail("base", "must not be the volume itself");
  const inputs = compact({
    kind: VOLUME_KIND,
    uri,
    name: name as string,
    pool: pool as string,
    format: format as VolumeFormat,
    size,
    base,
    basePool: base !== undefined ? (basePool ?? pool) : undefined,
  }) as VolumeInputs;
  return { inputs, failures: c.failures };
}

export function renderVolumeXml(v: {
  name: string;
  format: VolumeFormat;
  capacity: number;
  backing?: { path: string; format: string };
}): string {
  return renderXml(
    el(
      "volume",
      { type: "file" },
      textEl("name", v.name),
      textEl("capacity", v.capacity, { unit: "bytes" }),
      el("target", {}, el("format", { type: v.format })),
      v.backing
        ? el("backingStore", {}, textEl("path", v.backing.path), el("format", { type: v.backing.format }))
        : undefined,
    ),
  );
}

export interface ObservedVolume {
  name: string;
  key: string;
  path: string;
  capacity: number;
  format: string;
  backingPath?: string;
  backingFormat?: string;
}

export function parseVolumeXml(xml: string): ObservedVolume {
  const root = parseXml(xml);
  const target = child(root, "target");
  const backing = child(root, "backingStore");
  const unit = child(root, "capacity")?.attrs.unit ?? "bytes";
  const scale: Record<string, number> = { bytes: 1, B: 1, KiB: 1024, MiB: 2 ** 20, GiB: 2 ** 30, TiB: 2 ** 40 };
  return compact({
    name: child(root, "name")?.text ?? "",
    key: child(root, "key")?.text ?? "",
    path: child(target, "path")?.text ?? "",
    capacity: Number(child(root, "capacity")?.text ?? "0") * (scale[unit] ?? 1),
    format: child(target, "format")?.attrs.type ?? "raw",
    backingPath: child(backing, "path")?.text || undefined,
    backingFormat: child(backing, "format")?.attrs.type,
  }) as ObservedVolume;
}

/** A volume by pool and name, or undefined. */
export async function findVolume(uri: string, pool: string, name: string): Promise<ObservedVolume | undefined> {
  const xml = await virshIfExists(uri, ["vol-dumpxml", "--pool", pool, name]);
  return xml === undefined ? undefined : parseVolumeXml(xml);
}

/** A volume by key (or path), or undefined. */
export async function volumeByKey(uri: string, key: string): Promise<ObservedVolume | undefined> {
  const xml = await virshIfExists(uri, ["vol-dumpxml", key]);
  return xml === undefined ? undefined : parseVolumeXml(xml);
}

/** Throws `pool: ...` when the pool does not exist or is not running. */
export async function requirePool(uri: string, pool: string, field = "pool"): Promise<void> {
  const info = await virshIfExists(uri, ["pool-info", pool]);
  if (info === undefined) throw fieldError(field, `storage pool "${pool}" not found on ${uri}`);
  if (!/^State:\s+running$/m.test(info))
    throw fieldError(field, `storage pool "${pool}" is not running on ${uri} (virsh pool-start ${pool})`);
}

function toOutputs(uri: string, props: VolumeInputs, o: ObservedVolume): VolumeOutputs {
  return compact({
    ...props,
    kind: VOLUME_KIND,
    uri,
    name: o.name,
    format: o.format as VolumeFormat,
    key: o.key,
    path: o.path,
    capacity: o.capacity,
    backingPath: o.backingPath,
  }) as VolumeOutputs;
}

export function diffVolume(
  olds: VolumeOutputs,
  news: VolumeInputs,
): { changes: boolean; replaces: string[]; updates: string[]; deleteBeforeReplace: boolean } {
  const replaces: string[] = [];
  const updates: string[] = [];
  for (const k of ["name", "pool", "format", "base", "basePool"] as const)
    if (!same(olds[k], news[k])) replaces.push(k);
  if (news.size !== undefined) {
    if (isUnknown(news.size) || news.size < olds.capacity) replaces.push("size");
    else if (news.size > olds.capacity) updates.push("size");
  }
  let uri: string | undefined;
  try {
    uri = resolveUri(news.uri);
  } catch {
    uri = undefined;
  }
  if (uri !== olds.uri) updates.push("uri");
  const collide =
    replaces.length > 0 &&
    (isUnknown(news.name) || isUnknown(news.pool) || (olds.name === news.name && olds.pool === news.pool));
  return { changes: replaces.length + updates.length > 0, replaces, updates, deleteBeforeReplace: collide };
}

async function createVolume(inputs: VolumeInputs): Promise<{ id: string; outs: VolumeOutputs }> {
  const uri = resolveUri(inputs.uri);
  await requirePool(uri, inputs.pool);
  if (await findVolume(uri, inputs.pool, inputs.name)) {
    throw fieldError(
      "name",
      `a volume named "${inputs.name}" already exists in pool "${inputs.pool}" on ${uri}; choose another name or remove it (virsh vol-delete)`,
    );
  }
  let backing: { path: string; format: string } | undefined;
  let capacity = inputs.size;
  if (inputs.base !== undefined) {
    const basePool = inputs.basePool ?? inputs.pool;
    if (basePool !== inputs.pool) await requirePool(uri, basePool, "basePool");
    const base = await findVolume(uri, basePool, inputs.base);
    if (!base) throw fieldError("base", `base image volume "${inputs.base}" not found in pool "${basePool}" on ${uri}`);
    backing = { path: base.path, format: base.format };
    if (capacity === undefined) capacity = base.capacity;
    else if (capacity < base.capacity)
      throw fieldError("size", `must be at least the base image's capacity (${base.capacity} bytes)`);
  }
  await virshXml(
    uri,
    (f) => ["vol-create", inputs.pool, f],
    renderVolumeXml({ name: inputs.name, format: inputs.format, capacity: capacity!, backing }),
  );
  const o = await findVolume(uri, inputs.pool, inputs.name);
  if (!o) throw new Error(`libvirt: volume "${inputs.name}" vanished right after it was created on ${uri}`);
  return { id: o.key, outs: toOutputs(uri, inputs, o) };
}

/** The running domain that has the volume as a disk, and the disk's target (vda, ...), if any. */
async function runningDomainUsing(
  uri: string,
  pool: string,
  vol: ObservedVolume,
): Promise<[string, string] | undefined> {
  const names = (await virsh(uri, ["list", "--name"]))
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "");
  for (const name of names) {
    const xml = await virshIfExists(uri, ["dumpxml", name]);
    if (xml === undefined) continue;
    for (const disk of childrenOf(child(parseXml(xml), "devices"), "disk")) {
      const src = child(disk, "source")?.attrs ?? {};
      const dev = child(disk, "target")?.attrs.dev;
      if (dev && ((src.pool === pool && src.volume === vol.name) || src.file === vol.path)) return [name, dev];
    }
  }
  return undefined;
}

async function growVolume(uri: string, pool: string, vol: ObservedVolume, size: number): Promise<void> {
  try {
    await virsh(uri, ["vol-resize", vol.key, String(size)], { timeoutMs: 120_000 });
  } catch (e) {
    if (!/lock/i.test((e as Error).message)) throw e;
    // A running domain holds the image: grow it through QEMU (the guest sees the new size at once).
    const user = await runningDomainUsing(uri, pool, vol);
    if (!user) throw e;
    await virsh(uri, ["blockresize", user[0], user[1], `${size}B`], { timeoutMs: 120_000 });
  }
}

async function updateVolume(id: string, olds: VolumeOutputs, news: VolumeInputs): Promise<{ outs: VolumeOutputs }> {
  const uri = resolveUri(news.uri);
  const current = await volumeByKey(uri, id);
  if (!current) {
    throw new Error(
      uri === olds.uri
        ? `libvirt: volume ${id} no longer exists on ${uri}; run pulumi refresh`
        : `uri: volume ${id} was not found on ${uri}; a volume moves to another host only by replacement (change its name)`,
    );
  }
  if (news.size !== undefined && news.size > current.capacity) await growVolume(uri, news.pool, current, news.size);
  const o = await volumeByKey(uri, id);
  if (!o) throw new Error(`libvirt: volume ${id} vanished during the update on ${uri}`);
  return { outs: toOutputs(uri, news, o) };
}

export const volumeProvider = libvirtProvider<VolumeInputs, VolumeOutputs>({
  check: checkVolume,
  diff: diffVolume,
  create: createVolume,
  observe: async (uri, id, recorded) => {
    const o = await volumeByKey(uri, id);
    return o ? toOutputs(uri, recorded ?? ({} as VolumeInputs), o) : undefined;
  },
  update: updateVolume,
  remove: async (id, props) => {
    await virshIfExists(props.uri ?? resolveUri(undefined), ["vol-delete", id]);
  },
});

export interface VolumeArgs {
  uri?: pulumi.Input<string>;
  /** libvirt name; default: the resource name. */
  name?: pulumi.Input<string>;
  pool: pulumi.Input<string>;
  /** Default qcow2. */
  format?: pulumi.Input<VolumeFormat>;
  /** Bytes; required without base, default the base's capacity. */
  size?: pulumi.Input<number>;
  base?: pulumi.Input<string>;
  basePool?: pulumi.Input<string>;
}

export class Volume extends pulumi.dynamic.Resource {
  declare public readonly kind: pulumi.Output<typeof VOLUME_KIND>;
  declare public readonly uri: pulumi.Output<string>;
  declare public readonly name: pulumi.Output<string>;
  declare public readonly pool: pulumi.Output<string>;
  declare public readonly format: pulumi.Output<VolumeFormat>;
  declare public readonly size: pulumi.Output<number | undefined>;
  declare public readonly base: pulumi.Output<string | undefined>;
  declare public readonly basePool: pulumi.Output<string | undefined>;
  declare public readonly key: pulumi.Output<string>;
  declare public readonly path: pulumi.Output<string>;
  declare public readonly capacity: pulumi.Output<number>;
  declare public readonly backingPath: pulumi.Output<string | undefined>;

  constructor(name: string, args: VolumeArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      volumeProvider,
      name,
      {
        ...args,
        name: args.name ?? name,
        kind: VOLUME_KIND,
        key: undefined,
        path: undefined,
        capacity: undefined,
        backingPath: undefined,
      },
      opts,
      "libvirt",
      "Volume",
    );
  }
}
