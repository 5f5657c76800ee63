/**
 * The stand-in image for end-to-end tests on real VMs (issue 11): Debian 12 with the appliance's daemons, cloud-init
 * (NoCloud), the agent bundle and the very units, drop-ins and cloud.cfg.d of images/rootfs, booting on a BIOS with
 * its console on the serial port. It differs from the appliance only where it must: Debian, not Fedora; no bootc
 * (the agent turns its image switch off, agent/main-run.ts); no SELinux policy.
 *
 * Cached outside the repo (EDGEPAIR_STANDIN_CACHE, default /var/cache/edgepair-standin) as
 * edgepair-standin-HASH.qcow2 plus HASH.json (the manifest) and HASH.log (the build's full output), HASH covering
 * every input (inputs.ts); a second run with the same inputs only prints "cached: PATH". Needs root (debootstrap,
 * chroot, a loop mount).
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ensureBase } from "./base";
import { DISK_BYTES, makeDisk } from "./disk";
import { KERNEL_ARGS, makeImageRoot, type ImageFacts } from "./image";
import { baseHash, imageHash, listRootfsFiles, REPO_ROOT } from "./inputs";
import { findMirrors, type DebianMirrors } from "./mirror";
import { DEBIAN_SUITE, packageNames } from "./packages";
import { formatSeconds, Progress, run } from "./run";

export const DEFAULT_CACHE_DIR = "/var/cache/edgepair-standin";
const MINUTE = 60_000;
/** Another build of the same cache holds the lock at most this long before this one gives up. */
const LOCK_WAIT_MS = 90 * MINUTE;

export interface StandinManifest {
  hash: string;
  baseHash: string;
  suite: string;
  mirrors: DebianMirrors;
  packages: string[];
  /** Targets of the images/rootfs files installed, e.g. /usr/lib/systemd/system/edgepair-agent.service */
  rootfsFiles: string[];
  facts: ImageFacts;
  kernelArgs: string;
  virtualBytes: number;
  qcow2Bytes: number;
  buildSeconds: number;
  builtAt: string;
}

export interface StandinImage {
  path: string;
  /** True when an image with the same inputs was already in the cache. */
  cached: boolean;
  manifest: StandinManifest;
  /** Where guestAccel remembers, for this boot of the host, whether this image's kernel runs under KVM. */
  accelMemo: string;
}

export interface BuildOptions {
  cacheDir?: string;
  /** Progress lines; default stdout. */
  out?: (line: string) => void;
}

export function cacheDirFromEnv(): string {
  return process.env.EDGEPAIR_STANDIN_CACHE || DEFAULT_CACHE_DIR;
}

export function imagePaths(
  cacheDir: string,
  hash: string,
): { qcow2: string; manifest: string; log: string; accel: string } {
  const stem = join(cacheDir, `edgepair-standin-${hash}`);
  return { qcow2: `${stem}.qcow2`, manifest: `${stem}.json`, log: `${stem}.log`, accel: `${stem}.accel.json` };
}

