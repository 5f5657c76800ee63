/**
 * Backend health of the kernel-forwarded frontends (render/service-lb.ts): each backend is probed as its frontend's
 * check says (TCP connect to the NodePort; HTTP to a Service's healthCheckNodePort, which answers 200 only where the
 * Service has a local endpoint), with the spec's healthCheck tuning (interval, rise, fall) shared with HAProxy's.
 * A backend that fails `fall` probes in a row is taken out: its slots in the frontend's map point at the healthy
 * backends; `rise` passes in a row bring it back. The map is rewritten in one nft transaction, never the rule or the
 * table, so established flows (their translation is in conntrack) and every other frontend are untouched.
 *
 * Backends start healthy, as the rendered table has them; after every apply the overlay is written again (the apply
 * replaced the maps). Probes of one address and port are shared by every frontend that uses them.
 */
import { connect } from "node:net";
import { request } from "node:http";
import { slotElements, slotMap, slotTargets, SERVICES_TABLE, type KernelService } from "../../render/service-lb";
import type { HealthCheck } from "../../spec/types";
import type { CommandRunner } from "../apply";

export interface ProbeTarget {
  kind: "tcp" | "http";
  address: string;
  port: number;
  path?: string;
}

/** One probe; resolves true when the backend passed, false otherwise (never rejects). */
export type Prober = (t: ProbeTarget, timeoutMs: number) => Promise<boolean>;

export function probeKey(t: ProbeTarget): string {
  return t.kind === "tcp" ? `tcp ${t.address}:${t.port}` : `http ${t.address}:${t.port}${t.path ?? "/"}`;
}

/** The probe of one backend of a frontend; undefined when its check is none (a UDP NodePort). */
export function probeOf(f: KernelService, b: { address: string; port: number }): ProbeTarget | undefined {
  if (f.check.kind === "none") return undefined;
  if (f.check.kind === "tcp") return { kind: "tcp", address: b.address, port: b.port };
  return { kind: "http", address: b.address, port: f.check.port, path: f.check.path };
}

/** rise/fall counting per probe, HAProxy's way: state flips after `rise` passes or `fall` failures in a row. */
export class HealthTracker {
  private readonly state = new Map<string, { up: boolean; streak: number }>();

  constructor(private readonly o: Pick<HealthCheck, "rise" | "fall">) {}

  isUp(key: string): boolean {
    return this.state.get(key)?.up ?? true;
  }

  /** Records one result; true when the state flipped. */
  observe(key: string, ok: boolean): boolean {
    const s = this.state.get(key) ?? { up: true, streak: 0 };
    if (ok === s.up) s.streak = 0;
    else s.streak++;
    const flip = s.streak >= (s.up ? this.o.fall : this.o.rise);
    if (flip) {
      s.up = !s.up;
      s.streak = 0;
    }
    this.state.set(key, s);
    return flip;
  }

  /** Forgets probes no frontend uses any more. */
  retain(keys: ReadonlySet<string>): void {
    for (const k of [...this.state.keys()]) if (!keys.has(k)) this.state.delete(k);
  }
}

/** The nft transaction that points each frontend's slots at its healthy backends (all of them: the rendered maps). */
export function overlayScript(
  frontends: readonly KernelService[],
  isUp: (f: KernelService, b: { address: string; port: number }) => boolean,
): string {
  const lines: string[] = [];
  for (const f of frontends) {
    if (f.backends.length === 0) continue;
    const targets = slotTargets(f.backends, (b) => isUp(f, b));
    const map = slotMap(f.chain);
    lines.push(`flush map ip ${SERVICES_TABLE} ${map}`);
    lines.push(`add element ip ${SERVICES_TABLE} ${map} { ${slotElements(targets)} }`);
  }
  return lines.length > 0 ? `${lines.join("\n")}\n` : "";
}

