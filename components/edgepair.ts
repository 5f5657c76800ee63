/**
 * EdgePair: the whole pair for one cluster — image, networks, two LB VMs, public addresses, cluster access —
 * composed from the spec. Everything the VMs and reviewers see comes from the same renderers the agent runs.
 */
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { renderMetaData, renderUserData } from "../cloud-init";
import { resolveBackends } from "../cli/inputs";
import { renderAll, RENDERER_VERSION } from "../render";
import type { AgentSettingsInput } from "../spec/agent-settings";
import { SpecError } from "../spec/errors";
import { deriveMac } from "../spec/mac";
import { resolveSpec } from "../spec/resolve";
import type { LoadBalancerSpecInput } from "../spec/schema";
import type { HostFacts, ResolvedSpec, Role } from "../spec/types";
import { RenderedView, type ViewFile } from "../providers/edgepair/rendered-view";
import { BootcImage } from "./bootc-image";
import { ClusterAccess } from "./cluster-access";
import { LibvirtLbVm } from "./libvirt/lb-vm";
import { LibvirtNetworks } from "./libvirt/networks";
import { TokenDelivery } from "./token-delivery";

export interface LibvirtPlatformArgs {
  uri?: pulumi.Input<string>;
  pool: pulumi.Input<string>;
  /** The appliance's qcow2 (bootc-image-builder output) as a volume in basePool. */
  baseImage: pulumi.Input<string>;
  basePool?: pulumi.Input<string>;
  vcpu?: pulumi.Input<number>;
  memoryMiB?: pulumi.Input<number>;
  privateDhcp?: { start: string; end: string };
}

export interface ClusterAccessSettings {
  /** Secret kubeconfig for this stack (CRD, RBAC, CR). */
  kubeconfig: pulumi.Input<string>;
  /** The control-plane addresses the agent talks to directly, `https://IP:6443` (never the pair's own VIP). */
  apiServers: string[];
  /** The name in the API server's certificate. */
  tlsServerName: string;
  caCertificate?: string;
  namespace?: string;
  /** Deliver the token to running LBs over SSH (phase two of the two-phase flow). */
  delivery?: { user: pulumi.Input<string>; privateKey: pulumi.Input<string> };
}

export interface EdgePairArgs {
  /**
   * The LoadBalancer spec as written. A plain value, not an Input: how many VMs, networks and addresses exist is
   * decided from it while the program runs, and a bad spec must stop the preview before anything is planned.
   */
  spec: LoadBalancerSpecInput;
  image: { prebuilt: pulumi.Input<string> };
  sshAuthorizedKeys?: string[];
  platform: { libvirt: LibvirtPlatformArgs };
  clusterAccess?: ClusterAccessSettings;
  /** Secret; generated (@pulumi/random) when absent. */
  metricsPassword?: pulumi.Input<string>;
  /** Secret: containers-auth.json for pulling the image. */
  registryAuth?: pulumi.Input<string>;
  /** NIC names the appliance sees (q35 + virtio: enp1s0, enp2s0); the keyfiles match by MAC regardless. */
  interfaceNames?: { public: string; private: string };
}

export interface LbSummary {
  role: Role;
  hostname: string;
  privateAddress: string;
  publicAddress: string;
  publicMac: string;
  privateMac: string;
}

const ROLES: Role[] = ["primary", "secondary"];

export class EdgePair extends pulumi.ComponentResource {
  public readonly spec: ResolvedSpec;
  public readonly imageRef: pulumi.Output<string>;
  public readonly lbs: LbSummary[];
  /** Per LB: SHA-256 of every rendered file (the same hash the agent reports in status). */
  public readonly renderedDigests: pulumi.Output<string>[];
  public readonly floatingIps: { address: string; routedTo: string }[];
  /** Secret. */
  public readonly metricsPassword: pulumi.Output<string>;

