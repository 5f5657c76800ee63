/**
 * The network-namespace lab: two LBs running the real daemons on the files render/ produces, the cloud's router,
 * backends, a cluster node, an internet host and a client (topology.ts). Each LB is its own network namespace AND
 * its own mount namespace, in which a tmpfs covers /run, /tmp and /var/log and every rendered directory under etc/
 * is bind-mounted (read-only) over the real path, so haproxy, keepalived, conntrackd and firewalld (with its own
 * D-Bus) read the rendered files themselves. The lab stands in for NetworkManager (it applies the rendered
 * keyfiles' addresses, keyfile.ts) and for systemd (sysctl -p of the rendered file, nft -f of the rendered table).
 *
 * Everything the lab creates is recorded in a state file before it is created (namespaces, mounts, processes by
 * PID and start time), so `down` — in the same process, from a signal handler, or from another invocation —
 * removes exactly that, and leftovers of a crashed run are still found by their prefix.
 */
import { formatPairStatus } from "../k8s/pair-status";
import { labPairView } from "./pair-view";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { constants } from "node:os";
import { join } from "node:path";
import { writeTree } from "../agent/apply/write";
import { spawnRunner } from "../agent/apply/reload";
import { syncServiceAddresses } from "../agent/service-lb/addresses";
import {
  hasPrivateServiceAddresses,
  kernelServices,
  privateServiceAddresses,
  SERVICES_NFT_PATH,
  SERVICES_TABLE,
} from "../render/service-lb";
import { renderAll } from "../render/index";
import { MACHINE_CONFIG_PORT, serverName } from "../render/haproxy";
import { SERVICE_NAMES, SERVICES } from "../render/services";
import { selectBackends, type BackendSelection } from "../agent/kube/backends";
import { profileIntent, deviceFor, ipCommands, sysctlsFor, type LinkInfo, type ProfileIntent } from "./keyfile";
import {
  catches,
  exec,
  GaveUp,
  isAlive,
  signal,
  sleep,
  startDetached,
  stopProcess,
  waitFor,
  type ExecResult,
  type ProcessRecord,
} from "./exec";
import {
  allNamespaces,
  BARE_PATH,
  BRIDGES,
  cutOrder,
  lbLinks,
  NETNS_PATTERN,
  newPrefix,
  planLab,
  OUTSIDE,
  PORTS,
  STATE_ROOT,
  type HostPlan,
  type LabPlan,
  type LabLb,
} from "./topology";
import { formatTable, ms, readRequests, summarize, type OutageSummary } from "./analysis";
import { traceVerdicts } from "./nft-trace";
import { formatServiceFrontends, parseServiceTable, type ServiceFrontendStatus } from "./service-status";
import type { HostFacts, ResolvedSpec } from "../spec/types";
import { FLOATING_IP_INTERFACE } from "../spec/types";

export type LbKey = "lb1" | "lb2";
export type Log = (line: string) => void;

export interface LabState {
  version: 1;
  prefix: string;
  dir: string;
  createdAt: string;
  spec: ResolvedSpec;
  plan: LabPlan;
  namespaces: string[];
  /** persistent mount-namespace files (bind mounts of nsfs) and the private bind mount that holds them */
  mounts: string[];
  processes: ProcessRecord[];
  hostFacts: Partial<Record<LbKey, HostFacts>>;
  /** links of an LB cut by `cut` (switch ports set down) */
  cut: LbKey[];
  upMs?: number;
}

export interface LbStatus {
  key: LbKey;
  ns: string;
  vrrp: string;
  privateVips: string[];
  nextHop: boolean;
  floatingIps: string[];
  links: "up" | "cut";
  daemons: Record<string, boolean>;
  backends: BackendHealth[];
  /** the Service frontends this LB's kernel forwards (lab/service-status.ts) */
  services: ServiceFrontendStatus[];
  /** why they could not be read, when nft failed for another reason than an absent table */
  servicesError?: string;
}

export interface BackendHealth {
  backend: string;
  server: string;
  status: string;
}

export interface SmokeResult {
  check: string;
  ok: boolean;
  detail: string;
}

export interface FailoverReport {
  from: LbKey;
  to: LbKey;
  /** fault to the peer holding keepalived's VIPs / the public next hop (address monitor of the peer) */
  vipMovedMs?: number;
  nextHopMovedMs?: number;
  client: OutageSummary;
  /** who held what once the peer had taken over, the failed LB still cut off */
  duringCut: { vip: LbKey[]; nextHop: LbKey[] };
  restored?: {
    returningState: string;
    holders: LbKey[];
    nextHopHolders: LbKey[];
    /** requests that failed from the moment the links came back until the end */
    failedAfterReturn: number;
    requestsAfterReturn: number;
  };
}

/** Every process the lab runs for an LB, from the service table. */
const LB_DAEMONS = SERVICE_NAMES.flatMap((s) => SERVICES[s].labProcesses);
const HAPROXY_SOCKET = "/run/haproxy/admin.sock";
const KEEPALIVED_DATA = "/tmp/keepalived.data";
/** systemd's default hard NOFILE limit for services, what HAProxy gets on the VM */
const SYSTEMD_NOFILE = 524288;

function stateFile(dir: string): string {
  return join(dir, "state.json");
}

function netnsPath(ns: string): string {
  return `/run/netns/${ns}`;
}

/** argv that runs a program in a network namespace (the initial mount namespace). */
/** The image's /usr/libexec (edgepair-garp and the boot scripts), overlaid on the LBs' /usr/libexec. */
const IMAGE_LIBEXEC = join(__dirname, "..", "images", "rootfs", "usr", "libexec");

export function inNetns(ns: string, argv: readonly string[]): string[] {
  return ["nsenter", `--net=${netnsPath(ns)}`, "--", ...argv];
}

export class Lab {
  /** set once teardown begins: nothing new may start (an interrupted `up` may still be running its steps) */
  private closing?: Promise<void>;
  private nsDirMounted?: Promise<void>;

  private constructor(
    readonly state: LabState,
    private readonly log: Log,
  ) {}

  get plan(): LabPlan {
    return this.state.plan;
  }
  get prefix(): string {
    return this.state.prefix;
  }
  get dir(): string {
    return this.state.dir;
  }

  /** A new, empty lab: a prefix and a state directory. Nothing else exists yet. */
  static create(spec: ResolvedSpec, log: Log = () => undefined): Lab {
    const prefix = newPrefix();
    const dir = join(STATE_ROOT, prefix);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const plan = planLab(spec, prefix);
    const lab = new Lab(
      {
        version: 1,
        prefix,
        dir,
        createdAt: new Date().toISOString(),
        spec,
        plan,
        namespaces: [],
        mounts: [],
        processes: [],
        hostFacts: {},
        cut: [],
      },
      log,
    );
    lab.save();
    return lab;
  }

  /** A lab created and brought up; if that fails, torn down again and the error carries the progress lines so far. */
  static async started(spec: ResolvedSpec): Promise<Lab> {
    const progress: string[] = [];
    const lab = Lab.create(spec, (l) => progress.push(l));
    try {
      await lab.up();
    } catch (e) {
      await lab.down();
      throw new Error(`lab up failed: ${e instanceof Error ? e.message : String(e)}\n${progress.join("\n")}`);
    }
    return lab;
  }

  /** The lab of `prefix`, or the newest one recorded under STATE_ROOT. */
  static load(prefix?: string, log: Log = () => undefined): Lab {
    const candidates = prefix ? [prefix] : recordedPrefixes();
    const states = candidates
      .map((p) => join(STATE_ROOT, p))
      .filter((d) => existsSync(stateFile(d)))
      .map((d) => JSON.parse(readFileSync(stateFile(d), "utf8")) as LabState)
      .sort((a, b) => b.createdAt.localeCompare(a.createdAt));
    const s = states[0];
    if (!s)
      throw new Error(
        prefix
          ? `no lab ${prefix} under ${STATE_ROOT}`
          : `no lab is up (nothing under ${STATE_ROOT}); run \`edgepair lab up\``,
      );
    return new Lab(s, log);
  }

  private assertOpen(): void {
    if (this.closing) throw new Error(`lab ${this.prefix} is being torn down`);
  }

  save(): void {
    if (this.closing && !existsSync(this.dir)) return; // torn down: nothing to record
    writeFileSync(stateFile(this.dir), `${JSON.stringify(this.state, null, 2)}\n`, { mode: 0o600 });
  }

  lb(key: LbKey): LabLb {
    return key === "lb1" ? this.plan.lbs[0] : this.plan.lbs[1];
  }

  other(key: LbKey): LbKey {
    return key === "lb1" ? "lb2" : "lb1";
  }

  mountNsFile(key: LbKey): string {
    return join(this.dir, "ns", key);
  }

  /** argv that runs a program inside an LB: its network namespace and its mount namespace. */
  inLb(key: LbKey, argv: readonly string[]): string[] {
    return ["nsenter", `--net=${netnsPath(this.lb(key).ns)}`, `--mount=${this.mountNsFile(key)}`, "--", ...argv];
  }

