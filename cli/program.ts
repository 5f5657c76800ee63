/**
 * The `edgepair` command line (DESIGN.md "Command line") every entry shares: validate, render and the on-VM agent
 * (`agent bootstrap|run`). Entries add their own commands: cli/main.ts (a checkout: the lab too) and cli/appliance.ts
 * (the LB image's bundle: nothing more). Errors go to stderr as `<field.path>: <rule>`; exit 0 ok, 2 bad input, 1
 * anything else.
 */
import { Command, CommanderError } from "commander";
import { bootstrap } from "../agent/bootstrap";
import { runAgentCommand } from "../agent/main-run";
import { spawnRunner } from "../agent/apply";
import { renderAll, RENDERER_VERSION } from "../render/index";
import { version } from "../package.json";
import { BadInput, EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK } from "./exit";
import { writeTree } from "../agent/apply/write";
import { resolveBackends } from "../spec/backend-list";
import { SpecError, formatProblem } from "../spec/errors";
import { readHost, readSpec } from "../spec/files";
import { NotRedundant, registerStatus } from "./status";

/** More commands for one entry (the lab's, from a checkout). */
export type Register = (p: Command, out: (s: string) => void) => void;

function program(out: (s: string) => void, extra: readonly Register[]): Command {
  const p = new Command("edgepair")
    .description("HA load-balancer and NAT-gateway pair for a private-network cluster")
    .version(`${version} (renderer ${RENDERER_VERSION})`)
    .exitOverride()
    .configureOutput({ writeOut: out, writeErr: (s) => process.stderr.write(s) });

  p.command("validate")
    .description("check a LoadBalancer spec; prints one `<field.path>: <rule>` line per problem")
    .requiredOption("--spec <file>", "spec YAML (bare spec, LoadBalancer resource, or Pulumi stack file)")
    .action((o: { spec: string }) => {
      const spec = readSpec(o.spec);
      out(`ok: ${spec.clusterName} (${spec.distribution}, VRRP router ID ${spec.vrrp.routerId})\n`);
    });

  p.command("render")
    .description("render every file of one LB into DIR, as it lands on the VM")
    .requiredOption("--spec <file>", "spec YAML")
    .requiredOption("--host <file>", "host facts YAML: hostname, role, publicInterface, privateInterface")
    .option("--api-backends <ips>", "comma-separated API backend addresses (default: apiBackend.addresses)")
    .option("--ingress-backends <ips>", "comma-separated ingress backend addresses (default: ingressBackend.addresses)")
    .requiredOption("--out <dir>", "output root")
    .action(async (o: { spec: string; host: string; apiBackends?: string; ingressBackends?: string; out: string }) => {
      const spec = readSpec(o.spec);
      const host = readHost(o.host);
      const files = renderAll({ spec, host, backends: resolveBackends(spec, o) });
      await writeTree(o.out, files);
      for (const f of [...files].sort((a, b) => a.path.localeCompare(b.path))) {
        out(`${f.mode.toString(8).padStart(4, "0")}  ${f.reload.service.padEnd(14)}  ${f.path}\n`);
      }
    });

  const agent = p.command("agent").description("the agent on each LB VM");
  agent
    .command("bootstrap")
    .description(
      "first boot: render from /etc/edgepair/{spec,host,agent}.yaml and the spec's static backends, apply, start the services",
    )
    .option(
      "--root <dir>",
      "filesystem root everything is read from and written under (reloads and systemctl still act on this machine)",
      "/",
    )
    .option("--state-dir <dir>", "the agent's state directory (default: ROOT/var/lib/edgepair)")
    .option("--dry-run", "validate and show what would change; write nothing, start nothing")
    .action(async (o: { root: string; stateDir?: string; dryRun?: boolean }) => {
      const r = await bootstrap({ root: o.root, stateDir: o.stateDir, dryRun: o.dryRun, runner: spawnRunner, out });
      if (r.outcome === "bad-input") throw new BadInput(r.problems);
      if (r.outcome === "failed") throw new Error(`agent bootstrap: ${r.problems.join("\n")}`);
    });

  agent
    .command("run")
    .description("day 2: watch the LoadBalancer and the Nodes, apply changes safely, report status, until SIGTERM")
    .option("--root <dir>", "filesystem root everything is read from and written under", "/")
    .option("--state-dir <dir>", "the agent's state directory (default: ROOT/var/lib/edgepair)")
    .action(async (o: { root: string; stateDir?: string }) => {
      const r = await runAgentCommand({ root: o.root, ...(o.stateDir ? { stateDir: o.stateDir } : {}), out });
      if (r.outcome === "bad-input") throw new BadInput(r.problems);
      if (r.outcome === "no-cluster") out(`${r.message}\n`);
    });

  registerStatus(p, out);
  for (const r of extra) r(p, out);
  return p;
}

/** Runs one command line; resolves with the exit code. */
export async function runProgram(
  argv: string[],
  extra: readonly Register[] = [],
  out: (s: string) => void = (s) => process.stdout.write(s),
): Promise<number> {
  try {
    await program(out, extra).parseAsync(argv, { from: "user" });
    return EXIT_OK;
  } catch (e) {
    return exitCodeOf(e);
  }
}

function exitCodeOf(e: unknown): number {
  if (e instanceof BadInput) {
    process.stderr.write(`${e.lines.join("\n")}\n`);
    return EXIT_BAD_INPUT;
  }
  if (e instanceof SpecError) {
    process.stderr.write(`${e.problems.map(formatProblem).join("\n")}\n`);
    return EXIT_BAD_INPUT;
  }
  if (e instanceof NotRedundant) {
    // the view is printed already; the exit code says it
    process.stderr.write(`edgepair: ${e.message}\n`);
    return EXIT_FAILURE;
  }
  if (e instanceof CommanderError) {
    // help and version are successes; a usage error is bad input
    return e.exitCode === 0 ? EXIT_OK : EXIT_BAD_INPUT;
  }
  process.stderr.write(`edgepair: ${e instanceof Error ? e.message : String(e)}\n`);
  return EXIT_FAILURE;
}
