import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  AGENT_METRICS_SOCKET,
  HAPROXY_CONFIG_PATH,
  HAPROXY_EXPORTER_SOCKET,
  renderHaproxy,
  servers,
} from "../render/haproxy";
import type { Backend, BackendSets, HostFacts, ResolvedSpec, VirtualAddress } from "../spec/types";
import { checkHaproxy, checkHaproxyFiles } from "./checkers/haproxy";
import { withNetns } from "./checkers/netns";
import { run } from "./checkers/run";
import { devBackends, devResolved, primaryHost, secondaryHost } from "./fixtures/resolved";
import { variantsByHost } from "./fixtures/variants";

const hosts: HostFacts[] = [primaryHost, secondaryHost];
const v4 = (address: string, type: "private" | "public"): VirtualAddress => ({ address, family: 4, type });
const v6 = (address: string, type: "private" | "public"): VirtualAddress => ({ address, family: 6, type });

function cfg(spec: ResolvedSpec, backends: BackendSets = devBackends, host: HostFacts = primaryHost): string {
  const files = renderHaproxy({ spec, host, backends });
  expect(files).toHaveLength(1);
  return files[0]?.content ?? "";
}

function expectValid(content: string): void {
  const r = checkHaproxy(content);
  if (!r.ok || r.output.includes("[WARNING]"))
    throw new Error(`haproxy -c rejected or warned:\n${r.output}\n---\n${content}`);
}

/** The lines of one section (from its header to the next blank line). */
function section(content: string, name: string): string[] {
  const all = content.split("\n");
  const start = all.indexOf(name);
  if (start < 0) return [];
  const end = all.indexOf("", start);
  return all.slice(start, end < 0 ? undefined : end);
}

const bindsOn = (content: string, port: number): string[] =>
  content.split("\n").filter((l) => l.trim().startsWith("bind ") && l.trim().endsWith(`:${port}`));

const openshift: ResolvedSpec = {
  ...devResolved,
  distribution: "openshift",
  virtualAddresses: {
    ...devResolved.virtualAddresses,
    api: [...devResolved.virtualAddresses.api, v6("2001:db8:100::100", "public")],
  },
  ingressBackend: {
    ...(devResolved.ingressBackend ?? fail()),
    httpPort: 80,
    httpsPort: 443,
    healthPort: 1936,
    healthPath: "/healthz/ready",
  },
  derived: {
    ...devResolved.derived,
    publicVips: [...devResolved.derived.publicVips, v6("2001:db8:100::100", "public")],
    frontends: {
      ...devResolved.derived.frontends,
      api: [...devResolved.derived.frontends.api, v6("2001:db8:100::100", "public")],
      machineConfig: [v4("192.168.100.100", "private")],
    },
  },
};

const noIngress: ResolvedSpec = {
  ...devResolved,
  virtualAddresses: { ...devResolved.virtualAddresses, ingress: [] },
  ingressBackend: undefined,
  derived: { ...devResolved.derived, frontends: { ...devResolved.derived.frontends, ingress: [] } },
};

const proxyProtocol: ResolvedSpec = {
  ...devResolved,
  ingressBackend: { ...(devResolved.ingressBackend ?? fail()), proxyProtocol: true },
};

function fail(): never {
  throw new Error("devResolved has no ingressBackend");
}

function manyBackends(n: number): Backend[] {
  // Reverse order in, so the test sees the renderer sort numerically (10.0.0.2 before 10.0.0.10).
  return Array.from({ length: n }, (_, i) => {
    const address = `10.1.${Math.floor((i + 2) / 256)}.${(i + 2) % 256}`;
    return { name: `node-${i}.example.com`, address };
  }).reverse();
}

