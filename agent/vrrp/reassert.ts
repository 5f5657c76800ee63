/**
 * Keeps the public side in the state VRRP says: the notify script moves the addresses on each transition, and
 * this loop re-applies the platform's floating-IP handler (render/floating-ip.ts) after every transition and
 * periodically, so drift (an address removed by hand, a lost GARP, a cloud API call that failed) is repaired.
 * Failures back off exponentially (bounded) and are reported, never thrown.
 */
import { floatingIpHandler } from "../../render/floating-ip";
import type { KeepalivedState } from "../../render/vrrp-state";
import type { HostFacts, ResolvedSpec } from "../../spec/types";
import type { CommandRunner } from "../apply/reload";

export interface ReassertOptions {
  /** The spec whose files run now, read on every run: a public address removed on day 2 is never put back. */
  spec: () => ResolvedSpec;
  host: HostFacts;
  runner: CommandRunner;
  /** Default 30 s. */
  intervalMs?: number;
  /** Upper bound of the back-off after failures. Default 5 min. */
  maxBackoffMs?: number;
  onResult?: (r: ReassertResult) => void;
}

export interface ReassertResult {
  state: KeepalivedState;
  ok: boolean;
  /** the failing command and its output, when one failed */
  error?: string;
  at: number;
}

export interface Reasserter {
  /** A transition: re-apply now for the new state. */
  transition(state: KeepalivedState): Promise<ReassertResult>;
  stop(): void;
}

const COMMAND_TIMEOUT_MS = 10_000;

export function startReassert(initial: KeepalivedState, opts: ReassertOptions): Reasserter {
  const interval = opts.intervalMs ?? 30_000;
  const maxBackoff = opts.maxBackoffMs ?? 300_000;
  let state = initial;
  let failures = 0;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let running: Promise<ReassertResult> | undefined;

  const once = async (): Promise<ReassertResult> => {
    for (const argv of floatingIpHandler(opts.spec(), opts.host).reassert(state)) {
      const r = await opts.runner(argv, { timeoutMs: COMMAND_TIMEOUT_MS });
      if (r.exitCode !== 0)
        return {
          state,
          ok: false,
          error: `${argv.join(" ")}: ${r.timedOut ? "timed out" : r.output.trim()}`,
          at: Date.now(),
        };
    }
    return { state, ok: true, at: Date.now() };
  };

  const schedule = (ms: number) => {
    if (stopped) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => void run(), ms);
    timer.unref?.();
  };

  const run = async (): Promise<ReassertResult> => {
    // one at a time: a transition during a periodic run waits for it, then runs for the new state
    while (running) await running;
    running = once();
    const r = await running;
    running = undefined;
    failures = r.ok ? 0 : failures + 1;
    opts.onResult?.(r);
    schedule(r.ok ? interval : Math.min(maxBackoff, 1000 * 2 ** Math.min(failures, 16)));
    return r;
  };

  schedule(0);
  return {
    transition(next: KeepalivedState) {
      state = next;
      return run();
    },
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
