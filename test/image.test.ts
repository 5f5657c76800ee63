/**
 * The appliance image (images/, issue 9 items 1 and 2). No Fedora bootc base can be pulled here, so the image is not
 * built; each of its parts is checked by the real tool that reads it: the Containerfile's structure, every unit with
 * `systemd-analyze verify`, the SELinux module with checkmodule + semodule_package, the firewalld service with
 * firewall-offline-cmd, the cloud.cfg.d file with cloud-init, tmpfiles with systemd-tmpfiles, the bib config against
 * the keys bib accepts, the scripts with shellcheck and for real with stand-ins on PATH, and the agent bundle run by
 * node. Every checker also rejects a broken copy.
 */
import { spawnRunner } from "../agent/apply";
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { checkSysctlText } from "../agent/apply/validate";
import { version } from "../package.json";
import { renderAll, RENDERER_VERSION } from "../render/index";
import { CONNTRACKD_CONFIG_PATH } from "../render/conntrackd";
import { HAPROXY_CONFIG_PATH, HAPROXY_STATS_SOCKET, MACHINE_CONFIG_PORT } from "../render/haproxy";
import { KEEPALIVED_CONFIG_PATH } from "../render/keepalived";
import { NOTIFY_SCRIPT_PATH, VRRP_FIFO_PATH } from "../render/notify";
import { resolveSpec } from "../spec/resolve";
import type { BackendSets, HostFacts, ResolvedSpec } from "../spec/types";
import { BOOTSTRAP_COMMAND } from "../cloud-init/user-data";
import { KEEPALIVED_HOLD_FILE } from "../agent/switch/host";
import { checkBibConfig } from "./checkers/image-bib";
import { checkCloudCfgD } from "./checkers/image-cloud-cfg";
import { checkContainerfile, NEVER_ENABLED } from "./checkers/image-containerfile";
import { buildModule, compileFileContexts, labelOf } from "./checkers/image-selinux";
import { buildImageRoot, execPrograms, hostUnitText, verifyUnits } from "./checkers/image-units";
import { run } from "./checkers/run";
import { checkShellScript } from "./checkers/shell";
import { createBootcStandin } from "./fixtures/bootc-standin";
import { devSpecRaw, hosts, REPO, variantsByHost } from "./fixtures/variants";

const IMAGES = join(REPO, "images");
const ROOTFS = join(IMAGES, "rootfs");
const UNIT_DIR = "/usr/lib/systemd/system";
const LIBEXEC = "/usr/libexec/edgepair";
const BUNDLE = join(IMAGES, "agent", "edgepair-agent.js");

const read = (path: string) => readFileSync(path, "utf8");
const inImage = (path: string) => join(ROOTFS, path);
const containerfile = () => read(join(IMAGES, "Containerfile"));

function listFiles(dir: string, prefix = ""): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? listFiles(join(dir, e.name), `${prefix}/${e.name}`) : [`${prefix}/${e.name}`],
  );
}

/** Our unit files (not drop-ins), by name. */
const ourUnits = () => readdirSync(inImage(UNIT_DIR)).filter((n) => /\.(service|path|timer|socket)$/.test(n));
/** Package units we extend with a drop-in (X.service.d/*.conf). */
const extendedUnits = () =>
  readdirSync(inImage(UNIT_DIR))
    .filter((n) => n.endsWith(".d"))
    .map((n) => n.slice(0, -2));
const dropIns = (unit: string) =>
  readdirSync(inImage(join(UNIT_DIR, `${unit}.d`))).map((f) => read(inImage(join(UNIT_DIR, `${unit}.d`, f))));

/** usr/share/edgepair/required-executables without comments: what the image build checks exists. */
function requiredExecutables(): string[] {
  return read(inImage("/usr/share/edgepair/required-executables"))
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
}

function presetLines(): { enable: string[]; disable: string[] } {
  const lines = read(inImage("/usr/lib/systemd/system-preset/50-edgepair.preset"))
    .split("\n")
    .map((l) => l.trim());
  const of = (verb: string) =>
    lines.filter((l) => l.startsWith(`${verb} `)).map((l) => l.slice(verb.length + 1).trim());
  return { enable: of("enable"), disable: of("disable") };
}

const isCloudInitUnit = (u: string) => /^cloud-(init|config|final)/.test(u);

beforeAll(() => {
  // The Containerfile copies the bundle from the build context: build it where `npm run bundle` puts it.
  const r = run(process.execPath, [join(REPO, "tools/bundle-agent")], { timeoutMs: 180_000 });
  if (r.status !== 0) throw new Error(`tools/bundle-agent failed: ${r.output}`);
}, 200_000);

describe("the agent bundle (tools/bundle-agent's default outfile, copied into the image)", () => {
  test("starts under this Node.js and prints the CLI's version", () => {
    expect(existsSync(BUNDLE)).toBe(true);
    expect(statSync(BUNDLE).mode & 0o111).not.toBe(0);
    const started = performance.now();
    const r = run(process.execPath, [BUNDLE, "--version"], { timeoutMs: 30_000 });
    const ms = Math.round(performance.now() - started);
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(`${version} (renderer ${RENDERER_VERSION})`);
    expect(Number(process.versions.node.split(".")[0])).toBeGreaterThanOrEqual(20);
    console.log(
      `bundle: ${Math.round(statSync(BUNDLE).size / 1024)} KiB, --version under node ${process.versions.node} in ${ms} ms`,
    );
  });
});