/** A stable UUID for the root filesystem of one image (same inputs, same disk). */
function uuidOf(hash: string): string {
  const h = createHash("sha256").update(`edgepair-standin-root:${hash}`).digest("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** One build per cache at a time: a directory made atomically, holding the builder's PID; a dead holder's is taken over. */
async function lock(cacheDir: string, out: (line: string) => void): Promise<() => void> {
  const dir = join(cacheDir, ".lock");
  const deadline = Date.now() + LOCK_WAIT_MS;
  let said = false;
  for (;;) {
    try {
      mkdirSync(dir);
      writeFileSync(join(dir, "pid"), String(process.pid));
      return () => rmSync(dir, { recursive: true, force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
    const holder = Number(existsSync(join(dir, "pid")) ? readFileSync(join(dir, "pid"), "utf8") : NaN);
    if (!Number.isInteger(holder) || !pidAlive(holder)) {
      rmSync(dir, { recursive: true, force: true });
      continue;
    }
    if (Date.now() > deadline)
      throw new Error(`${dir}: build PID ${holder} still holds the cache after ${LOCK_WAIT_MS / MINUTE} min`);
    if (!said) out(`waiting for build PID ${holder} (${dir})`);
    said = true;
    await new Promise((r) => setTimeout(r, 5000));
  }
}

/** Images, manifests, logs and bases of other hashes, and work directories of builders that are gone. */
function prune(cacheDir: string, keep: { hash: string; baseHash: string }, out: (line: string) => void): void {
  for (const name of readdirSync(cacheDir)) {
    const m =
      /^(?:edgepair-standin-([0-9a-f]{16})\.(?:qcow2|json|log|accel\.json)|base-([0-9a-f]{16})(?:\.partial)?|work-(\d+))$/.exec(
        name,
      );
    if (!m) continue;
    const stale =
      (m[1] !== undefined && m[1] !== keep.hash) ||
      (m[2] !== undefined && (m[2] !== keep.baseHash || name.endsWith(".partial"))) ||
      (m[3] !== undefined && !pidAlive(Number(m[3])));
    if (!stale) continue;
    rmSync(join(cacheDir, name), { recursive: true, force: true });
    out(`removed ${join(cacheDir, name)}`);
  }
}

function readManifest(path: string): StandinManifest {
  return JSON.parse(readFileSync(path, "utf8")) as StandinManifest;
}

export async function buildStandinImage(o: BuildOptions = {}): Promise<StandinImage> {
  const out = o.out ?? ((line: string) => process.stdout.write(`${line}\n`));
  if (process.getuid?.() !== 0)
    throw new Error("the stand-in image builder needs root (debootstrap, chroot, a loop mount)");
  const cacheDir = o.cacheDir ?? cacheDirFromEnv();
  mkdirSync(cacheDir, { recursive: true });
  const started = Date.now();
  const work = join(cacheDir, `work-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work);
  try {
    // Always from the current sources (a stale images/agent/ copy can never slip in); esbuild's output is
    // byte-identical for the same sources, so it hashes like a source.
    const agentBundle = join(work, "edgepair-agent.js");
    const bundleLog = join(work, "bundle.log");
    await run([join(REPO_ROOT, "tools", "bundle-agent"), "--outfile", agentBundle], {
      log: bundleLog,
      timeoutMs: 5 * MINUTE,
    });
    const mirrors = findMirrors(DEBIAN_SUITE);
    const rootfsFiles = listRootfsFiles();
    const base = baseHash(mirrors);
    const hash = imageHash(base, agentBundle, rootfsFiles);
    const paths = imagePaths(cacheDir, hash);
    if (existsSync(paths.qcow2) && existsSync(paths.manifest)) {
      out(`cached: ${paths.qcow2}`);
      return { path: paths.qcow2, cached: true, manifest: readManifest(paths.manifest), accelMemo: paths.accel };
    }

    const unlock = await lock(cacheDir, out);
    try {
      if (existsSync(paths.qcow2) && existsSync(paths.manifest)) {
        out(`cached: ${paths.qcow2} (built while this one waited)`);
        return { path: paths.qcow2, cached: true, manifest: readManifest(paths.manifest), accelMemo: paths.accel };
      }
      writeFileSync(paths.log, `edgepair stand-in image ${hash} (base ${base}), ${new Date().toISOString()}\n`);
      const baseCached = existsSync(join(cacheDir, `base-${base}`, "rootfs"));
      const progress = new Progress(baseCached ? 6 : 8, out);
      out(`building ${paths.qcow2} (log: ${paths.log})${baseCached ? `; base ${base} from the cache` : ""}`);

      const { rootfs: baseRootfs } = await ensureBase(
        { cacheDir, hash: base, mirrors, packages: packageNames(), log: paths.log },
        (s) => progress.step(s),
      );
      const uuid = uuidOf(hash);
      const { rootfs, facts } = await makeImageRoot(
        { baseRootfs, workDir: work, rootfsFiles, agentBundle, uuid, log: paths.log },
        (s) => progress.step(s),
      );
      await makeDisk({ rootfs, uuid, workDir: work, qcow2: paths.qcow2, log: paths.log }, (s) => progress.step(s));

      const manifest: StandinManifest = {
        hash,
        baseHash: base,
        suite: DEBIAN_SUITE,
        mirrors,
        packages: packageNames(),
        rootfsFiles: rootfsFiles.map((f) => f.target),
        facts,
        kernelArgs: KERNEL_ARGS,
        virtualBytes: DISK_BYTES,
        qcow2Bytes: statSync(paths.qcow2).size,
        buildSeconds: Math.round((Date.now() - started) / 1000),
        builtAt: new Date().toISOString(),
      };
      writeFileSync(paths.manifest, `${JSON.stringify(manifest, null, 2)}\n`);
      progress.done(
        `built ${paths.qcow2}: ${(manifest.qcow2Bytes / 2 ** 20).toFixed(0)} MiB in ${formatSeconds(manifest.buildSeconds)}`,
      );
      prune(cacheDir, { hash, baseHash: base }, out);
      return { path: paths.qcow2, cached: false, manifest, accelMemo: paths.accel };
    } finally {
      unlock();
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
