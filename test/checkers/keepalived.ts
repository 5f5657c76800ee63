/**
 * keepalived.conf checks.
 * - checkKeepalived: `keepalived -t` (config test) in a throwaway netns that has every interface the file names,
 *   since a missing interface is an error. keepalived -t also fails on warnings (e.g. tracking its own interface).
 * - runKeepalived: keepalived for real, for a few seconds, in a netns plus a private mount namespace: /run is a
 *   tmpfs and /etc an overlay whose upper layer holds the rendered files at their real paths, so script security
 *   (root-owned, not writable by others, along the whole path) and the notify script are exercised exactly as on
 *   the VM, without writing to the host's /etc.
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { RenderedFile } from "../../render/types";
import { withNetns, type WantedInterface } from "./netns";
import { run } from "./run";
import type { CheckResult } from "./run";

const KEEPALIVED_CONF = "/etc/keepalived/keepalived.conf";

/** Interface names a keepalived.conf refers to: `interface X`, `dev X`, and the track_interface block. */
export function keepalivedInterfaces(content: string): string[] {
  const names = new Set<string>();
  let inTrack = false;
  for (const raw of content.split("\n")) {
    const line = raw.replace(/#.*/, "").trim();
    if (inTrack) {
      if (line === "}") inTrack = false;
      else if (line) names.add(line.split(/\s+/)[0] ?? "");
      continue;
    }
    if (/^track_interface\s*{$/.test(line)) inTrack = true;
    const itf = /^interface\s+(\S+)/.exec(line);
    if (itf?.[1]) names.add(itf[1]);
    for (const m of line.matchAll(/\bdev\s+(\S+)/g)) if (m[1]) names.add(m[1]);
  }
  names.delete("");
  return [...names].sort();
}

export function checkKeepalived(content: string): CheckResult {
  const dir = mkdtempSync(join(tmpdir(), "ep-keepalived-"));
  try {
    const cfg = join(dir, "keepalived.conf");
    writeFileSync(cfg, content);
    return withNetns(
      keepalivedInterfaces(content).map((name) => ({ name })),
      (ns) => {
        const r = run("ip", ["netns", "exec", ns, "keepalived", "-t", "-f", cfg, "-l", "-D"]);
        return { ok: r.status === 0, output: r.output };
      },
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface KeepalivedRun {
  /** keepalived's console log */
  log: string;
  /** `ip -o addr` while keepalived ran, and after it stopped */
  addressesRunning: string;
  addressesStopped: string;
  /** lines the notify script wrote to the agent's FIFO */
  fifo: string;
  /** each HAProxy check's start and end (epoch ms, PID, curl's exit status) */
  checks: string;
  /** everything the run printed, for failure messages */
  output: string;
}

export interface RunOptions {
  interfaces: WantedInterface[];
  /** answer HAProxy's monitor URI here (address, port, path), so the HAProxy check passes */
  healthy?: { address: string; port: number; path: string };
  /** upper bound of the run before keepalived is stopped */
  seconds: number;
  /** stop as soon as the notify script has written this state to the agent's FIFO (e.g. "MASTER") */
  until?: string;
  /**
   * After `until` (or `seconds`), before keepalived stops: shell commands and how long they may take. They see $web
   * (the monitor server's PID), $fifo (what the notify script wrote so far) and $stall (a file: while it holds a
   * number, every new HAProxy check sleeps that many seconds before curl starts, as on a VM whose vCPUs the host does
   * not run).
   */
  then?: { script: string; seconds: number };
}

/** Runs keepalived with the rendered files (keepalived.conf, notify script) at their real paths. */
export function runKeepalived(files: readonly RenderedFile[], opts: RunOptions): KeepalivedRun {
  const dir = mkdtempSync(join(tmpdir(), "ep-keepalived-run-"));
  try {
    const upper = join(dir, "upper");
    const work = join(dir, "work");
    mkdirSync(work);
    chmodSync(dir, 0o755);
    for (const f of files) {
      if (!f.path.startsWith("/etc/")) continue;
      const target = join(upper, f.path.slice("/etc/".length));
      mkdirSync(dirname(target), { recursive: true, mode: 0o755 });
      writeFileSync(target, f.content, { mode: f.mode });
      chmodSync(target, f.mode);
    }
    mkdirSync(upper, { recursive: true });
    chmodSync(upper, 0o755);
    const www = join(dir, "www");
    if (opts.healthy) {
      mkdirSync(join(www, dirname(opts.healthy.path)), { recursive: true });
      writeFileSync(join(www, opts.healthy.path), "ok\n");
    }
    // The check's curl, made stallable: /usr/bin/curl (the path keepalived.conf names and script security checks)
    // is, in this mount namespace only, a wrapper that sleeps for the number in $stall, then runs the real curl.
    const stall = join(dir, "stall");
    const stalled = join(dir, "stalled-curl");
    const checks = join(dir, "checks");
    writeFileSync(
      stalled,
      [
        "#!/bin/sh",
        `d=$(cat ${stall} 2>/dev/null || true)`,
        `echo "$(date +%s%3N) start $$" >>${checks}`,
        '[ -z "$d" ] || sleep "$d"',
        `${join(dir, "real-curl")} "$@"; rc=$?`,
        `echo "$(date +%s%3N) end $$ exit $rc" >>${checks}`,
        "exit $rc",
        "",
      ].join("\n"),
      { mode: 0o755 },
    );
    const logFile = join(dir, "keepalived.log");
    const fifoOut = join(dir, "fifo.out");
    const script = [
      "set -e",
      "mount -t tmpfs tmpfs /run",
      `mount -t overlay overlay -o lowerdir=/etc,upperdir=${upper},workdir=${work} /etc`,
      "mkdir -p /run/edgepair && mkfifo /run/edgepair/vrrp.fifo",
      `cp /usr/bin/curl ${join(dir, "real-curl")} && mount --bind ${stalled} /usr/bin/curl && stall=${stall} fifo=${fifoOut}`,
      // The agent's way of reading: open read-write, so the reader never sees end-of-file between writers.
      `exec 3<>/run/edgepair/vrrp.fifo; cat <&3 >${fifoOut} & reader=$!; exec 3<&-`,
      opts.healthy
        ? `python3 -m http.server --bind ${opts.healthy.address} --directory ${www} ${opts.healthy.port} >/dev/null 2>&1 & web=$!`
        : "web=",
      `keepalived -n -l -D -f ${KEEPALIVED_CONF} -p /run/keepalived.pid -r /run/vrrp.pid >${logFile} 2>&1 & ka=$!`,
      opts.until
        ? `i=0; while [ $i -lt ${opts.seconds * 10} ] && ! grep -q '^${opts.until} ' ${fifoOut}; do sleep 0.1; i=$((i+1)); done`
        : `sleep ${opts.seconds}`,
      opts.then?.script ?? ":",
      "echo '--- running'; ip -o addr show",
      "kill -TERM $ka; wait $ka || true",
      "sleep 1", // the STOP notify runs after keepalived exits
      "echo '--- stopped'; ip -o addr show",
      "kill $reader ${web:+$web} 2>/dev/null || true",
    ].join("\n");
    const r = withNetns(opts.interfaces, (ns) =>
      run("ip", ["netns", "exec", ns, "unshare", "-m", "--propagation", "private", "sh", "-c", script], {
        timeoutMs: (opts.seconds + (opts.then?.seconds ?? 0) + 15) * 1000,
      }),
    );
    const out = r.stdout;
    const log = readIfExists(logFile);
    const fifo = readIfExists(fifoOut);
    const checksRead = readIfExists(checks);
    return {
      log,
      addressesRunning: between(out, "--- running", "--- stopped"),
      addressesStopped: between(out, "--- stopped", undefined),
      fifo,
      checks: checksRead,
      output: `${r.output}\n--- keepalived log\n${log}\n--- fifo\n${fifo}\n--- checks (epoch ms)\n${checksRead}`,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function readIfExists(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

function between(text: string, start: string, end: string | undefined): string {
  const from = text.indexOf(start);
  if (from < 0) return "";
  const to = end === undefined ? -1 : text.indexOf(end, from);
  return text.slice(from + start.length, to < 0 ? undefined : to);
}
