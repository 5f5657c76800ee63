/**
 * Talking to libvirt: `virsh -c <uri>` with an argv array (never a shell), a hard time limit per call, XML on
 * and errors that say what failed where.
 *
 * XML goes to virsh in a 0600 file in a private temp dir (virshXml): virsh cannot open /dev/stdin when stdin is
 * the socket Node gives a child.
 *
 * The connection URI. A resource's `uri` input wins; without it the URI is read at run time from
 * EDGEPAIR_LIBVIRT_URI, then LIBVIRT_DEFAULT_URI, else qemu:///system. A URI must not carry credentials (no
 * `user:password@`, no password-like query parameter): authentication belongs to SSH keys/agent or libvirt's
 * auth file (LIBVIRT_AUTH_FILE), so the URI the provider records in a resource's outputs, to find the object
 * again on refresh, update and delete, is never a secret.
 */
import { spawn } from "node:child_process";

/** What the engine passes for a value not known yet (preview): pulumi/runtime/rpc.ts unknownValue. */
export const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

/** True when v or anything inside it is unknown (only during preview). */
export function hasUnknown(v: unknown): boolean {
  if (v === UNKNOWN) return true;
  if (Array.isArray(v)) return v.some((x) => hasUnknown(x));
  if (v !== null && typeof v === "object")
    return Object.values(v as Record<string, unknown>).some((x) => hasUnknown(x));
  return false;
}

export const DEFAULT_URI = "qemu:///system";

/** Query parameters whose value would be a secret. */
const SECRET_PARAM = /^(pass(word|wd)?|secret|token|credentials?|auth(_token)?)$/i;

/** Why a URI is not acceptable, or undefined. */
export function uriProblem(uri: string): string | undefined {
  if (!/^[a-z][a-z0-9+]*:\/\/[^\s]*$/i.test(uri))
    return "must be a libvirt URI such as qemu:///system or qemu+ssh://user@host/system";
  const authority = /^[^:]+:\/\/([^/?#]*)/.exec(uri)?.[1] ?? "";
  const at = authority.lastIndexOf("@");
  if (at >= 0 && authority.slice(0, at).includes(":")) {
    return "must not carry a password (user:password@); use SSH keys/agent or libvirt's auth file (LIBVIRT_AUTH_FILE)";
  }
  const query = uri.includes("?") ? uri.slice(uri.indexOf("?") + 1) : "";
  for (const part of query.split("&")) {
    const key = decodeURIComponent(part.split("=")[0] ?? "");
    if (SECRET_PARAM.test(key))
      return `must not carry the credential parameter "${key}"; use libvirt's auth file (LIBVIRT_AUTH_FILE)`;
  }
  return undefined;
}

/** The URI to use: the resource's input, else the environment (read now, at run time), else qemu:///system. */
export function resolveUri(input: string | undefined): string {
  const fromEnv = process.env.EDGEPAIR_LIBVIRT_URI || process.env.LIBVIRT_DEFAULT_URI;
  const uri = input || fromEnv || DEFAULT_URI;
  const problem = uriProblem(uri);
  if (problem) {
    const source = input ? "uri" : process.env.EDGEPAIR_LIBVIRT_URI ? "EDGEPAIR_LIBVIRT_URI" : "LIBVIRT_DEFAULT_URI";
    throw new Error(`${source}: ${problem}`);
  }
  return uri;
}

export interface VirshOptions {
  /** Written to virsh's stdin. */
  input?: string;
  /** Default 60 s; the process is killed (SIGKILL) when it runs longer. */
  timeoutMs?: number;
}

/** An error from virsh, with what the caller needs to tell cases apart. */
export interface VirshError extends Error {
  /** libvirt said the object does not exist. */
  notFound: boolean;
  /** No connection to the URI could be made. */
  connection: boolean;
  stderr: string;
}

const NOT_FOUND =
  /(Network|Domain|Storage volume|Storage pool) not found|no (network|domain|storage (pool|vol)) with matching|failed to get (domain|network|vol|pool)/i;

export function isNotFound(e: unknown): boolean {
  return Boolean(e && typeof e === "object" && (e as VirshError).notFound);
}

/** Runs `virsh -q -c uri ...args`, resolves with stdout; rejects with a VirshError. */
export function virsh(uri: string, args: readonly string[], opts: VirshOptions = {}): Promise<string> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  return new Promise<string>((resolve, reject) => {
    const child = spawn("virsh", ["-q", "-c", uri, ...args], {
      env: { ...process.env, LC_ALL: "C" },
      stdio: ["pipe", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    child.on("error", (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        Object.assign(
          new Error(e.code === "ENOENT" ? "virsh is not installed (Debian: libvirt-clients)" : `virsh: ${e.message}`),
          {
            notFound: false,
            connection: false,
            stderr: "",
          },
        ),
      );
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out).toString("utf8");
      const stderr = Buffer.concat(err).toString("utf8");
      if (code === 0 && !timedOut) {
        resolve(stdout);
        return;
      }
      const details = stderr
        .split("\n")
        .map((l) => l.replace(/^error:\s*/, "").trim())
        .filter((l) => l !== "" && !/^failed to connect to the hypervisor$/i.test(l))
        .join("; ");
      const connection = /failed to connect to the hypervisor/i.test(stderr);
      const what = args.slice(0, 1).join(" ");
      let message: string;
      if (timedOut) message = `libvirt: virsh ${what} on ${uri} did not finish within ${timeoutMs / 1000} s`;
      else if (connection) message = `libvirt: cannot connect to ${uri}: ${details || "no details"}`;
      else message = `libvirt: virsh ${what} failed: ${details || `exit code ${code}`}`;
      reject(
        Object.assign(new Error(message), { notFound: !connection && NOT_FOUND.test(stderr), connection, stderr }),
      );
    });
    child.stdin.on("error", () => undefined); // virsh may exit before reading everything (it failed; close reports it)
    child.stdin.end(opts.input ?? "");
  });
}

/** Like virsh, but resolves undefined when libvirt says the object does not exist. */
export async function virshIfExists(
  uri: string,
  args: readonly string[],
  opts: VirshOptions = {},
): Promise<string | undefined> {
  try {
    return await virsh(uri, args, opts);
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}

/** Runs virsh with the XML in a temp file: virshXml(uri, (f) => ["net-define", f], xml). */
export async function virshXml(
  uri: string,
  args: (file: string) => string[],
  xml: string,
  opts: VirshOptions = {},
): Promise<string> {
  const fs: typeof import("node:fs") = require("node:fs");
  const os: typeof import("node:os") = require("node:os");
  const pathMod: typeof import("node:path") = require("node:path");
  const dir = fs.mkdtempSync(pathMod.join(os.tmpdir(), "edgepair-virsh-"));
  try {
    const file = pathMod.join(dir, "object.xml");
    fs.writeFileSync(file, xml, { mode: 0o600 });
    return await virsh(uri, args(file), opts);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** kvm when the host behind the URI can run KVM guests (/dev/kvm usable by QEMU), else qemu (TCG). */
export async function detectVirtType(uri: string): Promise<"kvm" | "qemu"> {
  try {
    await virsh(uri, ["domcapabilities", "--virttype", "kvm"]);
    return "kvm";
  } catch (e) {
    if ((e as VirshError).connection) throw e;
    return "qemu";
  }
}

/** Throws `field: message` errors in the check style, for problems found at run time (create/update). */
export function fieldError(field: string, message: string): Error {
  return new Error(`${field}: ${message}`);
}
