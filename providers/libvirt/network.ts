/**
 * libvirt virtual network: isolated, NAT or routed; the host side of the bridge on an address of our choosing
 * (default: the last host of the CIDR, so it never takes the cluster's gateway address, by default the first);
 * DHCP with reservations by MAC and a router option (e.g. the gateway VIP held by the active LB); static routes
 * (e.g. the floating-IP range via a public-side VIP).
 *
 * In place (no outage): autostart, DHCP range and reservations (`virsh net-update --live --config`), static routes
 * (a floating IP added on day 2 must not cut the LBs' NICs: the definition is rewritten, and on a local libvirt the
 * host's routes are changed at once with `ip route`; on a remote one they apply when the network next starts), a
 * network found stopped is started again, `uri` (re-pointed after checking the network is there). Everything else
 * (mode, cidr, hostAddress, bridge, router option, mtu, dns, name) replaces the network, deleting it first
 * when old and new could not coexist (same name, same bridge, overlapping CIDRs).
 */
import { execFile } from "node:child_process";
import * as pulumi from "@pulumi/pulumi";
import {
  broadcastAddress,
  canonical,
  compareAddresses,
  contains,
  networkAddress,
  nthAddress,
  overlaps,
  parseCidr,
  parseIp,
} from "../../spec/address";
import {
  BRIDGE_RE,
  canonicalIpv4,
  canonicalMac,
  checker,
  CheckFailure,
  compact,
  libvirtProvider,
  isObject,
  isUnknown,
  listOf,
  MAC_RULE,
  NAME_RE,
  NAME_RULE,
  same,
} from "./common";
import { resolveUri, UNKNOWN, virsh, virshIfExists, virshXml } from "./virsh";
import { child, childrenOf, el, parseXml, renderXml, textEl, XElement } from "./xml";

export const NETWORK_KIND = "libvirt:Network";
export type NetworkMode = "isolated" | "nat" | "route";
export const NETWORK_MODES: readonly NetworkMode[] = ["isolated", "nat", "route"];

export interface DhcpHost {
  mac: string;
  ip: string;
  hostname?: string;
}

export interface NetworkDhcp {
  /** Dynamic range; without it only the reserved hosts get an address. */
  start?: string;
  end?: string;
  /** DHCP option 3 (router) handed out instead of the host address, e.g. the gateway VIP. */
  router?: string;
  hosts: DhcpHost[];
}

export interface NetworkRoute {
  cidr: string;
  gateway: string;
}

/** Checked inputs: defaults applied, addresses and MACs canonical. */
export interface NetworkInputs {
  kind: typeof NETWORK_KIND;
  uri?: string;
  name: string;
  mode: NetworkMode;
  cidr: string;
  hostAddress: string;
  bridge?: string;
  dhcp?: NetworkDhcp;
  routes: NetworkRoute[];
  mtu?: number;
  dns: boolean;
  autostart: boolean;
}

/** What the provider records (and what refresh compares): the inputs as found in libvirt, plus identity. */
export interface NetworkOutputs extends NetworkInputs {
  /** The credential-free URI the network lives behind. */
  uri: string;
  uuid: string;
  /** The bridge libvirt uses (its own virbrN when the input has none). */
  bridge: string;
  active: boolean;
}

