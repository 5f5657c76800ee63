/**
 * libvirt domain (VM): vCPUs, memory, disks (pool volumes), an optional cloud-init seed as a SATA CD-ROM, one or
 * more NICs with fixed MACs on libvirt networks, a serial console (pty), autostart; `kvm` when the host can run
 * KVM guests (`virsh domcapabilities --virttype kvm`), else `qemu` (TCG), unless `type` says which.
 *
 * In place (the VM is never re-created for these): vcpu and memoryMiB (written to the persistent definition; a
 * running VM gets them at its next boot and reports `restartRequired` until then), the cloud-init volume (the
 * CD-ROM media is swapped, live too), autostart, running (start, or ACPI shutdown bounded by
 * shutdownTimeoutSeconds then power-off), shutdownTimeoutSeconds, uri (re-pointed after checking the domain is
 * there). Replaced: name, machine, type, disks, NICs (network, MAC, model), adding or removing the CD-ROM; the old
 * domain is deleted first when old and new would share a name, a MAC or a disk.
 */
import * as pulumi from "@pulumi/pulumi";
import {
  canonicalMac,
  checker,
  CheckFailure,
  libvirtProvider,
  compact,
  isObject,
  isUnknown,
  listOf,
  MAC_RULE,
  NAME_RE,
  NAME_RULE,
  same,
} from "./common";
import { findVolume } from "./volume";
import {
  detectVirtType,
  fieldError,
  resolveUri,
  UNKNOWN,
  virsh,
  virshIfExists,
  virshXml,
  type VirshError,
} from "./virsh";
import { child, childrenOf, el, parseXml, path as xpath, renderXml, textEl, XElement } from "./xml";

export const DOMAIN_KIND = "libvirt:Domain";
export type DomainType = "auto" | "kvm" | "qemu";
export const DOMAIN_TYPES: readonly DomainType[] = ["auto", "kvm", "qemu"];
export type DiskBus = "virtio" | "sata";
export const DISK_BUSES: readonly DiskBus[] = ["virtio", "sata"];
export type NicModel = "virtio" | "e1000e" | "e1000";
export const NIC_MODELS: readonly NicModel[] = ["virtio", "e1000e", "e1000"];

export interface DomainDisk {
  pool: string;
  volume: string;
  bus: DiskBus;
}

export interface DomainNic {
  network: string;
  mac: string;
  model: NicModel;
}

export interface DomainCloudInit {
  pool: string;
  volume: string;
}

export interface DomainInputs {
  kind: typeof DOMAIN_KIND;
  uri?: string;
  name: string;
  vcpu: number;
  memoryMiB: number;
  /** The first one boots. */
  disks: DomainDisk[];
  cloudInit?: DomainCloudInit;
  nics: DomainNic[];
  type: DomainType;
  machine: string;
  autostart: boolean;
  running: boolean;
  /** ACPI shutdown wait before power-off, on delete and running=false; 0 = power off at once. */
  shutdownTimeoutSeconds: number;
}

export interface DomainOutputs extends DomainInputs {
  uri: string;
  uuid: string;
  virtType: "kvm" | "qemu";
  /** virsh domstate: running, shut off, paused, ... */
  state: string;
  /** The running VM still has the vcpu/memory it booted with; the definition has new ones. */
  restartRequired: boolean;
}

const FIELDS = [
  "kind",
  "uri",
  "name",
  "vcpu",
  "memoryMiB",
  "disks",
  "cloudInit",
  "nics",
  "type",
  "machine",
  "autostart",
  "running",
  "shutdownTimeoutSeconds",
];
const MACHINE_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;

