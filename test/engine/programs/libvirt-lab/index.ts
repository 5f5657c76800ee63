/**
 * The libvirt lab the LB pair lives in: an isolated private network (the cluster's; the host side of its bridge on
 * the last address, DHCP reservations for both LBs and a cluster node, router option = the gateway VIP) and a NAT
 * "public" network (reservations for both LBs, a route for the floating-IP range via the public-side VIP), and
 * two domains with a NIC on each, a disk overlaid on a base image and a cloud-init seed each. The URI comes from
 * the environment (EDGEPAIR_LIBVIRT_URI), not from a resource input. Used by test/libvirt-engine.test.ts and
 * bench/libvirt.ts.
 *
 * Config (project libvirt-lab): pool, base, prefix (required); privateCidr, publicCidr, floatingCidr, lbCount.
 */
import * as pulumi from "@pulumi/pulumi";
import { CloudInitDisk, Domain, Network, Volume } from "../../../../providers/libvirt";

const config = new pulumi.Config();
const pool = config.require("pool");
const base = config.require("base");
const prefix = config.require("prefix");
const privateCidr = config.get("privateCidr") ?? "10.92.100.0/24";
const publicCidr = config.get("publicCidr") ?? "10.92.200.0/24";
const floatingCidr = config.get("floatingCidr") ?? "198.18.92.0/24";
const priv = privateCidr.split(".").slice(0, 3).join(".");
const pub = publicCidr.split(".").slice(0, 3).join(".");

/** MAC of LB n (1-based) on a network (1 public, 2 private). */
const mac = (n: number, net: 1 | 2) =>
  `52:54:00:ec:${net.toString(16).padStart(2, "0")}:${n.toString(16).padStart(2, "0")}`;
const lbs = [1, 2];

const privateNet = new Network("private", {
  name: `${prefix}-private`,
  mode: "isolated",
  cidr: privateCidr,
  bridge: `${prefix}-priv`,
  dhcp: {
    router: `${priv}.1`, // the gateway VIP, held by the active LB
    hosts: [
      ...lbs.map((n) => ({ mac: mac(n, 2), ip: `${priv}.${n + 1}`, hostname: `lb${n}` })),
      { mac: "52:54:00:ec:0a:0a", ip: `${priv}.10`, hostname: "node1" },
    ],
  },
});

const publicNet = new Network("public", {
  name: `${prefix}-public`,
  mode: "nat",
  cidr: publicCidr,
  bridge: `${prefix}-pub`,
  dhcp: { hosts: lbs.map((n) => ({ mac: mac(n, 1), ip: `${pub}.${n + 1}`, hostname: `lb${n}` })) },
  routes: [{ cidr: floatingCidr, gateway: `${pub}.10` }], // the public-side VRRP VIP
});

const domains = lbs.map((n) => {
  const disk = new Volume(`lb${n}-disk`, { name: `${prefix}-lb${n}.qcow2`, pool, base });
  const seed = new CloudInitDisk(`lb${n}-seed`, {
    name: `${prefix}-lb${n}-seed.iso`,
    pool,
    userData: `#cloud-config\nhostname: lb${n}\n`,
    metaData: `instance-id: ${prefix}-lb${n}\nlocal-hostname: lb${n}\n`,
  });
  return new Domain(`lb${n}`, {
    name: `${prefix}-lb${n}`,
    vcpu: 1,
    memoryMiB: 128,
    disks: [{ pool: disk.pool, volume: disk.name }],
    cloudInit: { pool: seed.pool, volume: seed.name },
    nics: [
      { network: publicNet.name, mac: mac(n, 1) },
      { network: privateNet.name, mac: mac(n, 2) },
    ],
    shutdownTimeoutSeconds: 0, // SeaBIOS without an OS ignores ACPI shutdown
  });
});

export const privateBridge = privateNet.bridge;
export const publicBridge = publicNet.bridge;
export const domainNames = domains.map((d) => d.name);
export const domainStates = domains.map((d) => d.state);
export const virtTypes = domains.map((d) => d.virtType);
