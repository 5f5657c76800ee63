/**
 * The agent's VRRP side: the FIFO the notify script writes to (written to exactly as the script does, with dd and
 * O_NONBLOCK), and the floating-IP re-assert loop, run with the real `ip` and `arping` in a throwaway namespace.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnRunner, type CommandRunner } from "../agent/apply/reload";
import { listenVrrpFifo, parseTransition, startReassert, type Transition } from "../agent/vrrp";
import { floatingIpHandler } from "../render/floating-ip";
import { withNetnsAsync } from "./checkers/netns";
import { devResolved, primaryHost } from "./fixtures/resolved";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test("parseTransition takes the notify script's lines and nothing else", () => {
  expect(parseTransition("MASTER 150", 1)).toEqual({ state: "MASTER", priority: 150, at: 1 });
  expect(parseTransition("BACKUP 100\n", 2)?.state).toBe("BACKUP");
  for (const bad of ["", "MASTER", "MASTER x", "MASTER 256", "PRIMARY 100", "MASTER 100 extra", "master 100"])
    expect(parseTransition(bad, 0)).toBeUndefined();
});

test("the FIFO: every transition arrives, from separate writers, without end-of-file; noise is reported, not thrown", async () => {
  const dir = mkdtempSync(join(tmpdir(), "ep-fifo-"));
  const path = join(dir, "edgepair", "vrrp.fifo");
  const got: Transition[] = [];
  const noise: string[] = [];
  const l = listenVrrpFifo(
    path,
    (t) => got.push(t),
    (n) => noise.push(n),
  );
  try {
    // exactly the notify script's write: a new writer per transition, O_NONBLOCK, never waiting for a reader
    const write = (line: string) =>
      execFileSync("sh", ["-c", `printf '%s\\n' "${line}" | dd of=${path} oflag=nonblock status=none`]);
    write("BACKUP 100");
    write("MASTER 100");
    write("garbage here");
    write("FAULT 0");
    for (let i = 0; i < 50 && got.length < 3; i++) await sleep(20);
    expect(got.map((t) => `${t.state} ${t.priority}`)).toEqual(["BACKUP 100", "MASTER 100", "FAULT 0"]);
    expect(noise).toEqual(["garbage here"]);
    expect(execFileSync("stat", ["-c", "%a %F", path]).toString().trim()).toBe("600 fifo");
  } finally {
    l.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("re-assert: each transition runs the handler's commands for the new state; a failure backs off and is reported", async () => {
  const calls: string[] = [];
  let fail = false;
  const runner: CommandRunner = async (argv) => {
    calls.push(argv.join(" "));
    return fail
      ? { exitCode: 2, timedOut: false, output: "RTNETLINK answers: Operation not permitted" }
      : { exitCode: 0, timedOut: false, output: "" };
  };
  const handler = floatingIpHandler(devResolved, primaryHost);
  const r = startReassert("BACKUP", { spec: () => devResolved, host: primaryHost, runner, intervalMs: 60_000 });
  try {
    await sleep(50);
    calls.length = 0;
    expect((await r.transition("MASTER")).ok).toBe(true);
    expect(calls).toEqual(handler.reassert("MASTER").map((c) => c.join(" ")));
    fail = true;
    const failed = await r.transition("BACKUP");
    expect(failed.ok).toBe(false);
    expect(failed.error).toContain("Operation not permitted");
  } finally {
    r.stop();
  }
});

test("re-assert with the real ip in a namespace: MASTER holds the next hop, drift is repaired, BACKUP releases it", async () => {
  const nextHop = devResolved.platform.publicNetwork.nextHop!;
  const dev = primaryHost.publicInterface.name;
  let spec = devResolved;
  await withNetnsAsync(
    [{ name: dev, addresses: ["172.31.250.2/24"] }, { name: primaryHost.privateInterface.name }],
    async (ns) => {
      const inNs: CommandRunner = (argv, opts) => spawnRunner(["ip", "netns", "exec", ns, ...argv], opts);
      const has = () =>
        execFileSync("ip", ["-n", ns, "-4", "-o", "addr", "show", "dev", dev]).toString().includes(`${nextHop}/`);
      const r = startReassert("BACKUP", { spec: () => spec, host: primaryHost, runner: inNs, intervalMs: 200 });
      try {
        expect((await r.transition("MASTER")).ok).toBe(true);
        expect(has()).toBe(true);
        execFileSync("ip", ["-n", ns, "addr", "del", `${nextHop}/24`, "dev", dev]);
        expect(has()).toBe(false);
        for (let i = 0; i < 40 && !has(); i++) await sleep(50);
        expect(has()).toBe(true);
        expect((await r.transition("BACKUP")).ok).toBe(true);
        expect(has()).toBe(false);
        // the running spec changes (a day-2 apply): the loop reads the new one, never the spec it started with
        expect((await r.transition("MASTER")).ok).toBe(true);
        const moved = "172.31.250.11";
        spec = {
          ...devResolved,
          platform: {
            ...devResolved.platform,
            publicNetwork: { ...devResolved.platform.publicNetwork, nextHop: moved },
          },
        };
        execFileSync("ip", ["-n", ns, "addr", "del", `${nextHop}/24`, "dev", dev]);
        const hasMoved = () =>
          execFileSync("ip", ["-n", ns, "-4", "-o", "addr", "show", "dev", dev]).toString().includes(`${moved}/`);
        for (let i = 0; i < 40 && !hasMoved(); i++) await sleep(50);
        expect([hasMoved(), has()]).toEqual([true, false]);
      } finally {
        r.stop();
      }
    },
  );
});
