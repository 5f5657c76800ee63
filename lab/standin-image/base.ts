/**
 * The stand-in's base root: debootstrap (minbase) from the host's Debian mirror, then the packages of packages.ts
 * through apt inside the chroot. This is the slow part (minutes), so it is kept in the cache as a directory named
 * by the hash of what it is made of (suite, mirrors, package list, this stage's sources); changes to images/ or the
 * agent reuse it. Built in NAME.partial and renamed: a directory named without .partial is always complete.
 */
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { renderSources, type DebianMirrors } from "./mirror";
import { DEBIAN_SUITE } from "./packages";
import { run } from "./run";

const MINUTE = 60_000;

export interface BaseStageInput {
  cacheDir: string;
  hash: string;
  mirrors: DebianMirrors;
  packages: readonly string[];
  log: string;
}

export function baseDir(cacheDir: string, hash: string): string {
  return join(cacheDir, `base-${hash}`);
}

/** The base root's path; built first when the cache has none for this hash. */
export async function ensureBase(
  i: BaseStageInput,
  onStep: (what: string) => void,
): Promise<{ rootfs: string; cached: boolean }> {
  const dir = baseDir(i.cacheDir, i.hash);
  const rootfs = join(dir, "rootfs");
  if (existsSync(rootfs)) return { rootfs, cached: true };

  const partial = `${dir}.partial`;
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(partial, { recursive: true });
  const partialRoot = join(partial, "rootfs");
  try {
    onStep(`debootstrap --variant=minbase ${DEBIAN_SUITE} from ${i.mirrors.main}`);
    await run(["debootstrap", "--variant=minbase", "--components=main", DEBIAN_SUITE, partialRoot, i.mirrors.main], {
      log: i.log,
      timeoutMs: 40 * MINUTE,
    });
    writeFileSync(join(partialRoot, "etc/apt/sources.list"), "");
    writeFileSync(join(partialRoot, "etc/apt/sources.list.d/debian.sources"), renderSources(DEBIAN_SUITE, i.mirrors));

    onStep(`apt-get install ${i.packages.length} packages (and their dependencies)`);
    await run(
      [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        join(__dirname, "chroot-apt.sh"),
        partialRoot,
        ...i.packages,
      ],
      {
        log: i.log,
        timeoutMs: 40 * MINUTE,
      },
    );
    renameSync(partial, dir);
  } catch (e) {
    rmSync(partial, { recursive: true, force: true });
    throw e;
  }
  return { rootfs, cached: false };
}