describe("Containerfile", () => {
  test("is accepted: pinned base argument, every COPY source exists, timer masked, lint last", () => {
    const c = checkContainerfile(containerfile(), IMAGES);
    expect(c.output).toBe("");
    expect(c.ok).toBe(true);
    expect(c.masked).toContain("bootc-fetch-apply-updates.timer");
    // COPY rootfs/ / lands every file of images/rootfs where the units and scripts name them
    expect(c.copies.some((x) => x.sources.includes("rootfs/") && x.dest === "/")).toBe(true);
    expect(
      c.copies.some((x) => x.sources.includes("agent/edgepair-agent.js") && x.dest === `${LIBEXEC}/edgepair-agent.js`),
    ).toBe(true);
  });

  test("enables what the preset enables, and never a daemon the bootstrap starts", () => {
    const c = checkContainerfile(containerfile(), IMAGES);
    const preset = presetLines();
    expect([...c.enabled].sort()).toEqual(preset.enable.filter((u) => !isCloudInitUnit(u)).sort());
    // cloud-init's unit names differ between versions: the Containerfile enables those that exist of the same list
    const loop =
      /for unit in ([^;]+); do/
        .exec(containerfile())?.[1]
        ?.trim()
        .split(/\s+/)
        .map((u) => `${u}.service`) ?? [];
    expect(loop.sort()).toEqual(preset.enable.filter(isCloudInitUnit).sort());
    for (const u of NEVER_ENABLED) {
      expect(preset.disable).toContain(u);
      expect(c.enabled).not.toContain(u);
    }
    // every unit of ours that can be enabled is decided, one way or the other
    for (const u of ourUnits().filter((n) => /^\[Install\]/m.test(read(inImage(join(UNIT_DIR, n)))))) {
      expect([...preset.enable, ...preset.disable]).toContain(u);
    }
    expect(preset.enable).not.toContain("edgepair-bootstrap.service"); // cloud-init starts it (user-data runcmd)
    expect(BOOTSTRAP_COMMAND.join(" ")).toBe("systemctl start --no-block edgepair-bootstrap.service");
  });

  const mutations: [string, (t: string) => string, RegExp][] = [
    [
      "the timer is not masked",
      (t) => t.replace(/\s*systemctl mask bootc-fetch-apply-updates\.timer/, " true"),
      /systemctl mask bootc-fetch-apply-updates\.timer/,
    ],
    ["lint is not the last step", (t) => `${t}RUN true\n`, /last step must be "RUN bootc container lint"/],
    [
      "a COPY source is missing",
      (t) => t.replace("COPY rootfs/ /", "COPY rootfs-missing/ /"),
      /COPY source rootfs-missing\/ does not exist/,
    ],
    [
      "the base is a tag",
      (t) => t.replace(/^FROM \$\{FEDORA_BOOTC\}$/m, "FROM quay.io/fedora/fedora-bootc:44"),
      /FROM must be \$\{FEDORA_BOOTC\}/,
    ],
    [
      "the base argument has a default",
      (t) => t.replace(/^ARG FEDORA_BOOTC$/m, "ARG FEDORA_BOOTC=quay.io/fedora/fedora-bootc:44"),
      /exactly "ARG FEDORA_BOOTC"/,
    ],
    ["the digest is not checked", (t) => t.replace("'@sha256:[0-9a-f]{64}$'", "'@'"), /must check that \$FEDORA_BOOTC/],
    [
      "haproxy is enabled",
      (t) => t.replace("systemctl enable firewalld.service", "systemctl enable haproxy.service firewalld.service"),
      /haproxy\.service is enabled in the image/,
    ],
    ["ADD is used", (t) => t.replace("COPY rootfs/ /", "ADD rootfs/ /"), /ADD is not allowed/],
    [
      "another build argument",
      (t) => t.replace("COPY rootfs/ /", "ARG REGISTRY_PASSWORD\nCOPY rootfs/ /"),
      /no build argument but FEDORA_BOOTC/,
    ],
  ];
  test.each(mutations)("rejects a Containerfile where %s", (_what, mutate, message) => {
    const mutated = mutate(containerfile());
    expect(mutated).not.toBe(containerfile());
    const c = checkContainerfile(mutated, IMAGES);
    expect(c.ok).toBe(false);
    expect(c.output).toMatch(message);
  });
});

