/**
 * The Pulumi program. Until the stack's components land it only loads and validates the stack's spec, so a bad
 * spec fails `pulumi preview` with every `<field.path>: <rule>` before anything is created.
 */
import * as pulumi from "@pulumi/pulumi";
import { resolveSpec } from "./spec/resolve";

const config = new pulumi.Config("edgepair");
const spec = resolveSpec(config.requireObject<unknown>("spec"));

export const clusterName = spec.clusterName;
export const vrrpRouterId = spec.vrrp.routerId;
export const privateVips = spec.derived.privateVips.map((v) => v.address);
export const publicVips = spec.derived.publicVips.map((v) => v.address);
