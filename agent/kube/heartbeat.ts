/**
 * When a peer's heartbeat last changed, on this LB's own clock: the peer's timestamps are trusted once (at first
 * sight, never into the future), after that only the moment a new value is seen counts, so clock skew between the
 * two VMs can neither fake a live peer nor a dead one.
 */
export class HeartbeatClock {
  private readonly seen = new Map<string, { heartbeat: string; at: number }>();

  /** Records what `name` reports now; returns the ms since its heartbeat last changed. */
  observe(name: string, heartbeat: string, nowMs: number): number {
    const prev = this.seen.get(name);
    if (!prev) {
      const stamped = Date.parse(heartbeat);
      this.seen.set(name, { heartbeat, at: Math.min(nowMs, Number.isNaN(stamped) ? nowMs : stamped) });
    } else if (prev.heartbeat !== heartbeat) {
      this.seen.set(name, { heartbeat, at: nowMs });
    }
    return this.ageMs(name, nowMs);
  }

  /** ms since `name`'s heartbeat last changed; large when never seen. */
  ageMs(name: string, nowMs: number): number {
    return nowMs - (this.seen.get(name)?.at ?? 0);
  }

  /** Forgets every name not in `present` (an entry that left the status). */
  keepOnly(present: readonly string[]): void {
    for (const name of [...this.seen.keys()]) if (!present.includes(name)) this.seen.delete(name);
  }
}