  async run(
    ns: string,
    argv: readonly string[],
    opts: { allowFail?: boolean; timeoutMs?: number; input?: string } = {},
  ): Promise<ExecResult> {
    return exec(inNetns(ns, argv), opts);
  }

  async runLb(
    key: LbKey,
    argv: readonly string[],
    opts: { allowFail?: boolean; timeoutMs?: number } = {},
  ): Promise<ExecResult> {
    return exec(this.inLb(key, argv), opts);
  }

  proc(name: string): ProcessRecord | undefined {
    return this.state.processes.find((p) => p.name === name);
  }

  private logPath(name: string): string {
    return join(this.dir, "logs", `${name.replace(/\//g, "-")}.log`);
  }

  private start(name: string, ns: string, argv: string[]): ProcessRecord {
    if (this.closing) throw new Error(`lab ${this.prefix} is being torn down: not starting ${name}`);
    const old = this.state.processes.findIndex((p) => p.name === name);
    if (old >= 0) {
      if (isAlive(this.state.processes[old] as ProcessRecord)) throw new Error(`${name} is already running`);
      this.state.processes.splice(old, 1);
    }
    const p = startDetached(name, ns, argv, this.logPath(name));
    this.state.processes.push(p);
    this.save();
    return p;
  }

  // ---------------------------------------------------------------------------------------------- up