const FIELDS = [
  "kind",
  "uri",
  "name",
  "mode",
  "cidr",
  "hostAddress",
  "bridge",
  "dhcp",
  "routes",
  "mtu",
  "dns",
  "autostart",
];
const HOSTNAME_RE = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/** Validates and normalizes; every problem is one `field: rule` failure. */
export function checkNetwork(news: Record<string, unknown>): { inputs: NetworkInputs; failures: CheckFailure[] } {
  const c = checker();
  c.known("", news, FIELDS);
  if (news.kind !== undefined && news.kind !== NETWORK_KIND) c.fail("kind", `must be ${NETWORK_KIND}`);
  const uri = c.uri("uri", news.uri);
  const name = c.string("name", news.name, { required: true, re: NAME_RE, rule: NAME_RULE });
  const mode = c.oneOf("mode", news.mode, NETWORK_MODES);
  const bridge = c.string("bridge", news.bridge, {
    re: BRIDGE_RE,
    rule: "must be a Linux interface name: 1-15 letters, digits, '_', '.', '-'",
  });
  const mtu = c.integer("mtu", news.mtu, { min: 576, max: 9216 });
  const dns = c.boolean("dns", news.dns, true);
  const autostart = c.boolean("autostart", news.autostart, true);

  let cidr: string | undefined;
  let cidrParsed: ReturnType<typeof parseCidr> | undefined;
  if (news.cidr === undefined) c.fail("cidr", "is required");
  else if (isUnknown(news.cidr)) cidr = news.cidr as string;
  else {
    cidrParsed =
      typeof news.cidr === "string"
        ? parseCidr(news.cidr)
        : { ok: false, rule: "must be a CIDR such as 192.168.100.0/24" };
    if (!cidrParsed.ok) c.fail("cidr", cidrParsed.rule);
    else if (
      cidrParsed.cidr.network.kind() !== "ipv4" ||
      cidrParsed.cidr.prefixLength < 8 ||
      cidrParsed.cidr.prefixLength > 30
    ) {
      c.fail("cidr", "must be an IPv4 network from /8 to /30");
      cidrParsed = undefined;
    } else cidr = `${canonical(cidrParsed.cidr.network)}/${cidrParsed.cidr.prefixLength}`;
  }
  const net = cidrParsed?.ok ? cidrParsed.cidr : undefined;

  /** An IPv4 host address inside the network (not its network or broadcast address). */
  const hostIn = (property: string, value: unknown, required: boolean): string | undefined => {
    if (value === undefined || value === null || value === "") {
      if (required) c.fail(property, "is required");
      return undefined;
    }
    if (isUnknown(value)) return value as string;
    const ip = canonicalIpv4(value);
    if (!ip) {
      c.fail(property, "must be an IPv4 address");
      return undefined;
    }
    if (net) {
      const parsed = parseIp(ip)!;
      if (!contains(net, parsed)) c.fail(property, `must be inside ${cidr}`);
      else if (ip === canonical(net.network) || ip === canonical(broadcastAddress(net)))
        c.fail(property, `must be a host address of ${cidr}, not its network or broadcast address`);
    }
    return ip;
  };

  let hostAddress = hostIn("hostAddress", news.hostAddress, false);
  if (hostAddress === undefined && net && news.hostAddress === undefined) {
    // The last host: the first ones are the cluster's (gateway VIP, LBs, nodes).
    hostAddress = canonical(nthAddress(net, 2 ** (32 - net.prefixLength) - 2));
  }

  let dhcp: NetworkDhcp | undefined;
  if (news.dhcp === UNKNOWN) dhcp = UNKNOWN as unknown as NetworkDhcp;
  else if (news.dhcp !== undefined && news.dhcp !== null) {
    if (!isObject(news.dhcp)) c.fail("dhcp", "must be an object");
    else {
      c.known("dhcp", news.dhcp, ["start", "end", "router", "hosts"]);
      const start = hostIn("dhcp.start", news.dhcp.start, false);
      const end = hostIn("dhcp.end", news.dhcp.end, false);
      if ((start === undefined) !== (end === undefined))
        c.fail(start === undefined ? "dhcp.start" : "dhcp.end", "is required when the other end of the range is given");
      else if (start && end && !isUnknown(start) && !isUnknown(end) && compareAddresses(start, end) > 0)
        c.fail("dhcp.end", `must not be before dhcp.start (${start})`);
      if (
        start &&
        end &&
        hostAddress &&
        !isUnknown(hostAddress) &&
        compareAddresses(start, hostAddress) <= 0 &&
        compareAddresses(hostAddress, end) <= 0
      ) {
        c.fail("dhcp.start", `the range ${start}-${end} must not include hostAddress ${hostAddress}`);
      }
      const router = hostIn("dhcp.router", news.dhcp.router, false);
      const hosts: DhcpHost[] = [];
      const seenMac = new Map<string, number>();
      const seenIp = new Map<string, number>();
      listOf(c, "dhcp.hosts", news.dhcp.hosts).forEach((h, i) => {
        const p = `dhcp.hosts[${i}]`;
        if (!isObject(h)) {
          c.fail(p, "must be an object {mac, ip, hostname?}");
          return;
        }
        c.known(p, h, ["mac", "ip", "hostname"]);
        let mac: string | undefined;
        if (isUnknown(h.mac)) mac = h.mac as string;
        else {
          mac = canonicalMac(h.mac);
          if (!mac) c.fail(`${p}.mac`, h.mac === undefined ? "is required" : MAC_RULE);
        }
        const ip = hostIn(`${p}.ip`, h.ip, true);
        const hostname = c.string(`${p}.hostname`, h.hostname, {
          re: HOSTNAME_RE,
          rule: "must be a host name (letters, digits, '-')",
        });
        if (ip && ip === hostAddress) c.fail(`${p}.ip`, `must not be hostAddress (${hostAddress})`);
        if (mac && !isUnknown(mac)) {
          if (seenMac.has(mac)) c.fail(`${p}.mac`, `duplicates dhcp.hosts[${seenMac.get(mac)}].mac`);
          seenMac.set(mac, i);
        }
        if (ip && !isUnknown(ip)) {
          if (seenIp.has(ip)) c.fail(`${p}.ip`, `duplicates dhcp.hosts[${seenIp.get(ip)}].ip`);
          seenIp.set(ip, i);
        }
        if (mac && ip) hosts.push(compact({ mac, ip, hostname }));
      });
      dhcp = compact({ start, end, router, hosts });
    }
  }

  const routes: NetworkRoute[] = [];
  listOf(c, "routes", news.routes).forEach((r, i) => {
    const p = `routes[${i}]`;
    if (!isObject(r)) {
      c.fail(p, "must be an object {cidr, gateway}");
      return;
    }
    c.known(p, r, ["cidr", "gateway"]);
    let rc: string | undefined;
    if (isUnknown(r.cidr)) rc = r.cidr as string;
    else {
      const parsed = typeof r.cidr === "string" ? parseCidr(r.cidr) : undefined;
      if (!parsed || !parsed.ok || parsed.cidr.network.kind() !== "ipv4")
        c.fail(`${p}.cidr`, parsed && !parsed.ok ? parsed.rule : "must be an IPv4 CIDR such as 198.51.100.0/24");
      else {
        rc = `${canonical(parsed.cidr.network)}/${parsed.cidr.prefixLength}`;
        if (net && overlaps(net, parsed.cidr)) c.fail(`${p}.cidr`, `must not overlap the network's own ${cidr}`);
      }
    }
    const gateway = hostIn(`${p}.gateway`, r.gateway, true);
    if (gateway && gateway === hostAddress)
      c.fail(`${p}.gateway`, `must not be hostAddress (${hostAddress}): the next hop is a guest address, e.g. a VIP`);
    if (rc && gateway) routes.push({ cidr: rc, gateway });
  });

  const inputs = compact({
    kind: NETWORK_KIND,
    uri,
    name: name as string,
    mode: mode as NetworkMode,
    cidr: cidr as string,
    hostAddress: hostAddress as string,
    bridge,
    dhcp,
    routes: news.routes === UNKNOWN ? (UNKNOWN as unknown as NetworkRoute[]) : routes,
    mtu,
    dns,
    autostart,
  }) as NetworkInputs;
  return { inputs, failures: c.failures };
}

