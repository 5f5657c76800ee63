/**
 * The three files cloud-init leaves for the agent (cloud-init/user-data.ts BOOTSTRAP_PATHS): the spec as written,
 * the host facts and the agent's settings. Read under a root ("/" on the VM) and validated together, so one run
 * names every problem of every file at once, as `<file>: <field.path>: <rule>` (the file's name only: it is the
 * same on every VM). A value is never quoted: the settings reference secrets by path, but a typo could still put
 * one where a path belongs.
 */
import { readFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { BOOTSTRAP_PATHS } from "../cloud-init/user-data";
import { agentSettingsSpecProblems, validateAgentSettings, type AgentSettings } from "../spec/agent-settings";
import type { SpecProblem } from "../spec/errors";
import { loadYaml, unwrapSpec } from "../spec/load";
import { validateHostFacts, validateSpec, type Validation } from "../spec/resolve";
import type { HostFacts, ResolvedSpec } from "../spec/types";

export interface AgentConfig {
  spec: ResolvedSpec;
  host: HostFacts;
  settings: AgentSettings;
}

/** Every problem as one printable line; never an exception for bad input. */
export type ConfigReading = { ok: true; config: AgentConfig } | { ok: false; problems: string[] };

export function problemLine(file: string, p: SpecProblem): string {
  return p.path ? `${file}: ${p.path}: ${p.rule}` : `${file}: ${p.rule}`;
}

/** The YAML document at ROOT/vmPath, or the lines saying why there is none. */
async function readDocument(
  root: string,
  vmPath: string,
): Promise<{ ok: true; value: unknown } | { ok: false; problems: string[] }> {
  const file = basename(vmPath);
  let text: string;
  try {
    text = await readFile(join(root, vmPath), "utf8");
  } catch (err) {
    return {
      ok: false,
      problems: [`${file}: cannot be read (${(err as NodeJS.ErrnoException).code ?? "error"}): ${vmPath}`],
    };
  }
  const loaded = loadYaml(text, "");
  if (!loaded.ok) return { ok: false, problems: loaded.problems.map((p) => problemLine(file, p)) };
  return { ok: true, value: loaded.value };
}

function validated<T>(
  vmPath: string,
  doc: Awaited<ReturnType<typeof readDocument>>,
  validate: (raw: unknown) => Validation<T>,
): { value?: T; problems: string[] } {
  if (!doc.ok) return { problems: doc.problems };
  const r = validate(doc.value);
  return r.ok
    ? { value: r.value, problems: [] }
    : { problems: r.problems.map((p) => problemLine(basename(vmPath), p)) };
}

export async function readAgentConfig(root: string): Promise<ConfigReading> {
  const [specDoc, hostDoc, agentDoc] = await Promise.all([
    readDocument(root, BOOTSTRAP_PATHS.spec),
    readDocument(root, BOOTSTRAP_PATHS.host),
    readDocument(root, BOOTSTRAP_PATHS.agent),
  ]);
  // spec.yaml holds the spec as the user wrote it; a LoadBalancer resource or a stack file is accepted too.
  const spec = validated(BOOTSTRAP_PATHS.spec, specDoc, (raw) => validateSpec(unwrapSpec(raw)));
  const host = validated(BOOTSTRAP_PATHS.host, hostDoc, validateHostFacts);
  const settings = validated(BOOTSTRAP_PATHS.agent, agentDoc, validateAgentSettings);
  const problems = [...spec.problems, ...host.problems, ...settings.problems];
  if (spec.value && settings.value) {
    problems.push(
      ...agentSettingsSpecProblems(settings.value, spec.value).map((p) =>
        problemLine(basename(BOOTSTRAP_PATHS.agent), p),
      ),
    );
  }
  if (problems.length > 0 || !spec.value || !host.value || !settings.value) return { ok: false, problems };
  return { ok: true, config: { spec: spec.value, host: host.value, settings: settings.value } };
}