describe("renderHaproxy on the dev stack", () => {
  test.each(hosts)("$role: accepted by haproxy -c without warnings", (host) => {
    const files = renderHaproxy({ spec: devResolved, host, backends: devBackends });
    expect(files.map((f) => [f.path, f.mode, f.owner])).toEqual([[HAPROXY_CONFIG_PATH, 0o644, "root:root"]]);
    // systemctl's reload, then a bounded wait until the new worker answers the monitor URI on this LB's stats address
    const statsAddress = host.role === "primary" ? "192.168.100.2" : "192.168.100.3";
    expect(files[0]?.reload).toEqual({
      service: "haproxy",
      commands: [
        ["systemctl", "reload", "haproxy.service"],
        [
          "sh",
          "-c",
          expect.stringContaining("curl -fsS"),
          "edgepair-haproxy-ready",
          `http://${statsAddress}:8404/healthz`,
        ],
      ],
    });
    expect(files[0]?.content.startsWith("# Managed by edgepair")).toBe(true);
    expect(checkHaproxyFiles(files).ok).toBe(true);
    expectValid(files[0]?.content ?? "");
  });

  test("global and defaults carry the reload and long-watch settings", () => {
    const c = cfg(devResolved);
    expect(section(c, "global")).toEqual(
      expect.arrayContaining([
        "    master-worker",
        "    log /dev/log local0",
        "    stats socket /run/haproxy/admin.sock mode 600 level admin expose-fd listeners",
        "    hard-stop-after 15m",
      ]),
    );
    const d = section(c, "defaults");
    expect(d).toEqual(
      expect.arrayContaining([
        "    mode tcp",
        "    option tcplog",
        "    option dontlognull",
        "    timeout client 1h",
        "    timeout server 1h",
        "    timeout tunnel 24h",
        "    default-server inter 2000ms rise 2 fall 3",
      ]),
    );
  });

  test("bulk transfers are spliced, with pipes whose descriptors fit the VM's limit beside every connection", () => {
    const c = cfg(devResolved);
    const splice = ["    option splice-request", "    option splice-response"];
    expect(section(c, "defaults")).toEqual(expect.arrayContaining(splice));
    // the metrics listener's server is a unix socket: splicing off on both sides there
    expect(section(c, "listen stats")).toEqual(
      expect.arrayContaining(splice.map((l) => l.replace("option", "no option"))),
    );
    const g = section(c, "global");
    const maxconn = Number(
      g
        .find((l) => l.startsWith("    maxconn "))
        ?.split(" ")
        .pop(),
    );
    // HAProxy's default pipe pool (maxconn / 4); a smaller one would leave connections copying for life
    expect(g.some((l) => l.startsWith("    maxpipes "))).toBe(false);
    // two descriptors per connection and per pipe, under the hard NOFILE limit systemd gives a service (524,288)
    expect(2 * (maxconn + maxconn / 4)).toBeLessThan(524_288);
  });

  test("health-check tuning comes from the spec", () => {
    const c = cfg({ ...devResolved, healthCheck: { intervalMs: 500, rise: 1, fall: 2 } });
    expect(c).toContain("    default-server inter 500ms rise 1 fall 2\n");
    expectValid(c);
  });

  test("talos: API binds every api VIP, TCP check, no machine-config frontend", () => {
    const c = cfg(devResolved);
    expect(bindsOn(c, 6443).map((l) => l.trim())).toEqual(["bind 192.168.100.100:6443", "bind 198.51.100.100:6443"]);
    const be = section(c, "backend be_api");
    expect(be).toContain("    option tcp-check");
    expect(be).toContain("    server 192.168.100.10 192.168.100.10:6443 check");
    expect(c).not.toContain("check-ssl");
    expect(c).not.toContain("22623");
  });

  test.each(hosts)(
    "$role: metrics listener on its own private address, cluster network only, agent behind it",
    (host) => {
      const c = cfg(devResolved, devBackends, host);
      const own = devResolved.network.lbAddresses[host.role === "primary" ? 0 : 1];
      const stats = section(c, "listen stats");
      expect(stats).toEqual(
        expect.arrayContaining([
          `    bind ${own}:8404`,
          "    mode http",
          "    maxconn 64",
          "    tcp-request connection reject unless { src 192.168.100.0/24 }",
          "    tcp-request connection track-sc0 src",
          "    tcp-request connection reject if { sc_conn_cur(0) gt 4 }",
          "    monitor-uri /healthz",
          "    http-request deny deny_status 429 if { sc_http_req_rate(0) gt 20 }",
          `    server agent ${AGENT_METRICS_SOCKET} maxconn 64`,
        ]),
      );
      expect(stats.filter((l) => l.trim().startsWith("bind "))).toHaveLength(1);
      // HAProxy's exporter is never on the network: only on a root-only socket the agent reads
      expect(stats.join("\n")).not.toContain("prometheus-exporter");
      const exporter = section(c, "listen exporter");
      expect(exporter).toEqual(
        expect.arrayContaining([
          `    bind ${HAPROXY_EXPORTER_SOCKET} mode 600`,
          "    http-request use-service prometheus-exporter if { path /metrics }",
        ]),
      );
      expect(exporter.filter((l) => l.trim().startsWith("bind "))).toHaveLength(1);
    },
  );

  test("api servers fall back to the spec's static addresses when no backends are known", () => {
    const c = cfg(devResolved, { api: [], ingress: [] });
    expect(section(c, "backend be_api").filter((l) => l.includes("server "))).toEqual([
      "    server 192.168.100.10 192.168.100.10:6443 check",
      "    server 192.168.100.11 192.168.100.11:6443 check",
      "    server 192.168.100.12 192.168.100.12:6443 check",
    ]);
    expect(section(c, "backend be_ingress_http").filter((l) => l.includes("server "))).toEqual([]);
    expectValid(c);
  });

  test("deterministic: same input twice, and backends in any order, give identical bytes", () => {
    const a = cfg(devResolved);
    expect(cfg(devResolved)).toBe(a);
    const shuffled: BackendSets = { api: [...devBackends.api].reverse(), ingress: [...devBackends.ingress].reverse() };
    expect(cfg(devResolved, shuffled)).toBe(a);
  });
});

