/**
 * What the four resources share: input checks that collect every problem as `field: rule` (nothing is created
 * while one is left), value rules (names, MACs, IPv4 addresses), and comparison helpers for diff.
 */
import { canonical, parseIp } from "../../spec/address";
import type * as pulumi from "@pulumi/pulumi";
import { UNKNOWN, hasUnknown, resolveUri, uriProblem } from "./virsh";

export interface CheckFailure {
  property: string;
  reason: string;
}

/**
 * Failures as a dynamic provider's check returns them: the engine prints "property <p> value {...} has a problem:
 * <reason>", so the reason repeats the field to keep the `field: rule` form readable in its output.
 */
export function engineFailures(failures: CheckFailure[]): CheckFailure[] {
  return failures.map((f) => ({ property: f.property, reason: `${f.property}: ${f.reason}` }));
}

/** The engine's answer to check: the normalised inputs when valid, else the raw inputs and `field: rule` failures. */
export function checkResult<T>(
  news: T,
  r: { inputs: T; failures: CheckFailure[] },
): { inputs: T; failures: CheckFailure[] } {
  return r.failures.length > 0 ? { inputs: news, failures: engineFailures(r.failures) } : r;
}

/** One libvirt kind: its pure check and diff, and its virsh-backed create, observe, update and remove. */
export interface LibvirtKind<I, O extends { uri?: string }> {
  check(news: Record<string, unknown>): { inputs: I; failures: CheckFailure[] };
  diff(olds: O, news: I): { changes: boolean; replaces: string[]; deleteBeforeReplace: boolean };
  create(inputs: I): Promise<{ id: string; outs: O }>;
  /** What the object is now in libvirt (undefined: gone); `recorded`: the outputs the engine last stored, if any. */
  observe(uri: string, id: string, recorded: O | undefined): Promise<O | undefined>;
  update(id: string, olds: O, news: I): Promise<{ outs: O }>;
  remove(id: string, props: O): Promise<void>;
}

/** The dynamic provider every libvirt resource is: the engine's calls, typed at the boundary, onto one kind. */
export function libvirtProvider<I, O extends { uri?: string }>(
  kind: LibvirtKind<I, O>,
): pulumi.dynamic.ResourceProvider<I, O> {
  return {
    // the engine hands over whatever the program sent: the check is what turns it into I
    check: async (_olds, news) => checkResult(news, kind.check(news as unknown as Record<string, unknown>)),
    diff: async (_id, olds, news) => diffResult(kind.diff(olds, news)),
    create: (inputs) => kind.create(inputs),
    read: async (id, props) => {
      const outs = await kind.observe(props?.uri ?? resolveUri(undefined), id, props);
      return outs ? { id, props: outs } : {};
    },
    update: (id, olds, news) => kind.update(id, olds, news),
    delete: (id, props) => kind.remove(id, props),
  };
}

/** The engine's answer to diff: only the fields it reads. */
export function diffResult(d: { changes: boolean; replaces: string[]; deleteBeforeReplace: boolean }): {
  changes: boolean;
  replaces: string[];
  deleteBeforeReplace: boolean;
} {
  return { changes: d.changes, replaces: d.replaces, deleteBeforeReplace: d.deleteBeforeReplace };
}

/** libvirt object names we accept: they also become file names and virsh arguments (never starting with "-"). */
export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.+-]{0,99}$/;
export const NAME_RULE =
  "must be 1-100 characters: letters, digits, '_', '.', '+', '-', not starting with a punctuation mark";

/** Linux interface names: at most 15 characters. */
export const BRIDGE_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
export const MAC_RULE = "must be a unicast MAC address such as 52:54:00:12:34:56";

/** Lower-case canonical MAC, or undefined when it is not a usable unicast MAC. */
export function canonicalMac(value: unknown): string | undefined {
  if (typeof value !== "string") return undefined;
  const mac = value.trim().toLowerCase();
  if (!MAC_RE.test(mac)) return undefined;
  const first = parseInt(mac.slice(0, 2), 16);
  if ((first & 1) === 1 || mac === "00:00:00:00:00:00") return undefined; // multicast/broadcast or zero
  return mac;
}

/** Canonical IPv4 text, or undefined. */
export function canonicalIpv4(value: unknown): string | undefined {
  if (typeof value !== "string") return undefined;
  const ip = parseIp(value.trim());
  return ip && ip.kind() === "ipv4" ? canonical(ip) : undefined;
}

export function isUnknown(v: unknown): boolean {
  return v === UNKNOWN || hasUnknown(v);
}

