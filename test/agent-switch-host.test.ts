/**
 * The image switch's effects on a real LB (agent/switch/host.ts, peer-adverts.ts):
 * - the advert probe against a REAL keepalived sending VRRPv3 unicast adverts between two network namespaces this
 *   test creates and deletes, counted by a real nftables table; with keepalived stopped, nothing is seen;
 * - the keepalived hold across a switch reboot and the health gate's wording, through a recording runner: systemd
 *   cannot run in this sandbox, so `systemctl` is what the runner records (and answers from a table).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnRunner, type CommandRunner } from "../agent/apply";
import { ADVERT_PROBE_TABLE, countedAdverts, holdFilePath, lbSwitchHost, probePeerAdverts } from "../agent/switch";
import { run } from "./checkers/run";

jest.setTimeout(60_000);

const root = process.getuid?.() === 0 ? describe : describe.skip;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

root("the advert probe counts a real keepalived's adverts (two namespaces, real nftables)", () => {
  const tag = `${process.pid % 10000}`;
  const nsPeer = `ep-adv-a-${tag}`;
  const nsSelf = `ep-adv-b-${tag}`;
  let dir: string;
  let keepalived: ChildProcess | undefined;
  const inSelf: CommandRunner = (argv, opts) => spawnRunner(["ip", "netns", "exec", nsSelf, ...argv], opts);

  const must = (argv: string[]) => {
    const r = run(argv[0] as string, argv.slice(1));
    if (r.status !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr}`);
  };

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "edgepair-adverts-"));
    must(["ip", "netns", "add", nsPeer]);
    must(["ip", "netns", "add", nsSelf]);
    must(["ip", "-n", nsPeer, "link", "add", "epa", "type", "veth", "peer", "name", "epb", "netns", nsSelf]);
    must(["ip", "-n", nsPeer, "addr", "add", "10.77.0.1/24", "dev", "epa"]);
    must(["ip", "-n", nsSelf, "addr", "add", "10.77.0.2/24", "dev", "epb"]);
    for (const [ns, dev] of [
      [nsPeer, "epa"],
      [nsSelf, "epb"],
    ] as const) {
      must(["ip", "-n", ns, "link", "set", "lo", "up"]);
      must(["ip", "-n", ns, "link", "set", dev, "up"]);
    }
    writeFileSync(
      join(dir, "keepalived.conf"),
      [
        "global_defs {",
        "  router_id adverts_probe",
        "  vrrp_version 3",
        "}",
        "vrrp_instance probe {",
        "  state BACKUP",
        "  interface epa",
        "  virtual_router_id 77",
        "  priority 100",
        "  advert_int 0.1",
        "  unicast_src_ip 10.77.0.1",
        "  unicast_peer {",
        "    10.77.0.2",
        "  }",
        "  virtual_ipaddress {",
        "    10.77.0.100/32",
        "  }",
        "}",
        "",
      ].join("\n"),
    );
  });

  afterAll(() => {
    if (keepalived?.pid) {
      try {
        process.kill(keepalived.pid, "SIGKILL");
      } catch {
        // gone already
      }
    }
    for (const ns of [nsPeer, nsSelf]) {
      run("ip", ["netns", "pids", ns])
        .stdout.split(/\s+/)
        .filter(Boolean)
        .forEach((pid) => run("kill", ["-9", pid]));
      run("ip", ["netns", "del", ns]);
    }
    rmSync(dir, { recursive: true, force: true });
  });

  const startKeepalived = async (): Promise<void> => {
    keepalived = spawn(
      "ip",
      [
        "netns",
        "exec",
        nsPeer,
        "keepalived",
        "--dont-fork",
        "--log-console",
        "--vrrp",
        "-f",
        join(dir, "keepalived.conf"),
        "-p",
        join(dir, "k.pid"),
        "-r",
        join(dir, "v.pid"),
      ],
      { stdio: "ignore" },
    );
    // it becomes MASTER (the only instance) after 3 missed adverts + skew, then advertises every 0.1 s
    for (let i = 0; i < 50; i++) {
      if (run("ip", ["-n", nsPeer, "-o", "addr", "show", "dev", "epa", "to", "10.77.0.100/32"]).stdout.trim() !== "")
        return;
      await sleep(100);
    }
    throw new Error("keepalived did not become MASTER within 5 s");
  };

  test("adverts from the peer are seen; the probe table is gone afterwards, and a stale one is replaced", async () => {
    await startKeepalived();
    // a table left behind by a killed agent (with a rule that would never count) does not fool the next probe
    const stale = run("ip", ["netns", "exec", nsSelf, "nft", "-f", "-"], {
      input: `table ip ${ADVERT_PROBE_TABLE} {\n chain input {\n  type filter hook input priority raw;\n  ip saddr 10.99.99.99 counter\n }\n}\n`,
    });
    expect(stale.status).toBe(0);
    const r = await probePeerAdverts({ runner: inSelf, peer: "10.77.0.1", windowMs: 800 });
    expect(r.seen).toBe(true);
    expect(r.adverts).toBeGreaterThanOrEqual(4); // 8 expected at 0.1 s; scheduling on 2 busy cores loses some
    expect(run("ip", ["netns", "exec", nsSelf, "nft", "list", "tables"]).stdout).not.toContain(ADVERT_PROBE_TABLE);
  });

  test("counter-case: adverts from another source are not the peer's; with keepalived stopped nothing is seen", async () => {
    const other = await probePeerAdverts({ runner: inSelf, peer: "10.77.0.9", windowMs: 500 });
    expect(other).toEqual({ seen: false, adverts: 0 });
    keepalived?.kill("SIGKILL");
    await new Promise((r) => keepalived?.once("exit", r));
    keepalived = undefined;
    await sleep(300); // adverts in flight
    const r = await probePeerAdverts({ runner: inSelf, peer: "10.77.0.1", windowMs: 800 });
    expect(r).toEqual({ seen: false, adverts: 0 });
  });

  test("a bad peer address is refused before nft runs", async () => {
    await expect(probePeerAdverts({ runner: inSelf, peer: "10.77.0", windowMs: 100 })).rejects.toThrow(
      'advert probe: peer must be an IPv4 address, got "10.77.0"',
    );
  });
});

describe("countedAdverts reads nft's JSON", () => {
  test("the counter's packets; a table without a counter is an error", () => {
    const doc = {
      nftables: [
        { metainfo: {} },
        { table: {} },
        { rule: { expr: [{ match: {} }, { counter: { packets: 7, bytes: 280 } }] } },
      ],
    };
    expect(countedAdverts(JSON.stringify(doc))).toBe(7);
    expect(() => countedAdverts(JSON.stringify({ nftables: [{ rule: { expr: [{ match: {} }] } }] }))).toThrow(
      "has no counter",
    );
  });
});

describe("lbSwitchHost: the hold across a switch reboot, services and the gate (recording runner: no systemd here)", () => {
  let dir: string;
  const calls: string[] = [];
  let unitStates: Record<string, string>;
  const runner: CommandRunner = async (argv) => {
    calls.push(argv.join(" "));
    if (argv[0] === "systemctl" && argv[1] === "is-active") {
      const s = unitStates[argv[2] as string] ?? "inactive";
      return { exitCode: s === "active" ? 0 : 3, timedOut: false, output: `${s}\n` };
    }
    return { exitCode: 0, timedOut: false, output: "" };
  };
  const host = () =>
    lbSwitchHost({
      runner,
      stateDir: join(dir, "var/lib/edgepair"),
      vrrpState: async () => "Backup",
      peerAddress: "192.168.100.2",
      advertIntervalSeconds: 0.1,
      haproxySocket: join(dir, "none.sock"),
    });

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "edgepair-switch-host-"));
    calls.length = 0;
    unitStates = { "firewalld.service": "active", "haproxy.service": "active", "conntrackd.service": "active" };
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test("reboot writes the hold (0600) before systemctl reboot; starting keepalived removes it first", async () => {
    const h = host();
    const hold = holdFilePath(join(dir, "var/lib/edgepair"));
    await h.reboot();
    expect(existsSync(hold)).toBe(true);
    expect(statSync(hold).mode & 0o777).toBe(0o600);
    expect(readFileSync(hold, "utf8")).toContain("image switch");
    expect(calls).toEqual(["systemctl reboot"]);
    await h.keepalived.start();
    expect(existsSync(hold)).toBe(false);
    expect(calls).toEqual(["systemctl reboot", "systemctl start keepalived.service"]);
  });

  test("services up needs firewalld, haproxy and conntrackd, never keepalived (held across the switch)", async () => {
    expect(await host().servicesUp()).toBe(true);
    expect(calls.some((c) => c.includes("keepalived"))).toBe(false);
    unitStates["conntrackd.service"] = "failed";
    expect(await host().servicesUp()).toBe(false);
  });

  test("the gate names every failure: a unit down and HAProxy's socket silent", async () => {
    unitStates["haproxy.service"] = "inactive";
    const g = await host().healthGate();
    expect(g.ok).toBe(false);
    expect(g.failures[0]).toBe("haproxy.service is inactive");
    expect(g.failures[1]).toMatch(/^HAProxy's admin socket does not answer/);
  });
});
