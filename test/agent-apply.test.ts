/**
 * agent/apply against the real checkers (haproxy -c, keepalived -t, nft -c, nmcli --offline, firewall-offline-cmd,
 * sh -n) in temporary roots. keepalived -t and nft -c resolve the interfaces the files name, so every checker runs
 * inside one throwaway network namespace that has them (the VM has them for real). Reload commands are recorded,
 * not run: they would act on this machine's daemons.
 */
import { execFileSync } from "node:child_process";
import {
  copyFileSync,
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { constants } from "node:fs";
import fsp = require("node:fs/promises");
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  applyFiles,
  defaultValidators,
  readApplyState,
  sha256,
  spawnRunner,
  APPLY_STATE_FILE,
  type ApplyReport,
  type CommandRunner,
  type Validator,
} from "../agent/apply";
import { isStagedName } from "../agent/apply/write";
import { renderAll } from "../render";
import type { RenderedFile } from "../render/types";
import { keepalivedInterfaces } from "./checkers/keepalived";
import { nftDevices } from "./checkers/nft";
import { createNetns, deleteNetns } from "./checkers/netns";
import { devBackends, devResolved, primaryHost } from "./fixtures/resolved";

const HAPROXY = "/etc/haproxy/haproxy.cfg";
const KEEPALIVED = "/etc/keepalived/keepalived.conf";
const NAT = "/etc/edgepair/nat.nft";
const HANDOFF = "/etc/edgepair/handoff.nft";
const NM_PUBLIC = "/etc/NetworkManager/system-connections/edgepair-public.nmconnection";
const NM_PRIVATE = "/etc/NetworkManager/system-connections/edgepair-private.nmconnection";
const EXTERNAL_ZONE = "/etc/firewalld/zones/external.xml";
const SYSCTL = "/etc/sysctl.d/50-edgepair.conf";
const NOTIFY = "/etc/edgepair/keepalived-notify.sh";

const devTree = (): RenderedFile[] => renderAll({ spec: devResolved, host: primaryHost, backends: devBackends });
/** HAProxy's reload as rendered: systemctl's, then the bounded wait until the monitor URI answers again. */
const haproxyReload = (): string[][] =>
  devTree()
    .find((f) => f.path === HAPROXY)!
    .reload.commands.map((c) => [...c]);

function replaced(files: readonly RenderedFile[], path: string, edit: (content: string) => string): RenderedFile[] {
  return files.map((f) => {
    if (f.path !== path) return f;
    const content = edit(f.content);
    if (content === f.content) throw new Error(`the edit of ${path} changed nothing`);
    return { ...f, content };
  });
}

// ---- one network namespace with the interfaces the dev tree names, for every checker of this file ----

let ns = "";
const inNetns: CommandRunner = (argv, opts) => spawnRunner(["ip", "netns", "exec", ns, ...argv], opts);

beforeAll(() => {
  const tree = devTree();
  const content = (p: string): string => tree.find((f) => f.path === p)?.content ?? "";
  const names = [...new Set([...keepalivedInterfaces(content(KEEPALIVED)), ...nftDevices(content(HANDOFF))])];
  ns = createNetns(names.map((name) => ({ name })));
});

afterAll(() => {
  if (ns) deleteNetns(ns);
});

// ---- a temporary root per test ----

let root = "";
let stateDir = "";

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "ep-apply-"));
  stateDir = join(root, "var/lib/edgepair");
  mkdirSync(join(root, "etc/firewalld"), { recursive: true });
  writeFileSync(join(root, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n");
  writeFileSync(join(root, "etc/group"), "root:x:0:\n");
  // The image's firewalld.conf stays (we render none); without one the offline tool falls back to defaults.
  if (existsSync("/etc/firewalld/firewalld.conf"))
    copyFileSync("/etc/firewalld/firewalld.conf", join(root, "etc/firewalld/firewalld.conf"));
});

afterEach(() => rmSync(root, { recursive: true, force: true }));

const onDisk = (path: string): Buffer => readFileSync(join(root, path));

function everyPath(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isDirectory() ? [p, ...everyPath(p)] : [p];
  });
}

function expectNoLeftovers(): void {
  expect(everyPath(root).filter((p) => isStagedName(p.split("/").pop() ?? ""))).toEqual([]);
  expect(readdirSync(stateDir)).toEqual([APPLY_STATE_FILE]);
}

// ---- reloads are recorded; a command can be made to fail ----

interface Recorder {
  runner: CommandRunner;
  calls: string[][];
  failing: Set<string>;
}