describe("renderHaproxy variations", () => {
  test("openshift: 22623 only on private api VIPs, TLS /readyz and /healthz checks, plain-HTTP router check", () => {
    const c = cfg(openshift);
    expectValid(c);
    expect(bindsOn(c, 22623).map((l) => l.trim())).toEqual(["bind 192.168.100.100:22623"]);
    const publicAddresses = openshift.derived.publicVips.map((v) => v.address);
    for (const line of bindsOn(c, 22623)) for (const p of publicAddresses) expect(line).not.toContain(p);
    expect(bindsOn(c, 6443).map((l) => l.trim())).toEqual([
      "bind 192.168.100.100:6443",
      "bind 198.51.100.100:6443",
      "bind [2001:db8:100::100]:6443",
    ]);
    expect(section(c, "backend be_api")).toEqual(
      expect.arrayContaining([
        "    option httpchk GET /readyz",
        "    http-check expect status 200",
        "    server 192.168.100.10 192.168.100.10:6443 check check-ssl verify none",
      ]),
    );
    expect(section(c, "backend be_machine_config")).toEqual(
      expect.arrayContaining([
        "    option httpchk GET /healthz",
        "    server 192.168.100.12 192.168.100.12:22623 check check-ssl verify none",
      ]),
    );
    const ingress = [...section(c, "backend be_ingress_http"), ...section(c, "backend be_ingress_https")];
    expect(ingress).toContain("    option httpchk GET /healthz/ready");
    expect(ingress).toContain("    server 192.168.100.20 192.168.100.20:443 check port 1936");
    expect(ingress.join("\n")).not.toContain("ssl");
  });

  test("22623 never binds a public address, even if derived data listed one", () => {
    const leaky: ResolvedSpec = {
      ...openshift,
      derived: {
        ...openshift.derived,
        frontends: { ...openshift.derived.frontends, machineConfig: openshift.derived.frontends.api },
      },
    };
    expect(bindsOn(cfg(leaky), 22623).map((l) => l.trim())).toEqual(["bind 192.168.100.100:22623"]);
  });

  test("generic: TLS /readyz API check, no machine-config frontend", () => {
    const c = cfg({ ...devResolved, distribution: "generic" });
    expectValid(c);
    expect(section(c, "backend be_api")).toContain("    option httpchk GET /readyz");
    expect(c).not.toContain("22623");
  });

  test.each(hosts)("$role: no ingress in the spec -> no :80/:443 frontends, still valid", (host) => {
    const c = cfg(noIngress, devBackends, host);
    expectValid(c);
    expect(bindsOn(c, 80)).toEqual([]);
    expect(bindsOn(c, 443)).toEqual([]);
    expect(c).not.toContain("ingress");
  });

  test("ingressBackend set but no ingress VIP -> no ingress frontends", () => {
    const c = cfg({
      ...devResolved,
      derived: { ...devResolved.derived, frontends: { ...devResolved.derived.frontends, ingress: [] } },
    });
    expect(bindsOn(c, 80)).toEqual([]);
    expect(c).not.toContain("be_ingress");
  });

  test("IPv6 VIPs, backends and LB addresses are bracketed and accepted", () => {
    const spec: ResolvedSpec = {
      ...devResolved,
      network: {
        cidr: "fd00:100::/64",
        prefixLength: 64,
        gateway: "fd00:100::1",
        lbAddresses: ["fd00:100::2", "fd00:100::3"],
      },
      derived: {
        ...devResolved.derived,
        frontends: {
          ...devResolved.derived.frontends,
          api: [v6("2001:db8:100::100", "public")],
          ingress: [v6("2001:db8:100::80", "public")],
        },
      },
    };
    const b: BackendSets = {
      api: [{ name: "cp-0", address: "fd00:100::10" }],
      ingress: [{ name: "w-0", address: "fd00:100::20" }],
    };
    const c = cfg(spec, b, secondaryHost);
    expectValid(c);
    expect(c).toContain("    bind [2001:db8:100::100]:6443\n");
    expect(c).toContain("    bind [2001:db8:100::80]:443\n");
    expect(c).toContain("    server cp-0 [fd00:100::10]:6443 check\n");
    expect(c).toContain("    bind [fd00:100::3]:8404\n");
    expect(c).toContain("    tcp-request connection reject unless { src fd00:100::/64 }\n");
  });

  test("proxyProtocol: send-proxy-v2 on ingress servers only", () => {
    const c = cfg(proxyProtocol);
    expectValid(c);
    const serverLines = c.split("\n").filter((l) => l.trim().startsWith("server "));
    const ingress = serverLines.filter((l) => /:30080 |:30443 /.test(l));
    expect(ingress).toHaveLength(4);
    for (const l of ingress) expect(l).toMatch(/ send-proxy-v2$/);
    for (const l of serverLines.filter((x) => !ingress.includes(x))) expect(l).not.toContain("send-proxy");
    expect(cfg(devResolved)).not.toContain("send-proxy");
  });

  test.each([200, 1000])("%i backends: valid, sorted numerically, deterministic", (n) => {
    const list = manyBackends(n);
    const b: BackendSets = { api: list, ingress: list };
    const c = cfg(openshift, b);
    expectValid(c);
    const api = section(c, "backend be_api").filter((l) => l.includes(" server "));
    expect(api).toHaveLength(n);
    expect(api[0]).toContain(" 10.1.0.2:6443 ");
    expect(api[1]).toContain(" 10.1.0.3:6443 ");
    expect(api[8]).toContain(" 10.1.0.10:6443 ");
    expect(cfg(openshift, { api: [...list].reverse(), ingress: list })).toBe(c);
  });
});