  async up(): Promise<void> {
    const t0 = Date.now();
    const step = (what: string) => {
      this.assertOpen();
      this.log(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s] ${what}`);
    };
    for (const d of ["logs", "bin", "pki", "ns"]) mkdirSync(join(this.dir, d), { recursive: true, mode: 0o700 });

    step(`lab ${this.prefix}: state in ${this.dir}`);
    await this.createNamespaces();
    step(`namespaces: ${this.state.namespaces.length} (${this.prefix}-*)`);
    await this.wire();
    step("links: switch bridges brpub/brpriv/brout, router, backends, cluster node, internet host, client");
    await Promise.all(this.plan.lbs.map((l) => this.prepareLb(l.key)));
    step("LBs: rendered every file with the real veth MACs; keyfile addresses, sysctl -p, nft -f applied");
    await this.makePki();
    this.compileHelper();
    await this.startServers();
    step(
      `backends: API ${this.plan.backends.api.map((b) => b.address).join(", ")} (TLS :${this.state.spec.apiBackend.port} /readyz), ingress ${this.plan.backends.ingress.map((b) => b.address).join(", ")} (:30080/:30443), internet host ${this.plan.targets.internet}`,
    );
    await Promise.all(this.plan.lbs.map((l) => this.mountNamespace(l.key)));
    step("LB mount namespaces: tmpfs /run /tmp /var/log, rendered etc/* bind-mounted read-only");
    await Promise.all(this.plan.lbs.map((l) => this.startFirewall(l.key)));
    step("firewalld (own D-Bus) running in both LBs; zones bound as the keyfiles say; our nftables tables kept");
    await Promise.all(this.plan.lbs.map((l) => this.startHaproxyConntrackd(l.key)));
    step("haproxy (master-worker) and conntrackd running in both LBs");
    await this.startKeepalived("lb1");
    await this.waitVrrp("lb1", "MASTER", 30_000);
    step("keepalived lb1: MASTER");
    await this.startKeepalived("lb2");
    await this.waitVrrp("lb2", "BACKUP", 30_000);
    step("keepalived lb2: BACKUP");
    await this.waitBackendsUp(30_000);
    step("HAProxy sees every backend UP on both LBs");
    this.state.upMs = Date.now() - t0;
    this.save();
    step(`up in ${(this.state.upMs / 1000).toFixed(1)} s`);
  }

  private async createNamespaces(): Promise<void> {
    for (const ns of allNamespaces(this.plan)) await this.addNamespace(ns);
  }

  private async addNamespace(ns: string): Promise<void> {
    if (this.state.namespaces.includes(ns)) return;
    this.assertOpen();
    this.state.namespaces.push(ns); // recorded first: an interrupted add is still cleaned up
    this.save();
    await exec(["ip", "netns", "add", ns]);
    await exec(["ip", "-n", ns, "link", "set", "lo", "up"]);
  }

  private async batch(ns: string, lines: string[][]): Promise<void> {
    if (lines.length === 0) return;
    await exec(["ip", "-n", ns, "-batch", "-"], { input: lines.map((l) => l.join(" ")).join("\n") + "\n" });
  }

  private async wire(): Promise<void> {
    const sw = this.plan.switchNs;
    const swLines: string[][] = [];
    for (const br of Object.values(BRIDGES))
      swLines.push(["link", "add", br, "type", "bridge"], ["link", "set", br, "up"]);
    const hosts: HostPlan[] = [this.plan.router, ...this.plan.hosts];
    for (const h of hosts)
      for (const l of h.links) swLines.push(...bridgePort(l.switchPort, BRIDGES[l.segment], h.ns, l.name));
    for (const l of this.plan.lbs)
      for (const link of lbLinks(l))
        swLines.push(...bridgePort(link.switchPort, BRIDGES[link.segment], l.ns, link.name));
    await this.batch(sw, swLines);
    await Promise.all(hosts.map((h) => this.configureHost(h)));
    // the internet host takes the load bench's 10,000 connections at once: room in its accept queues (helper.ts)
    for (const h of hosts.filter((x) => x.role === "internet"))
      await this.run(h.ns, ["sysctl", "-qw", "net.core.somaxconn=16384"]);
    const rt = this.plan.router;
    await this.run(rt.ns, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    await this.batch(
      rt.ns,
      rt.routes.map((r) => ["route", "replace", r.to, "via", r.via]),
    );
  }

  private async configureHost(h: HostPlan): Promise<void> {
    const lines: string[][] = [];
    for (const l of h.links) {
      for (const a of l.addresses) lines.push(["addr", "add", a, "dev", l.name]);
      lines.push(["link", "set", l.name, "up"]);
    }
    if (h.defaultRoute) lines.push(["route", "add", "default", "via", h.defaultRoute]);
    await this.batch(h.ns, lines);
  }

  private async linksOf(ns: string): Promise<LinkInfo[]> {
    const r = await exec(["ip", "-n", ns, "-j", "link", "show"]);
    return (JSON.parse(r.stdout) as { ifname: string; address?: string }[]).map((l) => ({
      name: l.ifname,
      mac: (l.address ?? "").toLowerCase(),
    }));
  }

  /**
   * The LB's rendered tree (`edgepair render` output). Its etc/* directories are what the LB's daemons see under
   * /etc, so a file rewritten here (e.g. a benchmark's variant of keepalived.conf) is read on the next restart or
   * reload of its daemon.
   */
  renderedRoot(key: LbKey): string {
    return join(this.dir, key, "root");
  }

  /** Links, host facts from the real links, rendering, and what NetworkManager and systemd would apply. */
  private async prepareLb(key: LbKey): Promise<void> {
    const lb = this.lb(key);
    // The floating-IP link: a dummy on the VM; this kernel has none, so a veth whose peer stays in the namespace.
    await this.batch(lb.ns, [
      ["link", "add", FLOATING_IP_INTERFACE, "type", "veth", "peer", "name", "fip-peer"],
      ["link", "set", "fip-peer", "up"],
    ]);
    const links = await this.linksOf(lb.ns);
    const mac = (name: string) => {
      const l = links.find((x) => x.name === name);
      if (!l) throw new Error(`${lb.ns}: no link ${name}`);
      return l.mac;
    };
    const host: HostFacts = {
      hostname: lb.hostname,
      role: lb.role,
      publicInterface: { name: lb.publicLink.name, mac: mac(lb.publicLink.name) },
      privateInterface: { name: lb.privateLink.name, mac: mac(lb.privateLink.name) },
      ...(lb.syncLink ? { syncInterface: { name: lb.syncLink.name, mac: mac(lb.syncLink.name) } } : {}),
    };
    this.state.hostFacts[key] = host;
    this.save();
    const root = this.renderedRoot(key);
    this.assertOpen(); // writeTree would re-create the state directory a teardown has just removed
    rmSync(root, { recursive: true, force: true });
    await writeTree(root, renderAll({ spec: this.state.spec, host, backends: this.plan.backends }));

    // NetworkManager's part: each rendered profile on the device it matches.
    const profiles = this.profiles(key);
    const sysctls: string[] = [];
    const ipLines: string[][] = [];
    for (const p of profiles) {
      const dev = deviceFor(p, links);
      for (const [k, v] of sysctlsFor(p, dev)) sysctls.push(`${k}=${v}`);
      ipLines.push(...ipCommands(p, dev));
    }
    if (sysctls.length > 0) await this.run(lb.ns, ["sysctl", "-qw", ...sysctls]);
    // systemd-sysctl's part: the rendered file as is.
    await this.run(lb.ns, ["sysctl", "-q", "-p", join(root, "etc/sysctl.d/50-edgepair.conf")]);
    await this.batch(lb.ns, ipLines);
    // Our own tables (egress SNAT, connection handoff), as the agent applies them (before firewalld starts: it must survive firewalld's start).
    await this.run(lb.ns, ["nft", "-f", join(root, "etc/edgepair/nat.nft")]);
    await this.run(lb.ns, ["nft", "-f", join(root, "etc/edgepair/handoff.nft")]);
    await this.run(lb.ns, ["nft", "-f", join(root, "etc/edgepair/guard.nft")]);
    await this.run(lb.ns, ["nft", "-f", join(root, "etc/edgepair/services.nft")]);
    // what bootstrap does next on the VM: private Service addresses on the private NIC (agent/service-lb/addresses.ts)
    const spec = this.state.spec;
    if (hasPrivateServiceAddresses(spec)) {
      const wanted = privateServiceAddresses(spec, kernelServices(spec, this.plan.backends.extra));
      const r = await syncServiceAddresses(
        (argv, o) => spawnRunner(inNetns(lb.ns, argv), o),
        spec,
        lb.privateLink.name,
        wanted,
      );
      if (r.error) throw new Error(`${key}: service addresses: ${r.error}`);
    }
  }

  profiles(key: LbKey): (ProfileIntent & { file: string })[] {
    const dir = join(this.renderedRoot(key), "etc/NetworkManager/system-connections");
    return readdirSync(dir)
      .filter((f) => f.endsWith(".nmconnection"))
      .sort()
      .map((f) => ({ ...profileIntent(readFileSync(join(dir, f), "utf8")), file: f }));
  }

  private async makePki(): Promise<void> {
    const dir = join(this.dir, "pki");
    const san = [
      "DNS:localhost",
      ...this.plan.backends.api.map((b) => `IP:${b.address}`),
      ...this.plan.backends.ingress.map((b) => `IP:${b.address}`),
    ];
    await exec([
      "openssl",
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-days",
      "2",
      "-subj",
      `/CN=${this.state.spec.clusterName}-lab`,
      "-addext",
      `subjectAltName=${san.join(",")}`,
      "-keyout",
      join(dir, "key.pem"),
      "-out",
      join(dir, "cert.pem"),
    ]);
  }

  helperPath(): string {
    return join(this.dir, "bin", "helper.js");
  }

  private compileHelper(): void {
    // loaded here, not at the top: every `edgepair` start would otherwise load swc's native binding
    const swc = require("@swc/core") as typeof import("@swc/core");
    const out = swc.transformFileSync(join(__dirname, "helper.ts"), {
      jsc: { parser: { syntax: "typescript" }, target: "es2022" },
      module: { type: "commonjs" },
      sourceMaps: false,
      swcrc: false,
    });
    writeFileSync(this.helperPath(), out.code);
  }

  helperArgv(...args: string[]): string[] {
    return [process.execPath, this.helperPath(), ...args];
  }

  private async startServers(): Promise<void> {
    const started: ProcessRecord[] = [];
    for (const h of this.plan.hosts) {
      const p = this.startServerOf(h);
      if (p) started.push(p);
    }
    // An SSH stand-in on every address of each LB: the firewall decides where it is reachable.
    for (const l of this.plan.lbs) {
      started.push(
        this.start(
          `${l.key}/ssh`,
          l.ns,
          inNetns(l.ns, this.helperArgv("serve", "--name", `${l.key}-ssh`, "--banner", `0.0.0.0:${PORTS.ssh}`)),
        ),
      );
    }
    await Promise.all(started.map((p) => this.waitListening(p)));
  }

  /** The stand-in server of a host (API servers: the API port, and 22623 for openshift), named `<host key>/serve`. */
  private startServerOf(h: HostPlan): ProcessRecord | undefined {
    const pki = join(this.dir, "pki");
    const tls = ["--cert", join(pki, "cert.pem"), "--key", join(pki, "key.pem")];
    const spec = this.state.spec;
    const ib = spec.ingressBackend;
    const name = h.serverName ?? h.key;
    let args: string[] | undefined;
    if (h.role === "api") {
      args = ["--https", `${h.address}:${spec.apiBackend.port}`, ...tls];
      // the machine-config server: HAProxy checks /healthz over TLS, the workers fetch /config/worker
      if (spec.distribution === "openshift") args.push("--https", `${h.address}:${MACHINE_CONFIG_PORT}`);
    }
    if (h.role === "ingress" && ib) {
      args = ["--http", `${h.address}:${ib.httpPort}`, "--https", `${h.address}:${ib.httpsPort}`, ...tls];
      if (ib.healthPort !== ib.httpPort && ib.healthPort !== ib.httpsPort)
        args.push("--http", `${h.address}:${ib.healthPort}`);
    }
    if (h.role === "internet")
      args = ["--http", `${h.address}:${PORTS.whoami}`, "--echo", `${h.address}:${PORTS.echo}`];
    if (h.role === "node") args = ["--echo", `${h.address}:${PORTS.echo}`];
    // an echo server on each NodePort of an extra service this host backs (TCP and UDP alike)
    const nodePorts = spec.extraServices
      .filter((e) => (this.plan.backends.extra?.[e.name] ?? []).some((b) => b.address === h.address))
      .map((e) => e.backend.nodePort);
    for (const p of [...new Set(nodePorts)]) (args ??= []).push("--echo", `${h.address}:${p}`);
    return args
      ? this.start(`${h.key}/serve`, h.ns, inNetns(h.ns, this.helperArgv("serve", "--name", name, ...args)))
      : undefined;
  }

  async waitListening(p: ProcessRecord): Promise<void> {
    await waitFor(
      `${p.name} to listen`,
      async () => {
        if (!isAlive(p)) throw new GaveUp(`${p.name} exited: ${tail(p.log)}`);
        return readFileSync(p.log, "utf8").includes("ready") ? true : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 50 },
    );
  }

  /** Starts a backend host's stand-in server again (after stopServer), once it listens. */
  async startServer(hostKey: string): Promise<void> {
    const h = this.plan.hosts.find((x) => x.key === hostKey);
    const p = h && this.startServerOf(h);
    if (!p) throw new Error(`lab: host ${hostKey} has no server`);
    await this.waitListening(p);
  }

  /** Stops a backend host's stand-in server (a machine not serving yet, or gone). */
  async stopServer(hostKey: string): Promise<void> {
    const p = this.proc(`${hostKey}/serve`);
    if (p) await this.stopClient(p);
  }

  /**
   * A TCP listener at `at` inside host `hostKey`'s namespace that relays every connection to the Unix socket `unixPath`:
   * how a process of this machine (e.g. a real kube-apiserver on loopback) serves at a lab address. Unix sockets are
   * reached by path, across network namespaces.
   */
  async startRelay(name: string, hostKey: string, at: string, unixPath: string): Promise<ProcessRecord> {
    const p = this.startHelper(name, hostKey, ["relay", "--listen", at, "--unix", unixPath]);
    await this.waitListening(p);
    return p;
  }

  /** The LB's persistent mount namespace: created once, entered by every daemon of that LB. */
  private async mountNamespace(key: LbKey): Promise<void> {
    const lb = this.lb(key);
    const nsDir = join(this.dir, "ns");
    // Both LBs come here at once: the second must wait for the mount the first makes, or its namespace copies a
    // directory that is not a mount yet (seen under load: `umount -l .../ns: not mounted`).
    this.nsDirMounted ??= (async () => {
      // unshare --mount=FILE needs FILE on a mount that is not shared (systemd makes / shared).
      this.state.mounts.unshift(nsDir);
      this.save();
      await exec(["mount", "--bind", nsDir, nsDir]);
      await exec(["mount", "--make-private", nsDir]);
    })();
    await this.nsDirMounted;
    const file = this.mountNsFile(key);
    this.assertOpen();
    writeFileSync(file, "");
    this.state.mounts.push(file);
    this.save();
    const root = this.renderedRoot(key);
    const upper = join(this.dir, key, "etc-upper");
    const work = join(this.dir, key, "etc-work");
    mkdirSync(upper, { recursive: true });
    mkdirSync(work, { recursive: true });
    const binds = readdirSync(join(root, "etc"))
      .filter((d) => statSync(join(root, "etc", d)).isDirectory())
      .sort();
    const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    const script = [
      "set -eu",
      // sysfs of this network namespace (what `ip netns exec` does)
      "mount -t sysfs sysfs /sys",
      // /etc gets a writable overlay only so that missing directories (/etc/edgepair) can be created; the host's
      // /etc stays untouched.
      `mount -t overlay overlay -o lowerdir=/etc,upperdir=${q(upper)},workdir=${q(work)} /etc`,
      ...binds.flatMap((d) => [
        `mkdir -p /etc/${d}`,
        `mount --bind ${q(join(root, "etc", d))} /etc/${d}`,
        `mount -o remount,bind,ro /etc/${d}`,
      ]),
      // the image's own tools (the notify script's edgepair-garp) where the VM has them; read-only, host unchanged
      `mount -t overlay overlay -o lowerdir=${q(IMAGE_LIBEXEC)}:/usr/libexec /usr/libexec`,
      // the nsfs files of the other LB must not be pinned by this namespace
      `umount -l ${q(nsDir)}`,
      "mount -t tmpfs -o mode=0755 tmpfs /run",
      "mkdir -p /run/dbus /run/lock /run/haproxy /run/edgepair /run/keepalived",
      "mount -t tmpfs -o mode=1777 tmpfs /tmp",
      "mount -t tmpfs -o mode=0755 tmpfs /var/log",
    ].join("\n");
    await exec([
      "nsenter",
      `--net=${netnsPath(lb.ns)}`,
      "--",
      "unshare",
      `--mount=${file}`,
      "--propagation",
      "private",
      "--",
      "sh",
      "-c",
      script,
    ]);
  }

  private async startFirewall(key: LbKey): Promise<void> {
    const lb = this.lb(key);
    const dbus = this.start(
      `${key}/dbus`,
      lb.ns,
      this.inLb(key, ["dbus-daemon", "--system", "--nofork", "--nopidfile"]),
    );
    await waitFor(
      `${key} D-Bus socket`,
      async () => {
        if (!isAlive(dbus)) throw new GaveUp(`dbus-daemon exited: ${tail(dbus.log)}`);
        return existsSync(`/proc/${dbus.pid}/root/run/dbus/system_bus_socket`) ? true : undefined;
      },
      { timeoutMs: 15_000, intervalMs: 50 },
    );
    const fw = this.start(`${key}/firewalld`, lb.ns, this.inLb(key, ["firewalld", "--nofork", "--nopid"]));
    await waitFor(
      `${key} firewalld running`,
      async () => {
        if (!isAlive(fw)) throw new GaveUp(`firewalld exited: ${tail(fw.log)}`);
        const r = await this.runLb(key, ["firewall-cmd", "--state"], { allowFail: true, timeoutMs: 10_000 });
        return r.stdout.trim() === "running" ? true : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 250 },
    );
    // NetworkManager hands each profile's zone to firewalld; the rendered zones name the same interfaces.
    const links = await this.linksOf(lb.ns);
    for (const p of this.profiles(key)) {
      if (!p.zone) continue;
      const dev = deviceFor(p, links);
      const r = await this.runLb(key, ["firewall-cmd", `--get-zone-of-interface=${dev}`], { allowFail: true });
      if (r.stdout.trim() !== p.zone) {
        this.log(
          `  ${key}: ${dev} was in zone "${r.stdout.trim() || "none"}", the keyfile ${p.file} says ${p.zone}: binding it as NetworkManager would`,
        );
        await this.runLb(key, ["firewall-cmd", `--zone=${p.zone}`, `--change-interface=${dev}`]);
      }
    }
    // every table our files declare with a body must survive firewalld's start
    const listed = (await this.run(lb.ns, ["nft", "list", "tables"])).stdout;
    const dir = join(this.renderedRoot(key), "etc/edgepair");
    for (const f of readdirSync(dir).filter((n) => n.endsWith(".nft"))) {
      for (const m of readFileSync(join(dir, f), "utf8").matchAll(/^table (\w+) (\w+) \{/gm))
        if (!listed.includes(`table ${m[1]} ${m[2]}`))
          throw new Error(`${key}: the ${m[2]} table (${f}) did not survive firewalld's start`);
    }
  }

