/**
 * The image's Containerfile, read the way podman/buildah read it (line-based instructions, `\` continuations,
 * comment lines dropped, also inside a continuation) and held to the rules of issue 9: the base is the FEDORA_BOOTC
 * build argument, required (`${FEDORA_BOOTC}` with no default) and checked to be pinned by digest before anything else runs;
 * every COPY source exists in the build context; the auto-update timer is masked; haproxy, keepalived and
 * conntrackd are never enabled; `bootc container lint` is the last step; no other build argument, no ADD, no
 * secret mount. No Fedora base can be pulled here, so this is the check that runs instead of a build.
 */
import { existsSync } from "node:fs";
import { join, normalize } from "node:path";
import type { CheckResult } from "./run";

export interface Instruction {
  /** 1-based line of the instruction's first line */
  line: number;
  keyword: string;
  /** the arguments, continuation lines joined with a space */
  args: string;
  /** index of the stage (FROM) it belongs to; -1 before the first FROM */
  stage: number;
}

export interface CopyInstruction {
  line: number;
  stage: number;
  from?: string;
  sources: string[];
  dest: string;
}

export interface ContainerfileCheck extends CheckResult {
  instructions: Instruction[];
  copies: CopyInstruction[];
  /** units `systemctl enable`d by name in the final stage */
  enabled: string[];
  /** units `systemctl mask`ed in the final stage */
  masked: string[];
}

/** The base-image argument and the only build argument the image takes. */
export const BASE_ARG = "FEDORA_BOOTC";
/** Daemons that must stay disabled in the image: the agent's bootstrap enables them once their files exist. */
export const NEVER_ENABLED = ["haproxy.service", "keepalived.service", "conntrackd.service"];
const AUTO_UPDATE_TIMER = "bootc-fetch-apply-updates.timer";

export function parseContainerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  const lines = text.split("\n");
  let stage = -1;
  let pending: { line: number; parts: string[] } | undefined;
  for (let i = 0; i < lines.length; i++) {
    const raw = (lines[i] ?? "").replace(/\r$/, "");
    const trimmed = raw.trim();
    if (trimmed.startsWith("#")) continue; // comments, also inside a continuation
    if (trimmed === "" && !pending) continue;
    const continues = /\\\s*$/.test(raw);
    const part = continues ? raw.replace(/\\\s*$/, "") : raw;
    if (!pending) pending = { line: i + 1, parts: [] };
    if (part.trim() !== "") pending.parts.push(part.trim());
    if (continues) continue;
    const whole = pending.parts.join(" ");
    const m = /^(\S+)\s*(.*)$/.exec(whole);
    if (m) {
      const keyword = (m[1] ?? "").toUpperCase();
      if (keyword === "FROM") stage++;
      out.push({ line: pending.line, keyword, args: m[2] ?? "", stage });
    }
    pending = undefined;
  }
  if (pending)
    out.push({ line: pending.line, keyword: "ERROR", args: "the file ends inside a line continuation", stage });
  return out;
}

function copyOf(ins: Instruction): CopyInstruction | string {
  if (ins.args.trimStart().startsWith("["))
    return `line ${ins.line}: COPY in JSON form is not checked; use the shell form`;
  const words = ins.args.split(/\s+/).filter((w) => w !== "");
  const flags = words.filter((w) => w.startsWith("--"));
  const paths = words.filter((w) => !w.startsWith("--"));
  if (paths.length < 2) return `line ${ins.line}: COPY needs a source and a destination`;
  const from = flags.find((f) => f.startsWith("--from="))?.slice("--from=".length);
  return {
    line: ins.line,
    stage: ins.stage,
    ...(from ? { from } : {}),
    sources: paths.slice(0, -1),
    dest: paths[paths.length - 1] as string,
  };
}

/** The words after `systemctl VERB` in a shell text, up to the next command separator; words with `$` are skipped. */
export function systemctlUnits(shell: string, verb: string): string[] {
  const words = shell.split(/\s+/).filter((w) => w !== "");
  const units: string[] = [];
  for (let i = 0; i + 1 < words.length; i++) {
    if (words[i] !== "systemctl" || words[i + 1] !== verb) continue;
    for (let j = i + 2; j < words.length; j++) {
      const w = words[j] as string;
      if (["&&", "||", ";", "|", "do", "done", "then", "fi"].includes(w)) break;
      const unit = w.replace(/;$/, "");
      if (!unit.startsWith("-") && !unit.includes("$")) units.push(unit);
      if (w.endsWith(";")) break;
    }
  }
  return units;
}

const FROM_ARG = new RegExp(`^\\$\\{${BASE_ARG}\\}(?:\\s+AS\\s+(\\S+))?$`, "i");
const PIN_CHECK = /@sha256:\[0-9a-f\]\{64\}/;