const DNSMASQ_NS = "http://libvirt.org/schemas/network/dnsmasq/1.0";

/** The network's libvirt XML (pure); uuid when redefining an existing network. */
export function renderNetworkXml(n: NetworkInputs, uuid?: string): string {
  const prefix = n.cidr.split("/")[1];
  const dhcp: XElement | undefined = n.dhcp
    ? el(
        "dhcp",
        {},
        n.dhcp.start !== undefined && n.dhcp.end !== undefined
          ? el("range", { start: n.dhcp.start, end: n.dhcp.end })
          : undefined,
        ...n.dhcp.hosts.map((h) => el("host", { mac: h.mac, ip: h.ip, name: h.hostname })),
      )
    : undefined;
  const router = n.dhcp?.router;
  return renderXml(
    el(
      "network",
      router ? { "xmlns:dnsmasq": DNSMASQ_NS } : {},
      textEl("name", n.name),
      uuid ? textEl("uuid", uuid) : undefined,
      n.mode === "isolated" ? undefined : el("forward", { mode: n.mode }),
      el("bridge", { name: n.bridge, stp: "on", delay: 0 }),
      n.mtu !== undefined ? el("mtu", { size: n.mtu }) : undefined,
      n.dns ? undefined : el("dns", { enable: "no" }),
      el("ip", { address: n.hostAddress, prefix }, dhcp),
      ...n.routes.map((r) =>
        el("route", { address: r.cidr.split("/")[0], prefix: r.cidr.split("/")[1], gateway: r.gateway }),
      ),
      router
        ? el("dnsmasq:options", {}, el("dnsmasq:option", { value: `dhcp-option=option:router,${router}` }))
        : undefined,
    ),
  );
}

