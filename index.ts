/**
 * The Pulumi program: loads and validates the stack's spec (a bad spec fails `pulumi preview` with every
 * `<field.path>: <rule>` before anything is planned), then, once the platform's knobs are set, composes the pair.
 * Config keys are declared in Pulumi.yaml; secrets (metricsPassword, registryAuth, kubeconfig) are read as secrets.
 */
import * as pulumi from "@pulumi/pulumi";
import { EdgePair } from "./components/edgepair";
import { stopOnSpecError } from "./components/spec-errors";
import type { BootcImageArgs, BootcImageBuild, RegistryAuth } from "./components/bootc-image";
import type { LoadBalancerSpecInput } from "./spec/schema";
import { parseOpenStackSettings } from "./spec/openstack-settings";
import { parseClusterAccessSettings } from "./spec/cluster-access-settings";
import { checkSpec } from "./spec/checked";
import { DOMAIN_TYPES, type DomainType } from "./providers/libvirt";

const config = new pulumi.Config("edgepair");
const rawSpec = config.requireObject<LoadBalancerSpecInput>("spec");

// checked once here; EdgePair, ClusterAccess and each LB's user-data take it as it is
const checked = stopOnSpecError("edgepair:spec", () => checkSpec(rawSpec));
const spec = checked.resolved;

export const clusterName = spec.clusterName;
export const vrrpRouterId = spec.vrrp.routerId;
export const privateVips = spec.derived.privateVips.map((v) => v.address);
export const publicVips = spec.derived.publicVips.map((v) => v.address);

/**
 * edgepair:imageBuild (structured: context, repository, buildArgs, tlsVerify, diskImage) builds and pushes the
 * appliance, with edgepair:imagePushUser + secret edgepair:imagePushPassword; else edgepair:image names a prebuilt
 * one. Both set: BootcImage refuses it, naming both fields.
 */
function imageArgs(): BootcImageArgs {
  const prebuilt = config.get("image") || undefined;
  const build = config.getObject<Omit<BootcImageBuild, "registryAuth">>("imageBuild");
  if (!build) return { prebuilt: prebuilt ?? "(edgepair:image is not set)" };
  const user = config.get("imagePushUser");
  const registryAuth = user
    ? config.requireSecret("imagePushPassword").apply((password): RegistryAuth => ({ username: user, password }))
    : undefined;
  return { ...(prebuilt ? { prebuilt } : {}), build: { ...build, ...(registryAuth ? { registryAuth } : {}) } };
}

// edgepair:clusterAccess + the secret edgepair:kubeconfig: the stack creates ClusterAccess and gives the LBs the cluster
const clusterAccess = stopOnSpecError("edgepair:clusterAccess", () =>
  parseClusterAccessSettings(
    config.getObject<unknown>("clusterAccess"),
    config.getSecret("kubeconfig") !== undefined,
    "edgepair:clusterAccess",
  ),
);

const common = () => ({
  spec: checked,
  image: imageArgs(),
  sshAuthorizedKeys: config.getObject<string[]>("sshAuthorizedKeys") ?? [],
  readiness: { enabled: config.requireBoolean("waitForReady") },
  ...(config.getSecret("metricsPassword") ? { metricsPassword: config.requireSecret("metricsPassword") } : {}),
  ...(config.getSecret("registryAuth") ? { registryAuth: config.requireSecret("registryAuth") } : {}),
  ...(clusterAccess ? { clusterAccess: { ...clusterAccess, kubeconfig: config.requireSecret("kubeconfig") } } : {}),
});

function composePair(): EdgePair | undefined {
  if (spec.platform.type === "libvirt") {
    // The VMs need the appliance's disk image in the libvirt pool; without it the stack only validates the spec.
    const baseImage = config.get("libvirtBaseImage");
    if (!baseImage) return undefined;
    return new EdgePair(spec.clusterName, {
      ...common(),
      platform: {
        libvirt: {
          uri: config.require("libvirtUri"),
          pool: config.require("libvirtPool"),
          baseImage,
          vcpu: config.requireNumber("vmVcpus"),
          memoryMiB: config.requireNumber("vmMemoryMiB"),
          // a value outside the three fails the preview naming the key and the allowed values (ConfigEnumError)
          domainType: config.get<DomainType>("libvirtDomainType", { allowedValues: [...DOMAIN_TYPES] }) ?? "auto",
        },
      },
    });
  }
  // OpenStack: the networks, flavor and image come from `edgepair:openstack`; without it, validate only.
  const raw = config.getObject<unknown>("openstack");
  if (raw === undefined) return undefined;
  const os = stopOnSpecError("edgepair:openstack", () => parseOpenStackSettings(raw, "edgepair:openstack"));
  const image = os.imageId !== undefined ? { imageId: os.imageId } : { imageName: os.imageName as string };
  return new EdgePair(spec.clusterName, {
    ...common(),
    platform: {
      openstack: {
        ...image,
        privateNetwork: os.privateNetwork,
        publicNetwork: os.publicNetwork,
        externalNetworkName: os.externalNetworkName,
        flavorName: os.flavorName,
        ...(os.keyPair ? { keyPair: os.keyPair } : {}),
        ...(os.availabilityZone ? { availabilityZone: os.availabilityZone } : {}),
        ...(os.antiAffinity ? { antiAffinity: os.antiAffinity } : {}),
      },
    },
  });
}

const pair = composePair();

export const imageRef = pair?.imageRef;
export const loadBalancers = pair?.lbs;
export const renderedDigests = pair?.renderedDigests;
export const floatingIps = pair?.floatingIps;