describe("server names", () => {
  test("sanitised, deduplicated by address, unique", () => {
    const out = servers([
      { name: "node/a b", address: "10.0.0.2" },
      { name: "node-b", address: "10.0.0.1" },
      { name: "node-b-dup", address: "10.0.0.1" }, // same address: one server, named by the smallest name
      { name: "same", address: "10.0.0.3" },
      { name: "same", address: "10.0.0.4" },
      { name: "", address: "2001:db8::5" },
      { name: "x", address: "2001:0db8:0:0::6" }, // non-canonical text of a distinct address
    ]);
    expect(out).toEqual([
      { name: "node-b", address: "10.0.0.1" },
      { name: "node_a_b", address: "10.0.0.2" },
      { name: "same_10.0.0.3", address: "10.0.0.3" },
      { name: "same_10.0.0.4", address: "10.0.0.4" },
      { name: "2001:db8::5", address: "2001:db8::5" },
      { name: "x", address: "2001:db8::6" },
    ]);
    expect(new Set(out.map((s) => s.name)).size).toBe(out.length);
  });

  test("rendered names are valid for haproxy", () => {
    const b: BackendSets = { api: [{ name: "ctrl plane #1 (ä)", address: "192.168.100.10" }], ingress: [] };
    const c = cfg(devResolved, b);
    expect(c).toContain("    server ctrl_plane__1____ 192.168.100.10:6443 check\n");
    expectValid(c);
  });
});