  private async startHaproxyConntrackd(key: LbKey): Promise<void> {
    const lb = this.lb(key);
    const hap = this.start(
      `${key}/haproxy`,
      lb.ns,
      this.inLb(key, [
        "haproxy",
        "-db",
        ...this.haproxyLimitArgs(key),
        "-f",
        "/etc/haproxy/haproxy.cfg",
        "-p",
        "/run/haproxy.pid",
      ]),
    );
    const ct = this.start(
      `${key}/conntrackd`,
      lb.ns,
      this.inLb(key, ["conntrackd", "-C", "/etc/conntrackd/conntrackd.conf"]),
    );
    await waitFor(
      `${key} haproxy stats socket`,
      async () => {
        if (!isAlive(hap)) throw new GaveUp(`haproxy exited: ${tail(hap.log)}`);
        return (await this.haproxyCommand(key, "show info").catch(() => "")).includes("Name: HAProxy")
          ? true
          : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 100 },
    );
    await waitFor(
      `${key} conntrackd socket`,
      async () => {
        if (!isAlive(ct)) throw new GaveUp(`conntrackd exited: ${tail(ct.log)}`);
        return existsSync(`/proc/${ct.pid}/root/run/conntrackd.ctl`) ? true : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 100 },
    );
  }

  /**
   * HAProxy needs about 2 descriptors per connection and raises its own limit up to the hard limit; with
   * strict-limits (HAProxy >= 2.3 default) it refuses to start when that is too low. On the VM systemd gives it a
   * hard limit of 512k; a machine like this one may have a lower hard limit that even root cannot raise (no
   * CAP_SYS_RESOURCE). Then, and only then, the lab starts HAProxy with `-n` (global maxconn, "to avoid a service
   * outage on systems where resource limits are too low", haproxy(1)), as an operator's unit drop-in would; the
   * rendered file stays as it is.
   */
  private haproxyLimitArgs(key: LbKey): string[] {
    const cfg = readFileSync(join(this.renderedRoot(key), "etc/haproxy/haproxy.cfg"), "utf8");
    const maxconn = Number(/^\s*maxconn\s+(\d+)/m.exec(cfg)?.[1] ?? "0");
    const hard = /^Max open files\s+\S+\s+(\S+)/m.exec(readFileSync("/proc/self/limits", "utf8"))?.[1];
    const limit = hard === undefined || hard === "unlimited" ? SYSTEMD_NOFILE : Number(hard);
    const reserve = 200; // listeners, checks, sockets, logs
    // two descriptors per connection, and per pipe (splicing; HAProxy's default maxpipes is maxconn / 4)
    const perConn = 2 + 2 / 4;
    if (maxconn === 0 || perConn * maxconn + reserve <= limit) return [];
    const fit = Math.floor((limit - reserve) / perConn);
    this.log(
      `  ${key}: hard NOFILE limit here is ${limit} (systemd gives HAProxy ${SYSTEMD_NOFILE}): maxconn ${maxconn} does not fit, HAProxy runs with -n ${fit}`,
    );
    return ["-n", String(fit)];
  }

  /** The agent's side of the notify FIFO, plus keepalived. Every "STATE PRIORITY" line lands in logs/<lb>-vrrp-agent.log. */
  async startKeepalived(key: LbKey): Promise<void> {
    const lb = this.lb(key);
    const running = this.proc(`${key}/vrrp-agent`);
    const agent =
      running && isAlive(running)
        ? running
        : this.start(
            `${key}/vrrp-agent`,
            lb.ns,
            this.inLb(key, [
              "sh",
              "-c",
              'f=/run/edgepair/vrrp.fifo; [ -p "$f" ] || mkfifo -m 600 "$f"; exec 3<>"$f"; ' +
                'while IFS= read -r line <&3; do printf "%s %s\\n" "$(date +%s%3N)" "$line"; done',
            ]),
          );
    await waitFor(
      `${key} VRRP FIFO`,
      async () => {
        if (!isAlive(agent)) throw new GaveUp(`FIFO reader exited: ${tail(agent.log)}`);
        return existsSync(`/proc/${agent.pid}/root/run/edgepair/vrrp.fifo`) ? true : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 50 },
    );
    this.start(
      `${key}/keepalived`,
      lb.ns,
      this.inLb(key, ["keepalived", "-n", "-l", "-D", "-f", "/etc/keepalived/keepalived.conf"]),
    );
  }

  /** A clean stop (SIGTERM: keepalived sends priority 0, the peer takes over at once). */
  async stopKeepalived(key: LbKey): Promise<void> {
    const p = this.proc(`${key}/keepalived`);
    if (p) await stopProcess(p, 5000);
  }