function prefixFromNetmask(mask: string): number {
  return mask
    .split(".")
    .map((o) => Number(o).toString(2).replace(/0/g, "").length)
    .reduce((a, b) => a + b, 0);
}

/** What a network's XML (net-dumpxml) says, in the inputs' vocabulary. */
export interface ObservedNetwork {
  name: string;
  uuid: string;
  mode: string;
  bridge: string;
  cidr?: string;
  hostAddress?: string;
  dhcp?: NetworkDhcp;
  routes: NetworkRoute[];
  mtu?: number;
  dns: boolean;
}

export function parseNetworkXml(xml: string): ObservedNetwork {
  const root = parseXml(xml);
  const forward = child(root, "forward")?.attrs.mode;
  const ip = childrenOf(root, "ip").find((i) => (i.attrs.family ?? "ipv4") === "ipv4");
  let cidr: string | undefined;
  let hostAddress: string | undefined;
  if (ip?.attrs.address) {
    const prefix =
      ip.attrs.prefix !== undefined ? Number(ip.attrs.prefix) : prefixFromNetmask(ip.attrs.netmask ?? "255.255.255.0");
    hostAddress = ip.attrs.address;
    cidr = `${canonical(networkAddress(parseIp(hostAddress)!, prefix))}/${prefix}`;
  }
  let dhcp: NetworkDhcp | undefined;
  const dhcpNode = child(ip, "dhcp");
  const routerOption = childrenOf(child(root, "dnsmasq:options"), "dnsmasq:option")
    .map((o) => /^dhcp-option=(?:option:router|3),(.+)$/.exec(o.attrs.value ?? "")?.[1])
    .find((v) => v !== undefined);
  if (dhcpNode) {
    const range = child(dhcpNode, "range");
    dhcp = compact({
      start: range?.attrs.start,
      end: range?.attrs.end,
      router: routerOption,
      hosts: childrenOf(dhcpNode, "host").map((h) =>
        compact({ mac: (h.attrs.mac ?? "").toLowerCase(), ip: h.attrs.ip ?? "", hostname: h.attrs.name }),
      ),
    });
  }
  const mtu = child(root, "mtu")?.attrs.size;
  return {
    name: child(root, "name")?.text ?? "",
    uuid: child(root, "uuid")?.text ?? "",
    mode: forward ?? "isolated",
    bridge: child(root, "bridge")?.attrs.name ?? "",
    cidr,
    hostAddress,
    dhcp,
    routes: childrenOf(root, "route")
      .filter((r) => (r.attrs.family ?? "ipv4") === "ipv4")
      .map((r) => ({ cidr: `${r.attrs.address}/${r.attrs.prefix ?? "32"}`, gateway: r.attrs.gateway ?? "" })),
    mtu: mtu !== undefined ? Number(mtu) : undefined,
    dns: child(root, "dns")?.attrs.enable !== "no",
  };
}

/** `virsh net-info` fields. */
function parseInfo(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const m = /^([^:]+):\s*(.*)$/.exec(line.trim());
    if (m) out[m[1]!.trim()] = m[2]!.trim();
  }
  return out;
}

