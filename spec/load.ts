/**
 * Reads a spec from YAML text in any of the forms users hold it in: the bare spec, a LoadBalancer custom resource
 * (`kind: LoadBalancer`, its `.spec`), or a Pulumi stack file (`config: edgepair:spec`). Pure: text in, value out.
 */
import { parseDocument, type YAMLError } from "yaml";
import type { SpecProblem } from "./errors";

export type Loaded = { ok: true; value: unknown } | { ok: false; problems: SpecProblem[] };

/**
 * Bounds on what a spec document may cost to read. A real spec is a few KiB (user-data carries it within OpenStack's
 * 48 KiB), so 1 MiB is far above any; a 20 MB document took 2 s and 574 MB before this bound. Aliases are a few at
 * most in a hand-written spec; yaml's own guard against alias bombs counts expanded nodes. Nesting: the spec is 6
 * levels deep, and a pathological one overflowed the stack while it was read.
 */
export const MAX_SPEC_BYTES = 1024 * 1024;
const MAX_ALIAS_COUNT = 100;
const MAX_DEPTH = 64;

export function loadYaml(text: string, what: string): Loaded {
  const bad = (rule: string): Loaded => ({ ok: false, problems: [{ path: what, rule }] });
  const bytes = Buffer.byteLength(text, "utf8");
  if (bytes > MAX_SPEC_BYTES)
    return bad(`is ${bytes} bytes: a spec document must be at most ${MAX_SPEC_BYTES} bytes (1 MiB)`);
  // flow collections ([[[...) and block indentation: a cheap upper bound before the parser recurses into them
  if (nestingBound(text) > MAX_DEPTH) return bad(`nests deeper than ${MAX_DEPTH} levels`);
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      problems: doc.errors.map((e) => ({ path: what, rule: `is not valid YAML: ${yamlError(text, e)}` })),
    };
  }
  try {
    return { ok: true, value: doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT }) as unknown };
  } catch (e) {
    // yaml throws a ReferenceError when aliases expand past maxAliasCount (a "billion laughs" document)
    if (e instanceof ReferenceError)
      return bad(`expands its aliases too far (more than ${MAX_ALIAS_COUNT} per alias): not a spec`);
    if (e instanceof RangeError) return bad(`nests too deep to be a spec`);
    throw e;
  }
}

/** The parser's message, with the key named for a duplicate (yaml says only "Map keys must be unique"). */
function yamlError(text: string, e: YAMLError): string {
  const first = e.message.split("\n")[0] ?? "";
  if (e.code === "DUPLICATE_KEY") {
    // the error points at the second key's first character: the key runs to its ':'
    const key = (/^[^:\n]*/.exec(text.slice(e.pos[0]))?.[0] ?? "").trim();
    const line = text.slice(0, e.pos[0]).split("\n").length;
    return `the key "${key.slice(0, 100)}" appears twice in one mapping (line ${line})`;
  }
  return first;
}

/** An upper bound of the document's nesting: open flow brackets at once, or indentation steps of block content. */
function nestingBound(text: string): number {
  let flow = 0;
  let deepest = 0;
  for (const ch of text) {
    if (ch === "[" || ch === "{") deepest = Math.max(deepest, ++flow);
    else if ((ch === "]" || ch === "}") && flow > 0) flow--;
  }
  for (const line of text.split("\n")) {
    const indent = /^[ -]*/.exec(line)?.[0].length ?? 0;
    deepest = Math.max(deepest, Math.floor(indent / 2));
  }
  return deepest;
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
