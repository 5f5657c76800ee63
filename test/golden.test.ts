/**
 * Golden files of the dev stack (Pulumi.dev.yaml, examples/host-lb{1,2}.yaml), so a reviewer sees every rendered
 * config change as a diff. The backends are what `edgepair render` uses without flags, so these files are exactly
 * the README's main job output. `UPDATE_GOLDEN=1 npx jest test/golden` rewrites them after an intended change.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { parse } from "yaml";
import { resolveBackends } from "../spec/backend-list";
import { renderAll } from "../render/index";
import type { RenderedFile } from "../render/types";
import { validateHostFacts } from "../spec/resolve";
import type { HostFacts } from "../spec/types";
import { REPO, variants } from "./fixtures/variants";

const GOLDEN = join(REPO, "test", "golden");
const update = process.env.UPDATE_GOLDEN === "1";

function host(file: string): HostFacts {
  const r = validateHostFacts(parse(readFileSync(join(REPO, "examples", file), "utf8")));
  if (!r.ok) throw new Error(`examples/${file} is invalid`);
  return r.value;
}

/** The manifest records what a file listing cannot show: mode, owner and the reload action. */
function manifest(files: RenderedFile[]): string {
  return files
    .map((f) => `${f.mode.toString(8).padStart(4, "0")} ${f.owner} ${f.reload.service} ${f.path}`)
    .sort()
    .join("\n")
    .concat("\n");
}

function listTree(root: string): string[] {
  if (!existsSync(root)) return [];
  return readdirSync(root, { recursive: true, encoding: "utf8" })
    .map((p) => join(root, p))
    .filter((p) => statSync(p).isFile())
    .map((p) => relative(root, p))
    .sort();
}

const variant = (name: string) => variants.find((v) => v.name === name)!;

// services: the Service frontends forwarded by the kernel (render/service-lb.ts) beside everything they touch
describe.each([
  ["dev-lb1", "host-lb1.yaml", "dev"],
  ["dev-lb2", "host-lb2.yaml", "dev"],
  ["services-lb1", "host-lb1.yaml", "services"],
])("golden %s", (name, hostFile, variantName) => {
  const root = join(GOLDEN, name);
  const { spec } = variant(variantName);
  const files = renderAll({ spec, host: host(hostFile), backends: resolveBackends(spec, {}) });
  const expected = new Map<string, string>([
    ["MANIFEST", manifest(files)],
    ...files.map((f) => [f.path.replace(/^\//, ""), f.content] as [string, string]),
  ]);

  if (update) {
    rmSync(root, { recursive: true, force: true });
    for (const [rel, content] of expected) {
      mkdirSync(dirname(join(root, rel)), { recursive: true });
      writeFileSync(join(root, rel), content);
    }
  }

  test("the golden tree holds exactly the rendered files", () => {
    expect(listTree(root)).toEqual([...expected.keys()].sort());
  });

  test.each([...expected.keys()])("%s matches", (rel) => {
    const golden = readFileSync(join(root, rel), "utf8");
    expect(expected.get(rel)).toBe(golden);
  });
});
