/**
 * Keeps the image switch driver (driver.ts runSwitch) running for the image the spec asks for, inside `agent run`.
 * A driver run ends idle (nothing to do until the target or the pair changes: looked at again every
 * `idleRecheckMs`), on a timeout (run again), when the host reboots (the loop ends; the agent dies with the host
 * and its next start resumes from status and bootc), or aborted by a new target (the driver restarts for it).
 */
import type { SwitchDeps, SwitchOutcome } from "./driver";
import { runSwitch } from "./driver";

export interface SwitchLoopOptions {
  /** The driver's dependencies for one run towards `target`, aborted by `signal`. */
  deps(target: string, signal: AbortSignal): SwitchDeps;
  log(line: string): void;
  /** After an idle run: e.g. release a keepalived hold no plan will release any more. */
  onIdle?(): Promise<void>;
  /** Default 30 s: an idle pair is cheap to look at (bootc status and one GET). */
  idleRecheckMs?: number;
  /** After a driver run that threw. Default 5 s. */
  retryMs?: number;
  /** Each finished driver run (tests, logs). */
  onOutcome?(target: string, outcome: SwitchOutcome): void;
}

export class ImageSwitchLoop {
  private target: string | undefined;
  private current: AbortController | undefined;
  private loop: Promise<void> | undefined;
  private stopped = false;
  private rebooting = false;

  constructor(private readonly o: SwitchLoopOptions) {}

  /** The image the spec asks for now; a different one aborts the driver run under way and starts one for it. */
  setTarget(target: string): void {
    if (this.stopped || this.rebooting || target === this.target) return;
    const previous = this.target;
    this.target = target;
    if (previous !== undefined) this.o.log(`image switch: target ${previous} -> ${target}`);
    this.current?.abort();
    this.loop ??= this.run().finally(() => (this.loop = undefined));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.current?.abort();
    await this.loop;
  }

  /** Resolves when the loop has ended (stopped, or the host reboots). */
  async ended(): Promise<void> {
    await this.loop;
  }

  private async run(): Promise<void> {
    while (!this.stopped && this.target !== undefined) {
      const target = this.target;
      const ac = new AbortController();
      this.current = ac;
      let outcome: SwitchOutcome;
      try {
        outcome = await runSwitch(this.o.deps(target, ac.signal));
      } catch (e) {
        this.o.log(`image switch: ${e instanceof Error ? e.message : String(e)}`);
        await sleep(this.o.retryMs ?? 5000, ac.signal);
        continue;
      }
      this.o.onOutcome?.(target, outcome);
      if (outcome.errors.length > 0) this.o.log(`image switch: ${outcome.errors.slice(-3).join(" | ")}`);
      switch (outcome.result) {
        case "rebooting":
          this.rebooting = true;
          this.o.log(`image switch: rebooting (${outcome.step?.reason ?? ""})`);
          return;
        case "aborted":
          continue;
        case "idle":
          await this.o.onIdle?.();
          await sleep(this.o.idleRecheckMs ?? 30_000, ac.signal);
          continue;
        case "timeout":
          continue;
      }
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
