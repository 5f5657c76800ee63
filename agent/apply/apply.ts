/**
 * One apply: rendered files in, only what changed written, validated, switched and reloaded; a report out.
 *
 * A service's files go live together or not at all (a keepalived.conf naming a notify script that was held back,
 * two nft files that refer to each other): every changed file is staged and checked first, then each service
 * whose candidates all passed is switched, then the services are reloaded in render order.
 *
 * Reloads still owed are written to the state file before anything is switched and cleared when they succeed,
 * so a failed reload, or an agent killed between switch and reload, is retried by the next apply even though the
 * files on disk are up to date by then.
 */
import { mkdir, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { isAbsolute, join, normalize } from "node:path";
import { z } from "zod";
import type { RenderedFile, ServiceName } from "../../render/types";
import { planReloads, runReloads, type CommandRunner, type ReloadPlan, type ReloadResult } from "./reload";
import { defaultValidators, validateCandidates, type CheckedCandidate, type Validator } from "./validate";
import {
  discard,
  readLive,
  removeStaleStaged,
  resolveOwner,
  sha256,
  stage,
  switchInto,
  writeAtomic,
  type Ids,
  type LiveFile,
  isUpToDate,
} from "./write";

export interface ApplyOptions {
  /** "/" on the VM; a temporary directory in tests */
  root: string;
  /** the agent's own state (e.g. /var/lib/edgepair): the apply state file and a scratch directory per apply */
  stateDir: string;
  /** runs the reload commands (and, unless `validators` is given, the checkers) */
  runner: CommandRunner;
  /** default: defaultValidators({ runner }) */
  validators?: readonly Validator[];
  /** per reload command; default 60 s */
  reloadTimeoutMs?: number;
}

export interface Rejection {
  path: string;
  checker: string;
  output: string;
}

export interface ApplyReport {
  /** switched: live now */
  changed: string[];
  unchanged: string[];
  /** the live file (the last good one, or none) stays */
  rejected: Rejection[];
  /** valid and changed, but not switched because another file of the same service was rejected */
  heldBack: string[];
  reloads: ReloadResult[];
  /** sha256 of each file's live content; a path with no live file is absent */
  hashes: Record<string, string>;
}

export const APPLY_STATE_FILE = "apply-state.json";

const applyStateSchema = z.object({
  hashes: z.record(z.string(), z.string()),
  pendingReloads: z.array(z.object({ service: z.string(), commands: z.array(z.array(z.string())) })),
});

export interface ApplyState {
  hashes: Record<string, string>;
  pendingReloads: ReloadPlan[];
}

const SCRATCH_PREFIX = ".apply-";
const DEFAULT_RELOAD_TIMEOUT_MS = 60_000;

/** The state the last apply left (empty when there is none or it is unreadable: the next apply rebuilds it). */
export async function readApplyState(stateDir: string): Promise<ApplyState> {
  let text: string;
  try {
    text = await readFile(join(stateDir, APPLY_STATE_FILE), "utf8");
  } catch {
    return { hashes: {}, pendingReloads: [] };
  }
  let parsed;
  try {
    parsed = applyStateSchema.safeParse(JSON.parse(text));
  } catch {
    return { hashes: {}, pendingReloads: [] };
  }
  if (!parsed.success) return { hashes: {}, pendingReloads: [] };
  return {
    hashes: parsed.data.hashes,
    pendingReloads: parsed.data.pendingReloads.map((p) => ({
      service: p.service as ServiceName,
      commands: p.commands,
    })),
  };
}

async function writeApplyState(stateDir: string, state: ApplyState): Promise<void> {
  await writeAtomic(join(stateDir, APPLY_STATE_FILE), `${JSON.stringify(state, null, 2)}\n`, 0o600);
}

function checkPaths(files: readonly RenderedFile[]): void {
  const seen = new Set<string>();
  for (const f of files) {
    if (!isAbsolute(f.path) || normalize(f.path) !== f.path || f.path.endsWith("/"))
      throw new Error(`${f.path}: not a normalized absolute file path`);
    if (seen.has(f.path)) throw new Error(`${f.path}: given twice`);
    seen.add(f.path);
  }
}

/** Files by service, services in order of first appearance (renderAll's order). */
function groupByService(files: readonly RenderedFile[]): Map<ServiceName, RenderedFile[]> {
  const groups = new Map<ServiceName, RenderedFile[]>();
  for (const f of files) groups.set(f.reload.service, [...(groups.get(f.reload.service) ?? []), f]);
  return groups;
}

/** Earlier plans first merged with new ones, one entry per service, in the services' render order. */
function mergePlans(order: readonly ServiceName[], ...planSets: (readonly ReloadPlan[])[]): ReloadPlan[] {
  const merged = planReloads(planSets.flat());
  const rank = (s: ServiceName): number => (order.includes(s) ? order.indexOf(s) : order.length);
  return merged.sort((a, b) => rank(a.service) - rank(b.service));
}

async function removeStaleScratch(stateDir: string): Promise<void> {
  for (const name of await readdir(stateDir)) {
    if (name.startsWith(SCRATCH_PREFIX)) await rm(join(stateDir, name), { recursive: true, force: true });
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

interface Pending {
  service: ServiceName;
  files: RenderedFile[];
}

export async function applyFiles(files: readonly RenderedFile[], opts: ApplyOptions): Promise<ApplyReport> {
  checkPaths(files);
  const target = (f: RenderedFile): string => join(opts.root, f.path);
  const validators = opts.validators ?? defaultValidators({ runner: opts.runner });
  const groups = groupByService(files);
  const serviceOrder = [...groups.keys()];
  const report: ApplyReport = { changed: [], unchanged: [], rejected: [], heldBack: [], reloads: [], hashes: {} };

  await mkdir(opts.stateDir, { recursive: true, mode: 0o700 });
  await removeStaleScratch(opts.stateDir);
  const previous = await readApplyState(opts.stateDir);
  const scratchDir = await mkdtemp(join(opts.stateDir, SCRATCH_PREFIX));
  /** VM path -> staged candidate; whatever is still here at the end was not switched and is removed */
  const staged = new Map<string, string>();
  const switched: RenderedFile[] = [];
  try {
    const pending: Pending[] = [];
    for (const [service, group] of groups) {
      const changed: RenderedFile[] = [];
      const ownerProblems: Rejection[] = [];
      const ids = new Map<string, Ids>();
      for (const f of group) {
        await removeStaleStaged(target(f));
        let owner: Ids;
        try {
          owner = await resolveOwner(f.owner, opts.root);
        } catch (err) {
          ownerProblems.push({
            path: f.path,
            checker: "owner",
            output: `${f.path}: owner ${f.owner}: ${message(err)}`,
          });
          continue;
        }
        ids.set(f.path, owner);
        if (isUpToDate(await readLive(target(f)), f.content, f.mode, owner)) report.unchanged.push(f.path);
        else changed.push(f);
      }
      if (ownerProblems.length > 0) {
        report.rejected.push(...ownerProblems);
        report.heldBack.push(...changed.map((f) => f.path));
        continue;
      }
      if (changed.length === 0) continue;
      try {
        for (const f of changed) staged.set(f.path, await stage(target(f), f.content, f.mode, ids.get(f.path)));
        pending.push({ service, files: changed });
      } catch (err) {
        report.rejected.push({
          path: changed.find((f) => !staged.has(f.path))?.path ?? changed[0]?.path ?? "",
          checker: "write",
          output: message(err),
        });
        for (const f of changed) await discardStaged(staged, f.path);
      }
    }

    const verdicts = await validateCandidates(
      pending.flatMap((g) => g.files.map((f) => ({ path: f.path, staged: staged.get(f.path) ?? "" }))),
      validators,
      { root: opts.root, scratchDir },
    );
    const verdictOf = (path: string): CheckedCandidate | undefined => verdicts.find((v) => v.path === path);
    const accepted = pending.filter((g) => {
      const bad = g.files.map((f) => verdictOf(f.path)).filter((v): v is CheckedCandidate => v !== undefined && !v.ok);
      if (bad.length === 0) return true;
      report.rejected.push(...bad.map((v) => ({ path: v.path, checker: v.checker, output: v.output })));
      report.heldBack.push(...g.files.filter((f) => verdictOf(f.path)?.ok).map((f) => f.path));
      return false;
    });

    // Owed before the first rename: an agent killed after it still reloads these on its next apply.
    await writeApplyState(opts.stateDir, {
      hashes: previous.hashes,
      pendingReloads: mergePlans(
        serviceOrder,
        previous.pendingReloads,
        planReloads(accepted.flatMap((g) => g.files.map((f) => f.reload))),
      ),
    });
    for (const g of accepted) {
      // a service's files go live together or not at all: a rename failing midway puts back the ones before it
      const before = new Map<string, LiveFile | undefined>();
      for (const f of g.files) before.set(f.path, await readLive(target(f)));
      const done: RenderedFile[] = [];
      try {
        for (const f of g.files) {
          await switchInto(staged.get(f.path) ?? "", target(f));
          staged.delete(f.path);
          done.push(f);
        }
      } catch (err) {
        const failedPath = g.files[done.length]?.path ?? "";
        const undo = await restoreLive(done.map((f) => ({ target: target(f), live: before.get(f.path) })));
        report.rejected.push({
          path: failedPath,
          checker: "write",
          output: `${message(err)}${undo ? `; putting back the group's other files failed: ${undo}` : ""}`,
        });
        report.heldBack.push(...g.files.filter((f) => f.path !== failedPath).map((f) => f.path));
        continue;
      }
      report.changed.push(...done.map((f) => f.path));
      switched.push(...done);
    }
  } finally {
    for (const path of [...staged.keys()]) await discardStaged(staged, path);
    await rm(scratchDir, { recursive: true, force: true });
  }

  const switchedPaths = new Set(switched.map((f) => f.path));
  const unchanged = new Set(report.unchanged);
  for (const f of files) {
    if (switchedPaths.has(f.path) || unchanged.has(f.path)) report.hashes[f.path] = sha256(f.content);
    else {
      const live = await readLive(target(f));
      if (live) report.hashes[f.path] = sha256(live.content);
    }
  }

  const plans = mergePlans(serviceOrder, previous.pendingReloads, planReloads(switched.map((f) => f.reload)));
  report.reloads = await runReloads(plans, opts.runner, opts.reloadTimeoutMs ?? DEFAULT_RELOAD_TIMEOUT_MS);
  const failed = new Set(report.reloads.filter((r) => !r.ok).map((r) => r.service));
  await writeApplyState(opts.stateDir, {
    hashes: report.hashes,
    pendingReloads: plans.filter((p) => failed.has(p.service)),
  });

  const order = new Map(files.map((f, i) => [f.path, i]));
  const byRenderOrder = (a: string, b: string): number => (order.get(a) ?? 0) - (order.get(b) ?? 0);
  report.changed.sort(byRenderOrder);
  report.unchanged.sort(byRenderOrder);
  report.heldBack.sort(byRenderOrder);
  return report;
}

/** Puts files back as they were (content, mode, owner; removed when there was none); the first error, or undefined. */
async function restoreLive(files: { target: string; live: LiveFile | undefined }[]): Promise<string | undefined> {
  let first: string | undefined;
  for (const f of files) {
    try {
      if (!f.live) {
        await rm(f.target, { force: true });
        continue;
      }
      const back = await stage(f.target, f.live.content.toString("utf8"), f.live.mode, {
        uid: f.live.uid,
        gid: f.live.gid,
      });
      await switchInto(back, f.target);
    } catch (err) {
      first ??= `${f.target}: ${message(err)}`;
    }
  }
  return first;
}

async function discardStaged(staged: Map<string, string>, path: string): Promise<void> {
  const s = staged.get(path);
  if (s !== undefined) await discard(s);
  staged.delete(path);
}
