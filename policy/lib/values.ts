/**
 * Reading resource properties safely. During a preview, values a provider has not computed yet (a Neutron port's
 * ID, a MAC) are unknown: the policy SDK throws UnknownValueError when one is read, which would turn the whole
 * policy into a "can't run during preview" note. Each rule reads through `known` instead and judges what is known;
 * `pulumi up` runs the policies again with the values filled in.
 */
import { UnknownValueError } from "@pulumi/policy";

export function known<T>(read: () => T): T | undefined {
  try {
    return read();
  } catch (e) {
    if (e instanceof UnknownValueError) return undefined;
    throw e;
  }
}

export type Props = Record<string, unknown>;

export function isRecord(v: unknown): v is Props {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** A known string property, else undefined. */
export function str(obj: unknown, key: string): string | undefined {
  const v = known(() => (isRecord(obj) ? obj[key] : undefined));
  return typeof v === "string" ? v : undefined;
}

export function num(obj: unknown, key: string): number | undefined {
  const v = known(() => (isRecord(obj) ? obj[key] : undefined));
  return typeof v === "number" ? v : undefined;
}

/** The known elements of an array property (unknown ones are left out), else []. */
export function list(obj: unknown, key: string): unknown[] {
  const v = known(() => (isRecord(obj) ? obj[key] : undefined));
  if (!Array.isArray(v)) return [];
  const out: unknown[] = [];
  const length = known(() => v.length) ?? 0;
  for (let i = 0; i < length; i++) {
    const item = known(() => v[i] as unknown);
    if (item !== undefined) out.push(item);
  }
  return out;
}

/** Known string elements of an array property. */
export function strings(obj: unknown, key: string): string[] {
  return list(obj, key).filter((v): v is string => typeof v === "string");
}

/** A known object property, else undefined. */
export function record(obj: unknown, key: string): Props | undefined {
  const v = known(() => (isRecord(obj) ? obj[key] : undefined));
  return isRecord(v) ? v : undefined;
}

/** Policy config with defaults: the engine hands over only what the user set (`--policy-pack-config`). */
export function withDefaults<T extends object>(given: Partial<T>, defaults: T): T {
  const out = { ...defaults };
  for (const [k, v] of Object.entries(given)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
