/**
 * One of each libvirt resource, driven by config so a test can walk them through create, in-place update,
 * replace, refresh and destroy with the real engine (test/libvirt-engine.test.ts). The URI is the `uri` config
 * (a resource input); the lab program takes it from the environment instead.
 *
 * Config (project libvirt-resources): pool, base, prefix (required); uri, cidr, bridge, hostName, extraHost,
 * netAutostart, diskName, diskSize, seedName, userDataMarker, memoryMiB, vcpu, autostart, running, mac1, mac2.
 */
import * as pulumi from "@pulumi/pulumi";
import { CloudInitDisk, Domain, Network, Volume } from "../../../../providers/libvirt";

const config = new pulumi.Config();
const uri = config.get("uri");
const pool = config.require("pool");
const prefix = config.require("prefix");
const cidr = config.get("cidr") ?? "10.91.1.0/24";
const net24 = cidr.split(".").slice(0, 3).join(".");

const hosts = [
  { mac: config.get("mac1") ?? "52:54:00:5e:01:01", ip: `${net24}.2`, hostname: config.get("hostName") ?? "vm1" },
];
if (config.getBoolean("extraHost")) hosts.push({ mac: "52:54:00:5e:01:99", ip: `${net24}.99`, hostname: "extra" });

const network = new Network("net", {
  uri,
  name: `${prefix}-net`,
  mode: "nat",
  cidr,
  bridge: config.get("bridge") ?? `${prefix}-br`,
  dhcp: { start: `${net24}.100`, end: `${net24}.150`, router: `${net24}.1`, hosts },
  routes: [{ cidr: "198.18.91.0/24", gateway: `${net24}.10` }],
  autostart: config.getBoolean("netAutostart") ?? true,
});

const disk = new Volume("disk", {
  uri,
  name: config.get("diskName") ?? `${prefix}-disk.qcow2`,
  pool,
  base: config.require("base"),
  size: config.getNumber("diskSize"),
});

const seed = new CloudInitDisk("seed", {
  uri,
  name: config.get("seedName") ?? `${prefix}-seed.iso`,
  pool,
  userData: pulumi.secret(
    `#cloud-config\nhostname: vm1\nwrite_files:\n  - path: /etc/marker\n    content: ${config.get("userDataMarker") ?? "one"}\n`,
  ),
  metaData: "instance-id: vm1\nlocal-hostname: vm1\n",
});

const vm = new Domain("vm", {
  uri,
  name: `${prefix}-vm`,
  vcpu: config.getNumber("vcpu") ?? 1,
  memoryMiB: config.getNumber("memoryMiB") ?? 128,
  disks: [{ pool: disk.pool, volume: disk.name }],
  cloudInit: { pool: seed.pool, volume: seed.name },
  nics: [
    { network: network.name, mac: config.get("mac1") ?? "52:54:00:5e:01:01" },
    { network: network.name, mac: config.get("mac2") ?? "52:54:00:5e:01:02" },
  ],
  autostart: config.getBoolean("autostart") ?? true,
  running: config.getBoolean("running") ?? true,
  shutdownTimeoutSeconds: 0, // SeaBIOS without an OS ignores ACPI shutdown
});

export const networkUuid = network.uuid;
export const networkBridge = network.bridge;
export const networkKind = network.kind;
export const diskKey = disk.key;
export const diskCapacity = disk.capacity;
export const diskKind = disk.kind;
export const seedKey = seed.key;
export const seedName = seed.name;
export const seedIsoSha256 = seed.isoSha256;
export const seedKind = seed.kind;
export const vmUuid = vm.uuid;
export const vmState = vm.state;
export const vmVirtType = vm.virtType;
export const vmMemoryMiB = vm.memoryMiB;
export const vmRestartRequired = vm.restartRequired;
export const vmKind = vm.kind;
