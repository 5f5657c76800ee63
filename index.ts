/**
 * The Pulumi program. Until the stack's components land it only loads and validates the stack's spec, so a bad
 * spec fails `pulumi preview` with every `<field.path>: <rule>` before anything is created.
 */
import * as pulumi from "@pulumi/pulumi";
import { SpecError } from "./spec/errors";
import { resolveSpec } from "./spec/resolve";

function loadSpec() {
  const config = new pulumi.Config("edgepair");
  try {
    return resolveSpec(config.requireObject<unknown>("spec"));
  } catch (e) {
    // RunError: the engine prints the message alone, without a stack trace a user has nothing to do with.
    if (e instanceof SpecError) throw new pulumi.RunError(`edgepair:spec is invalid:\n${e.message}`);
    throw e;
  }
}

const spec = loadSpec();

export const clusterName = spec.clusterName;
export const vrrpRouterId = spec.vrrp.routerId;
export const privateVips = spec.derived.privateVips.map((v) => v.address);
export const publicVips = spec.derived.publicVips.map((v) => v.address);