export function checkDomain(news: Record<string, unknown>): { inputs: DomainInputs; failures: CheckFailure[] } {
  const c = checker();
  c.known("", news, FIELDS);
  if (news.kind !== undefined && news.kind !== DOMAIN_KIND) c.fail("kind", `must be ${DOMAIN_KIND}`);
  const uri = c.uri("uri", news.uri);
  const name = c.string("name", news.name, { required: true, re: NAME_RE, rule: NAME_RULE });
  const vcpu = c.integer("vcpu", news.vcpu, { required: true, min: 1, max: 256 });
  const memoryMiB = c.integer("memoryMiB", news.memoryMiB, { required: true, min: 32, max: 4 * 1024 * 1024 });
  const type = c.oneOf("type", news.type, DOMAIN_TYPES, "auto");
  const machine =
    c.string("machine", news.machine, { re: MACHINE_RE, rule: "must be a QEMU machine type such as q35 or pc" }) ??
    "q35";
  const autostart = c.boolean("autostart", news.autostart, true);
  const running = c.boolean("running", news.running, true);
  const shutdownTimeoutSeconds =
    c.integer("shutdownTimeoutSeconds", news.shutdownTimeoutSeconds, { min: 0, max: 600 }) ?? 30;

  const disks: DomainDisk[] = [];
  listOf(c, "disks", news.disks, { min: 1 }).forEach((d, i) => {
    const p = `disks[${i}]`;
    if (!isObject(d)) {
      c.fail(p, "must be an object {pool, volume, bus?}");
      return;
    }
    c.known(p, d, ["pool", "volume", "bus"]);
    const pool = c.string(`${p}.pool`, d.pool, { required: true, re: NAME_RE, rule: NAME_RULE });
    const volume = c.string(`${p}.volume`, d.volume, { required: true, re: NAME_RE, rule: NAME_RULE });
    const bus = c.oneOf(`${p}.bus`, d.bus, DISK_BUSES, "virtio");
    if (pool && volume && bus) disks.push({ pool, volume, bus });
  });
  const seenDisk = new Map<string, number>();
  disks.forEach((d, i) => {
    const key = `${d.pool}/${d.volume}`;
    if (!isUnknown(key) && seenDisk.has(key)) c.fail(`disks[${i}].volume`, `duplicates disks[${seenDisk.get(key)}]`);
    seenDisk.set(key, i);
  });
  if (disks.filter((d) => d.bus === "virtio").length > 26 || disks.filter((d) => d.bus === "sata").length > 5)
    c.fail("disks", "too many disks on one bus");

  let cloudInit: DomainCloudInit | undefined;
  if (news.cloudInit !== undefined && news.cloudInit !== null && news.cloudInit !== UNKNOWN) {
    if (!isObject(news.cloudInit)) c.fail("cloudInit", "must be an object {pool, volume}");
    else {
      c.known("cloudInit", news.cloudInit, ["pool", "volume"]);
      const pool = c.string("cloudInit.pool", news.cloudInit.pool, { required: true, re: NAME_RE, rule: NAME_RULE });
      const volume = c.string("cloudInit.volume", news.cloudInit.volume, {
        required: true,
        re: NAME_RE,
        rule: NAME_RULE,
      });
      if (pool && volume) cloudInit = { pool, volume };
    }
  }

  const nics: DomainNic[] = [];
  const seenMac = new Map<string, number>();
  listOf(c, "nics", news.nics, { min: 1 }).forEach((n, i) => {
    const p = `nics[${i}]`;
    if (!isObject(n)) {
      c.fail(p, "must be an object {network, mac, model?}");
      return;
    }
    c.known(p, n, ["network", "mac", "model"]);
    const network = c.string(`${p}.network`, n.network, { required: true, re: NAME_RE, rule: NAME_RULE });
    let mac: string | undefined;
    if (isUnknown(n.mac)) mac = n.mac as string;
    else if (n.mac === undefined)
      c.fail(`${p}.mac`, "is required (a fixed MAC keeps DHCP reservations and interface names stable)");
    else {
      mac = canonicalMac(n.mac);
      if (!mac) c.fail(`${p}.mac`, `${MAC_RULE}, not ${JSON.stringify(n.mac)}`);
      else if (seenMac.has(mac)) c.fail(`${p}.mac`, `duplicates nics[${seenMac.get(mac)}].mac`);
      else seenMac.set(mac, i);
    }
    const model = c.oneOf(`${p}.model`, n.model, NIC_MODELS, "virtio");
    if (network && mac && model) nics.push({ network, mac, model });
  });

  // A whole list/object not known yet (preview) stays unknown: diff treats it as a change.
  const inputs = compact({
    kind: DOMAIN_KIND,
    uri,
    name: name as string,
    vcpu: vcpu as number,
    memoryMiB: memoryMiB as number,
    disks: news.disks === UNKNOWN ? (UNKNOWN as unknown as DomainDisk[]) : disks,
    cloudInit: news.cloudInit === UNKNOWN ? (UNKNOWN as unknown as DomainCloudInit) : cloudInit,
    nics: news.nics === UNKNOWN ? (UNKNOWN as unknown as DomainNic[]) : nics,
    type: type as DomainType,
    machine,
    autostart,
    running,
    shutdownTimeoutSeconds,
  }) as DomainInputs;
  return { inputs, failures: c.failures };
}