describe("systemd units (systemd-analyze verify against a root laid out like the image)", () => {
  /** Exec programs of our units and drop-ins that the image files do not provide: Fedora packages must. */
  function packagePrograms(): string[] {
    const texts = [...ourUnits().map((u) => read(inImage(join(UNIT_DIR, u)))), ...extendedUnits().flatMap(dropIns)];
    return [...new Set(texts.flatMap(execPrograms))].filter((p) => !existsSync(inImage(p))).sort();
  }

  function imageRoot() {
    // Host package units' own programs (Debian's here) get stand-ins too: the drop-ins are verified through them.
    const hostPrograms = extendedUnits().flatMap((u) => execPrograms(hostUnitText(u)));
    return buildImageRoot(
      [
        { source: ROOTFS, dest: "/" },
        { source: BUNDLE, dest: `${LIBEXEC}/edgepair-agent.js` },
      ],
      [...packagePrograms(), ...hostPrograms],
    );
  }

  test("every unit and drop-in verifies; programs from packages are the ones the image build checks", () => {
    expect(ourUnits().sort()).toEqual([
      "edgepair-agent.path",
      "edgepair-agent.service",
      "edgepair-boot-check.service",
      "edgepair-bootstrap.service",
      "edgepair-nftables.service",
      "edgepair-notify-label.path",
      "edgepair-notify-label.service",
    ]);
    expect(extendedUnits().sort()).toEqual(["conntrackd.service", "haproxy.service", "keepalived.service"]);
    const required = requiredExecutables();
    for (const p of packagePrograms()) expect(required).toContain(p);

    const root = imageRoot();
    try {
      const started = performance.now();
      const r = verifyUnits(root.root, [...ourUnits(), ...extendedUnits()]);
      console.log(
        `systemd-analyze verify: ${ourUnits().length + extendedUnits().length} units in ${Math.round(performance.now() - started)} ms`,
      );
      expect(r.output).toBe("");
      expect(r.ok).toBe(true);
    } finally {
      root.cleanup();
    }
  });

  test("the units carry the decisions: hold, restart policy, bounded boot check", () => {
    const unit = (n: string) => read(inImage(join(UNIT_DIR, n)));
    expect(dropIns("keepalived.service").join("\n")).toContain(
      `ConditionPathExists=!/var/lib/edgepair/${KEEPALIVED_HOLD_FILE}`,
    );
    expect(unit("edgepair-agent.service")).toMatch(/^Restart=on-failure$/m);
    expect(unit("edgepair-agent.service")).toMatch(/^RestartPreventExitStatus=2$/m);
    expect(unit("edgepair-agent.service")).toMatch(
      /^ExecStart=\/usr\/bin\/node \/usr\/libexec\/edgepair\/edgepair-agent\.js agent run$/m,
    );
    expect(unit("edgepair-bootstrap.service")).toMatch(
      /^ExecStart=\/usr\/bin\/node \/usr\/libexec\/edgepair\/edgepair-agent\.js agent bootstrap$/m,
    );
    expect(unit("edgepair-boot-check.service")).toMatch(/^RuntimeMaxSec=/m);
    expect(unit("edgepair-notify-label.service")).toContain(NOTIFY_SCRIPT_PATH);
    expect(unit("edgepair-notify-label.path")).toContain(`PathChanged=${NOTIFY_SCRIPT_PATH}`);
    expect(dropIns("haproxy.service").join("\n")).toContain(HAPROXY_CONFIG_PATH);
    expect(dropIns("conntrackd.service").join("\n")).toContain(CONNTRACKD_CONFIG_PATH);
  });

  const broken: [string, string, string, string][] = [
    [
      "a program that is nowhere",
      "edgepair-agent.service",
      "ExecStart=/usr/bin/node",
      "ExecStart=/usr/bin/no-such-node",
    ],
    ["a misspelt key", "edgepair-boot-check.service", "RuntimeMaxSec=", "RuntimeMaxSecs="],
    ["Restart=always on a oneshot", "edgepair-bootstrap.service", "Restart=on-failure", "Restart=always"],
  ];
  test.each(broken)("rejects a unit with %s", (_what, unit, from, to) => {
    const root = imageRoot();
    try {
      const path = root.at(join(UNIT_DIR, unit));
      const text = read(path);
      expect(text).toContain(from);
      writeFileSync(path, text.replace(from, to));
      const r = verifyUnits(root.root, [unit]);
      expect(r.ok).toBe(false);
      expect(r.output).not.toBe("");
    } finally {
      root.cleanup();
    }
  });

  test("rejects a drop-in whose program is missing", () => {
    const root = imageRoot();
    try {
      rmSync(root.at(`${LIBEXEC}/edgepair-selinux-ports`));
      const r = verifyUnits(root.root, ["haproxy.service"]);
      expect(r.ok).toBe(false);
      expect(r.output).toContain("edgepair-selinux-ports");
    } finally {
      root.cleanup();
    }
  });
});