  /** VRRP transitions the notify script announced on the agent's FIFO: [epoch ms, state, priority]. */
  transitions(key: LbKey): { at: number; state: string; priority: number }[] {
    const file = this.logPath(`${key}/vrrp-agent`);
    if (!existsSync(file)) return [];
    return readFileSync(file, "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => {
        const [at, state, priority] = l.split(" ");
        return { at: Number(at), state: state ?? "", priority: Number(priority) };
      });
  }

  /** A reload as systemd does it for `haproxy -Ws`: SIGUSR2 to the master, which re-execs and keeps the listeners. */
  reloadHaproxy(key: LbKey): boolean {
    const p = this.proc(`${key}/haproxy`);
    return p ? signal(p, "SIGUSR2") : false;
  }

  // ------------------------------------------------------------------------------------- observation

  async haproxyCommand(key: LbKey, command: string): Promise<string> {
    const p = this.proc(`${key}/haproxy`);
    if (!p || !isAlive(p)) throw new Error(`${key}: haproxy is not running`);
    // The socket lives in the LB's mount namespace; /proc/PID/root reaches it from here.
    const path = `/proc/${p.pid}/root${HAPROXY_SOCKET}`;
    return new Promise((resolve, reject) => {
      let out = "";
      const s = connect({ path });
      const timer = setTimeout(() => s.destroy(new Error("stats socket timeout")), 3000);
      s.setEncoding("utf8");
      s.on("connect", () => s.end(`${command}\n`));
      s.on("data", (d: string) => (out += d));
      s.on("error", (e) => {
        clearTimeout(timer);
        reject(e);
      });
      s.on("close", () => {
        clearTimeout(timer);
        resolve(out);
      });
    });
  }

  async backendHealth(key: LbKey): Promise<BackendHealth[]> {
    const csv = await this.haproxyCommand(key, "show stat");
    const rows = csv.split("\n").filter((l) => l && !l.startsWith("#"));
    return rows
      .map((l) => l.split(","))
      .filter((c) => c[1] !== "FRONTEND" && c[1] !== "BACKEND" && (c[0] ?? "").startsWith("be_"))
      .map((c) => ({ backend: c[0] as string, server: c[1] as string, status: c[17] as string }));
  }

  /**
   * keepalived's own view: SIGUSR1 makes it write its data file, in this LB's private /tmp. It costs the VRRP
   * process a file dump, so measurements poll holders() and read transitions() instead. Calls for one LB are
   * serialized (they share the file).
   */
  async vrrpState(key: LbKey): Promise<string> {
    const previous = this.vrrpQueries[key];
    const next = previous.then(() => this.readVrrpState(key));
    this.vrrpQueries[key] = next.catch(() => undefined);
    return next;
  }

  private vrrpQueries: Record<LbKey, Promise<unknown>> = { lb1: Promise.resolve(), lb2: Promise.resolve() };

  private async readVrrpState(key: LbKey): Promise<string> {
    const p = this.proc(`${key}/keepalived`);
    if (!p || !isAlive(p)) return "STOPPED";
    if (!catches(p, constants.signals.SIGUSR1)) return "STARTING";
    const file = `/proc/${p.pid}/root${KEEPALIVED_DATA}`;
    rmSync(file, { force: true });
    signal(p, "SIGUSR1");
    try {
      const text = await waitFor(
        `${key} keepalived data`,
        async () => {
          if (!existsSync(file)) return undefined;
          const t = readFileSync(file, "utf8");
          return /VRRP Instance = [^\n]*\n(?:[^\n]*\n)*?\s*State = \w+/.exec(t)?.[0];
        },
        { timeoutMs: 3000, intervalMs: 20 },
      );
      return /State = (\w+)$/.exec(text)?.[1] ?? "UNKNOWN";
    } catch {
      return "UNKNOWN";
    }
  }

  async waitVrrp(key: LbKey, wanted: string, timeoutMs: number): Promise<void> {
    await waitFor(`${key} VRRP ${wanted}`, async () => ((await this.vrrpState(key)) === wanted ? true : undefined), {
      timeoutMs,
      intervalMs: 200,
    });
  }

  async addresses(ns: string): Promise<Map<string, string[]>> {
    const r = await exec(["ip", "-n", ns, "-j", "addr", "show"]);
    const m = new Map<string, string[]>();
    for (const l of JSON.parse(r.stdout) as { ifname: string; addr_info?: { local: string }[] }[]) {
      m.set(
        l.ifname,
        (l.addr_info ?? []).map((a) => a.local),
      );
    }
    return m;
  }

  /** Which LBs hold any of keepalived's VIPs (private NIC) and the public next hop right now (no signal, cheap). */
  async holders(): Promise<{ vip: LbKey[]; nextHop: LbKey[] }> {
    const vips = this.state.spec.derived.privateVips.map((v) => v.address);
    const vip: LbKey[] = [];
    const nextHop: LbKey[] = [];
    for (const l of this.plan.lbs) {
      const a = await this.addresses(l.ns);
      const priv = a.get(l.privateLink.name) ?? [];
      if (vips.some((v) => priv.includes(v))) vip.push(l.key);
      if ((a.get(l.publicLink.name) ?? []).includes(this.plan.targets.nextHop)) nextHop.push(l.key);
    }
    return { vip, nextHop };
  }

  /** The single LB holding the VIPs, or an error naming what was found. */
  async active(): Promise<LbKey> {
    const h = await this.holders();
    if (h.vip.length !== 1)
      throw new Error(`expected one LB holding the VIPs, found ${h.vip.length ? h.vip.join(", ") : "none"}`);
    return h.vip[0] as LbKey;
  }

  async waitBackendsUp(timeoutMs: number): Promise<void> {
    for (const l of this.plan.lbs) {
      await waitFor(
        `${l.key} backends UP`,
        async () => {
          const h = await this.backendHealth(l.key);
          return h.length > 0 && h.every((b) => b.status === "UP") ? true : undefined;
        },
        { timeoutMs, intervalMs: 250 },
      );
    }
  }

  async status(): Promise<LbStatus[]> {
    const out: LbStatus[] = [];
    for (const l of this.plan.lbs) {
      const a = await this.addresses(l.ns);
      const priv = a.get(l.privateLink.name) ?? [];
      const daemons: Record<string, boolean> = {};
      for (const d of LB_DAEMONS) {
        const p = this.proc(`${l.key}/${d}`);
        daemons[d] = p ? isAlive(p) : false;
      }
      out.push({
        key: l.key,
        ns: l.ns,
        vrrp: await this.vrrpState(l.key),
        privateVips: this.state.spec.derived.privateVips.map((v) => v.address).filter((v) => priv.includes(v)),
        nextHop: (a.get(l.publicLink.name) ?? []).includes(this.plan.targets.nextHop),
        floatingIps: a.get(FLOATING_IP_INTERFACE) ?? [],
        links: this.state.cut.includes(l.key) ? "cut" : "up",
        daemons,
        backends: daemons.haproxy ? await this.backendHealth(l.key).catch(() => []) : [],
        ...(await this.serviceFrontends(l.key)),
      });
    }
    return out;
  }

  /**
   * The Service frontends an LB's kernel forwards: its live table as nft lists it in the LB's namespace, read against
   * the rendered services.nft it was applied from (which names the backends health has pointed away). No table: none
   * (the renderer removes it while nothing is forwarded).
   */
  async serviceFrontends(key: LbKey): Promise<Pick<LbStatus, "services" | "servicesError">> {
    const r = await this.run(this.lb(key).ns, ["nft", "-j", "list", "table", "ip", SERVICES_TABLE], {
      allowFail: true,
    });
    if (r.code !== 0) {
      if (/No such file or directory/.test(r.stderr)) return { services: [] };
      return { services: [], servicesError: r.stderr.trim() || `nft exited with ${String(r.code)}` };
    }
    const file = join(this.renderedRoot(key), SERVICES_NFT_PATH);
    try {
      return { services: parseServiceTable(r.stdout, existsSync(file) ? readFileSync(file, "utf8") : undefined) };
    } catch (e) {
      return { services: [], servicesError: `unreadable nft -j output: ${(e as Error).message}` };
    }
  }

  formatStatus(rows: LbStatus[]): string {
    const lbTable = formatTable(
      [
        "LB",
        "netns",
        "links",
        "VRRP",
        "keepalived VIPs (private NIC)",
        "public next hop",
        "floating IPs (edgepair-fip)",
        "daemons down",
      ],
      rows.map((r) => [
        r.key,
        r.ns,
        r.links,
        r.vrrp,
        r.privateVips.join(", ") || "-",
        r.nextHop ? this.plan.targets.nextHop : "-",
        r.floatingIps.join(", ") || "-",
        Object.entries(r.daemons)
          .filter(([, up]) => !up)
          .map(([d]) => d)
          .join(", ") || "none",
      ]),
    );
    const servers = [...new Set(rows.flatMap((r) => r.backends.map((b) => `${b.backend}/${b.server}`)))];
    const source = serverSources(selectBackends(this.state.spec, this.plan.nodes ?? []).pools);
    const beTable = formatTable(
      ["HAProxy backend/server", "source", ...rows.map((r) => r.key)],
      servers.map((s) => [
        s,
        source(s),
        ...rows.map((r) => r.backends.find((b) => `${b.backend}/${b.server}` === s)?.status ?? "-"),
      ]),
    );
    const svcTable = formatServiceFrontends(rows.map((r) => ({ key: r.key, frontends: r.services })));
    const svcErrors = rows.flatMap((r) =>
      r.servicesError ? [`${r.key}: Service frontends unknown: ${r.servicesError}\n`] : [],
    );
    // the pair's verdict first, printed as `edgepair status` prints a deployed pair
    const pair = formatPairStatus(labPairView(this, rows));
    return `${pair}\n${lbTable}\n${beTable}\n${svcTable}${svcErrors.join("")}`;
  }

  // ------------------------------------------------------------------------------------------- checks

  async curl(ns: string, url: string, timeoutS = 3): Promise<{ ok: boolean; body: string; error: string }> {
    const r = await this.run(ns, ["curl", "-sS", "-k", "--max-time", String(timeoutS), "--fail", url], {
      allowFail: true,
      timeoutMs: (timeoutS + 5) * 1000,
    });
    return { ok: r.code === 0, body: r.stdout.trim(), error: r.stderr.trim() };
  }

  /** Asks an echo server at `to` who answers, from host `hostKey`: the backend's name and the client address it saw. */
  async ask(
    hostKey: string,
    to: string,
    opts: { udp?: boolean; timeoutMs?: number } = {},
  ): Promise<{ ok: true; server: string; peer: string } | { ok: false; error: string }> {
    const timeoutMs = opts.timeoutMs ?? 2000;
    const args = ["ask", "--to", to, "--timeout-ms", String(timeoutMs), ...(opts.udp ? ["--udp", "true"] : [])];
    const ns = this.ns(hostKey);
    const r = await this.run(ns, this.helperArgv(...args), {
      allowFail: true,
      timeoutMs: timeoutMs + 10_000,
    });
    if (r.code !== 0) return { ok: false, error: r.stderr.trim() || `exit ${r.code}` };
    const answer = JSON.parse(r.stdout.trim()) as { server: string; peer: string };
    return { ok: true, server: answer.server, peer: answer.peer };
  }

  /** DESIGN.md's smoke path: client to both public VIPs, the cluster node to the private VIP and to the internet. */
  async smoke(): Promise<SmokeResult[]> {
    const t = this.plan.targets;
    const cli = this.ns("cli");
    const node = this.ns("node");
    const port = this.state.spec.apiBackend.port;
    const results: SmokeResult[] = [];
    const check = async (name: string, ns: string, url: string, accept: (body: string) => string | undefined) => {
      const r = await this.curl(ns, url);
      const problem = r.ok ? accept(r.body) : r.error || "failed";
      results.push({ check: name, ok: problem === undefined, detail: problem ?? r.body.slice(0, 100) });
    };
    const json = (body: string): { server?: string; peer?: string } => {
      try {
        return JSON.parse(body) as { server?: string; peer?: string };
      } catch {
        return {};
      }
    };
    await check(
      `client -> API VIP ${t.apiVipPublic}:${port} /readyz (TLS)`,
      cli,
      `https://${t.apiVipPublic}:${port}/readyz`,
      (b) => (b === "ok" ? undefined : `answered "${b}"`),
    );
    await check(
      `client -> API VIP ${t.apiVipPublic}:${port} reaches an API server`,
      cli,
      `https://${t.apiVipPublic}:${port}/who`,
      (b) => (this.plan.backends.api.some((s) => s.name === json(b).server) ? undefined : `answered "${b}"`),
    );
    if (t.ingressVip) {
      await check(`client -> ingress VIP ${t.ingressVip}:80`, cli, `http://${t.ingressVip}/`, (b) =>
        this.plan.backends.ingress.some((s) => s.name === json(b).server) ? undefined : `answered "${b}"`,
      );
      await check(
        `client -> ingress VIP ${t.ingressVip}:443 (TLS passthrough)`,
        cli,
        `https://${t.ingressVip}/`,
        (b) => (this.plan.backends.ingress.some((s) => s.name === json(b).server) ? undefined : `answered "${b}"`),
      );
    }
    if (t.apiVipPrivate) {
      await check(
        `cluster node -> private API VIP ${t.apiVipPrivate}:${port} /readyz`,
        node,
        `https://${t.apiVipPrivate}:${port}/readyz`,
        (b) => (b === "ok" ? undefined : `answered "${b}"`),
      );
    }
    if (t.natAddress) {
      await check(
        `cluster node -> internet host ${t.internet}, seen from ${t.natAddress}`,
        node,
        `http://${t.internet}:${PORTS.whoami}/who`,
        (b) => {
          const peer = (json(b).peer ?? "").replace(/^::ffff:/, "");
          return peer === t.natAddress ? undefined : `seen from ${peer || "?"}`;
        },
      );
    }
    return results;
  }

  ns(key: string): string {
    if (key === "lb1" || key === "lb2") return this.lb(key).ns;
    if (key === "rt") return this.plan.router.ns;
    if (key === "sw") return this.plan.switchNs;
    if (key === "rogue") return this.plan.rogue.ns;
    const h = this.plan.hosts.find((x) => x.key === key);
    if (!h) throw new Error(`lab: no host ${key}`);
    return h.ns;
  }

  // ------------------------------------------------------------------------------------------- faults

  /**
   * Unclean fault of every link of the LB at once (one `ip -batch` call; the returned fault time is taken just
   * before it, so it errs a few milliseconds early):
   * - "carrier" (default, a pulled cable or a dead VM's NICs): its switch ports go down, the LB sees NO-CARRIER and
   *   keepalived goes FAULT, releasing everything.
   * - "isolate" (a partition the LB does not notice): its switch ports leave the bridges, carrier stays up; the LB
   *   stays MASTER behind the partition. Measured: when the partition heals, the higher-priority LB keeps MASTER
   *   and the other yields (VRRP resolves two masters by priority; nopreempt does not apply), a second move.
   */
  async cut(key: LbKey, mode: "carrier" | "isolate" = "carrier"): Promise<number> {
    const l = this.lb(key);
    if (!this.state.cut.includes(key)) this.state.cut.push(key);
    this.save();
    const ports = cutOrder(l).map((x) => x.switchPort);
    const t = Date.now();
    await this.batch(
      this.plan.switchNs,
      ports.map((p) => (mode === "carrier" ? ["link", "set", p, "down"] : ["link", "set", p, "nomaster"])),
    );
    return t;
  }

  /** Undoes either kind of cut (one `ip -batch` call); returns the time taken just before it. */
  async restore(key: LbKey): Promise<number> {
    const l = this.lb(key);
    const t = Date.now();
    await this.batch(
      this.plan.switchNs,
      lbLinks(l).map((x) => ["link", "set", x.switchPort, "master", BRIDGES[x.segment], "up"]),
    );
    this.state.cut = this.state.cut.filter((k) => k !== key);
    this.save();
    return t;
  }

  /** A client in the client namespace (DESIGN.md: a new connection every 10 ms, 3 s timeout), logging to `out`. */
  startClient(
    name: string,
    url: string,
    out: string,
    opts: { intervalMs?: number; timeoutMs?: number; maxMs?: number; ns?: string } = {},
  ): ProcessRecord {
    const ns = opts.ns ?? this.ns("cli");
    return this.start(
      name,
      ns,
      inNetns(
        ns,
        this.helperArgv(
          "client",
          "--url",
          url,
          "--out",
          out,
          "--interval-ms",
          String(opts.intervalMs ?? 10),
          "--timeout-ms",
          String(opts.timeoutMs ?? 3000),
          "--max-ms",
          String(opts.maxMs ?? 120_000),
        ),
      ),
    );
  }

  /** Any mode of lab/helper.ts in one of the lab's namespaces (a host key: "node", "cli", ...), recorded like every process. */
  startHelper(name: string, hostKey: string, args: readonly string[]): ProcessRecord {
    const ns = this.ns(hostKey);
    return this.start(name, ns, inNetns(ns, this.helperArgv(...args)));
  }

  /** Any program in one of the lab's namespaces (a host key), recorded like every process. */
  startIn(name: string, hostKey: string, argv: readonly string[]): ProcessRecord {
    const ns = this.ns(hostKey);
    return this.start(name, ns, inNetns(ns, argv));
  }

  /**
   * Wires the bare path (topology.ts BARE_PATH) once per lab and returns the internet host's address on it: traffic
   * from the cluster node to that address takes the plain routed path, everything else is unchanged.
   */
  async addBarePath(): Promise<string> {
    const b = BARE_PATH;
    const ns = `${this.plan.prefix}-${b.ns}`;
    if (this.state.namespaces.includes(ns)) return b.internet;
    await this.addNamespace(ns);
    const len = (cidr: string) => cidr.split("/")[1] as string;
    const [node, rt, inet] = [this.ns("node"), this.plan.router.ns, this.ns("inet")];
    await this.batch(this.plan.switchNs, [
      ...Object.values(b.bridges).flatMap((br) => [
        ["link", "add", br, "type", "bridge"],
        ["link", "set", br, "up"],
      ]),
      ...bridgePort("bnode", b.bridges.node, node, "bare0"),
      ...bridgePort("bare-n", b.bridges.node, ns, "eth0"),
      ...bridgePort("bare-r", b.bridges.router, ns, "eth1"),
      ...bridgePort("brt", b.bridges.router, rt, "bare0"),
    ]);
    await this.batch(node, [
      ["addr", "add", `${b.nodeSide.node}/${len(b.nodeSide.cidr)}`, "dev", "bare0"],
      ["link", "set", "bare0", "up"],
      ["route", "add", `${b.internet}/32`, "via", b.nodeSide.bare],
    ]);
    await this.batch(ns, [
      ["addr", "add", `${b.nodeSide.bare}/${len(b.nodeSide.cidr)}`, "dev", "eth0"],
      ["addr", "add", `${b.routerSide.bare}/${len(b.routerSide.cidr)}`, "dev", "eth1"],
      ["link", "set", "eth0", "up"],
      ["link", "set", "eth1", "up"],
      ["route", "add", "default", "via", b.routerSide.router],
    ]);
    await this.run(ns, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    await this.batch(rt, [
      ["addr", "add", `${b.routerSide.router}/${len(b.routerSide.cidr)}`, "dev", "bare0"],
      ["link", "set", "bare0", "up"],
      ["route", "add", b.nodeSide.cidr, "via", b.routerSide.bare],
      ["route", "add", `${b.internet}/32`, "via", OUTSIDE.internet],
    ]);
    // the internet host holds it on its one link; its replies to the node side leave from it (a wildcard-bound UDP
    // socket would answer from the link's first address, which the node's connected socket ignores)
    await this.batch(inet, [
      ["addr", "add", `${b.internet}/32`, "dev", "eth0"],
      ["route", "add", b.nodeSide.cidr, "via", OUTSIDE.gateway, "src", b.internet],
    ]);
    return b.internet;
  }

  async stopClient(p: ProcessRecord): Promise<void> {
    // SIGTERM lets requests in flight finish (bounded by their timeout)
    await stopProcess(p, 6000);
    this.state.processes = this.state.processes.filter((x) => x.name !== p.name);
    this.save();
  }

  /**
   * Unclean failover of the active LB, measured three ways: the peer's address monitor (VIPs, next hop) and a
   * client through the public API VIP. With `restore`, the links come back and the returning LB must stay BACKUP
   * while the client keeps running.
   */
  async failover(opts: { restore?: boolean; settleMs?: number } = {}): Promise<FailoverReport> {
    const from = await this.active();
    const to = this.other(from);
    const t = this.plan.targets;
    const out = join(this.dir, "logs", `failover-${Date.now()}.jsonl`);
    const client = this.startClient(
      "failover-client",
      `https://${t.apiVipPublic}:${this.state.spec.apiBackend.port}/who`,
      out,
    );
    const monitor = new AddressMonitor(this.lb(to).ns);
    try {
      await sleep(1000); // a baseline through the active LB
      await monitor.ready();
      const fault = await this.cut(from);
      this.log(`  cut every link of ${from} (unclean); waiting for ${to}`);
      const firstVip = this.state.spec.derived.privateVips[0]?.address ?? "";
      const [vipAt, hopAt] = await Promise.all([monitor.waitFor(firstVip, 15_000), monitor.waitFor(t.nextHop, 15_000)]);
      const duringCut = await this.holders();
      await sleep(1500); // requests started around the move finish or time out
      const report: FailoverReport = {
        from,
        to,
        ...(vipAt !== undefined ? { vipMovedMs: vipAt - fault } : {}),
        ...(hopAt !== undefined ? { nextHopMovedMs: hopAt - fault } : {}),
        client: summarize([], fault),
        duringCut,
      };
      let back: number | undefined;
      if (opts.restore ?? true) {
        back = await this.restore(from);
        this.log(`  links of ${from} restored; it must come back as BACKUP`);
        await sleep(opts.settleMs ?? 4000);
        const h = await this.holders();
        report.restored = {
          returningState: await this.vrrpState(from),
          holders: h.vip,
          nextHopHolders: h.nextHop,
          failedAfterReturn: 0,
          requestsAfterReturn: 0,
        };
      }
      await this.stopClient(client);
      const records = readRequests(out);
      report.client = summarize(records, fault, this.lb(to).privateAddress);
      if (report.restored && back !== undefined) {
        const after = records.filter((r) => r.start >= (back as number));
        report.restored.requestsAfterReturn = after.length;
        report.restored.failedAfterReturn = after.filter((r) => !r.ok).length;
      }
      return report;
    } finally {
      monitor.stop();
      const p = this.proc("failover-client");
      if (p) await this.stopClient(p);
    }
  }

  formatFailover(r: FailoverReport): string {
    const lines = [
      `unclean failover ${r.from} -> ${r.to}:`,
      `  VIPs on ${r.to} after ${ms(r.vipMovedMs)}, public next hop after ${ms(r.nextHopMovedMs)}`,
      `  client (new TLS connection every 10 ms to the public API VIP): outage window ${ms(r.client.outageMs)}, ` +
        `${r.client.failed} of ${r.client.total} requests failed${
          Object.keys(r.client.errors).length
            ? ` (${Object.entries(r.client.errors)
                .map(([k, v]) => `${k} ${v}`)
                .join(", ")})`
            : ""
        }, ` +
        `${r.client.slow} slower than 1 s, max latency ${ms(r.client.maxLatencyMs)}`,
      `  while ${r.from} was cut off: VIPs on ${r.duringCut.vip.join(", ") || "none"}, next hop on ${r.duringCut.nextHop.join(", ") || "none"}`,
    ];
    if (r.restored) {
      lines.push(
        `  ${r.from} returned as ${r.restored.returningState}; VIPs on ${r.restored.holders.join(", ") || "none"}, next hop on ${r.restored.nextHopHolders.join(", ") || "none"}; ` +
          `${r.restored.failedAfterReturn} of ${r.restored.requestsAfterReturn} requests failed after the return`,
      );
    }
    return `${lines.join("\n")}\n`;
  }

  // ------------------------------------------------------------------------------------------ rogue VRRP

  /**
   * A host on the cluster network that is not the peer runs a real keepalived with the pair's router ID, a higher
   * priority and unicast adverts to both LBs. Returns the rogue's process; `stopRogue` removes it.
   * `forge`: the adverts carry this source address instead (one LB's own, sent to the other LB), as a host on the
   * same L2 can send them; the rogue never answers ARP for it, so the pair's own traffic is not diverted. `to`: the
   * addresses the adverts go to (default: both LBs' private addresses but the forged one).
   */
  async startRogue(opts: { forge?: string; to?: string[] } = {}): Promise<ProcessRecord> {
    const r = this.plan.rogue;
    const link = r.links[0];
    if (!link) throw new Error("rogue: no link");
    // wired once per lab: a second rogue reuses the namespace
    if (!this.state.namespaces.includes(r.ns)) {
      await this.addNamespace(r.ns);
      await this.batch(this.plan.switchNs, bridgePort(link.switchPort, BRIDGES[link.segment], r.ns, link.name));
      await this.configureHost(r);
    }
    const source = opts.forge ?? r.address;
    if (opts.forge) {
      await this.run(r.ns, ["sysctl", "-qw", `net.ipv4.conf.${link.name}.arp_ignore=8`]);
      await this.run(r.ns, ["ip", "addr", "add", `${opts.forge}/32`, "dev", link.name]);
    }
    const dir = join(this.dir, "rogue");
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const spec = this.state.spec;
    const conf = [
      "global_defs {",
      "    router_id rogue",
      "    vrrp_version 3",
      "}",
      "vrrp_instance rogue {",
      "    state MASTER",
      `    interface ${link.name}`,
      `    virtual_router_id ${spec.vrrp.routerId}`,
      "    priority 254",
      `    advert_int ${spec.vrrp.advertIntervalSeconds}`,
      `    unicast_src_ip ${source}`,
      "    unicast_peer {",
      ...(opts.to ?? spec.network.lbAddresses.filter((a) => a !== source)).map((a) => `        ${a}`),
      "    }",
      "    virtual_ipaddress {",
      // its own address as the VIP: the rogue must not disturb ARP for the real VIPs, only send adverts
      `        ${r.address}/32 dev ${link.name}`,
      "    }",
      "}",
      "",
    ].join("\n");
    writeFileSync(join(dir, "keepalived.conf"), conf);
    // its own mount namespace too, so nothing it writes under /run or /tmp lands on this machine
    // (the config is copied out of the state directory, which lies under the /run it covers)
    const script =
      `mount -t tmpfs tmpfs /tmp && cp '${join(dir, "keepalived.conf")}' /tmp/keepalived.conf && mount -t tmpfs tmpfs /run && ` +
      "exec keepalived -n -l -D -f /tmp/keepalived.conf";
    return this.start(
      "rogue/keepalived",
      r.ns,
      inNetns(r.ns, ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script]),
    );
  }

  /**
   * The firewall's verdict on packets from `source` arriving at an LB, read from nftables' own trace for `ms`:
   * a separate table marks them (`meta nftrace set 1`) and is removed afterwards; firewalld's rules stay as they
   * are. Returns, per traced packet, the last rule of firewalld's that decided it (a zone chain's accept shows as
   * such), or the guard table's rule that dropped it; packets the window cut off mid-trace are left out.
   */
  async firewallVerdicts(
    key: LbKey,
    source: string,
    ms: number,
    opts: { iifname?: string; protocol?: "vrrp" } = {},
  ): Promise<string[]> {
    const ns = this.lb(key).ns;
    const table = "edgepair_lab_trace";
    // `iifname`: only packets arriving on that link (the same source may also arrive, genuinely, on another);
    // `protocol`: only those (a forged advert's source also sends, genuinely, other traffic)
    const iif = opts.iifname ? `iifname ${JSON.stringify(opts.iifname)} ` : "";
    const proto = opts.protocol ? `ip protocol ${opts.protocol} ` : "";
    await this.run(ns, ["nft", "-f", "-"], {
      input: `table ip ${table} {\n\tchain pre {\n\t\ttype filter hook prerouting priority -350; policy accept;\n\t\t${iif}${proto}ip saddr ${source} meta nftrace set 1\n\t}\n}\n`,
    });
    try {
      const r = await this.run(ns, ["timeout", String(ms / 1000), "nft", "monitor", "trace"], {
        allowFail: true,
        timeoutMs: ms + 5000,
      });
      return traceVerdicts(r.stdout);
    } finally {
      await this.run(ns, ["nft", "delete", "table", "ip", table], { allowFail: true });
    }
  }

  async stopRogue(): Promise<void> {
    const p = this.proc("rogue/keepalived");
    if (p) await stopProcess(p);
  }

  // ------------------------------------------------------------------------------------------- down

  /** Idempotent; concurrent calls (a signal handler and a finally block) share one teardown. */
  async down(): Promise<void> {
    this.closing ??= teardown(this.state, this.log);
    await this.closing;
  }
}

