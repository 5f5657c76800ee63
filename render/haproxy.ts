/**
 * /etc/haproxy/haproxy.cfg: the API (6443), machine-config-server (22623, private VIPs only), ingress (80/443)
 * and the metrics listener on this LB's private address. One file, so a reload sees one consistent view.
 */
import { compareAddresses, canonical, parseIp } from "../spec/address";
import type { Backend, HealthCheck, ResolvedSpec, VirtualAddress } from "../spec/types";
import { file, header, lines, reload, ownAndPeer } from "./common";
import type { ReloadAction, Renderer } from "./types";

export const HAPROXY_CONFIG_PATH = "/etc/haproxy/haproxy.cfg";
/** Admin socket (root only): the agent reads server states from it. /run/haproxy must exist (tmpfiles.d). */
export const HAPROXY_STATS_SOCKET = "/run/haproxy/admin.sock";
/** Answers 200 while HAProxy runs; for keepalived's tracking and the agent, on <lbAddress>:<metrics.port>. */
export const HAPROXY_MONITOR_URI = "/healthz";
export const HAPROXY_METRICS_PATH = "/metrics";
export const HAPROXY_STATS_URI = "/stats";
/**
 * HAProxy's own exporter and stats page, on a socket only root reaches: the agent reads it (at most once a second,
 * whatever the scrape rate) and serves it behind the metrics password.
 */
export const HAPROXY_EXPORTER_SOCKET = "/run/haproxy/exporter.sock";
/** The metrics port's listener: its one server is the agent's metrics socket, never a backend Nodes change. */
export const METRICS_LISTENER = "stats";
/** HAProxy's exporter on its root-only socket: no server at all. */
export const EXPORTER_LISTENER = "exporter";
/** The agent's metrics server: the listener on <lbAddress>:<metrics.port> hands every path but the monitor URI to it. */
export const AGENT_METRICS_SOCKET = "/run/edgepair/metrics.sock";
/** A scrape flood queues here instead of taking connections (and CPU) from the data path. */
const METRICS_MAXCONN = 64;
/** Connections per source: a flooding host holds a few, so another (the real Prometheus) still gets in. */
const METRICS_MAX_CONNECTIONS_PER_SOURCE = 4;
/**
 * Requests per second and source address the metrics port hands to the agent; above it HAProxy answers 429 itself,
 * which costs it far less than proxying (bench metrics). Per source, so one flooding host does not blind the real
 * Prometheus; Prometheus asks each LB once per scrape interval, so 20/s is room for many.
 */
const METRICS_MAX_REQUEST_RATE = 20;

/**
 * Fedora's unit runs `haproxy -Ws`: reload re-executes the master, which hands the listening sockets to the new
 * worker, so no connection attempt is refused during a reload. The reload is asynchronous (SIGUSR2 to the master); keepalived, reloaded after HAProxy, checks the monitor URI
 * (on a new metrics.port too) and goes FAULT after three failures. So the reload ends only once a worker answers that
 * URI on this LB's stats address and port: bounded, 10 s.
 */
const WAIT_SERVING =
  'i=0; until curl -fsS -o /dev/null --max-time 1 "$1"; do i=$((i+1)); [ "$i" -lt 100 ] || exit 1; sleep 0.1; done';
function haproxyReload(monitorUrl: string): ReloadAction {
  return reload(
    "haproxy",
    ["systemctl", "reload", "haproxy.service"],
    ["sh", "-c", WAIT_SERVING, "edgepair-haproxy-ready", monitorUrl],
  );
}

export const API_PORT = 6443;
export const MACHINE_CONFIG_PORT = 22623;
export const INGRESS_HTTP_PORT = 80;
export const INGRESS_HTTPS_PORT = 443;

const GLOBAL_MAXCONN = 20000; // ~33 kB per connection: about 650 MB at the limit, within an LB VM's memory

export const renderHaproxy: Renderer = ({ spec, host, backends }) => {
  const apiServers = servers(backends.api.length > 0 ? backends.api : staticBackends(spec.apiBackend.addresses));
  const statsAddress = ownAndPeer(spec.network.lbAddresses, host).own;
  const content = lines(
    header("#"),
    globalSection(),
    defaultsSection(spec.healthCheck),
    apiSections(spec, apiServers),
    machineConfigSections(spec, apiServers),
    ingressSections(spec, backends.ingress),
    statsSection(statsAddress, spec.metrics.port, spec.network.cidr),
  );
  return [
    file(
      HAPROXY_CONFIG_PATH,
      content,
      haproxyReload(`http://${hostPort(statsAddress, spec.metrics.port)}${HAPROXY_MONITOR_URI}`),
      0o644,
    ),
  ];
};