function recorder(): Recorder {
  const calls: string[][] = [];
  const failing = new Set<string>();
  const runner: CommandRunner = async (argv) => {
    calls.push([...argv]);
    const fail = failing.has(argv.join(" "));
    return { exitCode: fail ? 1 : 0, timedOut: false, output: fail ? "Job for haproxy.service failed" : "" };
  };
  return { runner, calls, failing };
}

/** What each validator saw of its staged candidates when it was called. */
interface Seen {
  path: string;
  staged: string;
  mode: number;
  uid: number;
  content: string;
  liveAtCheck: string | undefined;
}

function watchedValidators(seen: Seen[]): Validator[] {
  return defaultValidators({ runner: inNetns }).map((v) => ({
    ...v,
    check: async (candidates, ctx) => {
      for (const c of candidates) {
        const st = lstatSync(c.staged);
        const live = join(root, c.path);
        seen.push({
          path: c.path,
          staged: c.staged,
          mode: st.mode & 0o7777,
          uid: st.uid,
          content: readFileSync(c.staged, "utf8"),
          liveAtCheck: existsSync(live) ? readFileSync(live, "utf8") : undefined,
        });
      }
      return v.check(candidates, ctx);
    },
  }));
}

async function apply(files: readonly RenderedFile[], rec: Recorder, seen: Seen[] = []): Promise<ApplyReport> {
  return applyFiles(files, { root, stateDir, runner: rec.runner, validators: watchedValidators(seen) });
}

const services = (r: ApplyReport): string[] => r.reloads.map((x) => x.service);

