/**
 * Our own nftables files: `nft -c -f` asks the kernel to validate the whole transaction without committing it.
 * It runs in a throwaway network namespace anyway, so even a bug in the checker cannot touch the host's ruleset.
 * `applyNft` commits for real, inside the given namespace (tests of the replace idiom).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RenderedFile } from "../../render/types";
import { withNetns } from "./netns";
import { run, type CheckResult } from "./run";

function withFile<T>(content: string, body: (path: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), "ep-nft-"));
  try {
    const path = join(dir, "rules.nft");
    writeFileSync(path, content);
    return body(path);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Interfaces a ruleset names as `device "X"` (dup/fwd resolve them when the rule is added, so they must exist). */
export function nftDevices(content: string): string[] {
  return [...new Set([...content.matchAll(/\bdevice "([^"]+)"/g)].map((m) => m[1] as string))];
}

export function checkNft(content: string): CheckResult {
  return withNetns(
    nftDevices(content).map((name) => ({ name })),
    (ns) => applyNft(ns, content, { checkOnly: true }),
  );
}

/** Runs `nft -f` (or `-c -f`) on the content inside network namespace `ns`. */
export function applyNft(ns: string, content: string, opts: { checkOnly?: boolean } = {}): CheckResult {
  return withFile(content, (path) => {
    const r = run("ip", ["netns", "exec", ns, "nft", ...(opts.checkOnly ? ["-c"] : []), "-f", path]);
    return { ok: r.status === 0, output: r.output };
  });
}

export function checkNftFiles(files: readonly RenderedFile[]): CheckResult {
  const nft = files.filter((f) => f.path.endsWith(".nft"));
  if (nft.length === 0) return { ok: false, output: "no .nft file among the rendered files" };
  for (const f of nft) {
    const r = checkNft(f.content);
    if (!r.ok) return { ok: false, output: `${f.path}: ${r.output}` };
  }
  return { ok: true, output: "" };
}
