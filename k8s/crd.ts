/**
 * The LoadBalancer CustomResourceDefinition. Its schemas are derived from the zod models (spec/schema.ts for spec,
 * custom-resource.ts for status): one model, so the CRD cannot drift from what the program and the agent validate.
 *
 * zod -> structural schema (what the API server accepts), via zod's OpenAPI 3.0 output:
 * - `additionalProperties: false` is dropped: a structural schema may not combine it with `properties`. The API server
 *   prunes unknown fields instead, and rejects them when the client asks for strict field validation (kubectl's
 *   default, `?fieldValidation=Strict`); the program and the agent still reject them through zod.
 * - `anyOf` whose branches are all the same (zod's tuple of equal items) becomes that one schema; string/number
 *   literal unions become one `enum`; any other union throws, since a structural schema cannot say "one of two shapes".
 * - Refinements (address and CIDR forms, rules across fields) are not JSON Schema; they stay in spec/ and reach the
 *   user at `pulumi preview` and, on day 2, as the agent's Degraded condition with the `field: rule` text.
 * - Any other keyword the API server would not take throws `<path>: <rule>`, so a new zod construct in the spec
 *   fails here instead of being silently lost.
 */
import { z } from "zod";
import { loadBalancerSpecSchema } from "../spec/schema";
import { loadBalancerStatusSchema } from "./custom-resource";
import { CRD_NAME, GROUP, KIND, LIST_KIND, PLURAL, SHORT_NAMES, SINGULAR, VERSION, type Manifest } from "./names";

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export interface ValidationRule {
  rule: string;
  message: string;
  /** Relative to the node the rule sits on, e.g. ".vrrp.routerId"; the API server reports errors at this path. */
  fieldPath?: string;
}

/** An apiextensions.k8s.io/v1 JSONSchemaProps in its wire form, limited to what a structural schema may use. */
export interface StructuralSchema {
  type?: "object" | "array" | "string" | "integer" | "number" | "boolean";
  description?: string;
  format?: string;
  pattern?: string;
  enum?: JsonValue[];
  default?: JsonValue;
  nullable?: boolean;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: boolean;
  exclusiveMaximum?: boolean;
  multipleOf?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  minProperties?: number;
  maxProperties?: number;
  properties?: Record<string, StructuralSchema>;
  required?: string[];
  items?: StructuralSchema;
  additionalProperties?: StructuralSchema;
  "x-kubernetes-list-type"?: "atomic" | "set" | "map";
  "x-kubernetes-list-map-keys"?: string[];
  "x-kubernetes-map-type"?: "granular" | "atomic";
  "x-kubernetes-validations"?: ValidationRule[];
}

export interface PrinterColumn {
  name: string;
  type: "string" | "integer" | "number" | "boolean" | "date";
  jsonPath: string;
  description?: string;
  priority?: number;
}

export interface CustomResourceDefinition extends Manifest {
  spec: {
    group: string;
    scope: "Namespaced" | "Cluster";
    names: {
      plural: string;
      singular: string;
      kind: string;
      listKind: string;
      shortNames: string[];
      categories: string[];
    };
    versions: {
      name: string;
      served: boolean;
      storage: boolean;
      subresources: { status: Record<string, never> };
      additionalPrinterColumns: PrinterColumn[];
      schema: { openAPIV3Schema: StructuralSchema };
    }[];
  };
}

type JsonObject = { [key: string]: JsonValue };

const isObject = (v: unknown): v is JsonObject => typeof v === "object" && v !== null && !Array.isArray(v);

const NUMBER_KEYWORDS = [
  "minimum",
  "maximum",
  "multipleOf",
  "minLength",
  "maxLength",
  "minItems",
  "maxItems",
  "minProperties",
  "maxProperties",
] as const;
const STRING_KEYWORDS = ["description", "format", "pattern"] as const;
const BOOLEAN_KEYWORDS = ["nullable", "exclusiveMinimum", "exclusiveMaximum"] as const;
const TYPES = ["object", "array", "string", "integer", "number", "boolean"] as const;
const LIST_TYPES = ["atomic", "set", "map"] as const;
const MAP_TYPES = ["granular", "atomic"] as const;

const fail = (path: string, rule: string): never => {
  throw new Error(`${path}: ${rule}`);
};

function oneOf<T extends string>(allowed: readonly T[], v: JsonValue, path: string): T {
  const found = allowed.find((a) => a === v);
  return found ?? fail(path, `must be one of ${allowed.join(", ")}, not ${JSON.stringify(v)}`);
}

