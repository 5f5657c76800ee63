/**
 * Each staged candidate is checked by the program that will read it (the same checkers as DESIGN.md's table, on
 * the VM's own binaries) before it may go live. The mapping is a list so tests and the agent can wrap or replace
 * it: tests run the checkers inside a network namespace that has the interfaces keepalived and nft resolve.
 */
import { cp, mkdir, mkdtemp, readFile, stat } from "node:fs/promises";
import { dirname, join, relative } from "node:path";
import { SERVICE_NAMES, SERVICES } from "../../render/services";
import type { CommandRunner } from "./reload";

export interface StagedCandidate {
  /** path on the VM, e.g. /etc/haproxy/haproxy.cfg */
  path: string;
  /** where the candidate is on this filesystem (a hidden file next to the target) */
  staged: string;
}

export interface ValidateContext {
  /** the filesystem root the files are applied under ("/" on the VM) */
  root: string;
  /** an empty private directory, removed after the apply, for checkers that need a whole tree */
  scratchDir: string;
}

export interface Verdict {
  path: string;
  ok: boolean;
  output: string;
}

export interface Validator {
  /** shown in the report next to a rejected file, e.g. "haproxy -c" */
  checker: string;
  appliesTo: (path: string) => boolean;
  /** every candidate of one apply this validator applies to, at once (firewalld cross-checks zones and policies) */
  check: (candidates: readonly StagedCandidate[], ctx: ValidateContext) => Promise<Verdict[]>;
}

export interface ValidatorOptions {
  runner: CommandRunner;
  /** where kernel settings are looked up; tests may point elsewhere */
  procSys?: string;
  timeoutMs?: number;
}

const CHECK_TIMEOUT_MS = 30_000;

/** A validator that runs one program per candidate and accepts exit 0. */
function perFile(
  checker: string,
  appliesTo: (path: string) => boolean,
  command: (c: StagedCandidate) => Promise<{ argv: string[]; input?: string } | Verdict>,
  opts: ValidatorOptions,
): Validator {
  return {
    checker,
    appliesTo,
    check: async (candidates) => {
      const verdicts: Verdict[] = [];
      for (const c of candidates) {
        const cmd = await command(c);
        if ("ok" in cmd) {
          verdicts.push(cmd);
          continue;
        }
        const r = await opts.runner(cmd.argv, { timeoutMs: opts.timeoutMs ?? CHECK_TIMEOUT_MS, input: cmd.input });
        verdicts.push({ path: c.path, ok: r.exitCode === 0, output: r.output });
      }
      return verdicts;
    },
  };
}

/**
 * nmcli validates and normalizes a keyfile given on stdin without a daemon; a no-op modification (the id it
 * already has) makes it parse the whole profile.
 */
async function nmcliCommand(c: StagedCandidate): Promise<{ argv: string[]; input: string } | Verdict> {
  const content = await readFile(c.staged, "utf8");
  const id = /^id=(.*)$/m.exec(content)?.[1];
  if (!id) return { path: c.path, ok: false, output: "no connection id= in the keyfile" };
  return { argv: ["nmcli", "--offline", "connection", "modify", "connection.id", id], input: content };
}

/**
 * firewall-offline-cmd checks a whole configuration directory: the live ROOT/etc/firewalld (firewalld.conf, zones
 * we do not render) with the candidates laid over it, copied into the scratch directory.
 */
function firewalldValidator(checker: string, appliesTo: (path: string) => boolean, opts: ValidatorOptions): Validator {
  const etc = "/etc/firewalld";
  return {
    checker,
    appliesTo,
    check: async (candidates, ctx) => {
      const dir = join(await mkdtemp(join(ctx.scratchDir, "firewalld-")), "firewalld");
      const live = join(ctx.root, etc);
      if (await exists(live)) await cp(live, dir, { recursive: true, filter: (src) => !isHidden(src) });
      else await mkdir(dir, { recursive: true });
      for (const c of candidates) {
        const target = join(dir, relative(etc, c.path));
        await mkdir(dirname(target), { recursive: true });
        await cp(c.staged, target);
      }
      const r = await opts.runner(["firewall-offline-cmd", "--system-config", dir, "--check-config"], {
        timeoutMs: opts.timeoutMs ?? CHECK_TIMEOUT_MS,
      });
      return candidates.map((c) => ({ path: c.path, ok: r.exitCode === 0, output: r.output }));
    },
  };
}

