/**
 * `edgepair lab up|status|smoke|failover|down` (registered by cli/main.ts) and the sequence of `npm run lab`.
 * Long operations run under a guard: Ctrl-C or SIGTERM tears the lab down before the process exits.
 */
import type { Command } from "commander";
import { join } from "node:path";
import { readSpec } from "../spec/files";
import { Lab, teardown, teardownAll, type Log } from "./lab";
import type { FailoverReport, SmokeResult } from "./lab";

export const DEFAULT_SPEC = join(__dirname, "..", "Pulumi.dev.yaml");

/**
 * Runs `body`; on SIGINT/SIGTERM (or, with `downOnError`, on an error) the lab is torn down first. The handlers are
 * removed afterwards, so a lab that came up stays up when the command returns.
 */
export async function guarded<T>(lab: Lab, log: Log, body: () => Promise<T>, { downOnError = true } = {}): Promise<T> {
  let tearing: Promise<void> | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    if (tearing) return;
    log(`\n${sig}: tearing the lab down`);
    tearing = lab.down().finally(() => process.exit(sig === "SIGINT" ? 130 : 143));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    return await body();
  } catch (e) {
    if (downOnError && !tearing && process.env.EDGEPAIR_LAB_KEEP_ON_ERROR === "1") {
      log(
        `error: ${e instanceof Error ? e.message : String(e)}\nEDGEPAIR_LAB_KEEP_ON_ERROR=1: the lab stays for inspection; \`edgepair lab down\` removes it`,
      );
    } else if (downOnError && !tearing) {
      log(`error: ${e instanceof Error ? e.message : String(e)}\ntearing the lab down`);
      await lab.down();
    }
    throw e;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

export function formatSmoke(results: SmokeResult[]): string {
  return results.map((r) => `  ${r.ok ? "ok  " : "FAIL"} ${r.check}${r.ok ? "" : `: ${r.detail}`}\n`).join("");
}

export function failoverOk(r: FailoverReport): boolean {
  return (
    r.vipMovedMs !== undefined &&
    r.nextHopMovedMs !== undefined &&
    (!r.restored ||
      (r.restored.returningState === "BACKUP" &&
        r.restored.holders.length === 1 &&
        r.restored.holders[0] === r.to &&
        r.restored.failedAfterReturn === 0))
  );
}

export function registerLab(program: Command, out: (s: string) => void): void {
  const log: Log = (l) => out(`${l}\n`);
  const lab = program
    .command("lab")
    .description("network-namespace lab: the pair with real daemons, backends, router, clients (root)");

  lab
    .command("up")
    .description("bring the lab up (prints progress) and wait until one LB is MASTER and every backend is UP")
    .option("--spec <file>", "spec YAML", DEFAULT_SPEC)
    .action(async (o: { spec: string }) => {
      const l = Lab.create(readSpec(o.spec), log);
      await guarded(l, log, () => l.up());
      out(`\n${l.formatStatus(await l.status())}`);
      out(`\nlab ${l.prefix} is up; \`edgepair lab status|smoke|failover|down\` act on it\n`);
    });

  lab
    .command("status")
    .description(
      "per LB: VRRP state, VIPs and next hop held, daemons; HAProxy's view of every backend; the Service frontends the kernel forwards and their NodePort backends",
    )
    .option("--prefix <prefix>", "lab to act on (default: the newest)")
    .option("--json", "machine-readable")
    .action(async (o: { prefix?: string; json?: boolean }) => {
      const l = Lab.load(o.prefix, log);
      const rows = await l.status();
      out(o.json ? `${JSON.stringify(rows, null, 2)}\n` : `lab ${l.prefix}\n${l.formatStatus(rows)}`);
    });

  lab
    .command("smoke")
    .description("client -> API and ingress VIPs; cluster node -> private API VIP and the internet (egress source)")
    .option("--prefix <prefix>", "lab to act on (default: the newest)")
    .action(async (o: { prefix?: string }) => {
      const l = Lab.load(o.prefix, log);
      const r = await l.smoke();
      out(formatSmoke(r));
      if (r.some((x) => !x.ok)) throw new Error("smoke check failed");
    });

  lab
    .command("failover")
    .description("unclean failover: cut every link of the active LB, wait for the peer, then restore the links")
    .option("--prefix <prefix>", "lab to act on (default: the newest)")
    .option("--no-restore", "leave the links of the failed LB cut")
    .action(async (o: { prefix?: string; restore: boolean }) => {
      const l = Lab.load(o.prefix, log);
      const r = await guarded(l, log, () => l.failover({ restore: o.restore }), { downOnError: false });
      out(l.formatFailover(r));
      if (!failoverOk(r)) throw new Error("failover did not complete as expected");
    });

  lab
    .command("down")
    .description("tear down a lab (default: every lab and leftover found by prefix)")
    .option("--prefix <prefix>", "only this lab")
    .action(async (o: { prefix?: string }) => {
      if (o.prefix) {
        const l = (() => {
          try {
            return Lab.load(o.prefix, log);
          } catch {
            return undefined;
          }
        })();
        await (l ? l.down() : teardown({ prefix: o.prefix, processes: [], namespaces: [], mounts: [] }, log));
      } else {
        const done = await teardownAll(log);
        if (done.length === 0) log("no lab found");
      }
    });
}

/** `npm run lab`: up, smoke, one unclean failover, the status table, down (always). Exit code 0 when all passed. */
export async function runLabSequence(
  specPath: string = DEFAULT_SPEC,
  out: (s: string) => void = (s) => process.stdout.write(s),
): Promise<number> {
  const log: Log = (l) => out(`${l}\n`);
  const l = Lab.create(readSpec(specPath), log);
  let ok = true;
  const t0 = Date.now();
  try {
    await guarded(l, log, async () => {
      out("== up\n");
      await l.up();
      out("\n== smoke\n");
      const smoke = await l.smoke();
      out(formatSmoke(smoke));
      ok &&= smoke.every((r) => r.ok);
      out("\n== unclean failover\n");
      const f = await l.failover({ restore: true });
      out(l.formatFailover(f));
      ok &&= failoverOk(f);
      out("\n== status\n");
      out(l.formatStatus(await l.status()));
    });
  } finally {
    out("\n== down\n");
    const td = Date.now();
    await l.down();
    out(
      `down in ${((Date.now() - td) / 1000).toFixed(1)} s; whole sequence ${((Date.now() - t0) / 1000).toFixed(1)} s\n`,
    );
  }
  out(ok ? "\nlab: all checks passed\n" : "\nlab: some checks FAILED\n");
  return ok ? 0 : 1;
}