/** The network as libvirt has it (config, not live), or undefined when it is gone. */
export async function observeNetwork(uri: string, ref: string): Promise<NetworkOutputs | undefined> {
  const xml = await virshIfExists(uri, ["net-dumpxml", "--inactive", ref]);
  if (xml === undefined) return undefined;
  const info = parseInfo((await virshIfExists(uri, ["net-info", ref])) ?? "");
  const o = parseNetworkXml(xml);
  return compact({
    kind: NETWORK_KIND,
    uri,
    name: o.name,
    uuid: o.uuid,
    mode: o.mode as NetworkMode,
    cidr: o.cidr ?? "",
    hostAddress: o.hostAddress ?? "",
    bridge: o.bridge,
    dhcp: o.dhcp,
    routes: o.routes,
    mtu: o.mtu,
    dns: o.dns,
    autostart: info.Autostart === "yes",
    active: info.Active === "yes",
  }) as NetworkOutputs;
}

export interface DiffResult {
  changes: boolean;
  replaces: string[];
  /** Properties that change in place. */
  updates: string[];
  deleteBeforeReplace: boolean;
}

function cidrsOverlap(a: string, b: string): boolean {
  const x = parseCidr(a);
  const y = parseCidr(b);
  return !x.ok || !y.ok || overlaps(x.cidr, y.cidr);
}

/** What changes between the recorded outputs and new checked inputs. */
export function diffNetwork(olds: NetworkOutputs, news: NetworkInputs): DiffResult {
  const replaces: string[] = [];
  const updates: string[] = [];
  const cmp = (key: string, a: unknown, b: unknown, replace: boolean) => {
    if (!same(a, b)) (replace ? replaces : updates).push(key);
  };
  cmp("name", olds.name, news.name, true);
  cmp("mode", olds.mode, news.mode, true);
  cmp("cidr", olds.cidr, news.cidr, true);
  cmp("hostAddress", olds.hostAddress, news.hostAddress, true);
  if (news.bridge !== undefined) cmp("bridge", olds.bridge, news.bridge, true);
  cmp("routes", olds.routes ?? [], news.routes ?? [], false);
  cmp("mtu", olds.mtu, news.mtu, true);
  cmp("dns", olds.dns, news.dns, true);
  if ((news.dhcp as unknown) === UNKNOWN || (olds.dhcp === undefined) !== (news.dhcp === undefined))
    replaces.push("dhcp");
  else if (olds.dhcp && news.dhcp) {
    cmp("dhcp.router", olds.dhcp.router, news.dhcp.router, true);
    cmp("dhcp.start", olds.dhcp.start, news.dhcp.start, false);
    cmp("dhcp.end", olds.dhcp.end, news.dhcp.end, false);
    cmp("dhcp.hosts", olds.dhcp.hosts ?? [], news.dhcp.hosts ?? [], false);
  }
  cmp("autostart", olds.autostart, news.autostart, false);
  if (olds.active === false) updates.push("active");
  let uri: string | undefined;
  try {
    uri = news.uri === undefined || !isUnknown(news.uri) ? resolveUri(news.uri) : undefined;
  } catch {
    uri = undefined; // reported by update
  }
  cmp("uri", olds.uri, uri, false);
  // Old and new cannot coexist (so the old one goes first) with the same name, the same bridge or overlapping CIDRs.
  const collide =
    replaces.length > 0 &&
    (isUnknown(news.name) ||
      olds.name === news.name ||
      (news.bridge !== undefined && (isUnknown(news.bridge) || olds.bridge === news.bridge)) ||
      isUnknown(news.cidr) ||
      cidrsOverlap(olds.cidr, news.cidr));
  return { changes: replaces.length + updates.length > 0, replaces, updates, deleteBeforeReplace: collide };
}

async function setAutostart(uri: string, ref: string, on: boolean): Promise<void> {
  await virsh(uri, on ? ["net-autostart", ref] : ["net-autostart", "--disable", ref]);
}

