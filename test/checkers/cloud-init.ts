/**
 * `cloud-init schema --config-file FILE` (cloud-init 22.4.2): exit 0 and "Valid cloud-config: FILE" on stdout, or
 * exit 1 with "Cloud config schema errors: <key.path>: <reason>" on stderr. It needs no root and no instance data.
 * `--annotate` is not used: on some errors (e.g. a wrong write_files permissions type) 22.4.2 crashes with a
 * KeyError traceback instead of annotating.
 *
 * The tool rejects unknown keys inside a module's config (write_files items, for instance) but accepts unknown
 * TOP-LEVEL keys silently (exit 0, no warning: the v1 schema is an allOf of module schemas without
 * additionalProperties), and it has no strict flag. So the checker adds one step with cloud-init's own code and
 * schema: every top-level key must be a property some module of the installed cloud-init declares.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { run, type CheckResult } from "./run";

/** The interpreter cloud-init's own entry point names (#!/usr/bin/python3), so its modules are importable. */
const CLOUD_INIT_PYTHON = "/usr/bin/python3";

/** Prints {"unknown": [top-level keys no module declares], "document": the document as cloud-init loads it}. */
const STRICT_LOAD = `
import json, sys
from cloudinit import util
from cloudinit.config.schema import get_schema
schema = get_schema()
known = set()
for ref in schema["allOf"]:
    known |= set(schema["$defs"][ref["$ref"].split("/")[-1]].get("properties", {}))
with open(sys.argv[1]) as f:
    doc = util.load_yaml(f.read()) or {}
print(json.dumps({"unknown": sorted(k for k in doc if k not in known), "document": doc}))
`;

const LOAD_AS_JSON = `
import json, sys
from cloudinit import util
with open(sys.argv[1]) as f:
    print(json.dumps(util.load_yaml(f.read())))
`;

function withFile<T>(text: string, use: (path: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), "ep-cloud-init-"));
  try {
    const path = join(dir, "user-data");
    writeFileSync(path, text);
    return use(path);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface CloudConfigCheck extends CheckResult {
  /** When accepted: the document as cloud-init loads it (PyYAML, YAML 1.1), as JSON-compatible data. */
  loaded?: unknown;
}

export function checkCloudConfig(text: string): CloudConfigCheck {
  return withFile(text, (path) => {
    const schema = run("cloud-init", ["schema", "--config-file", path]);
    if (schema.status !== 0) return { ok: false, output: schema.output };
    const strict = run(CLOUD_INIT_PYTHON, ["-c", STRICT_LOAD, path]);
    if (strict.status !== 0) return { ok: false, output: `top-level key check failed: ${strict.output}` };
    const { unknown, document } = JSON.parse(strict.stdout) as { unknown: string[]; document: unknown };
    if (unknown.length > 0) {
      return {
        ok: false,
        output: `unknown top-level keys (cloud-init schema accepts them silently): ${unknown.join(", ")}`,
      };
    }
    return { ok: true, output: schema.output, loaded: document };
  });
}

/** The document as cloud-init itself loads it (PyYAML, YAML 1.1), as JSON-compatible data. */
export function loadAsCloudInit(text: string): unknown {
  return withFile(text, (path) => {
    const r = run(CLOUD_INIT_PYTHON, ["-c", LOAD_AS_JSON, path]);
    if (r.status !== 0) throw new Error(`cloud-init could not load the document: ${r.output}`);
    return JSON.parse(r.stdout) as unknown;
  });
}