function stringList(v: JsonValue, path: string): string[] {
  return Array.isArray(v) && v.every((s): s is string => typeof s === "string")
    ? v
    : fail(path, "must be a list of strings");
}

/** The structural schema of a zod model; `path` names it in errors (e.g. "spec"). */
export function structuralSchemaOf(model: z.ZodType, path: string): StructuralSchema {
  const json: unknown = JSON.parse(JSON.stringify(z.toJSONSchema(model, { io: "input", target: "openapi-3.0" })));
  if (!isObject(json)) return fail(path, "zod produced no JSON Schema object");
  return convert(json, path);
}

function convert(node: JsonObject, path: string): StructuralSchema {
  if (node.anyOf !== undefined) return convertUnion(node, path);
  const out: StructuralSchema = {};
  for (const [key, value] of Object.entries(node)) {
    const at = `${path}.${key}`;
    if ((NUMBER_KEYWORDS as readonly string[]).includes(key)) {
      out[key as (typeof NUMBER_KEYWORDS)[number]] = typeof value === "number" ? value : fail(at, "must be a number");
    } else if ((STRING_KEYWORDS as readonly string[]).includes(key)) {
      out[key as (typeof STRING_KEYWORDS)[number]] = typeof value === "string" ? value : fail(at, "must be a string");
    } else if ((BOOLEAN_KEYWORDS as readonly string[]).includes(key)) {
      out[key as (typeof BOOLEAN_KEYWORDS)[number]] =
        typeof value === "boolean" ? value : fail(at, "must be true or false");
    } else {
      convertStructure(out, key, value, node, path);
    }
  }
  return out;
}

function convertStructure(out: StructuralSchema, key: string, value: JsonValue, node: JsonObject, path: string): void {
  const at = `${path}.${key}`;
  switch (key) {
    case "type":
      out.type = oneOf(TYPES, value, at);
      return;
    case "enum":
      out.enum = Array.isArray(value) ? value : fail(at, "must be a list");
      return;
    case "default":
      out.default = value;
      return;
    case "required":
      out.required = stringList(value, at);
      return;
    case "properties":
      if (!isObject(value)) return fail(at, "must be a mapping");
      out.properties = Object.fromEntries(
        Object.entries(value).map(([name, sub]) => [
          name,
          isObject(sub) ? convert(sub, `${path}.${name}`) : fail(`${path}.${name}`, "must be a schema"),
        ]),
      );
      return;
    case "items":
      out.items = isObject(value)
        ? convert(value, `${path}[]`)
        : fail(at, "must be one schema (tuples of different items cannot be expressed)");
      return;
    case "additionalProperties":
      if (value === false) return; // see the module comment: pruning and strict field validation take its place
      if (node.properties !== undefined) return fail(at, "cannot be combined with properties in a structural schema");
      out.additionalProperties = isObject(value) ? convert(value, `${path}{}`) : fail(at, "must be a schema or false");
      return;
    case "x-kubernetes-list-type":
      out[key] = oneOf(LIST_TYPES, value, at);
      return;
    case "x-kubernetes-list-map-keys":
      out[key] = stringList(value, at);
      return;
    case "x-kubernetes-map-type":
      out[key] = oneOf(MAP_TYPES, value, at);
      return;
    default:
      fail(at, "has no equivalent in a structural CRD schema");
  }
}

/** See the module comment: identical branches collapse, literal unions become one enum, anything else throws. */
function convertUnion(node: JsonObject, path: string): StructuralSchema {
  const { anyOf, ...rest } = node;
  if (!Array.isArray(anyOf) || anyOf.length === 0) return fail(`${path}.anyOf`, "must be a non-empty list");
  const branches = anyOf.map((b, i) =>
    isObject(b) ? convert(b, `${path}.anyOf[${i}]`) : fail(`${path}.anyOf[${i}]`, "must be a schema"),
  );
  const first = JSON.stringify(branches[0]);
  let merged: StructuralSchema | undefined;
  if (branches.every((b) => JSON.stringify(b) === first)) {
    merged = branches[0];
  } else if (
    branches.every((b) => b.enum !== undefined && b.type === branches[0]!.type && Object.keys(b).length === 2)
  ) {
    merged = { type: branches[0]!.type, enum: branches.flatMap((b) => b.enum ?? []) };
  }
  if (merged === undefined)
    return fail(path, "is a union of different shapes, which a structural CRD schema cannot express");
  return { ...merged, ...convert(rest, path) };
}