/** What the renderer needs beyond the inputs: the resolved type and each volume's format. */
export interface DomainRenderInput {
  name: string;
  uuid?: string;
  virtType: "kvm" | "qemu";
  machine: string;
  vcpu: number;
  memoryMiB: number;
  disks: Array<DomainDisk & { format: string }>;
  cloudInit?: DomainCloudInit;
  nics: DomainNic[];
}

function devName(prefix: string, i: number): string {
  return `${prefix}${String.fromCharCode(97 + i)}`;
}

/** The CD-ROM element (also what a live media swap sends). */
export function cdromElement(ci: DomainCloudInit | undefined, sataIndex: number): XElement {
  return el(
    "disk",
    { type: "volume", device: "cdrom" },
    el("driver", { name: "qemu", type: "raw" }),
    ci ? el("source", { pool: ci.pool, volume: ci.volume }) : undefined,
    el("target", { dev: devName("sd", sataIndex), bus: "sata" }),
    el("readonly"),
  );
}

export function renderDomainXml(d: DomainRenderInput): string {
  let virtio = 0;
  let sata = 0;
  const disks = d.disks.map((disk) =>
    el(
      "disk",
      { type: "volume", device: "disk" },
      el("driver", { name: "qemu", type: disk.format, discard: "unmap" }),
      el("source", { pool: disk.pool, volume: disk.volume }),
      el("target", { dev: disk.bus === "virtio" ? devName("vd", virtio++) : devName("sd", sata++), bus: disk.bus }),
    ),
  );
  return renderXml(
    el(
      "domain",
      { type: d.virtType },
      textEl("name", d.name),
      d.uuid ? textEl("uuid", d.uuid) : undefined,
      textEl("memory", d.memoryMiB, { unit: "MiB" }),
      textEl("currentMemory", d.memoryMiB, { unit: "MiB" }),
      textEl("vcpu", d.vcpu, { placement: "static" }),
      el("os", {}, textEl("type", "hvm", { arch: "x86_64", machine: d.machine }), el("boot", { dev: "hd" })),
      el("features", {}, el("acpi"), el("apic")),
      el("clock", { offset: "utc" }),
      textEl("on_poweroff", "destroy"),
      textEl("on_reboot", "restart"),
      textEl("on_crash", "destroy"),
      el(
        "devices",
        {},
        ...disks,
        d.cloudInit ? cdromElement(d.cloudInit, sata) : undefined,
        ...d.nics.map((n) =>
          el(
            "interface",
            { type: "network" },
            el("mac", { address: n.mac }),
            el("source", { network: n.network }),
            el("model", { type: n.model }),
          ),
        ),
        el("serial", { type: "pty" }, el("target", { port: 0 })),
        el("console", { type: "pty" }, el("target", { type: "serial", port: 0 })),
      ),
    ),
  );
}