/** The last lines of a log, for error messages. */
/**
 * Where each HAProxy server comes from, as the agent's selection says (agent/kube/backends.ts): "spec", "spec, Node X"
 * (a static address a Node now stands at) or "Node X"; 22623 follows the API pool, 80/443 the ingress pool.
 */
/** `ip -batch` lines in the switch namespace: a veth whose `port` end joins `bridge`, its other end `peerName` in `peerNs`. */
function bridgePort(port: string, bridge: string, peerNs: string, peerName: string): string[][] {
  return [
    ["link", "add", port, "type", "veth", "peer", "name", peerName, "netns", peerNs],
    ["link", "set", port, "master", bridge, "up"],
  ];
}

export function serverSources(pools: BackendSelection["pools"]): (backendSlashServer: string) => string {
  const poolOf = (backend: string) =>
    backend === "be_api" || backend === "be_machine_config"
      ? pools.api
      : backend.startsWith("be_ingress")
        ? pools.ingress
        : undefined;
  return (key) => {
    const [backend = "", server = ""] = key.split("/");
    const s = poolOf(backend)?.servers.find((x) => serverName(x.name, x.address) === server);
    if (!s) return "-";
    return s.from === "spec" ? (s.node ? `spec, Node ${s.node}` : "spec") : `Node ${s.node ?? s.name}`;
  };
}