export function checkContainerfile(text: string, contextDir: string): ContainerfileCheck {
  const instructions = parseContainerfile(text);
  const problems: string[] = [];
  const copies: CopyInstruction[] = [];
  for (const e of instructions.filter((i) => i.keyword === "ERROR")) problems.push(`line ${e.line}: ${e.args}`);

  const froms = instructions.filter((i) => i.keyword === "FROM");
  if (froms.length === 0) problems.push("no FROM instruction");
  const finalStage = froms.length - 1;

  // Before the first FROM: exactly the base argument, without a default (a default would make it optional).
  const preamble = instructions.filter((i) => i.stage === -1);
  if (preamble.length !== 1 || preamble[0]?.keyword !== "ARG" || preamble[0]?.args.trim() !== BASE_ARG) {
    problems.push(
      `before the first FROM there must be exactly "ARG ${BASE_ARG}" (no default): found ${preamble.map((i) => `${i.keyword} ${i.args}`).join("; ") || "nothing"}`,
    );
  }
  const stageNames: string[] = [];
  for (const f of froms) {
    const m = FROM_ARG.exec(f.args.trim());
    if (!m)
      problems.push(`line ${f.line}: FROM must be \${${BASE_ARG}} (required, the pinned base), is: FROM ${f.args}`);
    stageNames.push(m?.[1] ?? "");
  }
  for (const a of instructions.filter((i) => i.keyword === "ARG" && i.stage >= 0)) {
    if (a.args.trim() !== BASE_ARG)
      problems.push(`line ${a.line}: the image takes no build argument but ${BASE_ARG}: ARG ${a.args}`);
  }

  // The digest check runs in the first stage before any other RUN, and the final stage depends on that stage.
  const firstRun = instructions.find((i) => i.stage === 0 && i.keyword === "RUN");
  const redeclared = instructions.some(
    (i) => i.stage === 0 && i.keyword === "ARG" && i.args.trim() === BASE_ARG && (!firstRun || i.line < firstRun.line),
  );
  if (!firstRun || !PIN_CHECK.test(firstRun.args) || !firstRun.args.includes(`$${BASE_ARG}`) || !redeclared) {
    problems.push(
      `the first RUN of the first stage must check that $${BASE_ARG} (declared in that stage) ends in @sha256:[0-9a-f]{64}`,
    );
  }

  for (const ins of instructions) {
    if (ins.keyword === "ADD")
      problems.push(`line ${ins.line}: ADD is not allowed (it can fetch URLs and unpack archives): use COPY`);
    if (ins.keyword === "RUN" && /--mount=[^\s]*type=secret/.test(ins.args))
      problems.push(`line ${ins.line}: the image is built without secrets`);
    if (ins.keyword === "ENV" && /(SECRET|TOKEN|PASSWORD|AUTH)/i.test(ins.args))
      problems.push(`line ${ins.line}: no secret in the image: ENV ${ins.args}`);
    if (ins.keyword !== "COPY") continue;
    const c = copyOf(ins);
    if (typeof c === "string") {
      problems.push(c);
      continue;
    }
    copies.push(c);
    if (c.from !== undefined) {
      if (!stageNames.slice(0, c.stage).includes(c.from))
        problems.push(`line ${c.line}: COPY --from=${c.from} names no earlier stage`);
      continue;
    }
    for (const s of c.sources) {
      const rel = normalize(s);
      if (s.startsWith("/") || rel.startsWith("..") || /[*?[]/.test(s)) {
        problems.push(`line ${c.line}: COPY source ${s} must be a plain path inside the build context`);
      } else if (!existsSync(join(contextDir, rel))) {
        problems.push(`line ${c.line}: COPY source ${s} does not exist in ${contextDir}`);
      }
    }
  }
  const firstStageName = stageNames[0] ?? "";
  if (finalStage > 0 && !copies.some((c) => c.stage === finalStage && c.from === firstStageName)) {
    problems.push(
      `the final stage must COPY --from=${firstStageName || "<first stage>"} so the digest check always runs`,
    );
  }

  const finalRuns = instructions
    .filter((i) => i.stage === finalStage && i.keyword === "RUN")
    .map((i) => i.args)
    .join("\n");
  const enabled = systemctlUnits(finalRuns, "enable");
  const masked = systemctlUnits(finalRuns, "mask");
  if (!masked.includes(AUTO_UPDATE_TIMER))
    problems.push(
      `the final stage must \`systemctl mask ${AUTO_UPDATE_TIMER}\` (two LBs rebooting on independent timers defeat the pair)`,
    );
  for (const u of enabled.filter((x) => NEVER_ENABLED.includes(x)))
    problems.push(`${u} is enabled in the image: the agent's bootstrap enables it once its files exist`);

  const last = instructions.filter((i) => i.stage === finalStage).pop();
  if (!last || last.keyword !== "RUN" || last.args.trim() !== "bootc container lint") {
    problems.push(
      `the last step must be "RUN bootc container lint", is: ${last ? `${last.keyword} ${last.args}` : "nothing"}`,
    );
  }
  return { ok: problems.length === 0, output: problems.join("\n"), instructions, copies, enabled, masked };
}
