/**
 * A cloud.cfg.d file of the image, checked by cloud-init itself (22.4.2 here): `cloud-init schema --config-file`
 * for the module keys, then cloud-init's own code reads it the way it reads the system config at boot
 * (util.read_conf_with_confd over cloud.cfg and cloud.cfg.d) and answers whether networking is disabled
 * (net.is_disabled_cfg, what Init._find_networking_config asks). Strict on top-level keys: every key must be one
 * some module declares, or `network` (system config, which the schema does not cover).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { run, type CheckResult } from "./run";

const CLOUD_INIT_PYTHON = "/usr/bin/python3";

const AS_CLOUD_INIT_READS = `
import json, sys
from cloudinit import net, util
from cloudinit.config.schema import get_schema
schema = get_schema()
known = {"network"}
for ref in schema["allOf"]:
    known |= set(schema["$defs"][ref["$ref"].split("/")[-1]].get("properties", {}))
part = util.read_conf(sys.argv[2])
merged = util.read_conf_with_confd(sys.argv[1])
print(json.dumps({
    "unknown": sorted(k for k in part if k not in known),
    "networkDisabled": bool(net.is_disabled_cfg(merged.get("network"))),
}))
`;

export interface CloudCfgCheck extends CheckResult {
  networkDisabled?: boolean;
}

export function checkCloudCfgD(name: string, text: string): CloudCfgCheck {
  const dir = mkdtempSync(join(tmpdir(), "ep-cloud-cfg-"));
  try {
    const cfg = join(dir, "cloud.cfg");
    const part = join(dir, "cloud.cfg.d", name);
    mkdirSync(join(dir, "cloud.cfg.d"));
    writeFileSync(cfg, "# an empty system config: only the cloud.cfg.d file under test speaks\n{}\n");
    writeFileSync(part, text);
    const schema = run("cloud-init", ["schema", "--config-file", part]);
    if (schema.status !== 0) return { ok: false, output: schema.output };
    const read = run(CLOUD_INIT_PYTHON, ["-c", AS_CLOUD_INIT_READS, cfg, part]);
    if (read.status !== 0) return { ok: false, output: `cloud-init could not read it: ${read.output}` };
    const r = JSON.parse(read.stdout) as { unknown: string[]; networkDisabled: boolean };
    if (r.unknown.length > 0)
      return {
        ok: false,
        output: `unknown top-level keys: ${r.unknown.join(", ")}`,
        networkDisabled: r.networkDisabled,
      };
    return { ok: true, output: schema.output, networkDisabled: r.networkDisabled };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