export function tail(path: string, lines = 8): string {
  try {
    return readFileSync(path, "utf8").trim().split("\n").slice(-lines).join(" | ");
  } catch {
    return "(no log)";
  }
}

/** `ip monitor address` in one namespace, with the arrival time of every line. */
export class AddressMonitor {
  private readonly lines: { at: number; text: string }[] = [];
  private readonly child: ChildProcess;
  private started = false;

  constructor(ns: string) {
    this.child = spawn("ip", ["-n", ns, "-o", "monitor", "address"], { stdio: ["ignore", "pipe", "ignore"] });
    let buf = "";
    this.child.stdout?.setEncoding("utf8").on("data", (d: string) => {
      this.started = true;
      buf += d;
      let i: number;
      while ((i = buf.indexOf("\n")) >= 0) {
        this.lines.push({ at: Date.now(), text: buf.slice(0, i) });
        buf = buf.slice(i + 1);
      }
    });
  }

  async ready(): Promise<void> {
    // ip monitor prints nothing until an event; give it time to subscribe
    await sleep(this.started ? 0 : 200);
  }

  async waitFor(address: string, timeoutMs: number): Promise<number | undefined> {
    const re = new RegExp(`^(?!Deleted).*inet6? ${address.replace(/\./g, "\\.")}/`);
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const hit = this.lines.find((l) => re.test(l.text));
      if (hit) return hit.at;
      await sleep(5);
    }
    return undefined;
  }

  stop(): void {
    this.child.kill("SIGTERM");
  }
}