  constructor(name: string, args: EdgePairArgs, opts?: pulumi.ComponentResourceOptions) {
    super("edgepair:index:EdgePair", name, {}, opts);
    try {
      this.spec = resolveSpec(args.spec);
    } catch (e) {
      if (e instanceof SpecError) throw new pulumi.RunError(`edgepair spec is invalid:\n${e.message}`);
      throw e;
    }
    const spec = this.spec;
    const stack = pulumi.getStack();
    const image = new BootcImage(`${name}-image`, { prebuilt: args.image.prebuilt }, { parent: this });
    this.imageRef = image.ref;
    this.metricsPassword = pulumi.secret(
      args.metricsPassword ?? new random.RandomPassword(`${name}-metrics-password`, { length: 32, special: false }, { parent: this }).result,
    );
    const ifnames = args.interfaceNames ?? { public: "enp1s0", private: "enp2s0" };
    const hosts = ROLES.map((role, i): HostFacts => {
      const vm = `${name}-lb${i + 1}`;
      return {
        hostname: `${spec.clusterName}-lb-${i + 1}`,
        role,
        publicInterface: { name: ifnames.public, mac: deriveMac(stack, vm, "public") },
        privateInterface: { name: ifnames.private, mac: deriveMac(stack, vm, "private") },
      };
    });
    this.lbs = hosts.map((h, i) => ({
      role: h.role,
      hostname: h.hostname,
      privateAddress: spec.network.lbAddresses[i] as string,
      publicAddress: spec.platform.publicNetwork.lbAddresses[i] as string,
      publicMac: h.publicInterface.mac,
      privateMac: h.privateInterface.mac,
    }));

    // What the agent will write, for reviewers: static backends until the agent sees the cluster's Nodes.
    const backends = resolveBackends(spec, {});
    const views = hosts.map((host, i) => new RenderedView(`${name}-lb${i + 1}-rendered`, {
      lb: host.hostname,
      rendererVersion: RENDERER_VERSION,
      files: viewFiles(spec, host, backends),
    }, { parent: this }));
    this.renderedDigests = views.map((v) => v.digest);

    const access = args.clusterAccess
      ? new ClusterAccess(`${name}-cluster`, {
          spec: args.spec,
          kubeconfig: args.clusterAccess.kubeconfig,
          ...(args.clusterAccess.namespace ? { namespace: args.clusterAccess.namespace } : {}),
        }, { parent: this })
      : undefined;
    const agent = (ref: string): AgentSettingsInput => ({
      imageRef: ref,
      ...(args.clusterAccess && access
        ? {
            cluster: {
              apiServers: args.clusterAccess.apiServers,
              tlsServerName: args.clusterAccess.tlsServerName,
              ...(args.clusterAccess.caCertificate ? { caCertificate: args.clusterAccess.caCertificate } : {}),
              namespace: access.namespace,
              loadBalancerName: access.loadBalancerName,
            },
          }
        : {}),
    });

    const userData = (host: HostFacts) =>
      pulumi.secret(pulumi.all([image.ref, this.metricsPassword, args.registryAuth, access?.token]).apply(([ref, metrics, registryAuth, token]) =>
        renderUserData({
          spec: args.spec,
          host,
          agent: agent(ref),
          sshAuthorizedKeys: args.sshAuthorizedKeys ?? [],
          hostname: host.hostname,
          secrets: { metricsPassword: metrics, ...(registryAuth ? { registryAuth } : {}), ...(token ? { clusterToken: token } : {}) },
        }).textWithSecrets,
      ));

    const lv = args.platform.libvirt;
    const networks = new LibvirtNetworks(`${name}-net`, { spec, ...(lv.uri ? { uri: lv.uri } : {}), ...(lv.privateDhcp ? { privateDhcp: lv.privateDhcp } : {}) }, { parent: this });
    let previous: LibvirtLbVm | undefined;
    const vms: LibvirtLbVm[] = [];
    hosts.forEach((host, i) => {
      const vm: LibvirtLbVm = new LibvirtLbVm(`${name}-lb${i + 1}`, {
        ...(lv.uri ? { uri: lv.uri } : {}),
        pool: lv.pool,
        baseImage: lv.baseImage,
        ...(lv.basePool ? { basePool: lv.basePool } : {}),
        vcpu: lv.vcpu ?? 2,
        memoryMiB: lv.memoryMiB ?? 2048,
        userData: userData(host),
        metaData: renderMetaData({ stack, vm: `lb${i + 1}`, hostname: host.hostname }),
        publicNic: { network: networks.publicNetwork.name, mac: host.publicInterface.mac },
        privateNic: { network: networks.privateNetwork.name, mac: host.privateInterface.mac },
        // Never both at once: the second LB's changes (a replacement included) wait for the first LB's.
      }, { parent: this, ...(previous ? { dependsOn: [previous] } : {}) });
      vms.push(vm);
      previous = vm;
    });

    // Routed floating IPs: the public network routes each to the next hop the active LB holds.
    const nextHop = spec.platform.publicNetwork.nextHop ?? "";
    this.floatingIps = spec.derived.publicVips.filter((v) => v.family === 4).map((v) => ({ address: v.address, routedTo: nextHop }));

    if (access && args.clusterAccess?.delivery) {
      const d = args.clusterAccess.delivery;
      let after: pulumi.Resource[] = vms;
      this.lbs.forEach((lb, i) => {
        // one LB at a time: the second restarts its agent only after the first has its token
        const delivery: TokenDelivery = new TokenDelivery(`${name}-lb${i + 1}-token`, {
          host: lb.publicAddress,
          user: d.user,
          privateKey: d.privateKey,
          agent: image.ref.apply((ref) => agent(ref)),
          token: access.token,
        }, { parent: this, dependsOn: after });
        after = [delivery];
      });
    }

    this.registerOutputs({
      imageRef: this.imageRef,
      lbs: this.lbs,
      renderedDigests: this.renderedDigests,
      floatingIps: this.floatingIps,
      metricsPassword: this.metricsPassword,
    });
  }
}

/** Every file the agent will write on this LB, by path: mode and content. Secrets are referenced by path only. */
export function viewFiles(spec: ResolvedSpec, host: HostFacts, backends: ReturnType<typeof resolveBackends>): Record<string, ViewFile> {
  return Object.fromEntries(renderAll({ spec, host, backends }).map((f) => [f.path, { mode: f.mode.toString(8).padStart(4, "0"), content: f.content }]));
}