export interface ObservedDomain {
  name: string;
  uuid: string;
  virtType: string;
  vcpu: number;
  memoryMiB: number;
  disks: DomainDisk[];
  cloudInit?: DomainCloudInit;
  /** SATA index of the CD-ROM (its target sdX), for a live media swap. */
  cdromIndex?: number;
  nics: DomainNic[];
}

const KIB: Record<string, number> = {
  b: 1 / 1024,
  bytes: 1 / 1024,
  KiB: 1,
  k: 1,
  MiB: 1024,
  M: 1024,
  GiB: 1024 * 1024,
  G: 1024 * 1024,
};

export function parseDomainXml(xml: string): ObservedDomain {
  const root = parseXml(xml);
  const memory = child(root, "memory");
  const devices = child(root, "devices");
  const disks: DomainDisk[] = [];
  let cloudInit: DomainCloudInit | undefined;
  let cdromIndex: number | undefined;
  for (const d of childrenOf(devices, "disk")) {
    const source = child(d, "source");
    const target = child(d, "target");
    if (d.attrs.device === "cdrom") {
      cdromIndex = (target?.attrs.dev ?? "sda").charCodeAt(2) - 97;
      if (source?.attrs.pool && source.attrs.volume)
        cloudInit = { pool: source.attrs.pool, volume: source.attrs.volume };
    } else if (d.attrs.device === "disk" || d.attrs.device === undefined) {
      disks.push({
        pool: source?.attrs.pool ?? "",
        volume: source?.attrs.volume ?? source?.attrs.file ?? source?.attrs.dev ?? "",
        bus: (target?.attrs.bus ?? "virtio") as DiskBus,
      });
    }
  }
  return compact({
    name: child(root, "name")?.text ?? "",
    uuid: child(root, "uuid")?.text ?? "",
    virtType: root.attrs.type ?? "",
    vcpu: Number(child(root, "vcpu")?.text ?? "0"),
    memoryMiB: Math.round((Number(memory?.text ?? "0") * (KIB[memory?.attrs.unit ?? "KiB"] ?? 1)) / 1024),
    disks,
    cloudInit,
    cdromIndex,
    nics: childrenOf(devices, "interface").map((n) => ({
      network: xpath(n, "source")?.attrs.network ?? "",
      mac: (xpath(n, "mac")?.attrs.address ?? "").toLowerCase(),
      model: (xpath(n, "model")?.attrs.type ?? "") as NicModel,
    })),
  }) as ObservedDomain;
}

async function domState(uri: string, ref: string): Promise<string | undefined> {
  const s = await virshIfExists(uri, ["domstate", ref]);
  return s?.trim();
}

/** The domain as libvirt has it (persistent definition + state), or undefined when it is gone. */
export async function observeDomain(
  uri: string,
  ref: string,
  props: Partial<DomainInputs>,
): Promise<DomainOutputs | undefined> {
  const inactive = await virshIfExists(uri, ["dumpxml", "--inactive", ref]);
  if (inactive === undefined) return undefined;
  const o = parseDomainXml(inactive);
  const info = (await virshIfExists(uri, ["dominfo", ref])) ?? "";
  const state = (await domState(uri, ref)) ?? "unknown";
  let restartRequired = false;
  if (state === "running" || state === "paused") {
    const live = await virshIfExists(uri, ["dumpxml", ref]);
    if (live !== undefined) {
      const l = parseDomainXml(live);
      restartRequired = l.vcpu !== o.vcpu || l.memoryMiB !== o.memoryMiB;
    }
  }
  return compact({
    kind: DOMAIN_KIND,
    uri,
    name: o.name,
    uuid: o.uuid,
    vcpu: o.vcpu,
    memoryMiB: o.memoryMiB,
    disks: o.disks,
    cloudInit: o.cloudInit,
    nics: o.nics,
    type: props.type ?? "auto",
    machine: props.machine ?? "q35",
    autostart: /^Autostart:\s+enable/m.test(info),
    running: state === "running",
    shutdownTimeoutSeconds: props.shutdownTimeoutSeconds ?? 30,
    virtType: o.virtType as "kvm" | "qemu",
    state,
    restartRequired,
  }) as DomainOutputs;
}

