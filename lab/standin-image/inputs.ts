/**
 * What the stand-in image is made of, and the hashes that name it in the cache. Two stages, two hashes:
 * - base: suite, mirrors, package names and the base stage's own sources (debootstrap + apt: the slow part);
 * - image: the base hash plus every file of images/rootfs (path, mode, bytes), the agent bundle and the rest of
 *   the builder's sources. Any change to these builds a new qcow2; nothing else does.
 */
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import type { DebianMirrors } from "./mirror";
import { DEBIAN_SUITE, packageNames } from "./packages";

export const REPO_ROOT = join(__dirname, "..", "..");
export const IMAGES_ROOTFS = join(REPO_ROOT, "images", "rootfs");
const BUILDER_DIR = __dirname;
/**
 * The builder's sources that decide the base stage. packages.ts and mirror.ts are not among them: what they decide
 * (the package names, the mirror URLs) is hashed itself, so a comment there does not cost a new debootstrap.
 */
const BASE_SOURCES = ["base.ts", "chroot-apt.sh"];
/** Not part of the image: the test's boot helpers and the command-line entry. */
const NOT_INPUTS = new Set(["boot.ts", "main.ts", "build"]);

/** A regular file of images/rootfs, as the image gets it. */
export interface RootfsFile {
  /** Absolute path inside the image, e.g. /usr/lib/systemd/system/edgepair-agent.service */
  target: string;
  source: string;
  /** 0755 or 0644 */
  mode: number;
}

/** Every regular file under images/rootfs; a symlink or special file there is refused, not silently dropped. */
export function listRootfsFiles(dir = IMAGES_ROOTFS): RootfsFile[] {
  const out: RootfsFile[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      // git keeps only "executable or not": the same two modes whatever the checkout's umask was
      else if (e.isFile())
        out.push({ target: `/${relative(dir, p)}`, source: p, mode: statSync(p).mode & 0o111 ? 0o755 : 0o644 });
      else throw new Error(`${p}: only regular files and directories are supported in images/rootfs`);
    }
  };
  walk(dir);
  return out;
}

function hashParts(parts: ReadonlyArray<readonly [string, string | Buffer]>): string {
  const h = createHash("sha256");
  for (const [name, value] of parts) {
    // length-prefixed, so no two different part lists hash alike
    h.update(`${name}\0${Buffer.byteLength(value)}\0`);
    h.update(value);
  }
  return h.digest("hex").slice(0, 16);
}

export function baseHash(mirrors: DebianMirrors): string {
  return hashParts([
    ["suite", DEBIAN_SUITE],
    ["mirror", mirrors.main],
    ["security", mirrors.security ?? ""],
    ["packages", packageNames().join("\n")],
    ...BASE_SOURCES.map((f) => [`builder/${f}`, readFileSync(join(BUILDER_DIR, f))] as const),
  ]);
}

export function imageHash(base: string, agentBundle: string, rootfs: readonly RootfsFile[]): string {
  const builderFiles = readdirSync(BUILDER_DIR)
    .filter((f) => !NOT_INPUTS.has(f) && !BASE_SOURCES.includes(f))
    .sort();
  return hashParts([
    ["base", base],
    ...rootfs.map((f) => [`rootfs${f.target}:${f.mode.toString(8)}`, readFileSync(f.source)] as const),
    ["agent", readFileSync(agentBundle)],
    ...builderFiles.map((f) => [`builder/${f}`, readFileSync(join(BUILDER_DIR, f))] as const),
  ]);
}