/** Puts `rule` on the node at `at` ("" = the root, "network.cidr"); a path that does not exist throws. */
function withRule(root: StructuralSchema, at: string, rule: ValidationRule, rootPath: string): StructuralSchema {
  const copy = structuredClone(root);
  let node = copy;
  for (const name of at ? at.split(".") : []) {
    node = node.properties?.[name] ?? fail(`${rootPath}.${at}`, "does not exist in the schema");
  }
  node["x-kubernetes-validations"] = [...(node["x-kubernetes-validations"] ?? []), rule];
  return copy;
}

const IMMUTABLE =
  "is immutable: the two LBs would apply a change at different moments and split the pair; it cannot be set, changed or removed after creation (create a new LoadBalancer instead)";

/**
 * DESIGN.md: clusterName (router ID), network.cidr and lbAddresses may not change; nor may syncNetwork. The optional ones are checked on
 * their parent, so setting or removing them counts as a change too (adding vrrp.routerId would change the router ID
 * that was derived from clusterName). lbAddresses uses has() rather than CEL optionals: the address strings have no
 * maxLength, and the optional-list comparison's estimated cost exceeds the API server's budget.
 */
export const IMMUTABLE_SPEC_RULES: readonly { at: string; rule: ValidationRule }[] = [
  { at: "clusterName", rule: { rule: "self == oldSelf", message: IMMUTABLE } },
  { at: "network.cidr", rule: { rule: "self == oldSelf", message: IMMUTABLE } },
  {
    at: "network",
    rule: {
      rule: "has(self.lbAddresses) == has(oldSelf.lbAddresses) && (!has(self.lbAddresses) || self.lbAddresses == oldSelf.lbAddresses)",
      message: IMMUTABLE,
      fieldPath: ".lbAddresses",
    },
  },
  {
    at: "",
    rule: { rule: "self.?vrrp.?routerId == oldSelf.?vrrp.?routerId", message: IMMUTABLE, fieldPath: ".vrrp.routerId" },
  },
  // the link VRRP and the sync run on: adding, removing or moving it splits the pair like a router ID change
  {
    at: "",
    rule: {
      rule: "has(self.syncNetwork) == has(oldSelf.syncNetwork) && (!has(self.syncNetwork) || self.syncNetwork == oldSelf.syncNetwork)",
      message: IMMUTABLE,
      fieldPath: ".syncNetwork",
    },
  },
];

export const PRINTER_COLUMNS: readonly PrinterColumn[] = [
  { name: "Cluster", type: "string", jsonPath: ".spec.clusterName" },
  {
    name: "API VIP",
    type: "string",
    jsonPath: ".spec.virtualAddresses.api[0].address",
    description: "The first API virtual address",
  },
  {
    name: "Active",
    type: "string",
    jsonPath: '.status.loadBalancers[?(@.vrrpState=="Master")].name',
    description: "The LB holding the VIPs",
  },
  { name: "Redundant", type: "string", jsonPath: '.status.conditions[?(@.type=="Redundant")].status' },
  { name: "Image Switch", type: "string", jsonPath: ".status.imageSwitch.phase", priority: 1 },
  { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
];

export function loadBalancerCrd(): CustomResourceDefinition {
  const spec = IMMUTABLE_SPEC_RULES.reduce(
    (s, r) => withRule(s, r.at, r.rule, "spec"),
    structuralSchemaOf(loadBalancerSpecSchema, "spec"),
  );
  const status = structuralSchemaOf(loadBalancerStatusSchema, "status");
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: CRD_NAME, labels: { "app.kubernetes.io/name": "edgepair" } },
    spec: {
      group: GROUP,
      scope: "Namespaced",
      names: {
        plural: PLURAL,
        singular: SINGULAR,
        kind: KIND,
        listKind: LIST_KIND,
        shortNames: [...SHORT_NAMES],
        categories: ["edgepair"],
      },
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: PRINTER_COLUMNS.map((c) => ({ ...c })),
          schema: {
            openAPIV3Schema: {
              type: "object",
              description: "A highly available pair of load-balancer VMs for one cluster (edgepair).",
              required: ["spec"],
              properties: {
                apiVersion: { type: "string" },
                kind: { type: "string" },
                metadata: { type: "object" },
                spec: { ...spec, description: "The LoadBalancer spec as written (edgepair DESIGN.md)." },
                status: {
                  ...status,
                  description: "Written by the agents on the two LBs; each LB owns its own loadBalancers entry.",
                },
              },
            },
          },
        },
      ],
    },
  };
}