function isHidden(path: string): boolean {
  return /(^|\/)\.[^/]*$/.test(path);
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * sysctl.d is applied by systemd-sysctl at boot and by `sysctl -p` on reload; applying a candidate to check it
 * would change the live kernel. So the check parses: every line is `key = value`, and every key must exist under
 * /proc/sys. Per-interface keys (net.ipv4.conf.eth1.x) are checked against conf/default when the interface is
 * absent (it may be created later), `-key` lines may fail by definition and globs are left to systemd-sysctl.
 */
export async function checkSysctlText(content: string, procSys: string): Promise<string[]> {
  const problems: string[] = [];
  const lines = content.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] ?? "").trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const eq = line.indexOf("=");
    const rawKey = eq < 0 ? "" : line.slice(0, eq).trim();
    const value = eq < 0 ? "" : line.slice(eq + 1).trim();
    if (eq < 0 || rawKey === "" || value === "") {
      problems.push(`line ${i + 1}: not "key = value": ${line}`);
      continue;
    }
    if (rawKey.startsWith("-") || rawKey.includes("*")) continue;
    const rel = rawKey.includes("/") ? rawKey.replace(/^\/+/, "") : rawKey.replace(/\./g, "/");
    if (await exists(join(procSys, rel))) continue;
    const perInterface = /^(net\/ipv[46]\/(?:conf|neigh))\/[^/]+\/(.+)$/.exec(rel);
    if (perInterface && (await exists(join(procSys, perInterface[1] ?? "", "default", perInterface[2] ?? ""))))
      continue;
    problems.push(`line ${i + 1}: ${rawKey}: no such kernel setting (${join(procSys, rel)})`);
  }
  return problems;
}

function sysctlValidator(checker: string, appliesTo: (path: string) => boolean, opts: ValidatorOptions): Validator {
  const procSys = opts.procSys ?? "/proc/sys";
  return {
    checker,
    appliesTo,
    check: async (candidates) =>
      Promise.all(
        candidates.map(async (c) => {
          const problems = await checkSysctlText(await readFile(c.staged, "utf8"), procSys);
          return { path: c.path, ok: problems.length === 0, output: problems.join("\n") };
        }),
      ),
  };
}

/** A service whose files have no safe check on a running LB (render/services.ts says why): live unchecked, and said. */
function notChecked(checker: string, appliesTo: (path: string) => boolean): Validator {
  return {
    checker,
    appliesTo,
    check: async (candidates) => candidates.map((c) => ({ path: c.path, ok: true, output: "not checked" })),
  };
}

/** The VM's checkers: one per service, for the files it owns and with its check (render/services.ts). */
export function defaultValidators(opts: ValidatorOptions): Validator[] {
  return SERVICE_NAMES.map((name) => {
    const { owns, check } = SERVICES[name];
    switch (check.kind) {
      case "argv":
        return perFile(check.checker, owns, async (c) => ({ argv: check.argv(c.staged) }), opts);
      case "nmcli":
        return perFile(check.checker, owns, nmcliCommand, opts);
      case "firewalld":
        return firewalldValidator(check.checker, owns, opts);
      case "sysctl":
        return sysctlValidator(check.checker, owns, opts);
      case "none":
        return notChecked(check.checker, owns);
    }
  });
}

export interface CheckedCandidate extends Verdict {
  checker: string;
}

/**
 * One verdict per candidate, in the candidates' order. A path no validator knows is rejected: a new rendered
 * file must get a checker before it can go live.
 */
export async function validateCandidates(
  candidates: readonly StagedCandidate[],
  validators: readonly Validator[],
  ctx: ValidateContext,
): Promise<CheckedCandidate[]> {
  const byPath = new Map<string, CheckedCandidate>();
  const claimed = new Map<Validator, StagedCandidate[]>();
  for (const c of candidates) {
    const v = validators.find((x) => x.appliesTo(c.path));
    if (!v) byPath.set(c.path, { path: c.path, checker: "none", ok: false, output: "no validator knows this path" });
    else claimed.set(v, [...(claimed.get(v) ?? []), c]);
  }
  for (const [v, mine] of claimed) {
    let verdicts: Verdict[];
    try {
      verdicts = await v.check(mine, ctx);
    } catch (err) {
      const output = err instanceof Error ? err.message : String(err);
      verdicts = mine.map((c) => ({ path: c.path, ok: false, output }));
    }
    for (const c of mine) {
      const verdict = verdicts.find((x) => x.path === c.path) ?? {
        path: c.path,
        ok: false,
        output: "the checker gave no verdict",
      };
      byPath.set(c.path, { ...verdict, checker: v.checker });
    }
  }
  return candidates.map(
    (c) => byPath.get(c.path) ?? { path: c.path, checker: "none", ok: false, output: "not checked" },
  );
}
