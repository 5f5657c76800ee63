/**
 * Bad input as the engine should show it: the `<field.path>: <rule>` lines alone, without a stack trace a user has
 * nothing to do with; on the resource whose input it is (ResourceError) when one owns the problem, else for the whole
 * program (RunError).
 */
import * as pulumi from "@pulumi/pulumi";
import { checkSpec, isCheckedSpec, type CheckedSpec } from "../spec/checked";
import { SpecError } from "../spec/errors";
import type { LoadBalancerSpecInput } from "../spec/schema";

/** Runs `f`; a SpecError from it stops the program, titled `what`. */
export function stopOnSpecError<T>(what: string, f: () => T, owner?: pulumi.Resource): T {
  try {
    return f();
  } catch (e) {
    if (!(e instanceof SpecError)) throw e;
    const message = `${what} is invalid:\n${e.message}`;
    throw owner ? new pulumi.ResourceError(message, owner, true) : new pulumi.RunError(message);
  }
}

/** A component's spec argument, checked once: as given when the caller checked it already, else here. */
export function checkedSpecOf(spec: LoadBalancerSpecInput | CheckedSpec, owner: pulumi.Resource): CheckedSpec {
  return isCheckedSpec(spec) ? spec : stopOnSpecError("edgepair spec", () => checkSpec(spec), owner);
}
