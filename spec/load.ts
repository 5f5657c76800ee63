/**
 * Reads a spec from YAML text in any of the forms users hold it in: the bare spec, a LoadBalancer custom resource
 * (`kind: LoadBalancer`, its `.spec`), or a Pulumi stack file (`config: edgepair:spec`). Pure: text in, value out.
 */
import { parseDocument } from "yaml";
import type { SpecProblem } from "./errors";

export type Loaded = { ok: true; value: unknown } | { ok: false; problems: SpecProblem[] };

export function loadYaml(text: string, what: string): Loaded {
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) {
    return { ok: false, problems: doc.errors.map((e) => ({ path: what, rule: `is not valid YAML: ${e.message.split("\n")[0]}` })) };
  }
  return { ok: true, value: doc.toJS() as unknown };
}

export function unwrapSpec(value: unknown): unknown {
  if (typeof value !== "object" || value === null) return value;
  const v = value as Record<string, unknown>;
  if (v.kind === "LoadBalancer" && "spec" in v) return v.spec;
  const config = v.config;
  if (typeof config === "object" && config !== null && "edgepair:spec" in config) {
    return (config as Record<string, unknown>)["edgepair:spec"];
  }
  return value;
}