describe("checkHaproxy counter-cases", () => {
  const good = cfg(devResolved);

  test("a broken timeout value is rejected", () => {
    const bad = good.replace("timeout server 1h", "timeout server fivesec");
    expect(bad).not.toBe(good);
    const r = checkHaproxy(bad);
    expect(r.ok).toBe(false);
    expect(r.output).toMatch(/unexpected character 'f'/);
  });

  test("a default_backend naming a missing backend is rejected", () => {
    const bad = good.replace("default_backend be_api", "default_backend be_nosuch");
    expect(bad).not.toBe(good);
    const r = checkHaproxy(bad);
    expect(r.ok).toBe(false);
    expect(r.output).toMatch(/unable to find required default_backend/);
  });

  test("an unbracketed IPv6 address with a bad port is rejected", () => {
    const r = checkHaproxy(good.replace("bind 198.51.100.100:6443", "bind [2001:db8::1:6443"));
    expect(r.ok).toBe(false);
  });

  test("no haproxy.cfg among rendered files is a failure", () => {
    expect(checkHaproxyFiles([]).ok).toBe(false);
  });
});

/**
 * haproxy -c binds nothing; this starts the rendered config for real in a throwaway namespace to prove the VIPs
 * (IPv4 and IPv6) bind as intended and the stats listener answers the cluster network only. The stats socket
 * line is dropped (it would create a file on the host) and maxconn lowered (this container's FD limit).
 */