/** Collects failures; every method returns the (normalized) value or undefined. */
export interface Checker {
  failures: CheckFailure[];
  fail(property: string, reason: string): void;
  /** A required or optional string matching re. */
  string(
    property: string,
    value: unknown,
    opts: { required?: boolean; re?: RegExp; rule?: string },
  ): string | undefined;
  integer(property: string, value: unknown, opts: { required?: boolean; min: number; max: number }): number | undefined;
  boolean(property: string, value: unknown, fallback: boolean): boolean;
  oneOf<T extends string>(property: string, value: unknown, allowed: readonly T[], fallback?: T): T | undefined;
  uri(property: string, value: unknown): string | undefined;
  /** Fails on keys that are not in allowed (a typo must never be dropped silently). */
  known(property: string, value: unknown, allowed: readonly string[]): void;
}

export function checker(): Checker {
  const failures: CheckFailure[] = [];
  const fail = (property: string, reason: string) => {
    failures.push({ property, reason });
  };
  return {
    failures,
    fail,
    string(property, value, opts) {
      if (value === undefined || value === null || value === "") {
        if (opts.required) fail(property, "is required");
        return undefined;
      }
      if (value === UNKNOWN) return UNKNOWN;
      if (typeof value !== "string") {
        fail(property, "must be a string");
        return undefined;
      }
      if (opts.re && !opts.re.test(value)) {
        fail(property, opts.rule ?? `must match ${opts.re}`);
        return undefined;
      }
      return value;
    },
    integer(property, value, opts) {
      if (value === undefined || value === null) {
        if (opts.required) fail(property, "is required");
        return undefined;
      }
      if (value === UNKNOWN) return undefined;
      if (typeof value !== "number" || !Number.isInteger(value) || value < opts.min || value > opts.max) {
        fail(property, `must be an integer from ${opts.min} to ${opts.max}`);
        return undefined;
      }
      return value;
    },
    boolean(property, value, fallback) {
      if (value === undefined || value === null) return fallback;
      if (typeof value !== "boolean") {
        if (value !== UNKNOWN) fail(property, "must be true or false");
        return fallback;
      }
      return value;
    },
    oneOf(property, value, allowed, fallback) {
      if (value === undefined || value === null) {
        if (fallback === undefined) fail(property, `is required (one of ${allowed.join(", ")})`);
        return fallback;
      }
      if (value === UNKNOWN) return undefined;
      if (typeof value !== "string" || !(allowed as readonly string[]).includes(value)) {
        fail(property, `must be one of ${allowed.join(", ")}`);
        return undefined;
      }
      return value as (typeof allowed)[number];
    },
    uri(property, value) {
      if (value === undefined || value === null || value === "") return undefined;
      if (value === UNKNOWN) return UNKNOWN;
      if (typeof value !== "string") {
        fail(property, "must be a string");
        return undefined;
      }
      const problem = uriProblem(value);
      if (problem) {
        fail(property, problem);
        return undefined;
      }
      return value;
    },
    known(property, value, allowed) {
      if (value === null || typeof value !== "object" || Array.isArray(value)) return;
      for (const key of Object.keys(value)) {
        if (key === "__provider") continue;
        if (!allowed.includes(key))
          fail(property ? `${property}.${key}` : key, `is not a known field (known: ${allowed.join(", ")})`);
      }
    },
  };
}

/** Arrays that must be lists (of objects). */
export function listOf(c: Checker, property: string, value: unknown, opts: { min?: number } = {}): unknown[] {
  if (value === undefined || value === null) {
    if ((opts.min ?? 0) > 0) c.fail(property, `is required (at least ${opts.min})`);
    return [];
  }
  if (value === UNKNOWN) return [];
  if (!Array.isArray(value)) {
    c.fail(property, "must be a list");
    return [];
  }
  if (value.length < (opts.min ?? 0))
    c.fail(property, `must have at least ${opts.min} entr${opts.min === 1 ? "y" : "ies"}`);
  return value;
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** Structural equality on JSON values (key order ignored); unknown values are never equal. */
export function same(a: unknown, b: unknown): boolean {
  if (isUnknown(a) || isUnknown(b)) return false;
  return stableJson(a) === stableJson(b);
}

export function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map((x) => stableJson(x)).join(",")}]`;
  if (isObject(v)) {
    return `{${Object.keys(v)
      .filter((k) => v[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stableJson(v[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(v ?? null);
}

/** Drops undefined fields so outputs and inputs compare and serialize alike. */
export function compact<T extends object>(o: T): T {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out as T;
}

/** A temp dir (0700) for the duration of fn, removed after. */
export async function withTempDir<T>(prefix: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const fs: typeof import("node:fs") = require("node:fs");
  const os: typeof import("node:os") = require("node:os");
  const pathMod: typeof import("node:path") = require("node:path");
  const dir = fs.mkdtempSync(pathMod.join(os.tmpdir(), prefix));
  try {
    return await fn(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