/** Probes from this process (the agent on the VM runs in the LB's own network namespace). */
export const localProber: Prober = (t, timeoutMs) =>
  new Promise((resolve) => {
    let settled = false;
    const done = (ok: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    if (t.kind === "tcp") {
      const s = connect({ host: t.address, port: t.port }, () => {
        s.destroy();
        done(true);
      });
      s.on("error", () => done(false));
      timer.unref?.();
      return;
    }
    const req = request({ host: t.address, port: t.port, path: t.path ?? "/", method: "GET", agent: false }, (res) => {
      res.resume();
      done((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 400);
    });
    req.on("error", () => done(false));
    req.end();
  });

export interface ServiceHealthOptions {
  healthCheck: HealthCheck;
  runner: CommandRunner;
  prober?: Prober;
  log: (line: string) => void;
  /** probes in flight at most */
  concurrency?: number;
  /**
   * Probes per second at most (default 200): a round of N probes takes at least N / rate seconds, so 500 Services
   * on 100 Nodes cost the LB a bounded share of its CPU (the data path and VRRP share it) and detection slows instead.
   */
  maxProbesPerSecond?: number;
}

/** The loop: probes every backend each interval, rewrites the maps whose healthy set changed. */
export class ServiceHealth {
  private frontends: KernelService[] = [];
  private tracker: HealthTracker;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private readonly prober: Prober;
  private lastRoundProbes = 0;

  constructor(private readonly o: ServiceHealthOptions) {
    this.tracker = new HealthTracker(o.healthCheck);
    this.prober = o.prober ?? localProber;
  }

  /** The frontends of the table just applied: its maps are as rendered, so the overlay is written again. */
  async applied(frontends: readonly KernelService[], healthCheck: HealthCheck): Promise<void> {
    this.frontends = [...frontends];
    if (healthCheck.rise !== this.o.healthCheck.rise || healthCheck.fall !== this.o.healthCheck.fall)
      this.tracker = new HealthTracker(healthCheck);
    this.o.healthCheck = healthCheck;
    const keys = new Set<string>();
    for (const f of this.frontends)
      for (const b of f.backends) {
        const t = probeOf(f, b);
        if (t) keys.add(probeKey(t));
      }
    this.tracker.retain(keys);
    await this.write(this.frontends.filter((f) => this.anyDown(f)));
    if (!this.timer && !this.stopped) this.schedule();
  }

  /** One round of probes now (tests); resolves when their results are written. */
  async round(): Promise<void> {
    const targets = new Map<string, ProbeTarget>();
    for (const f of this.frontends)
      for (const b of f.backends) {
        const t = probeOf(f, b);
        if (t) targets.set(probeKey(t), t);
      }
    const timeoutMs = Math.max(100, Math.min(this.o.healthCheck.intervalMs, 2000));
    this.lastRoundProbes = targets.size;
    const flipped = new Set<string>();
    const queue = [...targets.entries()];
    const worker = async () => {
      for (let next = queue.shift(); next; next = queue.shift()) {
        const [key, t] = next;
        if (this.tracker.observe(key, await this.prober(t, timeoutMs))) flipped.add(key);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.o.concurrency ?? 64, queue.length) }, worker));
    if (flipped.size === 0 || this.stopped) return;
    for (const k of flipped) this.o.log(`service backends: ${k} is ${this.tracker.isUp(k) ? "up" : "down"}`);
    const touched = this.frontends.filter((f) =>
      f.backends.some((b) => {
        const t = probeOf(f, b);
        return t !== undefined && flipped.has(probeKey(t));
      }),
    );
    await this.write(touched);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  private anyDown(f: KernelService): boolean {
    return f.backends.some((b) => !this.isUp(f, b));
  }

  private isUp(f: KernelService, b: { address: string; port: number }): boolean {
    const t = probeOf(f, b);
    return t === undefined || this.tracker.isUp(probeKey(t));
  }

  private async write(frontends: readonly KernelService[]): Promise<void> {
    const script = overlayScript(frontends, (f, b) => this.isUp(f, b));
    if (!script) return;
    const r = await this.o.runner(["nft", "-f", "-"], { timeoutMs: 10_000, input: script });
    if (r.exitCode !== 0) this.o.log(`service backends: nft -f failed: ${r.output.trim().slice(-300)}`);
  }

  /** The spec's interval, or longer when the last round's probes would exceed the rate. */
  roundPeriodMs(): number {
    const rate = this.o.maxProbesPerSecond ?? 200;
    return Math.max(this.o.healthCheck.intervalMs, Math.ceil((this.lastRoundProbes / rate) * 1000));
  }

  private schedule(): void {
    this.timer = setTimeout(() => {
      this.running = this.round()
        .catch((e: unknown) => this.o.log(`service backends: ${e instanceof Error ? e.message : String(e)}`))
        .finally(() => {
          this.running = undefined;
          if (!this.stopped) this.schedule();
        });
    }, this.roundPeriodMs());
    this.timer.unref?.();
  }
}
