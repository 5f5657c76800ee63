/**
 * Writes rendered files under a root exactly as they land on the VM. Each file goes to a temporary name first and
 * is renamed into place, so a reader never sees half a file and a failed run leaves the previous file intact.
 */
import { chmodSync, mkdirSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { RenderedFile } from "../render/types";

export function writeTree(root: string, files: readonly RenderedFile[]): string[] {
  return files.map((f) => {
    const target = join(root, f.path);
    mkdirSync(dirname(target), { recursive: true, mode: 0o755 });
    const tmp = `${target}.edgepair-tmp`;
    writeFileSync(tmp, f.content, { mode: f.mode });
    chmodSync(tmp, f.mode); // the umask must not widen or narrow the mode we promise
    renameSync(tmp, target);
    return target;
  });
}