async function createNetwork(inputs: NetworkInputs): Promise<{ id: string; outs: NetworkOutputs }> {
  const uri = resolveUri(inputs.uri);
  if ((await virshIfExists(uri, ["net-uuid", inputs.name])) !== undefined) {
    throw new Error(
      `name: a network named "${inputs.name}" already exists on ${uri}; choose another name or remove it (virsh net-undefine)`,
    );
  }
  await virshXml(uri, (f) => ["net-define", f], renderNetworkXml(inputs));
  try {
    await virsh(uri, ["net-start", inputs.name]);
    await setAutostart(uri, inputs.name, inputs.autostart);
  } catch (e) {
    await virsh(uri, ["net-destroy", inputs.name]).catch(() => undefined);
    await virsh(uri, ["net-undefine", inputs.name]).catch(() => undefined);
    throw e;
  }
  const outs = await observeNetwork(uri, inputs.name);
  if (!outs) throw new Error(`libvirt: network "${inputs.name}" vanished right after it was created on ${uri}`);
  return { id: outs.uuid, outs };
}

function hostXml(h: DhcpHost): string {
  return renderXml(el("host", { mac: h.mac, ip: h.ip, name: h.hostname })).trim();
}

async function updateNetwork(id: string, olds: NetworkOutputs, news: NetworkInputs): Promise<{ outs: NetworkOutputs }> {
  const uri = resolveUri(news.uri);
  const current = await observeNetwork(uri, id);
  if (!current) {
    throw new Error(
      uri === olds.uri
        ? `libvirt: network ${olds.name} (${id}) no longer exists on ${uri}; run pulumi refresh`
        : `uri: network ${olds.name} (${id}) was not found on ${uri}; a network moves to another host only by replacement (change its name)`,
    );
  }
  const flags = current.active ? ["--live", "--config"] : ["--config"];
  const netUpdate = (command: string, section: string, xml: string) =>
    virsh(uri, ["net-update", id, command, section, xml, ...flags]);
  const oldD = current.dhcp;
  const newD = news.dhcp;
  if (oldD && newD) {
    if (oldD.start !== newD.start || oldD.end !== newD.end) {
      if (oldD.start && oldD.end)
        await netUpdate("delete", "ip-dhcp-range", renderXml(el("range", { start: oldD.start, end: oldD.end })).trim());
      if (newD.start && newD.end)
        await netUpdate(
          "add-last",
          "ip-dhcp-range",
          renderXml(el("range", { start: newD.start, end: newD.end })).trim(),
        );
    }
    const oldByMac = new Map(oldD.hosts.map((h) => [h.mac, h]));
    const newByMac = new Map(newD.hosts.map((h) => [h.mac, h]));
    for (const h of oldD.hosts) if (!newByMac.has(h.mac)) await netUpdate("delete", "ip-dhcp-host", hostXml(h));
    for (const h of newD.hosts) {
      const before = oldByMac.get(h.mac);
      if (before && !same(before, h)) await netUpdate("modify", "ip-dhcp-host", hostXml(h));
    }
    for (const h of newD.hosts) if (!oldByMac.has(h.mac)) await netUpdate("add-last", "ip-dhcp-host", hostXml(h));
  }
  if (!same(current.routes, news.routes)) await updateRoutes(uri, id, current, news);
  if (current.autostart !== news.autostart) await setAutostart(uri, id, news.autostart);
  if (!current.active) await virsh(uri, ["net-start", id]);
  const outs = await observeNetwork(uri, id);
  if (!outs) throw new Error(`libvirt: network ${news.name} (${id}) vanished during the update on ${uri}`);
  return { outs };
}

/** A URI without a host names the libvirtd of this machine, whose routes `ip` can change. */
function isLocalUri(uri: string): boolean {
  return /^[a-z+]+:\/\/\//.test(uri);
}

async function updateRoutes(uri: string, id: string, current: NetworkOutputs, news: NetworkInputs): Promise<void> {
  // the same uuid and bridge: a redefinition, never a second network
  await virshXml(uri, (f) => ["net-define", f], renderNetworkXml({ ...news, bridge: current.bridge }, id));
  if (!current.active || !isLocalUri(uri)) return;
  const key = (r: NetworkRoute) => `${r.cidr} via ${r.gateway}`;
  const wanted = new Set(news.routes.map(key));
  for (const r of current.routes)
    if (!wanted.has(key(r))) await ipRoute(["del", r.cidr, "via", r.gateway, "dev", current.bridge]);
  const had = new Set(current.routes.map(key));
  for (const r of news.routes)
    if (!had.has(key(r))) await ipRoute(["replace", r.cidr, "via", r.gateway, "dev", current.bridge]);
}

