/** Spec problems as `<field.path>: <rule>` lines (the command line and the Pulumi program print them as-is). */
import { DIGEST_PINNED_RULE } from "./image-ref";
import type { z } from "zod";

export interface SpecProblem {
  path: string;
  rule: string;
}

export class SpecError extends Error {
  constructor(readonly problems: SpecProblem[]) {
    super(problems.map(formatProblem).join("\n"));
    this.name = "SpecError";
  }
}

export function formatProblem(p: SpecProblem): string {
  return `${p.path || "(spec)"}: ${p.rule}`;
}

export function pathText(path: readonly PropertyKey[]): string {
  return path.reduce<string>((acc, key) => {
    if (typeof key === "number") return `${acc}[${key}]`;
    return acc ? `${acc}.${String(key)}` : String(key);
  }, "");
}

/** Turns zod's issues into our rule wording (zod's own messages name types, not the rule a user broke). */
export function fromZodIssues(issues: readonly z.core.$ZodIssue[], prefix = ""): SpecProblem[] {
  const join = (p: readonly PropertyKey[]) => pathText([...(prefix ? [prefix] : []), ...p]);
  const out: SpecProblem[] = [];
  for (const i of issues) {
    switch (i.code) {
      case "unrecognized_keys":
        for (const k of i.keys) out.push({ path: join([...i.path, k]), rule: "unknown field" });
        break;
      case "invalid_type":
        out.push({
          path: join(i.path),
          rule: i.input === undefined ? "is required" : `must be ${article(i.expected)}`,
        });
        break;
      case "invalid_value":
        out.push({ path: join(i.path), rule: `must be one of ${i.values.map(String).join(", ")}` });
        break;
      case "too_small":
        out.push({ path: join(i.path), rule: sizeRule(i.origin, "at least", i.minimum) });
        break;
      case "too_big":
        out.push({ path: join(i.path), rule: sizeRule(i.origin, "at most", i.maximum) });
        break;
      case "invalid_format":
        out.push({ path: join(i.path), rule: formatRule(i.path) });
        break;
      default:
        out.push({ path: join(i.path), rule: i.message });
    }
  }
  return out;
}

function article(expected: string): string {
  const names: Record<string, string> = {
    int: "an integer",
    number: "a number",
    string: "a string",
    boolean: "true or false",
    object: "a mapping",
    array: "a list",
  };
  return names[expected] ?? `a ${expected}`;
}

function sizeRule(origin: string, bound: string, n: number | bigint): string {
  if (origin === "array") return `must have ${bound} ${n} item${n === 1 ? "" : "s"}`;
  if (origin === "string") return `must have ${bound} ${n} character${n === 1 ? "" : "s"}`;
  return `must be ${bound} ${n}`;
}

function formatRule(path: readonly PropertyKey[]): string {
  const field = String(path[path.length - 1] ?? "");
  const top = String(path[0] ?? "");
  if (
    field === "clusterName" ||
    field === "hostname" ||
    (field === "name" && (top === "serviceLoadBalancers" || top === "extraServices"))
  ) {
    return "must be a DNS label: lowercase letters, digits and '-', starting and ending with a letter or digit";
  }
  if (field === "mac") return "must be a MAC address in lowercase aa:bb:cc:dd:ee:ff form";
  if (field === "name") return "must be an interface name: 1-15 of letters, digits, '_', '.', '-'";
  if (field === "healthPath")
    return "must be an absolute URL path starting with /, without spaces, quotes, #, $ or backslash (HAProxy would read them)";
  if (field === "image") return DIGEST_PINNED_RULE;
  if (field === "loadBalancerClass")
    return "must be a prefixed name such as edgepair.io/pair (a DNS subdomain, '/', a name), as Kubernetes takes it";
  return "has an invalid format";
}