// ------------------------------------------------------------------------------------------------ teardown

export function recordedPrefixes(): string[] {
  if (!existsSync(STATE_ROOT)) return [];
  return readdirSync(STATE_ROOT).filter((d) => /^epl[0-9a-z]{4}$/.test(d));
}

export async function listNetns(): Promise<string[]> {
  const r = await exec(["ip", "netns", "list"], { allowFail: true });
  return r.stdout
    .split("\n")
    .map((l) => l.trim().split(/\s+/)[0] ?? "")
    .filter((n) => n !== "");
}

function mountsUnder(dir: string): string[] {
  const lines = readFileSync("/proc/self/mountinfo", "utf8").split("\n");
  return lines
    .map((l) => l.split(" ")[4] ?? "")
    .filter((m) => m === dir || m.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length); // deepest first
}

/**
 * Removes one lab: its processes (by recorded PID and start time, then whatever still runs in its namespaces),
 * its mounts, its namespaces (the veths go with them) and its state directory. Idempotent; works from a state
 * file, or from the prefix alone for a run that crashed before writing one.
 */
export async function teardown(
  s: Pick<LabState, "prefix" | "processes" | "namespaces" | "mounts"> & { dir?: string },
  log: Log = () => undefined,
): Promise<void> {
  const dir = s.dir ?? join(STATE_ROOT, s.prefix);
  await Promise.all([...s.processes].reverse().map((p) => stopProcess(p, 3000)));
  const found = (await listNetns()).filter((n) => NETNS_PATTERN.exec(n)?.[1] === s.prefix);
  const namespaces = [...new Set([...s.namespaces, ...found])];
  // Anything else still running in the lab's namespaces was started by the lab (or by its daemons).
  for (let round = 0; round < 20; round++) {
    const pids: number[] = [];
    for (const ns of namespaces) {
      if (!existsSync(netnsPath(ns))) continue;
      const r = await exec(["ip", "netns", "pids", ns], { allowFail: true });
      pids.push(...r.stdout.split(/\s+/).filter(Boolean).map(Number));
    }
    if (pids.length === 0) break;
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    await sleep(100);
  }
  for (const m of [...new Set([...mountsUnder(dir), ...[...s.mounts].reverse()])]) {
    await exec(["umount", m], { allowFail: true });
    if (mountsUnder(m).includes(m)) await exec(["umount", "-l", m], { allowFail: true });
  }
  for (const ns of namespaces)
    if (existsSync(netnsPath(ns))) await exec(["ip", "netns", "del", ns], { allowFail: true });
  if (mountsUnder(dir).length === 0) rmSync(dir, { recursive: true, force: true });
  log(`lab ${s.prefix}: down (${namespaces.length} namespaces removed)`);
}

/** Every lab found on this machine: recorded state directories and namespaces with a lab prefix. */
export async function teardownAll(log: Log = () => undefined): Promise<string[]> {
  const prefixes = new Set(recordedPrefixes());
  for (const n of await listNetns()) {
    const m = NETNS_PATTERN.exec(n);
    if (m?.[1]) prefixes.add(m[1]);
  }
  for (const prefix of prefixes) {
    const file = stateFile(join(STATE_ROOT, prefix));
    const s: LabState | undefined = existsSync(file) ? (JSON.parse(readFileSync(file, "utf8")) as LabState) : undefined;
    await teardown(s ?? { prefix, processes: [], namespaces: [], mounts: [] }, log);
  }
  return [...prefixes];
}

/** What is left of a lab (tests: must be nothing). */
export async function leftovers(s: Pick<LabState, "prefix" | "processes"> & { dir: string }): Promise<string[]> {
  const left: string[] = [];
  for (const n of await listNetns()) if (NETNS_PATTERN.exec(n)?.[1] === s.prefix) left.push(`netns ${n}`);
  for (const p of s.processes) if (isAlive(p)) left.push(`process ${p.name} (${p.pid})`);
  for (const m of mountsUnder(s.dir)) left.push(`mount ${m}`);
  if (existsSync(s.dir)) left.push(`directory ${s.dir}`);
  return left;
}