describe("applyFiles on the dev tree", () => {
  test("first apply writes every file with its mode and reloads each service once, in render order; a second apply does nothing", async () => {
    const tree = devTree();
    const rec = recorder();
    const seen: Seen[] = [];
    // How each candidate was created: the mode must be final (or narrower) from the first syscall on.
    const opened = jest.spyOn(fsp, "open");
    let first: ApplyReport;
    let openCalls: Parameters<typeof fsp.open>[];
    try {
      first = await apply(tree, rec, seen);
    } finally {
      openCalls = [...opened.mock.calls];
      opened.mockRestore();
    }
    const creations = openCalls
      .filter(([path]) => isStagedName(String(path).split("/").pop() ?? ""))
      .map(([path, flags, mode]) => ({ path: String(path), flags: Number(flags), mode: Number(mode) }));
    const finalMode = (staged: string): number | undefined =>
      staged.startsWith(`${stateDir}/`)
        ? 0o600
        : tree.find((x) =>
            staged.startsWith(join(root, x.path.replace(/[^/]+$/, `.${x.path.split("/").pop() ?? ""}.`))),
          )?.mode;
    // every rendered file once, the state file twice (what is owed before the switch, the result after)
    expect(creations).toHaveLength(tree.length + 2);
    for (const c of creations) {
      const mode = finalMode(c.path);
      expect({
        path: c.path,
        known: mode !== undefined,
        exclusive: (c.flags & constants.O_EXCL) !== 0,
        widerThanFinal: c.mode & ~(mode ?? 0),
      }).toEqual({
        path: c.path,
        known: true,
        exclusive: true,
        widerThanFinal: 0,
      });
    }

    expect(first.rejected).toEqual([]);
    expect(first.heldBack).toEqual([]);
    expect(first.changed).toEqual(tree.map((f) => f.path));
    for (const f of tree) {
      const st = statSync(join(root, f.path));
      expect({ path: f.path, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid }).toEqual({
        path: f.path,
        mode: f.mode,
        uid: 0,
        gid: 0,
      });
      expect(onDisk(f.path).toString("utf8")).toBe(f.content);
    }
    // Every file was checked as the staged candidate: complete, with its final mode, next to its target.
    expect(seen.map((s) => s.path).sort()).toEqual(tree.map((f) => f.path).sort());
    for (const s of seen) {
      const f = tree.find((x) => x.path === s.path);
      expect({
        path: s.path,
        mode: s.mode,
        content: s.content,
        dir: s.staged.slice(0, s.staged.lastIndexOf("/")),
      }).toEqual({
        path: s.path,
        mode: f?.mode,
        content: f?.content,
        dir: join(root, s.path.slice(0, s.path.lastIndexOf("/"))),
      });
    }
    const private0600 = seen.filter((s) => s.path.endsWith(".nmconnection"));
    expect(private0600).toHaveLength(3);
    for (const s of private0600) expect(s.mode & 0o077).toBe(0);

    expect(services(first)).toEqual([
      "sysctl",
      "networkmanager",
      "firewalld",
      "nftables",
      "serviceLb",
      "haproxy",
      "conntrackd",
      "keepalived",
    ]);
    expect(first.reloads.every((r) => r.ok)).toBe(true);
    // Each command once: three keyfiles, two commands each; firewalld's shared `--reload` once for three files.
    expect(rec.calls.filter((c) => c[0] === "firewall-cmd")).toEqual([["firewall-cmd", "--reload"]]);
    expect(first.reloads.find((r) => r.service === "networkmanager")?.commands).toHaveLength(6);
    expect(rec.calls).toEqual(first.reloads.flatMap((r) => r.commands));

    const statePath = join(stateDir, APPLY_STATE_FILE);
    expect(statSync(statePath).mode & 0o777).toBe(0o600);
    const state = await readApplyState(stateDir);
    expect(state.pendingReloads).toEqual([]);
    expect(state.hashes).toEqual(Object.fromEntries(tree.map((f) => [f.path, sha256(onDisk(f.path))])));
    expect(first.hashes).toEqual(state.hashes);
    expectNoLeftovers();

    const again = recorder();
    const second = await apply(devTree(), again);
    expect({ changed: second.changed, reloads: second.reloads, rejected: second.rejected }).toEqual({
      changed: [],
      reloads: [],
      rejected: [],
    });
    expect(second.unchanged).toEqual(tree.map((f) => f.path));
    expect(again.calls).toEqual([]);
    expect(second.hashes).toEqual(first.hashes);
    expectNoLeftovers();
  });

  test("one more api backend rewrites only haproxy.cfg and reloads only haproxy", async () => {
    await apply(devTree(), recorder());
    const api = [...devBackends.api, { name: "192.168.100.13", address: "192.168.100.13" }];
    const grown = renderAll({ spec: devResolved, host: primaryHost, backends: { ...devBackends, api } });
    const rec = recorder();
    const r = await apply(grown, rec);
    expect(r.changed).toEqual([HAPROXY]);
    expect(onDisk(HAPROXY).toString("utf8")).toContain("server 192.168.100.13 192.168.100.13:6443 check");
    expect(rec.calls).toEqual(haproxyReload());
    expect(r.hashes[HAPROXY]).toBe(sha256(onDisk(HAPROXY)));
    expectNoLeftovers();
  });

  test("a broken haproxy.cfg is rejected with haproxy's words, the live one stays, haproxy is not reloaded; another service's valid change still goes live", async () => {
    const good = devTree();
    await apply(good, recorder());
    const liveBefore = onDisk(HAPROXY);
    const broken = replaced(
      replaced(good, HAPROXY, (c) => c.replace("    maxconn 20000\n", "    maxconn 20000\n    bogus-keyword on\n")),
      KEEPALIVED,
      (c) => c.replace(/advert_int [\d.]+/, "advert_int 0.25"),
    );
    const rec = recorder();
    const seen: Seen[] = [];
    const r = await apply(broken, rec, seen);

    expect(r.rejected).toEqual([
      { path: HAPROXY, checker: "haproxy -c", output: expect.stringContaining("bogus-keyword") },
    ]);
    expect(onDisk(HAPROXY).equals(liveBefore)).toBe(true);
    expect(r.hashes[HAPROXY]).toBe(sha256(liveBefore));
    // haproxy -c read the broken candidate while the good file was live.
    const checked = seen.find((s) => s.path === HAPROXY);
    expect(checked?.content).toContain("bogus-keyword");
    expect(checked?.liveAtCheck).toBe(liveBefore.toString("utf8"));

    expect(r.changed).toEqual([KEEPALIVED]);
    expect(onDisk(KEEPALIVED).toString("utf8")).toContain("advert_int 0.25");
    expect(rec.calls).toEqual([["systemctl", "reload", "keepalived.service"]]);
    expectNoLeftovers();
  });

  interface CounterCase {
    checker: string;
    path: string;
    edit: (content: string) => string;
    says: RegExp;
    /** a valid change to another file of the same service: it must be held back */
    sibling?: { path: string; edit: (content: string) => string };
    service: string;
  }

  const comment =
    (prefix: string) =>
    (c: string): string =>
      `${c}${prefix} harmless change\n`;

  const counterCases: CounterCase[] = [
    {
      checker: "keepalived -t",
      path: KEEPALIVED,
      edit: (c) => c.replace("    vrrp_version 3\n", "    vrrp_version 3\n    no_such_keyword 1\n"),
      says: /Unknown keyword 'no_such_keyword'/,
      service: "keepalived",
    },
    {
      checker: "nft -c",
      path: NAT,
      edit: (c) => c.replace("snat to", "snat too"),
      says: /syntax error/i,
      sibling: { path: HANDOFF, edit: comment("#") },
      service: "nftables",
    },
    {
      checker: "nmcli --offline",
      path: NM_PRIVATE,
      edit: (c) => c.replace("method=manual", "method=bogus"),
      says: /ipv4\.method/,
      sibling: { path: NM_PUBLIC, edit: comment("#") },
      service: "networkmanager",
    },
    {
      checker: "firewall-offline-cmd --check-config",
      path: EXTERNAL_ZONE,
      edit: (c) => c.replace("</zone>", '  <service name="no-such-service"/>\n</zone>'),
      says: /no-such-service/,
      service: "firewalld",
    },
    {
      checker: "sysctl keys",
      path: SYSCTL,
      edit: comment("net.ipv4.no_such_setting = 1\n#"),
      says: /net\.ipv4\.no_such_setting: no such kernel setting/,
      service: "sysctl",
    },
    { checker: "sh -n", path: NOTIFY, edit: (c) => `${c}if then\n`, says: /syntax error/i, service: "none" },
  ];

  test.each(counterCases)(
    "$checker rejects a broken $path: nothing of that service is switched or reloaded",
    async (cc) => {
      const good = devTree();
      await apply(good, recorder());
      const before = new Map(good.map((f) => [f.path, onDisk(f.path)]));
      let bad = replaced(good, cc.path, cc.edit);
      if (cc.sibling) bad = replaced(bad, cc.sibling.path, cc.sibling.edit);
      const rec = recorder();
      const r = await apply(bad, rec);

      expect(r.rejected).toEqual([{ path: cc.path, checker: cc.checker, output: expect.stringMatching(cc.says) }]);
      expect(r.heldBack).toEqual(cc.sibling ? [cc.sibling.path] : []);
      expect(r.changed).toEqual([]);
      for (const f of good) expect(onDisk(f.path).equals(before.get(f.path) ?? Buffer.alloc(0))).toBe(true);
      expect(rec.calls).toEqual([]);
      expect(services(r)).not.toContain(cc.service);
      expectNoLeftovers();
    },
  );

  test("a failing reload is reported, not thrown, and retried by the next apply until it succeeds", async () => {
    await apply(devTree(), recorder());
    const api = [...devBackends.api, { name: "192.168.100.13", address: "192.168.100.13" }];
    const grown = renderAll({ spec: devResolved, host: primaryHost, backends: { ...devBackends, api } });

    const failing = recorder();
    failing.failing.add("systemctl reload haproxy.service");
    const r = await apply(grown, failing);
    expect(r.changed).toEqual([HAPROXY]);
    expect(r.reloads).toEqual([
      {
        service: "haproxy",
        commands: haproxyReload(),
        ok: false,
        output: expect.stringContaining("Job for haproxy.service failed"),
      },
    ]);
    expect((await readApplyState(stateDir)).pendingReloads.map((p) => p.service)).toEqual(["haproxy"]);

    // Same input: no file changes, but the reload still owed runs again.
    const retry = recorder();
    const r2 = await apply(grown, retry);
    expect(r2.changed).toEqual([]);
    expect(retry.calls).toEqual(haproxyReload());
    expect(r2.reloads.map((x) => x.ok)).toEqual([true]);
    expect((await readApplyState(stateDir)).pendingReloads).toEqual([]);

    const settled = recorder();
    await apply(grown, settled);
    expect(settled.calls).toEqual([]);
  });

  test("a live file whose mode drifted is rewritten with its mode; leftovers of a crashed apply are removed", async () => {
    await apply(devTree(), recorder());
    chmodSync(join(root, HAPROXY), 0o666);
    const leftover = join(root, "etc/haproxy/.haproxy.cfg.edgepair-new-0123456789ab");
    writeFileSync(leftover, "half written");
    mkdirSync(join(stateDir, ".apply-crashed"));
    const rec = recorder();
    const r = await apply(devTree(), rec);
    expect(r.changed).toEqual([HAPROXY]);
    expect(statSync(join(root, HAPROXY)).mode & 0o777).toBe(0o644);
    expect(existsSync(leftover)).toBe(false);
    expectNoLeftovers();
  });

  test("a service's files go live together or not at all: a rename failing midway puts the group's earlier files back", async () => {
    const first = devTree();
    await apply(first, recorder());
    // every keyfile changes (the NICs' MACs), and the group's last one cannot be switched (a directory stands there)
    const moved = renderAll({
      spec: devResolved,
      host: {
        ...primaryHost,
        publicInterface: { ...primaryHost.publicInterface, mac: "52:54:00:aa:00:01" },
        privateInterface: { ...primaryHost.privateInterface, mac: "52:54:00:aa:00:02" },
      },
      backends: devBackends,
    });
    const group = moved.filter((f) => f.reload.service === moved.find((x) => x.path === NM_PUBLIC)!.reload.service);
    const changedInGroup = group.filter((f) => first.find((x) => x.path === f.path)!.content !== f.content);
    expect(changedInGroup.length).toBeGreaterThanOrEqual(2);
    const blocked = changedInGroup.at(-1)!.path;
    const before = Object.fromEntries(group.map((f) => [f.path, readFileSync(join(root, f.path), "utf8")]));
    // a mount point cannot be renamed over (EBUSY), yet reads fine: only the switch fails, as a full disk or a
    // read-only remount midway would
    const stand = join(root, "stand-in");
    writeFileSync(stand, before[blocked]!);
    execFileSync("mount", ["--bind", stand, join(root, blocked)]);
    let r: ApplyReport;
    try {
      r = await apply(moved, recorder());
    } finally {
      execFileSync("umount", [join(root, blocked)]);
    }
    expect(r.rejected).toEqual([{ path: blocked, checker: "write", output: expect.stringMatching(/EBUSY/) }]);
    expect(r.heldBack).toEqual(expect.arrayContaining(changedInGroup.slice(0, -1).map((f) => f.path)));
    // the earlier files of the group are as they were, so the group is never partly live
    for (const f of changedInGroup.slice(0, -1))
      expect([f.path, readFileSync(join(root, f.path), "utf8")]).toEqual([f.path, before[f.path]]);
    expect(r.changed.filter((p) => group.some((f) => f.path === p))).toEqual([]);
    expect(services(r)).not.toContain(group[0]!.reload.service);
    expectNoLeftovers();
    // counter-case: with the obstacle gone, the same apply switches the whole group
    rmSync(stand);
    const ok = await apply(moved, recorder());
    expect(ok.changed).toEqual(expect.arrayContaining(changedInGroup.map((f) => f.path)));
  });

  test("an owner that does not exist is a rejection naming the file and the owner; an existing one is applied", async () => {
    const tree = devTree().map((f) => (f.path === HAPROXY ? { ...f, owner: "haproxy:haproxy" } : f));
    const rec = recorder();
    const r = await apply(tree, rec);
    expect(r.rejected).toEqual([
      {
        path: HAPROXY,
        checker: "owner",
        output: expect.stringMatching(
          /\/etc\/haproxy\/haproxy\.cfg: owner haproxy:haproxy: user "haproxy" not found in .*etc\/passwd/,
        ),
      },
    ]);
    expect(existsSync(join(root, HAPROXY))).toBe(false);
    expect(services(r)).not.toContain("haproxy");
    expect(r.hashes[HAPROXY]).toBeUndefined();
    expectNoLeftovers();

    writeFileSync(
      join(root, "etc/passwd"),
      "root:x:0:0:root:/root:/bin/sh\nhaproxy:x:188:189::/var/lib/haproxy:/sbin/nologin\n",
    );
    // Fedora bootc keeps system groups in /usr/lib/group (nss-altfiles).
    mkdirSync(join(root, "usr/lib"), { recursive: true });
    writeFileSync(join(root, "usr/lib/group"), "haproxy:x:189:\n");
    const ok = await apply(tree, recorder());
    expect(ok.changed).toEqual([HAPROXY]);
    const st = statSync(join(root, HAPROXY));
    expect({ uid: st.uid, gid: st.gid }).toEqual({ uid: 188, gid: 189 });
  });
});

describe("spawnRunner", () => {
  test("bounds a command in time and reports a missing program without throwing", async () => {
    const started = Date.now();
    const slow = await spawnRunner(["sleep", "10"], { timeoutMs: 200 });
    expect({ exitCode: slow.exitCode, timedOut: slow.timedOut }).toEqual({ exitCode: null, timedOut: true });
    expect(Date.now() - started).toBeLessThan(3000);
    const missing = await spawnRunner(["/nonexistent/edgepair-cmd"], { timeoutMs: 1000 });
    expect(missing.exitCode).toBeNull();
    expect(missing.output).toContain("ENOENT");
    const echoed = await spawnRunner(["cat"], { timeoutMs: 1000, input: "through stdin" });
    expect(echoed).toEqual({ exitCode: 0, timedOut: false, output: "through stdin" });
  });
});
