/**
 * Filesystem side of an apply: what is live, staging a candidate next to its target, and the atomic switch.
 *
 * A candidate is created with O_EXCL and its final mode from the first syscall (umask can only remove bits), then
 * chowned and chmodded before any byte is written, so a 0600 file is never readable by others, not even empty.
 * It sits in the target's directory (rename(2) is atomic only within one filesystem) under a hidden name that no
 * daemon picks up: NetworkManager ignores dot files, firewalld and sysctl.d read *.xml / *.conf only.
 */
import { createHash, randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { lstat, mkdir, open, readdir, readFile, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import type { RenderedFile } from "../../render/types";

export interface Ids {
  uid: number;
  gid: number;
}

export interface LiveFile {
  content: Buffer;
  mode: number;
  uid: number;
  gid: number;
}

const STAGED_MARK = ".edgepair-new-";

export function sha256(content: string | Buffer): string {
  return createHash("sha256").update(content).digest("hex");
}

/** The file's hidden staged-name prefix; anything starting with it is a candidate of ours (maybe from a crash). */
function stagedPrefix(target: string): string {
  return `.${basename(target)}${STAGED_MARK}`;
}

export function isStagedName(name: string): boolean {
  return name.startsWith(".") && name.includes(STAGED_MARK);
}

/** The regular file at `target` as it is now, or undefined when there is none (a symlink or directory counts as none). */
export async function readLive(target: string): Promise<LiveFile | undefined> {
  let st;
  try {
    st = await lstat(target);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
  if (!st.isFile()) return undefined;
  return { content: await readFile(target), mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
}

export function isUpToDate(live: LiveFile | undefined, content: string, mode: number, ids: Ids): boolean {
  return (
    live !== undefined &&
    live.mode === mode &&
    live.uid === ids.uid &&
    live.gid === ids.gid &&
    live.content.equals(Buffer.from(content, "utf8"))
  );
}

/** Removes candidates a crashed apply left next to `target`. */
export async function removeStaleStaged(target: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(dirname(target));
  } catch {
    return; // no directory yet: nothing left over
  }
  const prefix = stagedPrefix(target);
  await Promise.all(
    names.filter((n) => n.startsWith(prefix)).map((n) => rm(join(dirname(target), n), { force: true })),
  );
}

/** Writes `content` to a new hidden file next to `target` with `mode` and `ids`, fsynced; returns its path. */
export async function stage(target: string, content: string, mode: number, ids: Ids | undefined): Promise<string> {
  await mkdir(dirname(target), { recursive: true, mode: 0o755 });
  const staged = join(dirname(target), `${stagedPrefix(target)}${randomBytes(6).toString("hex")}`);
  // O_NOFOLLOW|O_EXCL: never write through a planted symlink or into someone else's file.
  const fh = await open(
    staged,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    mode & 0o777,
  );
  try {
    // chown clears set-id bits, so it comes before the exact chmod; both before the content.
    if (ids) await fh.chown(ids.uid, ids.gid);
    await fh.chmod(mode);
    await fh.writeFile(content, "utf8");
    await fh.sync();
  } catch (err) {
    await fh.close();
    await rm(staged, { force: true });
    throw err;
  }
  await fh.close();
  return staged;
}

async function syncDirectory(dir: string): Promise<void> {
  const fh = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Atomically replaces `target` with the staged candidate and makes the rename durable. */
export async function switchInto(staged: string, target: string): Promise<void> {
  await rename(staged, target);
  await syncDirectory(dirname(target));
}

export async function discard(staged: string): Promise<void> {
  await rm(staged, { force: true });
}

/** Stage + switch without a checker (the agent's own state files). Skips the write when nothing would change. */
export async function writeAtomic(target: string, content: string, mode: number): Promise<void> {
  const live = await readLive(target);
  if (live && live.mode === mode && live.content.equals(Buffer.from(content, "utf8"))) return;
  const staged = await stage(target, content, mode, undefined);
  try {
    await switchInto(staged, target);
  } catch (err) {
    await discard(staged);
    throw err;
  }
}

/**
 * uid and gid of "user:group", from ROOT/etc/{passwd,group} and then ROOT/usr/lib/{passwd,group} (Fedora bootc
 * images keep system users there, read through nss-altfiles). A number is taken as is. Throws naming what is
 * missing; the caller adds the file.
 */
export async function resolveOwner(owner: string, root: string): Promise<Ids> {
  const m = /^([^:\s]+):([^:\s]+)$/.exec(owner);
  if (!m?.[1] || !m[2]) throw new Error(`owner "${owner}" is not user:group`);
  const uid = await lookupId(root, "passwd", m[1]);
  const gid = await lookupId(root, "group", m[2]);
  return { uid, gid };
}

/** The id is the third column in both passwd (name:x:uid:...) and group (name:x:gid:members). */
async function lookupId(root: string, db: "passwd" | "group", name: string): Promise<number> {
  if (/^\d+$/.test(name)) return Number(name);
  const searched = [join(root, "etc", db), join(root, "usr", "lib", db)];
  for (const path of searched) {
    let text: string;
    try {
      text = await readFile(path, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n")) {
      const [entry, , id] = line.split(":");
      if (entry === name && id !== undefined && /^\d+$/.test(id)) return Number(id);
    }
  }
  throw new Error(`${db === "passwd" ? "user" : "group"} "${name}" not found in ${searched.join(" or ")}`);
}

/** Every rendered file under `root` as it lands on the VM, each written atomically (`edgepair render`, the lab). */
export async function writeTree(root: string, files: readonly RenderedFile[]): Promise<string[]> {
  const written: string[] = [];
  for (const f of files) {
    const target = join(root, f.path);
    await writeAtomic(target, f.content, f.mode);
    written.push(target);
  }
  return written;
}