describe("rendered config running in a network namespace", () => {
  test("listens on every VIP; the metrics port answers /healthz, passes /metrics to the agent, limits each source and refuses other networks; the exporter only on its socket", () => {
    const dir = mkdtempSync(join(tmpdir(), "ep-haproxy-live-"));
    const c = cfg(openshift)
      .split("\n")
      .filter((l) => !l.includes("stats socket"))
      .join("\n")
      .replace("maxconn 20000", "maxconn 1000")
      .replace(AGENT_METRICS_SOCKET, `${dir}/agent.sock`)
      .replace(HAPROXY_EXPORTER_SOCKET, `${dir}/exporter.sock`);
    try {
      writeFileSync(join(dir, "haproxy.cfg"), c);
      // stands in for the agent's metrics server (test/agent-metrics.test.ts runs the real one); like the agent's
      // socket in /run/edgepair, it must be reachable by HAProxy's worker, which runs as user haproxy
      const agentSocket = JSON.stringify(`${dir}/agent.sock`);
      writeFileSync(
        join(dir, "agent.js"),
        `require("node:http").createServer((q, r) => r.end("edgepair_heartbeat_timestamp_seconds 1\\n"))` +
          `.listen(${agentSocket}, () => require("node:fs").chmodSync(${agentSocket}, 0o666));`,
      );
      chmodSync(dir, 0o755);
      const metrics = "http://192.168.100.2:8404/metrics";
      const code = "curl -s -o /dev/null -w '%{http_code}\\n' --max-time 3";
      const script = [
        "sysctl -qw net.ipv4.ip_nonlocal_bind=1 net.ipv6.ip_nonlocal_bind=1",
        "ip addr add 192.168.100.2/32 dev lo",
        "ip addr add 10.99.0.1/32 dev lo",
        `haproxy -db -f ${dir}/haproxy.cfg >${dir}/out 2>&1 & pid=$!`,
        "sleep 1",
        "echo '--ss'; ss -ltnH | awk '{print $4}' | sort",
        `echo '--healthz'; ${code} http://192.168.100.2:8404/healthz`,
        `echo '--noagent'; ${code} ${metrics}`,
        `node ${dir}/agent.js & agent=$!`,
        `for i in 1 2 3 4 5 6 7 8 9 10; do [ -S ${dir}/agent.sock ] && break; sleep 0.2; done`,
        "sleep 1.1", // a fresh request-rate window
        `echo '--agent'; curl -s --max-time 3 ${metrics}`,
        `echo '--burst'; for i in $(seq 1 30); do ${code} ${metrics}; done | sort | uniq -c | awk '{print $2"x"$1}'`,
        `echo '--exporter'; curl -s --max-time 3 --unix-socket ${dir}/exporter.sock http://lb/metrics | grep -c '^haproxy_'`,
        `echo '--exportermode'; stat -c %a ${dir}/exporter.sock`,
        `echo '--outside'; ${code} --interface 10.99.0.1 http://192.168.100.2:8404/healthz; echo rc=$?`,
        "kill $agent $pid; wait $pid",
      ].join("\n");
      const out = withNetns(
        [],
        (ns) => run("ip", ["netns", "exec", ns, "sh", "-c", script], { timeoutMs: 40_000 }).stdout,
      );
      const part = (name: string): string[] => {
        const lines = out.split("\n");
        const i = lines.indexOf(`--${name}`);
        const j = lines.findIndex((l, k) => k > i && l.startsWith("--"));
        return lines.slice(i + 1, j < 0 ? undefined : j).filter(Boolean);
      };
      expect(part("ss")).toEqual(
        expect.arrayContaining([
          "192.168.100.100:6443",
          "198.51.100.100:6443",
          "[2001:db8:100::100]:6443",
          "192.168.100.100:22623",
          "198.51.100.80:80",
          "198.51.100.80:443",
          "192.168.100.2:8404",
        ]),
      );
      expect(part("ss").filter((a) => a.endsWith(":22623"))).toEqual(["192.168.100.100:22623"]);
      expect(part("healthz")).toEqual(["200"]);
      expect(part("noagent")).toEqual(["503"]);
      expect(part("agent")).toEqual(["edgepair_heartbeat_timestamp_seconds 1"]);
      // 20 a second per source reach the agent, the rest are refused by HAProxy
      const burst = Object.fromEntries(part("burst").map((l) => l.split("x")));
      expect(Number(burst["429"])).toBeGreaterThan(0);
      expect(Number(burst["200"])).toBeLessThanOrEqual(20);
      expect(Number(part("exporter")[0])).toBeGreaterThan(10);
      expect(part("exportermode")).toEqual(["600"]);
      expect(part("outside")[0]).toBe("000"); // connection closed before any HTTP answer
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** Every resolved variant x both hosts. */
describe("renderHaproxy over every variant x host", () => {
  test.each(variantsByHost)("$label", (v) => {
    const h = v.host;
    const c = cfg(v.spec, v.backends, h);
    expectValid(c);
    expect(cfg(v.spec, v.backends, h)).toBe(c);
    const privateOnly = new Set(v.spec.derived.frontends.api.filter((a) => a.type === "private").map((a) => a.address));
    for (const line of bindsOn(c, 22623)) {
      const addr = line
        .trim()
        .replace(/^bind \[?/, "")
        .replace(/\]?:22623$/, "");
      expect(privateOnly.has(addr)).toBe(true);
    }
    if (v.spec.distribution !== "openshift") expect(bindsOn(c, 22623)).toEqual([]);
    if (!v.spec.ingressBackend || v.spec.derived.frontends.ingress.length === 0) {
      expect(bindsOn(c, 80)).toEqual([]);
      expect(bindsOn(c, 443)).toEqual([]);
    }
  });
});