export function diffDomain(
  olds: DomainOutputs,
  news: DomainInputs,
): { changes: boolean; replaces: string[]; updates: string[]; deleteBeforeReplace: boolean } {
  const replaces: string[] = [];
  const updates: string[] = [];
  const cmp = (key: string, a: unknown, b: unknown, replace: boolean) => {
    if (!same(a, b)) (replace ? replaces : updates).push(key);
  };
  cmp("name", olds.name, news.name, true);
  cmp("machine", olds.machine, news.machine, true);
  const wantedType = news.type === "auto" ? olds.virtType : news.type;
  if (!same(wantedType, olds.virtType)) replaces.push("type");
  else cmp("type", olds.type, news.type, false);
  cmp("disks", olds.disks, news.disks, true);
  cmp("nics", olds.nics, news.nics, true);
  if ((olds.cloudInit === undefined) !== (news.cloudInit === undefined)) replaces.push("cloudInit");
  else cmp("cloudInit", olds.cloudInit, news.cloudInit, false);
  cmp("vcpu", olds.vcpu, news.vcpu, false);
  cmp("memoryMiB", olds.memoryMiB, news.memoryMiB, false);
  cmp("autostart", olds.autostart, news.autostart, false);
  cmp("running", olds.running, news.running, false);
  cmp("shutdownTimeoutSeconds", olds.shutdownTimeoutSeconds, news.shutdownTimeoutSeconds, false);
  let uri: string | undefined;
  try {
    uri = resolveUri(news.uri);
  } catch {
    uri = undefined;
  }
  if (uri !== olds.uri) updates.push("uri");
  const oldMacs = new Set((olds.nics ?? []).map((n) => n.mac));
  const oldDisks = new Set((olds.disks ?? []).map((d) => `${d.pool}/${d.volume}`));
  const collide =
    replaces.length > 0 &&
    (isUnknown(news.name) ||
      olds.name === news.name ||
      isUnknown(news.nics) ||
      news.nics.some((n) => oldMacs.has(n.mac)) ||
      isUnknown(news.disks) ||
      news.disks.some((d) => oldDisks.has(`${d.pool}/${d.volume}`)));
  return { changes: replaces.length + updates.length > 0, replaces, updates, deleteBeforeReplace: collide };
}

/** Disk formats from the volumes; clear `field: ...` errors for what is missing. */
async function resolveRender(
  uri: string,
  d: DomainInputs,
  virtType: "kvm" | "qemu",
  uuid?: string,
): Promise<DomainRenderInput> {
  const disks: DomainRenderInput["disks"] = [];
  for (const [i, disk] of d.disks.entries()) {
    const vol = await findVolume(uri, disk.pool, disk.volume);
    if (!vol) throw fieldError(`disks[${i}]`, `volume "${disk.volume}" not found in pool "${disk.pool}" on ${uri}`);
    disks.push({ ...disk, format: vol.format });
  }
  if (d.cloudInit && !(await findVolume(uri, d.cloudInit.pool, d.cloudInit.volume))) {
    throw fieldError("cloudInit", `volume "${d.cloudInit.volume}" not found in pool "${d.cloudInit.pool}" on ${uri}`);
  }
  return {
    name: d.name,
    uuid,
    virtType,
    machine: d.machine,
    vcpu: d.vcpu,
    memoryMiB: d.memoryMiB,
    disks,
    cloudInit: d.cloudInit,
    nics: d.nics,
  };
}