function globalSection(): string[] {
  return [
    "global",
    "    master-worker",
    "    log /dev/log local0",
    `    maxconn ${GLOBAL_MAXCONN}`,
    "    user haproxy",
    "    group haproxy",
    // expose-fd lets a new process take over the listeners even when it is started outside the master.
    `    stats socket ${HAPROXY_STATS_SOCKET} mode 600 level admin expose-fd listeners`,
    // After a reload the old worker keeps serving its open API watches; clients re-establish a cut watch
    // transparently, so 15 minutes bounds the old workers (and their memory) without harming anyone.
    "    hard-stop-after 15m",
    "",
  ];
}

function defaultsSection(hc: HealthCheck): string[] {
  return [
    "defaults",
    "    mode tcp",
    "    log global",
    "    option tcplog",
    "    option dontlognull",
    // The kernel moves the data between the two sockets (splice) instead of copying it through HAProxy, how
    // HAProxy's docs (intro.txt 3.6) forward at NIC line rate on one core. Load bench, all on two cores: TCP through
    // HAProxy 36 % of the direct path copying, 72 % spliced (medians). Forced in both directions, as splice-auto's
    // heuristics never took a pipe there (HAProxy 2.6, 6 Gbit/s streams). Pipes: HAProxy's default maxpipes,
    // maxconn / 4: 2 x (20,000 + 5,000) descriptors, far under the 524,288 systemd gives it; a pipe holds memory
    // only while data is in it (<= 64 kB) and goes back to the pool once empty; a connection that finds none spare
    // copies instead, in 3.x for the rest of its life, so the pool is not made smaller than the default.
    "    option splice-request",
    "    option splice-response",
    // A connect failure to a backend not yet marked down is retried on another server instead of failing.
    "    option redispatch",
    "    retries 3",
    // Kubernetes API watches and ingress websockets live long; least connections spreads them evenly.
    "    balance leastconn",
    "    timeout connect 5s",
    "    timeout client 1h",
    "    timeout server 1h",
    "    timeout tunnel 24h",
    "    timeout client-fin 30s",
    "    timeout server-fin 30s",
    "    timeout queue 30s",
    `    timeout check ${hc.intervalMs}ms`,
    `    default-server inter ${hc.intervalMs}ms rise ${hc.rise} fall ${hc.fall}`,
    "",
  ];
}

function apiSections(spec: ResolvedSpec, apiServers: NamedServer[]): string[] {
  const tls = spec.distribution !== "talos";
  return [
    ...frontend("fe_api", spec.derived.frontends.api, API_PORT, "be_api"),
    "backend be_api",
    ...(tls ? ["    option httpchk GET /readyz", "    http-check expect status 200"] : ["    option tcp-check"]),
    ...serverLines(apiServers, spec.apiBackend.port, tls ? "check check-ssl verify none" : "check"),
    "",
  ];
}

/** 22623 serves Ignition with secrets in it: bound on private VIPs only, even if derived data said otherwise. */
function machineConfigSections(spec: ResolvedSpec, apiServers: NamedServer[]): string[] {
  const binds = spec.derived.frontends.machineConfig.filter((a) => a.type === "private");
  if (binds.length === 0) return [];
  return [
    ...frontend("fe_machine_config", binds, MACHINE_CONFIG_PORT, "be_machine_config"),
    "backend be_machine_config",
    "    balance roundrobin",
    "    option httpchk GET /healthz",
    "    http-check expect status 200",
    ...serverLines(apiServers, MACHINE_CONFIG_PORT, "check check-ssl verify none"),
    "",
  ];
}

function ingressSections(spec: ResolvedSpec, ingress: Backend[]): string[] {
  const ib = spec.ingressBackend;
  const binds = spec.derived.frontends.ingress;
  if (!ib || binds.length === 0) return [];
  const ingressServers = servers(ingress.length > 0 ? ingress : staticBackends(ib.addresses));
  // The router's health endpoint (OpenShift: 1936 /healthz/ready) is plain HTTP: no check-ssl.
  const check =
    ib.healthPath !== ""
      ? ["    option httpchk GET " + ib.healthPath, "    http-check expect status 200"]
      : ["    option tcp-check"];
  // Checks go to the health port and never carry the PROXY header, which that port does not expect.
  const serverOptions = `check port ${ib.healthPort}${ib.proxyProtocol ? " send-proxy-v2" : ""}`;
  const backend = (name: string, port: number): string[] => [
    `backend ${name}`,
    ...check,
    ...serverLines(ingressServers, port, serverOptions),
    "",
  ];
  return [
    ...frontend("fe_ingress_http", binds, INGRESS_HTTP_PORT, "be_ingress_http"),
    ...backend("be_ingress_http", ib.httpPort),
    ...frontend("fe_ingress_https", binds, INGRESS_HTTPS_PORT, "be_ingress_https"),
    ...backend("be_ingress_https", ib.httpsPort),
  ];
}

