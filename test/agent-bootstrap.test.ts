/**
 * `edgepair agent bootstrap` on the dev stack, in temporary roots laid out the way cloud-init leaves a first boot:
 * the write_files of the real user-data (cloud-init/user-data.ts renderUserData), secrets included.
 *
 * systemd cannot run here, so systemctl (and the reload commands, which would act on this machine's daemons) go to a
 * recording stand-in that keeps each unit's active/enabled state and answers like systemctl: `reload` of a stopped
 * unit fails, as it does for real. The checkers are the real ones (haproxy -c, keepalived -t, nft -c, nmcli
 * --offline, firewall-offline-cmd, sh -n), run inside one throwaway network namespace that has the host's interface
 * names. The bundle is built with tools/bundle-agent and run with this machine's plain `node`.
 */
import {
  chmodSync,
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { parse, stringify } from "yaml";
import { defaultValidators, spawnRunner, type CommandResult, type CommandRunner, type Validator } from "../agent/apply";
import { bootstrap, type BootstrapOptions, type BootstrapResult } from "../agent/bootstrap";
import { BOOTSTRAP_UNITS } from "../agent/services";
import { mainAsync } from "../cli/main";
import { resolveBackends } from "../spec/backend-list";
import { renderUserData, type BootstrapSecrets } from "../cloud-init";
import { renderAll } from "../render";
import type { RenderedFile } from "../render/types";
import { resolveSpec } from "../spec/resolve";
import type { LoadBalancerSpecInput } from "../spec/schema";
import type { HostFacts } from "../spec/types";
import { keepalivedInterfaces } from "./checkers/keepalived";
import { nftDevices } from "./checkers/nft";
import { must, run } from "./checkers/run";
import { devSpecRaw, hosts, REPO } from "./fixtures/variants";
import { checkSpec } from "../spec/checked";

// Distinctive values: a leak shows up as an exact substring.
const SECRETS: BootstrapSecrets = { clusterToken: "TOKEN-SECRET-7f3a9c.e1b2", metricsPassword: "METRICS-SECRET-5d8e" };
const SECRET_VALUES = [SECRETS.clusterToken as string, SECRETS.metricsPassword as string];
const HOST: HostFacts = hosts[0] as HostFacts;
const UNITS_IN_ORDER = ["firewalld.service", "haproxy.service", "conntrackd.service", "keepalived.service"];

function userDataFiles(
  spec: Record<string, unknown>,
  host: HostFacts = HOST,
): { path: string; permissions: string; content: string }[] {
  const doc = renderUserData({
    spec: checkSpec(spec as unknown as LoadBalancerSpecInput),
    host,
    agent: {
      cluster: {
        apiServers: ["https://192.168.100.10:6443"],
        tlsServerName: "api.lab.example.com",
        namespace: "edgepair",
        loadBalancerName: "lab",
      },
      imageRef: `quay.io/edgepair/lb@sha256:${"a".repeat(64)}`,
    },
    sshAuthorizedKeys: [],
    hostname: host.hostname,
    secrets: SECRETS,
  });
  return (parse(doc.textWithSecrets) as { write_files: { path: string; permissions: string; content: string }[] })
    .write_files;
}

/** What cloud-init's write_files does: parents with its default mode 0755, each file with its permissions. */
function writeLikeCloudInit(
  root: string,
  files: readonly { path: string; permissions: string; content: string }[],
): void {
  for (const f of files) {
    const target = join(root, f.path);
    mkdirSync(dirname(target), { recursive: true, mode: 0o755 });
    writeFileSync(target, f.content, { mode: Number.parseInt(f.permissions, 8) });
    chmodSync(target, Number.parseInt(f.permissions, 8));
  }
}

/** The dev tree as bootstrap must render it: the spec's static backends. */
function expectedTree(): RenderedFile[] {
  const spec = resolveSpec(devSpecRaw());
  return renderAll({ spec, host: HOST, backends: resolveBackends(spec, {}) });
}

// ---- one network namespace with the host's interface names, for every checker of this file ----

const ns = `ep-boot-${process.pid}`;
const inNetns: CommandRunner = (argv, opts) => spawnRunner(["ip", "netns", "exec", ns, ...argv], opts);
const validators: Validator[] = defaultValidators({ runner: inNetns });

beforeAll(() => {
  const tree = expectedTree();
  const content = (p: string): string => tree.find((f) => f.path === p)?.content ?? "";
  const names = [
    ...new Set([
      ...keepalivedInterfaces(content("/etc/keepalived/keepalived.conf")),
      ...nftDevices(content("/etc/edgepair/handoff.nft")),
    ]),
  ];
  expect(names.sort()).toEqual([HOST.publicInterface.name, HOST.privateInterface.name].sort());
  must("ip", ["netns", "add", ns]);
  must("ip", ["-n", ns, "link", "set", "lo", "up"]);
  names.forEach((name, i) => {
    must("ip", ["-n", ns, "link", "add", name, "type", "veth", "peer", "name", `ep-peer${i}`]);
    must("ip", ["-n", ns, "link", "set", name, "up"]);
  });
});

afterAll(() => {
  run("ip", ["netns", "pids", ns])
    .stdout.split(/\s+/)
    .filter(Boolean)
    .forEach((pid) => run("kill", ["-9", pid]));
  run("ip", ["netns", "del", ns]);
});

// ---- temporary roots ----

const roots: string[] = [];

/** A root as the first boot finds it: the image's passwd/group and firewalld.conf, cloud-init's files. */
function firstBootRoot(spec: Record<string, unknown> = devSpecRaw(), host: HostFacts = HOST): string {
  const root = mkdtempSync(join(tmpdir(), "ep-boot-"));
  roots.push(root);
  mkdirSync(join(root, "etc/firewalld"), { recursive: true });
  writeFileSync(join(root, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n");
  writeFileSync(join(root, "etc/group"), "root:x:0:\n");
  if (existsSync("/etc/firewalld/firewalld.conf"))
    copyFileSync("/etc/firewalld/firewalld.conf", join(root, "etc/firewalld/firewalld.conf"));
  writeLikeCloudInit(root, userDataFiles(spec, host));
  return root;
}

afterAll(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

interface Entry {
  kind: "dir" | "file" | "fifo" | "other";
  mode: number;
  ino: number;
  mtimeMs: number;
}

/** Every path under root with what a write, a chmod or a replacement would change. */
function snapshot(root: string): Map<string, Entry> {
  const out = new Map<string, Entry>();
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      const st = lstatSync(p);
      const kind = st.isDirectory() ? "dir" : st.isFile() ? "file" : st.isFIFO() ? "fifo" : "other";
      // A directory's mtime moves whenever the apply makes and removes its scratch directory: only its mode counts.
      out.set(p.slice(root.length), {
        kind,
        mode: st.mode & 0o7777,
        ino: st.ino,
        mtimeMs: kind === "dir" ? 0 : st.mtimeMs,
      });
      if (kind === "dir") walk(p);
    }
  };
  walk(root);
  return out;
}

// ---- systemd stand-in ----

interface UnitState {
  active: boolean;
  enabled: boolean;
}

interface FakeSystemd {
  runner: CommandRunner;
  calls: string[][];
  units: Map<string, UnitState>;
  /** units whose start fails */
  failStart: Set<string>;
}

const answer = (exitCode: number, output = ""): CommandResult => ({ exitCode, timedOut: false, output });

function fakeSystemd(initial: Record<string, UnitState> = {}): FakeSystemd {
  const units = new Map<string, UnitState>(Object.entries(initial));
  const failStart = new Set<string>();
  const calls: string[][] = [];
  const unit = (name: string): UnitState => units.get(name) ?? { active: false, enabled: false };
  const runner: CommandRunner = async (argv) => {
    calls.push([...argv]);
    const [cmd, verb] = argv;
    const name = argv[argv.length - 1] ?? "";
    const u = unit(name);
    if (cmd === "systemctl" && verb === "is-active") return u.active ? answer(0, "active\n") : answer(3, "inactive\n");
    if (cmd === "systemctl" && verb === "is-enabled")
      return u.enabled ? answer(0, "enabled\n") : answer(1, "disabled\n");
    if (cmd === "systemctl" && verb === "enable" && argv[2] === "--now") {
      if (failStart.has(name))
        return answer(1, `Job for ${name} failed because the control process exited with error code.`);
      units.set(name, { active: true, enabled: true });
      return answer(0);
    }
    if (cmd === "systemctl" && verb === "reload")
      return u.active ? answer(0) : answer(1, `Failed to reload ${name}: Unit ${name} is not active.`);
    if (cmd === "systemctl" && verb === "restart") {
      units.set(name, { ...u, active: true });
      return answer(0);
    }
    if (cmd === "firewall-cmd")
      return unit("firewalld.service").active ? answer(0, "success") : answer(252, "FirewallD is not running");
    // sysctl -p, nmcli, the NetworkManager reapply script, nft -f: recorded, not run (they would change this machine)
    return answer(0);
  };
  return { runner, calls, units, failStart };
}

const isQuery = (c: readonly string[]): boolean =>
  c[0] === "systemctl" && (c[1] === "is-active" || c[1] === "is-enabled");
const changing = (f: FakeSystemd): string[][] => f.calls.filter((c) => !isQuery(c));
const enabled = (f: FakeSystemd): string[] =>
  f.calls.filter((c) => c[0] === "systemctl" && c[1] === "enable").map((c) => c[3] ?? "");

interface Run {
  result: BootstrapResult;
  /** the progress table plus anything else written to stdout or stderr during the run */
  printed: string;
}

async function boot(root: string, systemd: FakeSystemd, over: Partial<BootstrapOptions> = {}): Promise<Run> {
  let printed = "";
  const stdout = jest.spyOn(process.stdout, "write").mockImplementation((s) => ((printed += String(s)), true));
  const stderr = jest.spyOn(process.stderr, "write").mockImplementation((s) => ((printed += String(s)), true));
  try {
    const result = await bootstrap({ root, runner: systemd.runner, validators, out: (s) => (printed += s), ...over });
    return { result, printed };
  } finally {
    stdout.mockRestore();
    stderr.mockRestore();
  }
}

function expectNoSecret(text: string): void {
  for (const s of SECRET_VALUES) expect(text).not.toContain(s);
}

const modeOf = (path: string): number => lstatSync(path).mode & 0o7777;

describe("agent bootstrap of the dev stack", () => {
  test("first boot: every file lands with its mode, the directories and the VRRP FIFO exist, the services start in dependency order; a second run changes and restarts nothing", async () => {
    const root = firstBootRoot();
    const systemd = fakeSystemd();
    const first = await boot(root, systemd);
    expect(first.result).toEqual({ outcome: "ok", steps: expect.any(Array) });

    const tree = expectedTree();
    for (const f of tree) {
      const target = join(root, f.path);
      expect({ path: f.path, mode: modeOf(target), same: readFileSync(target, "utf8") === f.content }).toEqual({
        path: f.path,
        mode: f.mode,
        same: true,
      });
    }
    expect(tree.filter((f) => f.mode === 0o600).length).toBeGreaterThan(0);
    expect(modeOf(join(root, "etc/edgepair"))).toBe(0o755);
    // cloud-init made it 0755 as the parent of the secret files; bootstrap narrows it
    expect(modeOf(join(root, "etc/edgepair/secrets"))).toBe(0o700);
    expect(modeOf(join(root, "run/edgepair"))).toBe(0o755);
    const fifo = lstatSync(join(root, "run/edgepair/vrrp.fifo"));
    expect({ fifo: fifo.isFIFO(), mode: fifo.mode & 0o7777 }).toEqual({ fifo: true, mode: 0o600 });
    // the secret files are left as delivered
    expect(readFileSync(join(root, "etc/edgepair/secrets/cluster-token"), "utf8")).toBe(SECRETS.clusterToken);
    expect(modeOf(join(root, "etc/edgepair/secrets/metrics-password"))).toBe(0o600);

    // Firewall before the daemons that bind; conntrackd before keepalived (the notify script commits it);
    // keepalived last, so it advertises only once HAProxy serves.
    expect(enabled(systemd)).toEqual(UNITS_IN_ORDER);
    expect(BOOTSTRAP_UNITS.map((u) => u.unit)).toEqual(UNITS_IN_ORDER);
    for (const u of UNITS_IN_ORDER) expect(systemd.units.get(u)).toEqual({ active: true, enabled: true });
    // Reloads of daemons not running yet are left to their start (a real `systemctl reload` of them fails);
    // kernel settings, profiles and nft tables are applied by the apply's own reload commands, before any start.
    const calls = changing(systemd).map((c) => c.join(" "));
    expect(calls.filter((c) => /^(systemctl (reload|restart)|firewall-cmd)/.test(c))).toEqual([]);
    expect(calls[0]).toBe("sysctl -p /etc/sysctl.d/50-edgepair.conf");
    expect(calls.filter((c) => c.startsWith("nmcli connection load"))).toHaveLength(
      tree.filter((f) => f.path.endsWith(".nmconnection")).length,
    );
    expect(calls.filter((c) => c.startsWith("nft -f"))).toHaveLength(
      tree.filter((f) => f.path.endsWith(".nft")).length,
    );
    const firstStart = calls.findIndex((c) => c.startsWith("systemctl enable"));
    expect(calls.slice(firstStart)).toEqual(UNITS_IN_ORDER.map((u) => `systemctl enable --now ${u}`));

    expect(first.printed).toMatch(/^step\s+result\s+ms\n/);
    expect(first.printed).toMatch(/\napply\s+\d+ written, 0 unchanged/);
    expect(first.printed).toMatch(/\nreload haproxy\s+deferred: not running, its start reads/);
    expect(first.printed).toMatch(/\nstart keepalived\.service\s+started\s+\d+\n/);
    expect(first.printed).toContain("chmod 0700 /etc/edgepair/secrets");
    expectNoSecret(first.printed);

    // ---- second run: the same root, the services running ----
    const before = snapshot(root);
    systemd.calls.length = 0;
    const second = await boot(root, systemd);
    expect(second.result.outcome).toBe("ok");
    expect(changing(systemd)).toEqual([]);
    expect(snapshot(root)).toEqual(before);
    expect(second.printed).toMatch(/\napply\s+0 written, \d+ unchanged/);
    expect(second.printed).toMatch(/\ndirectories\s+in place/);
    expect(second.printed).toMatch(/\nvrrp fifo\s+in place/);
    for (const u of UNITS_IN_ORDER)
      expect(second.printed).toMatch(new RegExp(`\\nstart ${u.replace(".", "\\.")}\\s+already running`));
    expect(second.printed).not.toMatch(/\nreload /);
    expectNoSecret(second.printed);
  });

  test("firewalld already running (Fedora enables it): the apply reloads it and bootstrap does not restart it", async () => {
    const root = firstBootRoot();
    const systemd = fakeSystemd({ "firewalld.service": { active: true, enabled: true } });
    const r = await boot(root, systemd);
    expect(r.result.outcome).toBe("ok");
    const calls = changing(systemd).map((c) => c.join(" "));
    expect(calls).toContain("firewall-cmd --reload");
    expect(enabled(systemd)).toEqual(UNITS_IN_ORDER.slice(1));
    expect(r.printed).toMatch(/\nreload firewalld\s+done/);
    expect(r.printed).toMatch(/\nstart firewalld\.service\s+already running/);
  });

  test("a service that fails to start stops the sequence before keepalived; the next run starts the rest", async () => {
    const root = firstBootRoot();
    const systemd = fakeSystemd();
    systemd.failStart.add("haproxy.service");
    const r = await boot(root, systemd);
    expect(r.result.outcome).toBe("failed");
    expect(r.result.outcome === "failed" && r.result.problems.join("\n")).toMatch(
      /^haproxy\.service: systemctl enable --now failed/,
    );
    expect(enabled(systemd)).toEqual(["firewalld.service", "haproxy.service"]);
    expect(systemd.units.get("keepalived.service")).toBeUndefined();

    systemd.failStart.clear();
    systemd.calls.length = 0;
    const again = await boot(root, systemd);
    expect(again.result.outcome).toBe("ok");
    // files unchanged: nothing reloaded; only the units not running yet are started
    expect(changing(systemd).map((c) => c.join(" "))).toEqual(
      UNITS_IN_ORDER.slice(1).map((u) => `systemctl enable --now ${u}`),
    );
  });

  test("a file a real checker rejects: failed with the file, its checker and its words; no service started, the rejected file not written", async () => {
    // keepalived -t and nft -c resolve the interfaces the files name: this host's private NIC is not in the namespace.
    const host: HostFacts = { ...HOST, privateInterface: { ...HOST.privateInterface, name: "ens9" } };
    const root = firstBootRoot(devSpecRaw(), host);
    const systemd = fakeSystemd();
    const r = await boot(root, systemd);
    expect(r.result.outcome).toBe("failed");
    const problems = r.result.outcome === "failed" ? r.result.problems.join("\n") : "";
    expect(problems).toMatch(/file\(s\) rejected/);
    expect(problems).toMatch(/ {2}\/etc\/keepalived\/keepalived\.conf: keepalived -t\n/);
    expect(problems).toMatch(/ens9/);
    expect(existsSync(join(root, "etc/keepalived/keepalived.conf"))).toBe(false);
    expect(enabled(systemd)).toEqual([]);
    expect(r.printed).toMatch(/\napply\s+\d+ written, \d+ unchanged, \d+ rejected/);
    expectNoSecret(r.printed + problems);
  });

  test("a secret file delivered readable by others is narrowed to 0600, its content untouched and never printed", async () => {
    const root = firstBootRoot();
    const token = join(root, "etc/edgepair/secrets/cluster-token");
    chmodSync(token, 0o644);
    const r = await boot(root, fakeSystemd());
    expect(r.result.outcome).toBe("ok");
    expect(modeOf(token)).toBe(0o600);
    expect(readFileSync(token, "utf8")).toBe(SECRETS.clusterToken);
    expect(r.printed).toMatch(
      /\nsecret files\s+2 of 3 present; narrowed \/etc\/edgepair\/secrets\/cluster-token to 0600/,
    );
    expectNoSecret(r.printed);
  });

  test("--dry-run writes nothing and starts nothing, and says what a run would do", async () => {
    const root = firstBootRoot();
    const before = snapshot(root);
    const systemd = fakeSystemd();
    const r = await boot(root, systemd, { dryRun: true });
    expect(r.result.outcome).toBe("ok");
    expect(snapshot(root)).toEqual(before);
    expect(changing(systemd)).toEqual([]);
    expect(r.printed).toMatch(
      new RegExp(`\\nfiles \\(not checked\\)\\s+would write ${expectedTree().length}, 0 unchanged`),
    );
    expect(r.printed).toMatch(/\nwould write\s+\/etc\/haproxy\/haproxy\.cfg\s/);
    expect(r.printed).toMatch(
      /\ndirectories\s+would chmod 0700 \/etc\/edgepair\/secrets; create \/run\/edgepair 0755\s/,
    );
    expect(r.printed).toMatch(/\nvrrp fifo\s+would create \/run\/edgepair\/vrrp\.fifo 0600\s/);
    expect(r.printed).toMatch(/\nstart keepalived\.service\s+would enable and start/);
  });
});

describe("bad input", () => {
  async function stderrOf(body: () => Promise<number>): Promise<{ code: number; stderr: string }> {
    let stderr = "";
    const spy = jest.spyOn(process.stderr, "write").mockImplementation((s) => ((stderr += String(s)), true));
    try {
      return { code: await body(), stderr };
    } finally {
      spy.mockRestore();
    }
  }

  test("a bad spec.yaml, host.yaml and agent.yaml: exit 2, one `<file>: <field>: <rule>` line each, nothing written", async () => {
    const root = firstBootRoot();
    const spec = parse(readFileSync(join(root, "etc/edgepair/spec.yaml"), "utf8")) as Record<string, unknown>;
    spec.clusterName = "Lab_1";
    writeFileSync(join(root, "etc/edgepair/spec.yaml"), stringify(spec));
    const host = parse(readFileSync(join(root, "etc/edgepair/host.yaml"), "utf8")) as Record<string, unknown>;
    host.role = "tertiary";
    writeFileSync(join(root, "etc/edgepair/host.yaml"), stringify(host));
    const agent = parse(readFileSync(join(root, "etc/edgepair/agent.yaml"), "utf8")) as {
      cluster: { apiServers: string[] };
    };
    // the API through the pair's own VIP: the agent would lock itself out with a broken HAProxy
    agent.cluster.apiServers = ["https://192.168.100.100:6443"];
    writeFileSync(join(root, "etc/edgepair/agent.yaml"), stringify(agent));
    const before = snapshot(root);

    let out = "";
    const r = await stderrOf(() => mainAsync(["agent", "bootstrap", "--root", root], (s) => (out += s)));
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split("\n")).toEqual([
      "spec.yaml: clusterName: must be a DNS label: lowercase letters, digits and '-', starting and ending with a letter or digit",
      "host.yaml: role: must be one of primary, secondary",
    ]);
    expect(snapshot(root)).toEqual(before);
    expect(out).toMatch(/\nread config\s+invalid: 2 problem\(s\)/);

    // host fixed: the cross-file rule shows, naming agent.yaml
    writeFileSync(join(root, "etc/edgepair/host.yaml"), stringify(HOST));
    spec.clusterName = "lab";
    writeFileSync(join(root, "etc/edgepair/spec.yaml"), stringify(spec));
    const cross = await stderrOf(() => mainAsync(["agent", "bootstrap", "--root", root], () => undefined));
    expect(cross.code).toBe(2);
    expect(cross.stderr.trim()).toBe(
      "agent.yaml: cluster.apiServers[0]: must be a control-plane address, not an address the load balancers hold",
    );
    expect(existsSync(join(root, "var/lib/edgepair"))).toBe(false);
    expect(existsSync(join(root, "run"))).toBe(false);
  });

  test("a missing file and a file that is not YAML name the file", async () => {
    const root = firstBootRoot();
    rmSync(join(root, "etc/edgepair/host.yaml"));
    writeFileSync(join(root, "etc/edgepair/spec.yaml"), "clusterName: [lab\n");
    const r = await stderrOf(() => mainAsync(["agent", "bootstrap", "--root", root], () => undefined));
    expect(r.code).toBe(2);
    const lines = r.stderr.trim().split("\n");
    expect(lines[0]).toMatch(/^spec\.yaml: is not valid YAML/);
    expect(lines).toContain("host.yaml: cannot be read (ENOENT): /etc/edgepair/host.yaml");
  });
});

describe("the bundle (tools/bundle-agent, esbuild)", () => {
  let dir = "";
  beforeAll(() => (dir = mkdtempSync(join(tmpdir(), "ep-bundle-"))));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const node = (args: string[], timeoutMs = 30_000) => run(process.execPath, args, { timeoutMs, cwd: dir });

  test("one file, runnable with plain node from a directory without node_modules: --version, agent bootstrap --help, bad input exit 2", () => {
    const out = join(dir, "edgepair-agent.js");
    const built = run(join(REPO, "tools/bundle-agent"), ["--outfile", out], { timeoutMs: 120_000 });
    expect(built.stderr).toBe("");
    expect(built.status).toBe(0);
    const { version } = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as { version: string };
    const nodeMajor = Number(process.versions.node.split(".")[0]);
    expect(nodeMajor).toBeGreaterThanOrEqual(20);

    // the appliance's command line carries no lab (cli/appliance.ts): none of its code, no swc
    const bundled = readFileSync(out, "utf8");
    for (const labOnly of ["planLab", "compileHelper", "startRogue", "registerLab", "@swc/core"])
      expect([labOnly, bundled.includes(labOnly)]).toEqual([labOnly, false]);
    const v = node([out, "--version"]);
    expect({ status: v.status, stdout: v.stdout }).toEqual({
      status: 0,
      stdout: expect.stringMatching(
        new RegExp(`^${version.replace(/\./g, "\\.")} \\(renderer \\d+\\.\\d+\\.\\d+\\)\\n$`),
      ),
    });
    const help = node([out, "agent", "bootstrap", "--help"]);
    expect(help.status).toBe(0);
    for (const flag of ["--root <dir>", "--state-dir <dir>", "--dry-run"]) expect(help.stdout).toContain(flag);

    const root = firstBootRoot();
    writeFileSync(join(root, "etc/edgepair/spec.yaml"), stringify({ ...devSpecRaw(), clusterName: "Lab_1" }));
    const bad = node([out, "agent", "bootstrap", "--root", root]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/^spec\.yaml: clusterName: must be a DNS label/);
    expectNoSecret(bad.stdout + bad.stderr);

    // Start time of the image's command line beside plain node's own (this machine may be loaded: the difference
    // is the figure), median of 5 runs each. Reported, not asserted.
    const median = (args: string[]): number => {
      const ms: number[] = [];
      for (let i = 0; i < 5; i++) {
        const t = process.hrtime.bigint();
        node(args);
        ms.push(Number(process.hrtime.bigint() - t) / 1e6);
      }
      return ms.sort((a, b) => a - b)[2] ?? NaN;
    };
    const bare = median(["-e", "0"]);
    const cli = median([out, "--version"]);
    process.stdout.write(
      `bundle: ${(lstatSync(out).size / 1024).toFixed(0)} KiB; node ${process.versions.node}: --version ${cli.toFixed(0)} ms, node -e 0 ${bare.toFixed(0)} ms (medians of 5)\n`,
    );
  });

  test("@kubernetes/client-node (ESM-only) bundles to CommonJS that runs without require(esm)", () => {
    // A probe entry through the agent's own import of the client (agent/kube/client.ts), bundled with the same options.
    const probe = join(dir, "probe.ts");
    writeFileSync(
      probe,
      [
        `import { k8s } from ${JSON.stringify(join(REPO, "agent/kube/client"))};`,
        "const kc = new k8s.KubeConfig();",
        'kc.loadFromOptions({ clusters: [{ name: "c", server: "https://192.0.2.1:6443" }], users: [{ name: "u" }], contexts: [{ name: "x", cluster: "c", user: "u" }], currentContext: "x" });',
        "console.log(JSON.stringify({ server: kc.getCurrentCluster()?.server, listNode: typeof kc.makeApiClient(k8s.CoreV1Api).listNode }));",
      ].join("\n"),
    );
    const out = join(dir, "probe.js");
    const built = run(join(REPO, "tools/bundle-agent"), ["--entry", probe, "--outfile", out], { timeoutMs: 120_000 });
    expect(built.stderr).toBe("");
    expect(built.status).toBe(0);
    // Node 20 before 20.19 cannot require() an ES module: this flag makes today's Node behave the same.
    const r = node(["--no-experimental-require-module", out]);
    expect(r.stderr).toBe("");
    expect(JSON.parse(r.stdout)).toEqual({ server: "https://192.0.2.1:6443", listNode: "function" });
    // counter-case: the package itself, unbundled, is refused under the same flag
    const raw = run(
      process.execPath,
      ["--no-experimental-require-module", "-e", 'require("@kubernetes/client-node")'],
      { cwd: REPO },
    );
    expect(raw.status).not.toBe(0);
    expect(raw.stderr).toContain("ERR_REQUIRE_ESM");
  });
});