/** ACPI shutdown, waiting up to timeoutSeconds for the guest to power off, then power-off. */
async function stopDomain(uri: string, ref: string, timeoutSeconds: number): Promise<void> {
  const off = (s: string | undefined) => s === undefined || s === "shut off";
  const state = await domState(uri, ref);
  if (off(state)) return;
  if (timeoutSeconds > 0 && state === "running") {
    await virshIfExists(uri, ["shutdown", ref]).catch(() => undefined);
    const deadline = Date.now() + timeoutSeconds * 1000;
    while (Date.now() < deadline) {
      const now = await domState(uri, ref);
      if (off(now)) return;
      if (now !== "running" && now !== "in shutdown") break; // paused or crashed: it will not power off by itself
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  await powerOff(uri, ref);
}

/**
 * `virsh destroy`, where a guest that is off already is done, not an error: one that powers off between our look and
 * the command (an ACPI shutdown finishing; a CI run's `pulumi destroy` failed so) is what we wanted.
 */
export async function powerOff(uri: string, ref: string): Promise<void> {
  try {
    await virshIfExists(uri, ["destroy", ref]);
  } catch (e) {
    if (!/domain is not running/i.test((e as VirshError).stderr ?? "")) throw e;
  }
}

async function setAutostart(uri: string, ref: string, on: boolean): Promise<void> {
  await virsh(uri, on ? ["autostart", ref] : ["autostart", "--disable", ref]);
}

async function createDomain(inputs: DomainInputs): Promise<{ id: string; outs: DomainOutputs }> {
  const uri = resolveUri(inputs.uri);
  if ((await virshIfExists(uri, ["domuuid", inputs.name])) !== undefined) {
    throw fieldError(
      "name",
      `a domain named "${inputs.name}" already exists on ${uri}; choose another name or remove it (virsh undefine)`,
    );
  }
  for (const [i, nic] of inputs.nics.entries()) {
    if ((await virshIfExists(uri, ["net-uuid", nic.network])) === undefined)
      throw fieldError(`nics[${i}].network`, `network "${nic.network}" not found on ${uri}`);
  }
  const virtType = inputs.type === "auto" ? await detectVirtType(uri) : inputs.type;
  const render = await resolveRender(uri, inputs, virtType);
  await virshXml(uri, (f) => ["define", f], renderDomainXml(render));
  try {
    await setAutostart(uri, inputs.name, inputs.autostart);
    if (inputs.running) await virsh(uri, ["start", inputs.name], { timeoutMs: 120_000 });
  } catch (e) {
    await virshIfExists(uri, ["destroy", inputs.name]).catch(() => undefined);
    await virshIfExists(uri, ["undefine", "--managed-save", "--snapshots-metadata", inputs.name]).catch(
      () => undefined,
    );
    throw e;
  }
  const outs = await observeDomain(uri, inputs.name, inputs);
  if (!outs) throw new Error(`libvirt: domain "${inputs.name}" vanished right after it was created on ${uri}`);
  return { id: outs.uuid, outs };
}

async function updateDomain(id: string, olds: DomainOutputs, news: DomainInputs): Promise<{ outs: DomainOutputs }> {
  const uri = resolveUri(news.uri);
  const current = await observeDomain(uri, id, news);
  if (!current) {
    throw new Error(
      uri === olds.uri
        ? `libvirt: domain ${olds.name} (${id}) no longer exists on ${uri}; run pulumi refresh`
        : `uri: domain ${olds.name} (${id}) was not found on ${uri}; a domain moves to another host only by replacement (change its name)`,
    );
  }
  const mediaChanged = !same(current.cloudInit, news.cloudInit);
  if (current.vcpu !== news.vcpu || current.memoryMiB !== news.memoryMiB || mediaChanged) {
    // The persistent definition from the same renderer, same UUID and type: only these fields differ.
    const render = await resolveRender(uri, news, current.virtType, current.uuid);
    await virshXml(uri, (f) => ["define", f], renderDomainXml(render));
    if (mediaChanged && current.state === "running" && news.cloudInit) {
      const sataDisks = news.disks.filter((d) => d.bus === "sata").length;
      await virshXml(
        uri,
        (f) => ["update-device", id, f, "--live"],
        renderXml(cdromElement(news.cloudInit, sataDisks)),
      );
    }
  }
  if (current.autostart !== news.autostart) await setAutostart(uri, id, news.autostart);
  if (news.running && current.state !== "running") {
    if (current.state === "paused") await virsh(uri, ["resume", id]);
    else await virsh(uri, ["start", id], { timeoutMs: 120_000 });
  } else if (!news.running && current.state !== "shut off") {
    await stopDomain(uri, id, news.shutdownTimeoutSeconds);
  }
  const outs = await observeDomain(uri, id, news);
  if (!outs) throw new Error(`libvirt: domain ${news.name} (${id}) vanished during the update on ${uri}`);
  return { outs };
}

async function removeDomain(id: string, props: DomainOutputs): Promise<void> {
  const uri = props.uri ?? resolveUri(undefined);
  if ((await domState(uri, id)) === undefined) return; // already gone
  await stopDomain(uri, id, props.shutdownTimeoutSeconds ?? 30);
  await virshIfExists(uri, ["undefine", "--managed-save", "--snapshots-metadata", id]);
}

export const domainProvider = libvirtProvider<DomainInputs, DomainOutputs>({
  check: checkDomain,
  diff: diffDomain,
  create: createDomain,
  observe: (uri, id, recorded) => observeDomain(uri, id, recorded ?? {}),
  update: updateDomain,
  remove: removeDomain,
});

export interface DomainArgs {
  uri?: pulumi.Input<string>;
  /** libvirt name; default: the resource name. */
  name?: pulumi.Input<string>;
  vcpu: pulumi.Input<number>;
  memoryMiB: pulumi.Input<number>;
  disks: pulumi.Input<
    pulumi.Input<{ pool: pulumi.Input<string>; volume: pulumi.Input<string>; bus?: pulumi.Input<DiskBus> }>[]
  >;
  cloudInit?: pulumi.Input<{ pool: pulumi.Input<string>; volume: pulumi.Input<string> }>;
  nics: pulumi.Input<
    pulumi.Input<{ network: pulumi.Input<string>; mac: pulumi.Input<string>; model?: pulumi.Input<NicModel> }>[]
  >;
  /** Default auto: kvm when the host can, else qemu (TCG). */
  type?: pulumi.Input<DomainType>;
  /** Default q35. */
  machine?: pulumi.Input<string>;
  /** Default true. */
  autostart?: pulumi.Input<boolean>;
  /** Default true. */
  running?: pulumi.Input<boolean>;
  /** Default 30. */
  shutdownTimeoutSeconds?: pulumi.Input<number>;
}

export class Domain extends pulumi.dynamic.Resource {
  declare public readonly kind: pulumi.Output<typeof DOMAIN_KIND>;
  declare public readonly uri: pulumi.Output<string>;
  declare public readonly name: pulumi.Output<string>;
  declare public readonly uuid: pulumi.Output<string>;
  declare public readonly vcpu: pulumi.Output<number>;
  declare public readonly memoryMiB: pulumi.Output<number>;
  declare public readonly disks: pulumi.Output<DomainDisk[]>;
  declare public readonly cloudInit: pulumi.Output<DomainCloudInit | undefined>;
  declare public readonly nics: pulumi.Output<DomainNic[]>;
  declare public readonly type: pulumi.Output<DomainType>;
  declare public readonly machine: pulumi.Output<string>;
  declare public readonly autostart: pulumi.Output<boolean>;
  declare public readonly running: pulumi.Output<boolean>;
  declare public readonly shutdownTimeoutSeconds: pulumi.Output<number>;
  declare public readonly virtType: pulumi.Output<"kvm" | "qemu">;
  declare public readonly state: pulumi.Output<string>;
  declare public readonly restartRequired: pulumi.Output<boolean>;

  constructor(name: string, args: DomainArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      domainProvider,
      name,
      {
        ...args,
        name: args.name ?? name,
        kind: DOMAIN_KIND,
        uuid: undefined,
        virtType: undefined,
        state: undefined,
        restartRequired: undefined,
      },
      opts,
      "libvirt",
      "Domain",
    );
  }
}
