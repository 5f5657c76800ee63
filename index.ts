/**
 * The Pulumi program: loads and validates the stack's spec (a bad spec fails `pulumi preview` with every
 * `<field.path>: <rule>` before anything is planned), then, once the platform's knobs are set, composes the pair.
 * Config keys are declared in Pulumi.yaml; secrets (metricsPassword, registryAuth, kubeconfig) are read as secrets.
 */
import * as pulumi from "@pulumi/pulumi";
import { EdgePair } from "./components/edgepair";
import type { LoadBalancerSpecInput } from "./spec/schema";
import { SpecError } from "./spec/errors";
import { resolveSpec } from "./spec/resolve";

const config = new pulumi.Config("edgepair");
const rawSpec = config.requireObject<LoadBalancerSpecInput>("spec");

function loadSpec() {
  try {
    return resolveSpec(rawSpec);
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

// The VMs need the appliance's disk image in the libvirt pool; without it the stack only validates the spec.
const baseImage = config.get("libvirtBaseImage");
const pair =
  spec.platform.type === "libvirt" && baseImage
    ? new EdgePair(spec.clusterName, {
        spec: rawSpec,
        image: { prebuilt: config.get("image") || "(edgepair:image is not set)" },
        sshAuthorizedKeys: config.getObject<string[]>("sshAuthorizedKeys") ?? [],
        platform: {
          libvirt: {
            uri: config.require("libvirtUri"),
            pool: config.require("libvirtPool"),
            baseImage,
            vcpu: config.requireNumber("vmVcpus"),
            memoryMiB: config.requireNumber("vmMemoryMiB"),
          },
        },
        readiness: { enabled: config.requireBoolean("waitForReady") },
        ...(config.getSecret("metricsPassword") ? { metricsPassword: config.requireSecret("metricsPassword") } : {}),
        ...(config.getSecret("registryAuth") ? { registryAuth: config.requireSecret("registryAuth") } : {}),
      })
    : undefined;

export const imageRef = pair?.imageRef;
export const loadBalancers = pair?.lbs;
export const renderedDigests = pair?.renderedDigests;
export const floatingIps = pair?.floatingIps;
