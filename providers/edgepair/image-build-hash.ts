/**
 * The content hash that names an appliance build: it is the image's tag, and the BootcImage component computes it in
 * the program (at preview), so `pulumi preview` shows whether an `up` would rebuild before anything runs.
 *
 * A tree hash covers every entry under a directory, sorted by path (byte order): its type, relative path, permission
 * bits and bytes (a symlink's target, never followed). Directories count too (an empty one changes what COPY
 * makes). Owner, timestamps and .containerignore are not read: a touched or ignored file never matters less than
 * nothing, so the worst case is a rebuild that produces the same image, never a stale one. Sockets, FIFOs and
 * devices are refused (a build context never needs them). Bounded: at most MAX_ENTRIES entries.
 */
import { createHash, type Hash } from "node:crypto";
import { lstatSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";

const MAX_ENTRIES = 100_000;

/** Feeds every entry under `root` into `h`; throws naming the path for what a context cannot hold. */
function feedTree(h: Hash, root: string, label: string): void {
  let count = 0;
  const walk = (rel: string): void => {
    const names = readdirSync(rel === "" ? root : join(root, rel)).sort((a, b) =>
      Buffer.compare(Buffer.from(a), Buffer.from(b)),
    );
    for (const name of names) {
      if (++count > MAX_ENTRIES)
        throw new Error(`${label}: more than ${MAX_ENTRIES} entries under ${root}; a build context should be small`);
      const path = rel === "" ? name : `${rel}/${name}`;
      const full = join(root, path);
      const st = lstatSync(full);
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isDirectory()) {
        h.update(`d\0${path}\0${mode}\0`);
        walk(path);
      } else if (st.isSymbolicLink()) {
        h.update(`l\0${path}\0${readlinkSync(full)}\0`);
      } else if (st.isFile()) {
        h.update(`f\0${path}\0${mode}\0${st.size}\0`);
        h.update(readFileSync(full));
        h.update("\0");
      } else {
        throw new Error(`${label}: ${full} is neither a file, a directory nor a symlink`);
      }
    }
  };
  walk("");
}

/** SHA-256 (hex) of one directory tree, as described in the module comment. */
export function treeHash(dir: string, label = "context"): string {
  const h = createHash("sha256");
  feedTree(h, dir, label);
  return h.digest("hex");
}

export interface ContextSources {
  /** The build context directory (absolute). */
  context: string;
  /** Named additional contexts (`podman build --build-context name=dir`), e.g. the agent bundle's directory. */
  buildContexts?: Record<string, string>;
  /** A Containerfile outside the context (absolute); one inside is already part of the context's hash. */
  containerfileOutside?: string;
}

/** SHA-256 (hex) over the context, every named context (sorted by name) and an outside Containerfile. */
export function contextHash(src: ContextSources): string {
  const h = createHash("sha256");
  h.update("context\0");
  feedTree(h, src.context, "image.build.context");
  for (const name of Object.keys(src.buildContexts ?? {}).sort()) {
    h.update(`context:${name}\0`);
    feedTree(h, (src.buildContexts ?? {})[name] as string, `image.build.buildContexts.${name}`);
  }
  if (src.containerfileOutside) {
    h.update("containerfile\0");
    h.update(readFileSync(src.containerfileOutside));
  }
  return h.digest("hex");
}

/**
 * The image tag: SHA-256 over the context hash, the Containerfile's path in the context and the build args (sorted),
 * so one tag always names one build, whatever changed.
 */
export function buildTag(hash: string, containerfile: string, buildArgs: Record<string, string>): string {
  const args = Object.keys(buildArgs)
    .sort()
    .map((k) => [k, buildArgs[k]]);
  return createHash("sha256").update(JSON.stringify({ hash, containerfile, args })).digest("hex");
}
