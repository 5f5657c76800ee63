/**
 * `agent run` (agent/run.ts) on a live LB of the lab (real haproxy, keepalived, conntrackd, firewalld in network
 * namespaces) against the real API server fixture, with the agent's least-privilege token only
 * (test/fixtures/agent-on-lab.ts):
 * - a Node added or removed in the cluster shows up in HAProxy's runtime server list (no reload) and in the file;
 * - a LoadBalancer whose spec is invalid changes nothing on disk, and the LB reports it;
 * - every request the agent made was allowed by its Role.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { closeSync, constants, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { join } from "node:path";
import { readServers, RuntimeSocket } from "../agent/haproxy";
import { processStartTime, signal } from "../lab/exec";
import { MERGE } from "./fixtures/agent-cluster";
import { CONTROL_PLANE as CP, startAgentOnLab, type AgentOnLab } from "./fixtures/agent-on-lab";
import { devSpecRaw } from "./fixtures/variants";

jest.setTimeout(240_000);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const suite = process.getuid?.() === 0 ? describe : describe.skip;

suite("agent run on a live LB of the lab, against a real API server", () => {
  let h: AgentOnLab | undefined;
  const lab = () => h!.lab;
  const KEY = () => h!.key;
  const haproxyPid = () => lab().proc(`${KEY()}/haproxy`)!.pid;
  // the agent's own client: it reads the whole dump (lab.haproxyCommand half-closes and may get only a part)
  const runtimeServers = async () =>
    (await readServers(new RuntimeSocket(h!.haproxySocket()))).map((s) => `${s.backend} ${s.name}`);
  const haproxyCfg = () => readFileSync(join(lab().renderedRoot(KEY()), "etc/haproxy/haproxy.cfg"), "utf8");
  const treeHash = () => {
    const hash = createHash("sha256");
    for (const p of [
      "etc/haproxy/haproxy.cfg",
      "etc/keepalived/keepalived.conf",
      "etc/edgepair/handoff.nft",
      "etc/NetworkManager/system-connections/edgepair-fip.nmconnection",
    ]) {
      hash.update(readFileSync(join(lab().renderedRoot(KEY()), p)));
    }
    return hash.digest("hex");
  };

  beforeAll(async () => {
    h = await startAgentOnLab();
  }, 300_000);

  afterAll(async () => {
    await h?.stop();
  }, 120_000);

  test("the first desired state equals the bootstrap render: nothing written, nothing reloaded; the LB reports itself", async () => {
    for (let i = 0; i < 100; i++) {
      const lb = (await h!.cluster.must("GET", h!.cluster.lbPath)).body as {
        status?: { loadBalancers?: { name: string; configHashes?: Record<string, string>; vrrpState?: string }[] };
      };
      const me = lb.status?.loadBalancers?.find((e) => e.name === lab().state.hostFacts[KEY()]!.hostname);
      if (me?.configHashes?.all) {
        expect(["Master", "Backup"]).toContain(me.vrrpState);
        break;
      }
      if (i === 99) throw new Error(`no status entry with configHashes.all; agent log:\n${h!.log.join("\n")}`);
      await sleep(100);
    }
    expect(h!.reloads).toEqual([]);
  });

  test("a Node added reaches HAProxy's runtime server list without a reload; removed, it leaves again", async () => {
    const pid = haproxyPid();
    // an address no lab host answers on: the runtime list is what is judged, not the health check
    const t0 = Date.now();
    await h!.cluster.putNode("cp-extra", CP, "192.168.100.13");
    let addedMs = -1;
    for (let i = 0; i < 200 && addedMs < 0; i++) {
      if ((await runtimeServers()).some((l) => l === "be_api cp-extra")) addedMs = Date.now() - t0;
      else await sleep(50);
    }
    expect({
      addedMs: addedMs >= 0,
      log: addedMs >= 0 ? "" : `${h!.log.join("\n")}\n${(await runtimeServers()).join("\n")}`,
    }).toEqual({ addedMs: true, log: "" });
    process.stderr.write(`[agent-lab] Node added -> in HAProxy's runtime list: ${addedMs} ms\n`);
    expect(addedMs).toBeLessThan(5000);
    await h!.agent.idle();
    expect(haproxyCfg()).toMatch(/server cp-extra /);
    expect(haproxyPid()).toBe(pid);
    expect(h!.reloads).toEqual([]);

    await h!.cluster.deleteNode("cp-extra");
    let gone = false;
    for (let i = 0; i < 200 && !gone; i++) {
      gone = !(await runtimeServers()).some((l) => l.endsWith(" cp-extra"));
      if (!gone) await sleep(50);
    }
    expect(gone).toBe(true);
    await h!.agent.idle();
    expect(haproxyCfg()).not.toMatch(/server cp-extra /);
    expect(h!.reloads).toEqual([]);
  });

  test("HAProxy's runtime API away while a Node is added: the failed sync is retried with back-off until the server runs (no further change needed)", async () => {
    const sock = h!.haproxySocket();
    const away = `${sock}.away`;
    renameSync(sock, away);
    let restored = false;
    try {
      const from = h!.log.length;
      await h!.cluster.putNode("cp-retry", CP, "192.168.100.15");
      for (
        let i = 0;
        i < 100 && !h!.log.slice(from).some((l) => l.startsWith("reconcile failed") && /retry in \d+ ms/.test(l));
        i++
      )
        await sleep(50);
      expect(h!.log.slice(from).find((l) => l.startsWith("reconcile failed"))).toMatch(/haproxy|ENOENT|socket/i);
      expect(h!.log.slice(from).find((l) => l.startsWith("reconcile failed"))).toMatch(/retry in \d+ ms/);
      await sleep(1500); // a retry or two fail meanwhile
      renameSync(away, sock);
      restored = true;
      const t0 = Date.now();
      for (let i = 0; i < 200 && !(await runtimeServers()).includes("be_api cp-retry"); i++) await sleep(100);
      expect(await runtimeServers()).toContain("be_api cp-retry");
      process.stderr.write(
        `[agent-lab] runtime API back -> the retried server runs: ${Date.now() - t0} ms; failed attempts: ${h!.log.slice(from).filter((l) => l.startsWith("reconcile failed")).length}\n`,
      );
      await h!.agent.idle();
      expect(haproxyCfg()).toMatch(/server cp-retry /);
    } finally {
      if (!restored) renameSync(away, sock);
      await h!.cluster.deleteNode("cp-retry");
    }
    for (let i = 0; i < 100 && (await runtimeServers()).includes("be_api cp-retry"); i++) await sleep(50);
    await h!.agent.idle(); // the file follows the runtime change: the next test reads the tree
    expect(h!.reloads).toEqual([]);
  });

  test("an invalid LoadBalancer spec changes nothing on disk; the LB reports it and keeps the last good one", async () => {
    const before = treeHash();
    await h!.cluster.must(
      "PATCH",
      h!.cluster.lbPath,
      { spec: { virtualAddresses: { api: [{ address: "10.99.0.1", type: "private" }] } } },
      MERGE,
    );
    let reported = false;
    for (let i = 0; i < 100 && !reported; i++) {
      reported = h!.log.some(
        (l) => l.includes("LoadBalancer spec invalid") && l.includes("virtualAddresses.api[0].address"),
      );
      if (!reported) await sleep(50);
    }
    expect(reported).toBe(true);
    await h!.agent.idle();
    expect(treeHash()).toBe(before);
    // an Event on the LoadBalancer names the field, once
    await h!.agent.eventsSent();
    const events = (
      (await h!.cluster.must("GET", `/apis/events.k8s.io/v1/namespaces/${h!.cluster.namespace}/events`)).body as {
        items: { reason: string; note: string; type: string; regarding: { kind: string; name: string } }[];
      }
    ).items.filter((e) => e.reason === "InvalidSpec");
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ type: "Warning", regarding: { kind: "LoadBalancer", name: "lab" } });
    expect(events[0]!.note).toContain("virtualAddresses.api[0].address");
    // the status write follows asynchronously
    let degraded: { status: string; reason: string } | undefined;
    for (let i = 0; i < 100 && degraded?.status !== "True"; i++) {
      const lb = (await h!.cluster.must("GET", h!.cluster.lbPath)).body as {
        status?: {
          loadBalancers?: { name: string; conditions?: { type: string; status: string; reason: string }[] }[];
        };
      };
      const me = lb.status?.loadBalancers?.find((e) => e.name === lab().state.hostFacts[KEY()]!.hostname);
      degraded = me?.conditions?.find((c) => c.type === "Degraded");
      if (degraded?.status !== "True") await sleep(50);
    }
    expect(degraded).toMatchObject({ status: "True" });
    // a Node change meanwhile is served with the last good spec, and the LB still reports the invalid one
    await h!.cluster.putNode("cp-while-invalid", CP, "192.168.100.14");
    for (let i = 0; i < 100 && !(await runtimeServers()).includes("be_api cp-while-invalid"); i++) await sleep(50);
    expect(await runtimeServers()).toContain("be_api cp-while-invalid");
    await h!.agent.idle();
    await sleep(1000); // a status write, if one wrongly cleared the report, has landed by now (heartbeat 500 ms)
    const after = (await h!.cluster.must("GET", h!.cluster.lbPath)).body as {
      status?: { loadBalancers?: { name: string; conditions?: { type: string; status: string }[] }[] };
    };
    const still = after.status?.loadBalancers
      ?.find((e) => e.name === lab().state.hostFacts[KEY()]!.hostname)
      ?.conditions?.find((c) => c.type === "Degraded");
    expect(still?.status).toBe("True");
    await h!.cluster.deleteNode("cp-while-invalid");
    // back to the good spec
    await h!.cluster.must(
      "PATCH",
      h!.cluster.lbPath,
      { spec: { virtualAddresses: (devSpecRaw() as { virtualAddresses: unknown }).virtualAddresses } },
      MERGE,
    );
  });

  test("the agent's VRRP view checked besides the FIFO: a wrong word is corrected from the VIPs; keepalived killed (no notify written) is reported Stop", async () => {
    const me = h!.agents[KEY()]!;
    const entry = async () => {
      const lb = (await h!.cluster.must("GET", h!.cluster.lbPath)).body as {
        status?: { loadBalancers?: { name: string; vrrpState?: string }[] };
      };
      return lb.status?.loadBalancers?.find((e) => e.name === me.hostname)?.vrrpState;
    };
    const until = async (want: string) => {
      let state: string | undefined;
      for (let i = 0; i < 100 && state !== want; i++) {
        state = await entry();
        if (state !== want) await sleep(100);
      }
      return state;
    };
    expect(await until("Master")).toBe("Master");
    // a notify line that is not what keepalived does (a lost or garbled transition): the agent takes BACKUP...
    const from = h!.log.length;
    const fd = openSync(me.fifo, constants.O_WRONLY | constants.O_NONBLOCK);
    writeSync(fd, "BACKUP 100\n");
    closeSync(fd);
    for (let i = 0; i < 100 && !h!.log.slice(from).includes("vrrp: BACKUP"); i++) await sleep(20);
    // ...and the next look at keepalived and the VIPs puts it right (within vrrpRecheckMs, 1 s here)
    for (
      let i = 0;
      i < 100 && !h!.log.slice(from).some((l) => l.startsWith("vrrp: keepalived holds the VIPs as MASTER"));
      i++
    )
      await sleep(50);
    expect(await until("Master")).toBe("Master");
    expect(h!.log.slice(from)).toEqual(
      expect.arrayContaining([
        "vrrp: BACKUP",
        expect.stringMatching(/^vrrp: keepalived holds the VIPs as MASTER, not BACKUP/),
      ]),
    );

    // keepalived and its VRRP and checker children killed at once (systemd would kill the unit's cgroup): no process
    // is left to run a notify script, so only the agent's own look can tell
    const p = lab().proc(`${KEY()}/keepalived`)!;
    const descendants = (pid: number): number[] => {
      const r = spawnSync("pgrep", ["-P", String(pid)], { encoding: "utf8" });
      return r.stdout
        .split("\n")
        .filter(Boolean)
        .map(Number)
        .flatMap((c) => [c, ...descendants(c)]);
    };
    // each with its start time: a check script's child can exit between the listing and the kill (a CI run failed
    // on ESRCH), and its PID must not be taken for another process's
    const all = [p.pid, ...descendants(p.pid)].map((pid) => ({ pid, startTime: processStartTime(pid) ?? "" }));
    expect(all.length).toBeGreaterThanOrEqual(2);
    const killedAt = h!.log.length;
    for (const q of all) signal(q, "SIGKILL");
    expect(await until("Stop")).toBe("Stop");
    expect(h!.log.slice(killedAt)).toEqual(
      expect.arrayContaining([expect.stringMatching(/^vrrp: keepalived is not running, not MASTER/)]),
    );
    // (not started again here: this sandbox's init leaves the killed children as zombies, and keepalived refuses to
    // start beside them; the rest of this file does not need this LB's keepalived)
  });

  test("Events: what the agent did and saw, on the LoadBalancer; never the token", async () => {
    await h!.agent.eventsSent();
    const events = (
      (await h!.cluster.must("GET", `/apis/events.k8s.io/v1/namespaces/${h!.cluster.namespace}/events`)).body as {
        items: { reason: string; reportingInstance: string }[];
      }
    ).items;
    const reasons = new Set(events.map((e) => e.reason));
    // the VRRP test above killed keepalived (Stop) and corrected a wrong word; the invalid spec was refused
    for (const r of ["InvalidSpec", "VrrpStopped"]) expect([r, reasons.has(r)]).toEqual([r, true]);
    expect(JSON.stringify(events)).not.toContain(h!.cluster.token);
  });

  test("every request the agent made was allowed by its Role", () => {
    expect(h!.responses.length).toBeGreaterThan(3);
    expect(h!.responses.filter((r) => r.status === 401 || r.status === 403)).toEqual([]);
  });
});