/**
 * The metrics port, for the cluster network only: the firewall restricts it too, and the connection-level reject
 * here also covers the monitor URI, which HAProxy answers before anything else (keepalived's check and the ready
 * gate need no password: it says only that HAProxy runs). Everything else goes to the agent, which asks for the
 * metrics password; HAProxy's exporter listens only on a root-only socket.
 */
function statsSection(address: string, port: number, clusterCidr: string): string[] {
  return [
    `listen ${METRICS_LISTENER}`,
    `    bind ${hostPort(address, port)}`,
    "    mode http",
    "    option httplog",
    "    option dontlog-normal", // every scrape would otherwise be a log line
    `    maxconn ${METRICS_MAXCONN}`,
    // small scrapes to a local unix socket: nothing for splicing to gain (either side's option would turn it on)
    "    no option splice-request",
    "    no option splice-response",
    "    timeout client 30s",
    "    timeout connect 2s",
    "    timeout server 30s",
    "    stick-table type ipv6 size 4k expire 30s store conn_cur,http_req_rate(1s)",
    `    tcp-request connection reject unless { src ${clusterCidr} }`,
    "    tcp-request connection track-sc0 src",
    `    tcp-request connection reject if { sc_conn_cur(0) gt ${METRICS_MAX_CONNECTIONS_PER_SOURCE} }`,
    `    monitor-uri ${HAPROXY_MONITOR_URI}`,
    `    http-request deny deny_status 429 if { sc_http_req_rate(0) gt ${METRICS_MAX_REQUEST_RATE} }`,
    `    server agent ${AGENT_METRICS_SOCKET} maxconn ${METRICS_MAXCONN}`,
    "",
    `listen ${EXPORTER_LISTENER}`,
    `    bind ${HAPROXY_EXPORTER_SOCKET} mode 600`,
    "    mode http",
    "    option dontlog-normal",
    "    timeout client 30s",
    "    timeout server 30s",
    `    http-request use-service prometheus-exporter if { path ${HAPROXY_METRICS_PATH} }`,
    "    stats enable",
    `    stats uri ${HAPROXY_STATS_URI}`,
    "    stats refresh 10s",
    "",
  ];
}

function frontend(name: string, binds: VirtualAddress[], port: number, backend: string): string[] {
  if (binds.length === 0) return [];
  return [
    `frontend ${name}`,
    ...uniqueSorted(binds.map((b) => b.address)).map((a) => `    bind ${hostPort(a, port)}`),
    `    default_backend ${backend}`,
    "",
  ];
}

export interface NamedServer {
  name: string;
  address: string;
}

function serverLines(list: NamedServer[], port: number, options: string): string[] {
  return list.map((s) => `    server ${s.name} ${hostPort(s.address, port)} ${options}`);
}

function staticBackends(addresses: string[]): Backend[] {
  return addresses.map((address) => ({ name: address, address }));
}

/**
 * Server lines in numeric address order, one per address, named after the Node so names (and the stats and
 * metrics series keyed by them) stay stable across reloads. Colliding names get the address appended.
 */
export function servers(list: Backend[]): NamedServer[] {
  const byAddress = new Map<string, Backend>();
  for (const b of list) {
    const address = canonicalAddress(b.address);
    const kept = byAddress.get(address);
    // Keep the smallest name, so the choice does not depend on input order.
    if (!kept || b.name < kept.name) byAddress.set(address, { name: b.name, address });
  }
  const sorted = [...byAddress.values()].sort((a, b) => compareAddresses(a.address, b.address));
  const baseNames = sorted.map((b) => serverName(b.name, b.address));
  const count = new Map<string, number>();
  for (const n of baseNames) count.set(n, (count.get(n) ?? 0) + 1);
  const used = new Set<string>();
  return sorted.map((b, i) => {
    const base = baseNames[i] ?? serverName("", b.address);
    let name = (count.get(base) ?? 0) > 1 ? `${base}_${serverName("", b.address)}` : base;
    for (let n = 2; used.has(name); n++) name = `${base}_${n}`;
    used.add(name);
    return { name, address: b.address };
  });
}

/** HAProxy allows letters, digits and "-_.:" in names; anything else becomes "_". Empty falls back to the address. */
export function serverName(name: string, address: string): string {
  const cleaned = name.replace(/[^A-Za-z0-9_.:-]/g, "_");
  return cleaned !== "" ? cleaned : address.replace(/[^A-Za-z0-9_.:-]/g, "_");
}

function canonicalAddress(text: string): string {
  const ip = parseIp(text);
  return ip ? canonical(ip) : text;
}

function uniqueSorted(addresses: string[]): string[] {
  return [...new Set(addresses.map(canonicalAddress))].sort(compareAddresses);
}

/** IPv6 in brackets: `[2001:db8::1]:6443` (checked to bind the intended address on haproxy 2.6). */
export function hostPort(address: string, port: number): string {
  return address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`;
}