function ipRoute(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile("ip", ["route", ...args], { timeout: 10_000 }, (err, _stdout, stderr) => {
      if (err) reject(new Error(`routes: ip route ${args.join(" ")} failed: ${stderr.trim() || err.message}`));
      else resolve();
    });
  });
}

async function removeNetwork(id: string, props: NetworkOutputs): Promise<void> {
  const uri = props.uri ?? resolveUri(undefined);
  const info = await virshIfExists(uri, ["net-info", id]);
  if (info === undefined) return; // already gone
  if (parseInfo(info).Active === "yes") await virshIfExists(uri, ["net-destroy", id]);
  await virshIfExists(uri, ["net-undefine", id]);
}

export const networkProvider = libvirtProvider<NetworkInputs, NetworkOutputs>({
  check: checkNetwork,
  diff: diffNetwork,
  create: createNetwork,
  observe: (uri, id) => observeNetwork(uri, id),
  update: updateNetwork,
  remove: removeNetwork,
});

export interface DhcpHostArgs {
  mac: pulumi.Input<string>;
  ip: pulumi.Input<string>;
  hostname?: pulumi.Input<string>;
}

export interface NetworkArgs {
  /** Credential-free libvirt URI; default: EDGEPAIR_LIBVIRT_URI, LIBVIRT_DEFAULT_URI, qemu:///system (read at run time). */
  uri?: pulumi.Input<string>;
  /** libvirt name; default: the resource name. */
  name?: pulumi.Input<string>;
  mode: pulumi.Input<NetworkMode>;
  /** IPv4 network, e.g. 192.168.100.0/24. */
  cidr: pulumi.Input<string>;
  /** The host's address on the bridge; default: the last host of cidr. */
  hostAddress?: pulumi.Input<string>;
  /** Bridge name (<= 15 characters); default: libvirt picks virbrN. */
  bridge?: pulumi.Input<string>;
  dhcp?: pulumi.Input<{
    start?: pulumi.Input<string>;
    end?: pulumi.Input<string>;
    router?: pulumi.Input<string>;
    hosts?: pulumi.Input<pulumi.Input<DhcpHostArgs>[]>;
  }>;
  routes?: pulumi.Input<pulumi.Input<{ cidr: pulumi.Input<string>; gateway: pulumi.Input<string> }>[]>;
  mtu?: pulumi.Input<number>;
  /** dnsmasq's DNS on the bridge; default true. */
  dns?: pulumi.Input<boolean>;
  /** Default true. */
  autostart?: pulumi.Input<boolean>;
}

export class Network extends pulumi.dynamic.Resource {
  declare public readonly kind: pulumi.Output<typeof NETWORK_KIND>;
  declare public readonly uri: pulumi.Output<string>;
  declare public readonly name: pulumi.Output<string>;
  declare public readonly uuid: pulumi.Output<string>;
  declare public readonly mode: pulumi.Output<NetworkMode>;
  declare public readonly cidr: pulumi.Output<string>;
  declare public readonly hostAddress: pulumi.Output<string>;
  declare public readonly bridge: pulumi.Output<string>;
  declare public readonly dhcp: pulumi.Output<NetworkDhcp | undefined>;
  declare public readonly routes: pulumi.Output<NetworkRoute[]>;
  declare public readonly mtu: pulumi.Output<number | undefined>;
  declare public readonly dns: pulumi.Output<boolean>;
  declare public readonly autostart: pulumi.Output<boolean>;
  declare public readonly active: pulumi.Output<boolean>;

  constructor(name: string, args: NetworkArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      networkProvider,
      name,
      { ...args, name: args.name ?? name, kind: NETWORK_KIND, uuid: undefined, active: undefined, bridge: args.bridge },
      opts,
      "libvirt",
      "Network",
    );
  }
}
