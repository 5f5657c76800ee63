/**
 * `edgepair agent bootstrap`: the first boot of an LB VM, before the cluster API answers. The spec, host facts and
 * agent settings cloud-init wrote -> backends from the spec's static addresses -> the same renderers as the Pulumi
 * program -> the validated, atomic apply (agent/apply) -> the daemons started in dependency order (services.ts).
 *
 * Bad input stops it before anything is written. Every step is idempotent: a second run finds every file, directory
 * and daemon in place and changes nothing, restarts nothing. A file a checker rejects stops it before any daemon is
 * started (on a first boot there is no last good file to run on). It prints a progress table and never a secret:
 * secret files are only looked at for their mode, never read.
 */
import type { Stats } from "node:fs";
import { chmod, lstat, mkdir, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { renderAll, RENDERER_VERSION } from "../render/index";
import { hasPrivateServiceAddresses, kernelServices, privateServiceAddresses } from "../render/service-lb";
import { syncServiceAddresses } from "./service-lb/addresses";
import { VRRP_FIFO_PATH } from "../render/notify";
import type { RenderedFile } from "../render/types";
import { AGENT_SECRET_DEFAULTS } from "../spec/agent-settings";
import { resolveBackends } from "../spec/backend-list";
import { formatProblem, SpecError } from "../spec/errors";
import {
  applyFiles,
  defaultValidators,
  spawnRunner,
  type ApplyReport,
  type CommandRunner,
  type Validator,
} from "./apply";
import { isUpToDate, readLive, resolveOwner } from "./apply/write";
import { readAgentConfig, type AgentConfig, type ConfigReading } from "./config";
import { BOOTSTRAP_UNITS, deferReloadsOfStopped, ensureRunning, plannedStart } from "./services";

/** The agent's own state (the apply state file), under the root. */
export const DEFAULT_STATE_DIR = "/var/lib/edgepair";
export const CONFIG_DIR = "/etc/edgepair";
/** Where the default secret files live: readable by root only, whatever mode cloud-init created it with. */
export const SECRETS_DIR = dirname(AGENT_SECRET_DEFAULTS.tokenFile);
export const RUN_DIR = dirname(VRRP_FIFO_PATH);

const DIRECTORIES: readonly { path: string; mode: number }[] = [
  { path: CONFIG_DIR, mode: 0o755 },
  // cloud-init creates it as a parent of the secret files with its default mode (0755): tightened here.
  { path: SECRETS_DIR, mode: 0o700 },
  { path: RUN_DIR, mode: 0o755 },
];

/** keepalived's notify script writes "<STATE> <PRIORITY>" lines here for the running agent; root only. */
const FIFO_MODE = 0o600;
const SECRET_MODE = 0o600;
/** Lines of a checker's or a command's output shown per problem: enough to act on, not a flood. */
const OUTPUT_LINES = 20;

export interface BootstrapOptions {
  /** "/" on the VM; every path (config, rendered files, directories, FIFO) is taken under it */
  root: string;
  /** default ROOT/var/lib/edgepair */
  stateDir?: string;
  /** read, validate, render and show what would change; write nothing, start nothing */
  dryRun?: boolean;
  /** runs systemctl and the reload commands */
  runner: CommandRunner;
  /** default: the VM's checkers (defaultValidators) run by `runner` */
  validators?: readonly Validator[];
  /** where the progress table goes (stdout in the CLI) */
  out: (text: string) => void;
}

export interface StepRow {
  step: string;
  result: string;
  /** null: no time of its own (a reload, timed within the apply; a line of a plan) */
  ms: number | null;
  ok: boolean;
}

export type BootstrapResult =
  | { outcome: "ok"; steps: StepRow[] }
  /** the input files are wrong: `<file>: <field.path>: <rule>` lines; nothing was written */
  | { outcome: "bad-input"; steps: StepRow[]; problems: string[] }
  | { outcome: "failed"; steps: StepRow[]; problems: string[] };

const STEP_WIDTH = 26;
const RESULT_WIDTH = 62;

/** Rows printed as each step ends, so a slow start shows where it is. */
class ProgressTable {
  readonly rows: StepRow[] = [];
  private headed = false;

  constructor(private readonly out: (text: string) => void) {}

  row(step: string, result: string, ms: number | null, ok = true): void {
    if (!this.headed) {
      this.out(`${"step".padEnd(STEP_WIDTH)}${"result".padEnd(RESULT_WIDTH)}${"ms".padStart(6)}\n`);
      this.headed = true;
    }
    const rounded = ms === null ? null : Math.round(ms);
    this.rows.push({ step, result, ms: rounded, ok });
    this.out(
      `${step.padEnd(STEP_WIDTH - 1)} ${result.padEnd(RESULT_WIDTH - 1)} ${String(rounded ?? "-").padStart(6)}\n`,
    );
  }

  /** Runs `body` and prints its row; `body` says the result text and whether it went well. */
  async step<T>(step: string, body: () => Promise<{ value: T; result: string; ok?: boolean }>): Promise<T> {
    const started = performance.now();
    const r = await body();
    this.row(step, r.result, performance.now() - started, r.ok ?? true);
    return r.value;
  }
}

function clip(output: string): string[] {
  const lines = output
    .trim()
    .split("\n")
    .filter((l) => l.trim() !== "");
  const shown = lines.slice(0, OUTPUT_LINES).map((l) => `    ${l}`);
  if (lines.length > OUTPUT_LINES) shown.push(`    ... ${lines.length - OUTPUT_LINES} more lines`);
  return shown;
}

function message(err: unknown): string {
  if (err instanceof SpecError) return err.problems.map(formatProblem).join("; ");
  return err instanceof Error ? err.message : String(err);
}

// ---- directories and the FIFO ----

type FsChange = "in place" | "created" | "chmod" | "replaced";

async function lstatOrUndefined(path: string): Promise<Stats | undefined> {
  try {
    return await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

/** What `ensureDirectory` would do; throws when the path is something other than a directory. */
async function directoryChange(path: string, mode: number): Promise<FsChange> {
  const st = await lstatOrUndefined(path);
  if (!st) return "created";
  if (!st.isDirectory()) throw new Error(`${path}: exists and is not a directory`);
  return (st.mode & 0o7777) === mode ? "in place" : "chmod";
}

async function ensureDirectory(path: string, mode: number): Promise<FsChange> {
  const change = await directoryChange(path, mode);
  if (change === "created") await mkdir(path, { recursive: true, mode });
  // mkdir's mode passes through the umask; the mode we promise must not.
  if (change !== "in place") await chmod(path, mode);
  return change;
}

async function fifoChange(path: string): Promise<FsChange> {
  const st = await lstatOrUndefined(path);
  if (!st) return "created";
  if (st.isDirectory()) throw new Error(`${path}: is a directory, not a FIFO`);
  if (!st.isFIFO()) return "replaced";
  return (st.mode & 0o7777) === FIFO_MODE ? "in place" : "chmod";
}

/** Node has no mkfifo(3): coreutils' mkfifo makes it, with its mode from the start. */
async function ensureFifo(path: string): Promise<FsChange> {
  const change = await fifoChange(path);
  if (change === "replaced") await rm(path, { force: true });
  if (change === "created" || change === "replaced") {
    const r = await spawnRunner(["mkfifo", "-m", FIFO_MODE.toString(8), path], { timeoutMs: 10_000 });
    if (r.exitCode !== 0) throw new Error(`mkfifo ${path}: ${r.output.trim()}`);
  }
  if (change !== "in place") await chmod(path, FIFO_MODE);
  const st = await lstat(path);
  if (!st.isFIFO()) throw new Error(`${path}: not a FIFO after mkfifo`);
  return change;
}

const octal = (mode: number): string => mode.toString(8).padStart(4, "0");

/** "created X 0700" after the fact, "create X 0700" in a dry run. */
function changeWords(change: Exclude<FsChange, "in place">, path: string, mode: number, would: boolean): string {
  switch (change) {
    case "created":
      return `${would ? "create" : "created"} ${path} ${octal(mode)}`;
    case "chmod":
      return `chmod ${octal(mode)} ${path}`;
    case "replaced":
      return `${would ? "replace" : "replaced"} a non-FIFO at ${path} (${octal(mode)})`;
  }
}

function describeChanges(changes: readonly { path: string; mode: number; change: FsChange }[], would: boolean): string {
  const done = changes.flatMap((c) => (c.change === "in place" ? [] : [changeWords(c.change, c.path, c.mode, would)]));
  if (done.length === 0) return "in place";
  return `${would ? "would " : ""}${done.join("; ")}`;
}

// ---- secret files: mode only, never content ----

function secretPaths(config: AgentConfig): string[] {
  const s = config.settings;
  return [...(s.cluster ? [s.cluster.tokenFile] : []), s.metricsPasswordFile, s.registryAuthFile];
}

/** Secret files cloud-init delivered are root-only (0600 or narrower); a wider one is narrowed. Absent is fine: some arrive later. */
async function checkSecretFiles(
  root: string,
  paths: readonly string[],
  dryRun: boolean,
): Promise<{ result: string; ok: boolean }> {
  let present = 0;
  const notes: string[] = [];
  let ok = true;
  for (const path of paths) {
    const st = await lstatOrUndefined(join(root, path));
    if (!st) continue;
    present++;
    if (!st.isFile()) {
      notes.push(`${path} is not a regular file`);
      ok = false;
      continue;
    }
    if ((st.mode & 0o077) !== 0) {
      if (!dryRun) await chmod(join(root, path), SECRET_MODE);
      notes.push(`${dryRun ? "would narrow" : "narrowed"} ${path} to 0600`);
    }
  }
  return { result: [`${present} of ${paths.length} present`, ...notes].join("; "), ok };
}

// ---- the run ----

function rejectionProblems(report: ApplyReport): string[] {
  const lines: string[] = [];
  if (report.rejected.length > 0) {
    lines.push(`${report.rejected.length} file(s) rejected (the live file, if any, stays); no service started:`);
    for (const r of report.rejected) lines.push(`  ${r.path}: ${r.checker}`, ...clip(r.output));
  }
  if (report.heldBack.length > 0)
    lines.push(`held back with a rejected file of the same service: ${report.heldBack.join(", ")}`);
  for (const r of report.reloads.filter((x) => !x.ok)) {
    lines.push(`reload of ${r.service} failed (retried by the next run); no service started:`, ...clip(r.output));
  }
  return lines;
}

async function plannedFiles(
  files: readonly RenderedFile[],
  root: string,
): Promise<{ write: string[]; unchanged: number; unknownOwner: string[] }> {
  const write: string[] = [];
  const unknownOwner: string[] = [];
  let unchanged = 0;
  for (const f of files) {
    let ids;
    try {
      ids = await resolveOwner(f.owner, root);
    } catch (err) {
      unknownOwner.push(`${f.path}: owner ${f.owner}: ${message(err)}`);
      continue;
    }
    if (isUpToDate(await readLive(join(root, f.path)), f.content, f.mode, ids)) unchanged++;
    else write.push(f.path);
  }
  return { write, unchanged, unknownOwner };
}

export async function bootstrap(opts: BootstrapOptions): Promise<BootstrapResult> {
  const { root, runner } = opts;
  const dryRun = opts.dryRun ?? false;
  const table = new ProgressTable(opts.out);

  const reading = await table.step<ConfigReading>("read config", async () => {
    const r = await readAgentConfig(root);
    if (!r.ok) return { value: r, result: `invalid: ${r.problems.length} problem(s)`, ok: false };
    const { spec, host } = r.config;
    return { value: r, result: `${spec.clusterName} (${spec.distribution}), ${host.role} ${host.hostname}` };
  });
  if (!reading.ok) return { outcome: "bad-input", steps: table.rows, problems: reading.problems };
  const config = reading.config;

  let files: RenderedFile[];
  try {
    files = await table.step("render", async () => {
      const backends = resolveBackends(config.spec, {});
      const rendered = renderAll({ spec: config.spec, host: config.host, backends });
      return {
        value: rendered,
        result: `${rendered.length} files, ${backends.api.length} API + ${backends.ingress.length} ingress backends (renderer ${RENDERER_VERSION})`,
      };
    });
  } catch (err) {
    table.row("render", "failed", null, false);
    return failed(table, [`render: ${message(err)}`]);
  }

  const dirs = DIRECTORIES.map((d) => ({ ...d, target: join(root, d.path) }));
  const fifo = join(root, VRRP_FIFO_PATH);
  if (dryRun) return dryRunPlan(opts, table, config, files, dirs, fifo);

  try {
    await table.step("directories", async () => {
      const changes = [];
      for (const d of dirs)
        changes.push({ path: d.path, mode: d.mode, change: await ensureDirectory(d.target, d.mode) });
      return { value: undefined, result: describeChanges(changes, false) };
    });
    await table.step("vrrp fifo", async () => ({
      value: undefined,
      result: describeChanges([{ path: VRRP_FIFO_PATH, mode: FIFO_MODE, change: await ensureFifo(fifo) }], false),
    }));
    await table.step("secret files", async () => ({
      value: undefined,
      ...(await checkSecretFiles(root, secretPaths(config), false)),
    }));
  } catch (err) {
    table.row("prepare", "failed", null, false);
    return failed(table, [message(err)]);
  }

  const deferring = deferReloadsOfStopped(runner, files);
  let report: ApplyReport;
  try {
    report = await table.step("apply", async () => {
      const r = await applyFiles(files, {
        root,
        stateDir: opts.stateDir ?? join(root, DEFAULT_STATE_DIR),
        runner: deferring.runner,
        validators: opts.validators ?? defaultValidators({ runner }),
      });
      const parts = [`${r.changed.length} written`, `${r.unchanged.length} unchanged`];
      if (r.rejected.length > 0) parts.push(`${r.rejected.length} rejected`);
      if (r.heldBack.length > 0) parts.push(`${r.heldBack.length} held back`);
      return { value: r, result: parts.join(", "), ok: r.rejected.length === 0 && r.heldBack.length === 0 };
    });
  } catch (err) {
    table.row("apply", "failed", null, false);
    return failed(table, [`apply: ${message(err)}`]);
  }
  const deferred = deferring.deferred();
  for (const r of report.reloads) {
    const result = !r.ok
      ? "failed"
      : deferred.includes(r.service)
        ? "deferred: not running, its start reads the new files"
        : "done";
    table.row(`reload ${r.service}`, result, null, r.ok);
  }
  const problems = rejectionProblems(report);
  if (problems.length > 0) return failed(table, problems);

  // extra services in private pools: their addresses on the private NIC before keepalived can make this LB MASTER
  const privateAddresses = privateServiceAddresses(config.spec, kernelServices(config.spec, undefined));
  if (hasPrivateServiceAddresses(config.spec)) {
    const synced = await table.step("service addresses", async () => {
      const r = await syncServiceAddresses(runner, config.spec, config.host.privateInterface.name, privateAddresses);
      return {
        value: r,
        result:
          r.error ??
          `${privateAddresses.length} on ${config.host.privateInterface.name} (+${r.add.length} -${r.remove.length})`,
        ok: r.error === undefined,
      };
    });
    if (synced.error) return failed(table, [`service addresses: ${synced.error}`]);
  }

  for (const { unit } of BOOTSTRAP_UNITS) {
    const started = await table.step(`start ${unit}`, async () => {
      const r = await ensureRunning(runner, unit);
      return { value: r, result: r.result, ok: r.ok };
    });
    // Later units depend on earlier ones (keepalived must not advertise without HAProxy): stop at the first failure.
    if (!started.ok)
      return failed(table, [
        `${unit}: systemctl enable --now failed; later services not started:`,
        ...clip(started.output),
      ]);
  }
  return { outcome: "ok", steps: table.rows };
}

async function dryRunPlan(
  opts: BootstrapOptions,
  table: ProgressTable,
  config: AgentConfig,
  files: readonly RenderedFile[],
  dirs: readonly { path: string; mode: number; target: string }[],
  fifo: string,
): Promise<BootstrapResult> {
  try {
    await table.step("directories", async () => {
      const changes = [];
      for (const d of dirs)
        changes.push({ path: d.path, mode: d.mode, change: await directoryChange(d.target, d.mode) });
      return { value: undefined, result: describeChanges(changes, true) };
    });
    await table.step("vrrp fifo", async () => ({
      value: undefined,
      result: describeChanges([{ path: VRRP_FIFO_PATH, mode: FIFO_MODE, change: await fifoChange(fifo) }], true),
    }));
    await table.step("secret files", async () => ({
      value: undefined,
      ...(await checkSecretFiles(opts.root, secretPaths(config), true)),
    }));
  } catch (err) {
    table.row("prepare", "failed", null, false);
    return failed(table, [message(err)]);
  }
  const plan = await table.step("files (not checked)", async () => {
    const p = await plannedFiles(files, opts.root);
    return {
      value: p,
      result: `would write ${p.write.length}, ${p.unchanged} unchanged`,
      ok: p.unknownOwner.length === 0,
    };
  });
  for (const path of plan.write) table.row("would write", path, null);
  for (const unit of BOOTSTRAP_UNITS.map((u) => u.unit)) {
    await table.step(`start ${unit}`, async () => ({
      value: undefined,
      result: await plannedStart(opts.runner, unit),
    }));
  }
  if (plan.unknownOwner.length > 0) return failed(table, plan.unknownOwner);
  return { outcome: "ok", steps: table.rows };
}

function failed(table: ProgressTable, problems: string[]): BootstrapResult {
  return { outcome: "failed", steps: table.rows, problems };
}