describe("every program the appliance runs is one the image build checks", () => {
  test("reload commands, the notify script's steps, keepalived's check, the agent's commands", () => {
    const required = new Set(requiredExecutables());
    const commands = new Set<string>();
    for (const v of variantsByHost) {
      const files = renderAll({ spec: v.spec, host: v.host, backends: v.backends });
      for (const f of files) for (const argv of f.reload.commands) commands.add(argv[0] as string);
      const notify = files.find((f) => f.path === NOTIFY_SCRIPT_PATH)?.content ?? "";
      for (const m of notify.matchAll(/^\t(?:step|announce) (?:timeout \d+ )?(\S+)/gm)) commands.add(m[1] as string);
      for (const m of notify.matchAll(/command -v (\S+)/g)) commands.add(m[1] as string);
      const keepalived = files.find((f) => f.path === KEEPALIVED_CONFIG_PATH)?.content ?? "";
      for (const m of keepalived.matchAll(/script "(\S+)/g)) commands.add(m[1] as string);
    }
    // argv[0] of what the agent itself runs (agent/**: services, bootc, validators, peer-adverts, bootstrap's FIFO)
    for (const c of [
      "systemctl",
      "bootc",
      "nft",
      "ip",
      "haproxy",
      "keepalived",
      "nmcli",
      "sh",
      "sysctl",
      "mkfifo",
      "firewall-offline-cmd",
      "firewall-cmd",
    ])
      commands.add(c);
    const missing = [...commands].filter((c) => !required.has(c)).sort();
    expect(missing).toEqual([]);
    expect(commands.size).toBeGreaterThan(10);
  });
});

describe("SELinux module (checkmodule -M -m, semodule_package)", () => {
  const te = join(IMAGES, "selinux", "edgepair.te");
  const fc = join(IMAGES, "selinux", "edgepair.fc");

  test("builds, and labels the rendered notify script for keepalived's unconfined-script domain", () => {
    const m = buildModule(te, fc);
    expect(m.output).not.toMatch(/error/i);
    expect(m.ok).toBe(true);
    expect(m.ppBytes).toBeGreaterThan(0);
    expect(compileFileContexts(fc)).toEqual({ ok: true, output: "" });
    expect(labelOf(fc, NOTIFY_SCRIPT_PATH)).toBe("system_u:object_r:keepalived_unconfined_script_exec_t:s0");
    // nothing else in /etc/edgepair, and not the agent's staged copy (it is relabelled after the rename)
    expect(labelOf(fc, "/etc/edgepair/spec.yaml")).toBeUndefined();
    expect(labelOf(fc, `/etc/edgepair/.keepalived-notify.sh.edgepair-new-1234`)).toBeUndefined();
    expect(read(te)).toContain(`"${basename(NOTIFY_SCRIPT_PATH)}"`);
    // keepalived_t is never the subject of a rule of ours: nothing widens it
    expect(
      read(te)
        .split("\n")
        .filter((l) => !l.trim().startsWith("#"))
        .join("\n"),
    ).not.toMatch(/keepalived_t\b/);
  });

  function brokenCopy(edit: (dir: string) => void): ReturnType<typeof buildModule> {
    const dir = mkdtempSync(join(tmpdir(), "ep-te-"));
    try {
      cpSync(join(IMAGES, "selinux"), dir, { recursive: true });
      edit(dir);
      return buildModule(join(dir, "edgepair.te"), join(dir, "edgepair.fc"));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  test("rejects a module written with refpolicy macros", () => {
    const m = brokenCopy((d) =>
      writeFileSync(
        join(d, "edgepair.te"),
        `${read(te)}\ndomtrans_pattern(keepalived_t, etc_t, unconfined_service_t)\n`,
      ),
    );
    expect(m.ok).toBe(false);
    expect(m.output).toMatch(/checkmodule: .*syntax error/s);
  });

  test("rejects a rule on a class the module does not require", () => {
    const m = brokenCopy((d) => writeFileSync(join(d, "edgepair.te"), read(te).replace("class file { create };", "")));
    expect(m.ok).toBe(false);
    expect(m.output).toMatch(/unknown class file/);
  });

  test("rejects a file context whose regular expression does not compile", () => {
    const dir = mkdtempSync(join(tmpdir(), "ep-fc-"));
    try {
      const bad = join(dir, "edgepair.fc");
      writeFileSync(bad, read(fc).replace("keepalived-notify\\.sh", "keepalived-notify(\\.sh"));
      const r = compileFileContexts(bad);
      expect(r.ok).toBe(false);
      expect(r.output).toMatch(/invalid regex/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** Runs an image script with stand-ins first on PATH; never the host's semanage, systemctl or nft. */
function runScript(
  script: string,
  args: string[],
  env: Record<string, string>,
  standInDir: string,
): { status: number | null; output: string } {
  const r = spawnSync(inImage(`${LIBEXEC}/${script}`), args, {
    env: { ...env, PATH: `${standInDir}:${process.env.PATH ?? "/usr/bin:/bin"}` },
    encoding: "utf8",
    timeout: 30_000,
    killSignal: "SIGKILL",
  });
  return { status: r.status, output: `${r.stdout ?? ""}${r.stderr ?? ""}` };
}

function standIn(dir: string, name: string, body: string): void {
  writeFileSync(join(dir, name), `#!/bin/sh\n${body}\n`);
  chmodSync(join(dir, name), 0o755);
}

describe("edgepair-selinux-ports (the ports HAProxy and conntrackd use, labelled before they bind)", () => {
  let dir: string;
  let bin: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "ep-ports-"));
    bin = join(dir, "bin");
    mkdirSync(bin);
    // semanage: logs each call (and import's stdin); `-a` of a port in $SEMANAGE_DEFINED fails like semanage does
    standIn(
      bin,
      "semanage",
      [
        'if [ "$1" = import ]; then { echo import; cat; } >>"$STANDIN_LOG"; exit 0; fi',
        'echo "$*" >>"$STANDIN_LOG"',
        'for p in $SEMANAGE_DEFINED; do if [ "$2" = -a ] && [ "$7" = "$p" ]; then echo "ValueError: Port $6/$p already defined" >&2; exit 1; fi; done',
      ].join("\n"),
    );
    standIn(bin, "selinuxenabled", 'exit "${SELINUX_OFF:-0}"');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const env = (extra: Record<string, string> = {}) => ({
    STANDIN_LOG: join(dir, "semanage.log"),
    EDGEPAIR_STATE_DIR: join(dir, "state"),
    EDGEPAIR_SELINUX_PORTS_LIST: inImage("/usr/share/edgepair/selinux-ports"),
    SEMANAGE_DEFINED: "",
    ...extra,
  });
  const calls = () =>
    existsSync(join(dir, "semanage.log"))
      ? read(join(dir, "semanage.log"))
          .trim()
          .split("\n")
          .filter((l) => l !== "")
      : [];

  function rendered(
    spec: ResolvedSpec,
    host: HostFacts = hosts[0] as HostFacts,
    backends: BackendSets = { api: [], ingress: [] },
  ) {
    const files = renderAll({ spec, host, backends });
    const write = (path: string) => {
      const out = join(dir, basename(path));
      writeFileSync(out, files.find((f) => f.path === path)?.content ?? "");
      return out;
    };
    return { haproxy: write(HAPROXY_CONFIG_PATH), conntrackd: write(CONNTRACKD_CONFIG_PATH) };
  }

  test("passes shellcheck", () => {
    expect(checkShellScript(read(inImage(`${LIBEXEC}/edgepair-selinux-ports`)))).toEqual({ ok: true, output: "" });
  });

  test("every port every spec variant renders is labelled in the image already: no semanage at run time", () => {
    for (const v of variantsByHost) {
      const f = rendered(v.spec, v.host, v.backends);
      expect(runScript("edgepair-selinux-ports", ["haproxy", f.haproxy], env(), bin).status).toBe(0);
      expect(runScript("edgepair-selinux-ports", ["conntrackd", f.conntrackd], env(), bin).status).toBe(0);
    }
    expect(calls()).toEqual([]);
  });

  test("a port a spec adds is labelled once, before the bind; -m when the policy already types it", () => {
    const raw = devSpecRaw();
    raw.metrics = { port: 9101 };
    raw.apiBackend = { ...(raw.apiBackend as Record<string, unknown>), port: 16443 };
    raw.conntrack = { port: 3781 };
    const f = rendered(resolveSpec(raw));
    const defined = env({ SEMANAGE_DEFINED: "9101" });
    expect(runScript("edgepair-selinux-ports", ["haproxy", f.haproxy], defined, bin)).toMatchObject({ status: 0 });
    expect(runScript("edgepair-selinux-ports", ["conntrackd", f.conntrackd], defined, bin)).toMatchObject({
      status: 0,
    });
    expect(calls()).toEqual([
      "port -a -t http_port_t -p tcp 9101",
      "port -m -t http_port_t -p tcp 9101",
      "port -a -t http_port_t -p tcp 16443",
      "port -a -t conntrackd_port_t -p udp 3781",
    ]);
    expect(read(join(dir, "state", "selinux-ports"))).toBe(
      "tcp 9101 http_port_t\ntcp 16443 http_port_t\nudp 3781 conntrackd_port_t\n",
    );
    // the next start or reload finds them recorded: no policy rebuild
    runScript("edgepair-selinux-ports", ["haproxy", f.haproxy], defined, bin);
    runScript("edgepair-selinux-ports", ["conntrackd", f.conntrackd], defined, bin);
    expect(calls()).toHaveLength(4);
  });

  test("does nothing without SELinux; fails on a file it cannot read; build labels the list in one transaction", () => {
    const raw = devSpecRaw();
    raw.metrics = { port: 9101 };
    const f = rendered(resolveSpec(raw));
    expect(runScript("edgepair-selinux-ports", ["haproxy", f.haproxy], env({ SELINUX_OFF: "1" }), bin).status).toBe(0);
    expect(calls()).toEqual([]);
    expect(runScript("edgepair-selinux-ports", ["haproxy", join(dir, "missing.cfg")], env(), bin).status).toBe(1);
    expect(runScript("edgepair-selinux-ports", ["nginx", f.haproxy], env(), bin).status).toBe(2);

    expect(runScript("edgepair-selinux-ports", ["build"], env(), bin).status).toBe(0);
    expect(calls()).toEqual([
      "import",
      "port -a -t http_port_t -p tcp 6443",
      "port -a -t http_port_t -p tcp 22623",
      "port -a -t http_port_t -p tcp 8404",
      "port -a -t http_port_t -p tcp 1936",
      "port -a -t http_port_t -p tcp 30080",
      "port -a -t http_port_t -p tcp 30443",
    ]);
  });
});

describe("edgepair-boot-check (with the bootc stand-in and a stand-in systemctl)", () => {
  const A = `sha256:${"a".repeat(64)}`;
  const B = `sha256:${"b".repeat(64)}`;
  const C = `sha256:${"c".repeat(64)}`;
  const REF = "registry.example/edgepair-lb";
  const SERVICES = "NetworkManager.service firewalld.service haproxy.service conntrackd.service";

  let dir: string;
  let bin: string;
  let bootc: ReturnType<typeof createBootcStandin>;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "ep-boot-check-"));
    bin = join(dir, "bin");
    mkdirSync(bin);
    mkdirSync(join(dir, "state"));
    // systemctl: logs each call; is-active answers "active" for every unit from the $ACTIVE_AFTER-th call on
    // (never when it is "never"), else "inactive" with is-active's exit code 3; reboot only logs.
    standIn(
      bin,
      "systemctl",
      [
        'echo "$*" >>"$STANDIN_DIR/systemctl.log"',
        'case "$1" in',
        "is-active)",
        '  shift; n=$(($(cat "$STANDIN_DIR/is-active.count" 2>/dev/null || echo 0) + 1)); echo "$n" >"$STANDIN_DIR/is-active.count"',
        '  rc=0; for u; do if [ "$ACTIVE_AFTER" != never ] && [ "$n" -ge "$ACTIVE_AFTER" ]; then echo active; else echo inactive; rc=3; fi; done; exit "$rc" ;;',
        "reboot) exit 0 ;;",
        "*) exit 1 ;;",
        "esac",
      ].join("\n"),
    );
    bootc = createBootcStandin();
  });
  afterEach(() => {
    bootc.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  const state = (f: string) => join(dir, "state", f);
  const systemctlCalls = () =>
    existsSync(join(dir, "systemctl.log")) ? read(join(dir, "systemctl.log")).trim().split("\n") : [];
  const bootcVerbs = () =>
    bootc
      .calls()
      .filter((c) => c.argv[0] === "bootc")
      .map((c) => c.argv[1]);

  /** The script's bound counts whole seconds of `date +%s`, so a bound of N waits between N-1 and N seconds. */
  async function bootCheck(o: {
    booted: string;
    rollback: string | null;
    knownGood?: string;
    activeAfter: number | "never";
    queued?: boolean;
    timeoutS?: number;
  }) {
    const lb = bootc.host("lb", {
      booted: { ref: `${REF}@${o.booted}`, digest: o.booted },
      rollback: o.rollback ? { ref: `${REF}@${o.rollback}`, digest: o.rollback } : null,
    });
    if (o.queued) lb.update({ rollbackQueued: true });
    if (o.knownGood) writeFileSync(state("known-good-image"), `${o.knownGood}\n`);
    const started = performance.now();
    const r = await lb.runner(
      [
        "env",
        `PATH=${bin}:${bootc.binDir}:${process.env.PATH ?? "/usr/bin:/bin"}`,
        `STANDIN_DIR=${dir}`,
        `ACTIVE_AFTER=${o.activeAfter}`,
        `EDGEPAIR_STATE_DIR=${join(dir, "state")}`,
        `EDGEPAIR_BOOT_CHECK_TIMEOUT_S=${o.timeoutS ?? 1}`,
        "EDGEPAIR_BOOT_CHECK_INTERVAL_S=0.1",
        inImage(`${LIBEXEC}/edgepair-boot-check`),
      ],
      { timeoutMs: 20_000 },
    );
    return { ...r, ms: Math.round(performance.now() - started), lb };
  }

  test("passes shellcheck", () => {
    expect(checkShellScript(read(inImage(`${LIBEXEC}/edgepair-boot-check`)))).toEqual({ ok: true, output: "" });
  });

  test("a host without bootc (the Debian stand-in VMs) passes with nothing checked; a bootc that fails does not", async () => {
    const noBootc = await spawnRunner(
      [
        "env",
        `PATH=${bin}:/usr/sbin:/usr/bin:/sbin:/bin`,
        `STANDIN_DIR=${dir}`,
        `EDGEPAIR_STATE_DIR=${join(dir, "state")}`,
        inImage(`${LIBEXEC}/edgepair-boot-check`),
      ],
      { timeoutMs: 20_000 },
    );
    expect(noBootc.exitCode).toBe(0);
    expect(noBootc.output).toContain("no bootc on this host");
    expect(systemctlCalls()).toEqual([]);
    standIn(bin, "bootc", "echo 'error: not booted via ostree' >&2; exit 1");
    const broken = await spawnRunner(
      [
        "env",
        `PATH=${bin}:/usr/sbin:/usr/bin:/sbin:/bin`,
        `STANDIN_DIR=${dir}`,
        `EDGEPAIR_STATE_DIR=${join(dir, "state")}`,
        inImage(`${LIBEXEC}/edgepair-boot-check`),
      ],
      { timeoutMs: 20_000 },
    );
    expect(broken.exitCode).toBe(1);
  });

  test("a known-good image is not checked at all", async () => {
    const r = await bootCheck({ booted: A, rollback: null, knownGood: A, activeAfter: "never" });
    expect(r.exitCode).toBe(0);
    expect(r.output).toContain(`booted image ${A} is known good`);
    expect(systemctlCalls()).toEqual([]);
    expect(bootcVerbs()).toEqual(["status"]);
  });

  test("a new image whose services come up is recorded as known good", async () => {
    const r = await bootCheck({ booted: B, rollback: A, knownGood: A, activeAfter: 3, timeoutS: 5 });
    expect(r.output).toContain(`services up: ${B} recorded as known good`);
    expect(r.exitCode).toBe(0);
    expect(read(state("known-good-image"))).toBe(`${B}\n`);
    expect(systemctlCalls()).toEqual([`is-active ${SERVICES}`, `is-active ${SERVICES}`, `is-active ${SERVICES}`]);
    expect(bootcVerbs()).toEqual(["status"]);
    expect(existsSync(state(KEEPALIVED_HOLD_FILE))).toBe(false);
  });

  test("a new image whose services do not come up is rolled back to the known-good one, keepalived held", async () => {
    const r = await bootCheck({ booted: B, rollback: A, knownGood: A, activeAfter: "never" });
    expect(r.exitCode).toBe(1);
    expect(bootcVerbs()).toEqual(["status", "rollback"]);
    expect(systemctlCalls().slice(-1)).toEqual(["reboot"]);
    expect(read(state("known-good-image"))).toBe(`${A}\n`);
    expect(existsSync(state(KEEPALIVED_HOLD_FILE))).toBe(true);
    expect(r.output).toContain("haproxy.service: inactive");
    // the reboot boots the known-good image, which is never checked again: no loop
    expect(r.lb.reboot().booted.digest).toBe(A);
    console.log(`boot check: rollback decided after ${r.ms} ms with a 1 s bound`);
    expect(r.ms).toBeLessThan(10_000);
  });

  test("never toggles back a rollback that is already queued", async () => {
    const r = await bootCheck({ booted: B, rollback: A, knownGood: A, activeAfter: "never", queued: true });
    expect(r.exitCode).toBe(1);
    expect(bootcVerbs()).toEqual(["status"]);
    expect(systemctlCalls().slice(-1)).toEqual(["reboot"]);
    expect(r.lb.state().rollbackQueued).toBe(true);
  });

  test("never rolls back into an image that is not the known-good one", async () => {
    const r = await bootCheck({ booted: B, rollback: C, knownGood: A, activeAfter: "never" });
    expect(r.exitCode).toBe(1);
    expect(r.output).toContain("is not the known-good image: not rolling back");
    expect(bootcVerbs()).toEqual(["status"]);
    expect(systemctlCalls()).not.toContain("reboot");
  });

  test("with no known-good image, a failure is only logged (nothing to roll back to)", async () => {
    const r = await bootCheck({ booted: B, rollback: A, activeAfter: "never" });
    expect(r.exitCode).toBe(1);
    expect(r.output).toContain("no image is known good");
    expect(bootcVerbs()).toEqual(["status"]);
    expect(systemctlCalls()).not.toContain("reboot");
    expect(existsSync(state("known-good-image"))).toBe(false);
  });
});

describe("edgepair-load-nftables (our tables, loaded at every boot)", () => {
  test("loads the files that exist, fails when nft rejects one, passes shellcheck", () => {
    expect(checkShellScript(read(inImage(`${LIBEXEC}/edgepair-load-nftables`)))).toEqual({ ok: true, output: "" });
    const dir = mkdtempSync(join(tmpdir(), "ep-nft-"));
    try {
      const bin = join(dir, "bin");
      mkdirSync(bin);
      mkdirSync(join(dir, "etc"));
      standIn(bin, "nft", 'echo "$*" >>"$STANDIN_LOG"; case "$2" in *bad*) exit 1 ;; esac');
      const env = { STANDIN_LOG: join(dir, "nft.log"), EDGEPAIR_CONFIG_DIR: join(dir, "etc") };
      expect(runScript("edgepair-load-nftables", [], env, bin).status).toBe(0);
      expect(existsSync(join(dir, "nft.log"))).toBe(false);
      writeFileSync(join(dir, "etc", "nat.nft"), "table ip edgepair_nat\n");
      expect(runScript("edgepair-load-nftables", [], env, bin).status).toBe(0);
      expect(read(join(dir, "nft.log"))).toBe(`-f ${join(dir, "etc", "nat.nft")}\n`);
      const badEnv = { ...env, EDGEPAIR_CONFIG_DIR: join(dir, "bad-etc") };
      mkdirSync(join(dir, "bad-etc"));
      writeFileSync(join(dir, "bad-etc", "handoff.nft"), "oops\n");
      expect(runScript("edgepair-load-nftables", [], badEnv, bin).status).toBe(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("firewalld service (firewall-offline-cmd)", () => {
  function offline(services: string, args: string[]) {
    const dir = mkdtempSync(join(tmpdir(), "ep-fw-"));
    try {
      cpSync(services, join(dir, "services"), { recursive: true });
      return run("firewall-offline-cmd", ["--system-config", dir, ...args]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const services = inImage("/usr/lib/firewalld/services");

  test("machine-config-server is a valid service for 22623/tcp", () => {
    expect(offline(services, ["--check-config"]).status).toBe(0);
    const info = offline(services, ["--info-service=machine-config-server"]);
    expect(info.status).toBe(0);
    expect(info.stdout).toMatch(new RegExp(`ports: ${MACHINE_CONFIG_PORT}/tcp\\n`));
  });

  test("rejects a service with an impossible port", () => {
    const dir = mkdtempSync(join(tmpdir(), "ep-fw-bad-"));
    try {
      writeFileSync(
        join(dir, "machine-config-server.xml"),
        read(join(services, "machine-config-server.xml")).replace(`port="${MACHINE_CONFIG_PORT}"`, 'port="226230"'),
      );
      const r = offline(dir, ["--check-config"]);
      expect(r.status).not.toBe(0);
      expect(r.output).toContain("INVALID_PORT");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("cloud.cfg.d (cloud-init schema, and cloud-init's own reading of the system config)", () => {
  const cfg = inImage("/etc/cloud/cloud.cfg.d/50-edgepair.cfg");

  test("is valid and disables cloud-init's networking", () => {
    const r = checkCloudCfgD(basename(cfg), read(cfg));
    expect(r.output).toMatch(/Valid cloud-config/);
    expect(r.ok).toBe(true);
    expect(r.networkDisabled).toBe(true);
  });

  test("a misspelt value leaves networking on; an unknown key is rejected", () => {
    const typo = checkCloudCfgD(basename(cfg), read(cfg).replace("config: disabled", "config: disable"));
    expect(typo.networkDisabled).toBe(false);
    const unknown = checkCloudCfgD(basename(cfg), read(cfg).replace(/^network:/m, "netwrok:"));
    expect(unknown.ok).toBe(false);
    expect(unknown.output).toContain("netwrok");
  });
});

describe("NetworkManager conf.d (NetworkManager --print-config)", () => {
  const conf = inImage("/usr/lib/NetworkManager/conf.d/50-edgepair.conf");
  /** NetworkManager's merged view with `dir` as its /usr/lib conf.d and nothing else. */
  const printConfig = (dir: string) => {
    const empty = join(dir, "..", "NetworkManager.conf");
    writeFileSync(empty, "");
    return run("NetworkManager", [
      "--print-config",
      `--system-config-dir=${dir}`,
      "--config-dir=/nonexistent",
      `--config=${empty}`,
    ]);
  };

  test("no DHCP profile of NetworkManager's own for any NIC: the keyfiles are the only ones", () => {
    const root = mkdtempSync(join(tmpdir(), "ep-nm-"));
    try {
      mkdirSync(join(root, "conf.d"));
      writeFileSync(join(root, "conf.d", basename(conf)), read(conf));
      const r = printConfig(join(root, "conf.d"));
      expect(r.status).toBe(0);
      expect(r.output).toMatch(/^no-auto-default=\*$/m);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  test("rejects a file it cannot parse", () => {
    const root = mkdtempSync(join(tmpdir(), "ep-nm-"));
    try {
      mkdirSync(join(root, "conf.d"));
      writeFileSync(join(root, "conf.d", basename(conf)), read(conf).replace("[main]", "[main"));
      const r = printConfig(join(root, "conf.d"));
      expect(r.status).not.toBe(0);
      expect(r.output).toContain("not a key-value pair, group, or comment");
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe("tmpfiles.d and sysctl.d", () => {
  const tmpfiles = inImage("/usr/lib/tmpfiles.d/edgepair.conf");

  test("systemd-tmpfiles creates the agent's directories with the modes the agent enforces", () => {
    const root = mkdtempSync(join(tmpdir(), "ep-tmpfiles-"));
    try {
      const r = run("systemd-tmpfiles", ["--create", `--root=${root}`, tmpfiles]);
      expect(r.output).toBe("");
      expect(r.status).toBe(0);
      const mode = (p: string) => statSync(join(root, p)).mode & 0o7777;
      expect(mode(dirname(VRRP_FIFO_PATH))).toBe(0o755);
      expect(mode("/var/lib/edgepair")).toBe(0o700);
      expect(mode(dirname(HAPROXY_STATS_SOCKET))).toBe(0o755);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  test("systemd-tmpfiles rejects a broken line", () => {
    const dir = mkdtempSync(join(tmpdir(), "ep-tmpfiles-bad-"));
    try {
      const bad = join(dir, "edgepair.conf");
      writeFileSync(bad, read(tmpfiles).replace("0700", "0799"));
      const r = run("systemd-tmpfiles", ["--create", `--root=${join(dir, "root")}`, bad]);
      expect(r.status).not.toBe(0);
      expect(r.output).toContain("Invalid mode");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("the neighbour tables hold every Node of a big cluster: 2,000 workers (the load bench) twice over", () => {
    const text = read(inImage("/usr/lib/sysctl.d/60-edgepair-appliance.conf"));
    for (const family of ["ipv4", "ipv6"]) {
      const [t1, t2, t3] = [1, 2, 3].map((i) =>
        Number(new RegExp(`^net\\.${family}\\.neigh\\.default\\.gc_thresh${i} = (\\d+)$`, "m").exec(text)?.[1]),
      );
      // the kernel garbage-collects above gc_thresh2 and refuses new entries at gc_thresh3 (its default: 1,024)
      expect(t1! < t2! && t2! < t3!).toBe(true);
      expect(t3).toBeGreaterThanOrEqual(2 * 2000);
    }
  });

  test("the appliance sysctl keys exist in this kernel (parsed, never applied); an unknown key is rejected", async () => {
    const text = read(inImage("/usr/lib/sysctl.d/60-edgepair-appliance.conf"));
    expect(await checkSysctlText(text, "/proc/sys")).toEqual([]);
    expect(await checkSysctlText(`${text}kernel.panic_on_opps = 1\n`, "/proc/sys")).toEqual([
      expect.stringContaining("kernel.panic_on_opps: no such kernel setting"),
    ]);
  });
});

describe("bootc-image-builder config (images/bib/config.json)", () => {
  const config = read(join(IMAGES, "bib", "config.json"));

  test("uses only keys bib accepts, within its limits", () => {
    expect(checkBibConfig(config)).toEqual({ ok: true, output: "" });
    expect(
      (JSON.parse(config) as { customizations: { filesystem: { mountpoint: string }[] } }).customizations.filesystem[0]
        ?.mountpoint,
    ).toBe("/");
  });

  const bad: [string, unknown, RegExp][] = [
    ["an unknown key", { customizations: { filesystem: [], hostname: "x" } }, /Unrecognized key.*hostname/],
    ["a misspelt size key", { customizations: { filesystem: [{ mountpoint: "/", min_size: "10 GiB" }] } }, /min_size/],
    [
      "/var as a mountpoint",
      { customizations: { filesystem: [{ mountpoint: "/var", minsize: "5 GiB" }] } },
      /\/var itself/,
    ],
    [
      "a symlinked mountpoint",
      { customizations: { filesystem: [{ mountpoint: "/home/data", minsize: "5 GiB" }] } },
      /symlink into \/var/,
    ],
    [
      "kickstart with a user",
      { customizations: { user: [{ name: "core" }], installer: { kickstart: { contents: "text" } } } },
      /cannot be combined/,
    ],
    ["a size that is not one", { customizations: { filesystem: [{ mountpoint: "/", minsize: "ten gigs" }] } }, /size/],
  ];
  test.each(bad)("rejects %s", (_what, doc, message) => {
    const r = checkBibConfig(JSON.stringify(doc));
    expect(r.ok).toBe(false);
    expect(r.output).toMatch(message);
  });
});

describe("the image holds no secret and nothing cluster-specific", () => {
  test("no file of images/ carries an address, a key or a token", () => {
    const files = [
      ...listFiles(ROOTFS).map((p) => inImage(p)),
      join(IMAGES, "Containerfile"),
      join(IMAGES, "bib", "config.json"),
      ...listFiles(join(IMAGES, "selinux")).map((p) => join(IMAGES, "selinux", p)),
    ];
    for (const f of files) {
      const text = read(f);
      expect({ f, ipv4: /\b(?:\d{1,3}\.){3}\d{1,3}\b/.test(text) }).toEqual({ f, ipv4: false });
      expect({
        f,
        secret: /(BEGIN [A-Z ]*PRIVATE KEY|ssh-(ed25519|rsa) AAAA|password\s*[:=]\s*\S)/i.test(text),
      }).toEqual({ f, secret: false });
    }
    // executables are committed executable: COPY keeps the mode
    for (const s of readdirSync(inImage(LIBEXEC)))
      expect(statSync(inImage(`${LIBEXEC}/${s}`)).mode & 0o777).toBe(0o755);
  });
});
