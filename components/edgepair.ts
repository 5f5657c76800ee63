/**
 * EdgePair: the whole pair for one cluster — image, networks, two LB VMs, public addresses, cluster access —
 * composed from the spec. Everything the VMs and reviewers see comes from the same renderers the agent runs.
 * What differs per platform (networks, VMs, where MACs and public addresses come from) lives in platforms/.
 */
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { renderUserData } from "../cloud-init";
import { lbHostname } from "../k8s/names";
import { resolveBackends } from "../spec/backend-list";
import { renderAll, RENDERER_VERSION } from "../render";
import type { AgentSettingsInput } from "../spec/agent-settings";
import type { CheckedSpec } from "../spec/checked";
import type { LoadBalancerSpecInput } from "../spec/schema";
import type { HostFacts, PlatformType, ResolvedSpec, Role } from "../spec/types";
import { RenderedView, type ViewFile } from "../providers/edgepair/rendered-view";
import { BootcImage, type BootcImageArgs } from "./bootc-image";
import { ClusterAccess, type ClusterAccessMonitoring } from "./cluster-access";
import type { PublicAddress } from "./floating-ips";
import { deployLibvirt, type LibvirtPlatformArgs } from "./platforms/libvirt";
import { deployOpenStack, type OpenStackPlatformArgs } from "./platforms/openstack";
import { type Known, type LbPlan, mapKnown, type PlatformContext, type PlatformPair } from "./platforms/types";
import { SecretDelivery } from "./secret-delivery";
import { checkedSpecOf } from "./spec-errors";

export type { LibvirtPlatformArgs } from "./platforms/libvirt";
export type { OpenStackPlatformArgs } from "./platforms/openstack";

/** Exactly one platform; it must be the one the spec's platform.type names. */
export type EdgePairPlatformArgs =
  { libvirt: LibvirtPlatformArgs; openstack?: never } | { openstack: OpenStackPlatformArgs; libvirt?: never };

export interface ClusterAccessSettings {
  /** Secret kubeconfig for this stack (CRD, RBAC, CR). */
  kubeconfig: pulumi.Input<string>;
  /** The control-plane addresses the agent talks to directly, `https://IP:6443` (never the pair's own VIP). */
  apiServers: string[];
  /** The name in the API server's certificate. */
  tlsServerName: string;
  caCertificate?: string;
  namespace?: string;
  /** The pair's PrometheusRule and ServiceMonitor (ClusterAccess), the latter with the stack's metrics password. */
  monitoring?: Omit<ClusterAccessMonitoring, "metricsPassword">;
}

export interface EdgePairArgs {
  /**
   * The LoadBalancer spec as written. A plain value, not an Input: how many VMs, networks and addresses exist is
   * decided from it while the program runs, and a bad spec must stop the preview before anything is planned. Checked
   * once (spec/checked.ts); a CheckedSpec is taken as it is.
   */
  spec: LoadBalancerSpecInput | CheckedSpec;
  /** Exactly one of prebuilt (ref@sha256:...) or build (podman build + push, optional qcow2): see BootcImage. */
  image: BootcImageArgs;
  sshAuthorizedKeys?: string[];
  platform: EdgePairPlatformArgs;
  clusterAccess?: ClusterAccessSettings;
  /** Secret; generated (@pulumi/random) when absent. */
  metricsPassword?: pulumi.Input<string>;
  /** Secret: containers-auth.json for pulling the image. */
  registryAuth?: pulumi.Input<string>;
  /**
   * Deliver the secrets (cluster token and agent settings, metrics password, registry credentials) to running LBs
   * over SSH, one LB after the other: phase two of the two-phase flow, and every rotation, without replacing a VM.
   * On libvirt to their public addresses, on openstack to their private ones (the only side whose security group
   * opens SSH).
   */
  delivery?: { user: pulumi.Input<string>; privateKey: pulumi.Input<string> };
  /**
   * NIC names the appliance sees, public then private (then the sync link's, with spec.syncNetwork). Default enp1s0,
   * enp2s0, enp3s0 (q35 + virtio); the keyfiles match by MAC, but keepalived and firewalld name the interfaces, so
   * they must be the names the image really gets.
   */
  interfaceNames?: { public: string; private: string; sync?: string };
  /**
   * The second LB waits until the first serves again (its HAProxy monitor URI answers 200) whenever the first is
   * created or replaced. Default enabled, 600 s. Turn off only where the VMs cannot serve (a lab booting nothing).
   */
  readiness?: { enabled?: boolean; timeoutSeconds?: number };
}

export interface LbSummary {
  role: Role;
  hostname: string;
  privateAddress: string;
  publicAddress: string;
  /** libvirt: derived from names, a plain value; openstack: the Neutron port's, an Output. */
  publicMac: Known<string>;
  privateMac: Known<string>;
}

const ROLES: Role[] = ["primary", "secondary"];

export class EdgePair extends pulumi.ComponentResource {
  public readonly spec: ResolvedSpec;
  public readonly imageRef: pulumi.Output<string>;
  public readonly lbs: LbSummary[];
  /** Per LB: SHA-256 of every rendered file (the same hash the agent reports in status). */
  public readonly renderedDigests: pulumi.Output<string>[];
  /** The FloatingIps child's record: libvirt {address, routedTo}, openstack {vip, floatingIp}, per public IPv4 VIP. */
  public readonly floatingIps: pulumi.Output<PublicAddress[]>;
  /** Secret. */
  public readonly metricsPassword: pulumi.Output<string>;

  constructor(name: string, args: EdgePairArgs, opts?: pulumi.ComponentResourceOptions) {
    super("edgepair:index:EdgePair", name, {}, opts);
    const checked = checkedSpecOf(args.spec, this);
    this.spec = checked.resolved;
    const spec = this.spec;
    checkPlatform(args.platform, spec.platform.type);
    const image = new BootcImage(`${name}-image`, args.image, { parent: this });
    this.imageRef = image.ref;
    this.metricsPassword = pulumi.secret(
      args.metricsPassword ??
        new random.RandomPassword(`${name}-metrics-password`, { length: 32, special: false }, { parent: this }).result,
    );

    const access = args.clusterAccess
      ? new ClusterAccess(
          `${name}-cluster`,
          {
            spec: checked,
            image: image.ref,
            kubeconfig: args.clusterAccess.kubeconfig,
            ...(args.clusterAccess.namespace ? { namespace: args.clusterAccess.namespace } : {}),
            ...(args.clusterAccess.monitoring
              ? { monitoring: { ...args.clusterAccess.monitoring, metricsPassword: this.metricsPassword } }
              : {}),
          },
          { parent: this },
        )
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

    const ctx: PlatformContext = {
      name,
      stack: pulumi.getStack(),
      spec,
      lbs: ROLES.map((role, i): LbPlan => ({
        role,
        vm: `${name}-lb${i + 1}`,
        hostname: lbHostname(spec.clusterName, i),
      })),
      interfaceNames: { public: "enp1s0", private: "enp2s0", sync: "enp3s0", ...args.interfaceNames },
      readiness: { enabled: args.readiness?.enabled ?? true, timeoutSeconds: args.readiness?.timeoutSeconds ?? 600 },
      parent: this,
      userData: (host) =>
        pulumi.secret(
          pulumi.all([host, image.ref, this.metricsPassword, args.registryAuth, access?.token]).apply(
            ([h, ref, metrics, registryAuth, token]) =>
              renderUserData({
                spec: checked,
                host: h,
                agent: agent(ref),
                sshAuthorizedKeys: args.sshAuthorizedKeys ?? [],
                hostname: h.hostname,
                secrets: {
                  metricsPassword: metrics,
                  ...(registryAuth ? { registryAuth } : {}),
                  ...(token ? { clusterToken: token } : {}),
                },
              }).textWithSecrets,
          ),
        ),
    };
    const pair: PlatformPair = args.platform.libvirt
      ? deployLibvirt(ctx, args.platform.libvirt)
      : deployOpenStack(ctx, args.platform.openstack);

    this.lbs = ctx.lbs.map((lb, i) => ({
      role: lb.role,
      hostname: lb.hostname,
      privateAddress: spec.network.lbAddresses[i] as string,
      publicAddress: spec.platform.publicNetwork.lbAddresses[i] as string,
      publicMac: mapKnown(pair.hosts[i]!, (h) => h.publicInterface.mac),
      privateMac: mapKnown(pair.hosts[i]!, (h) => h.privateInterface.mac),
    }));

    // What the agent will write, for reviewers: static backends until the agent sees the cluster's Nodes.
    const backends = resolveBackends(spec, {});
    const views = ctx.lbs.map(
      (lb, i) =>
        new RenderedView(
          `${lb.vm}-rendered`,
          {
            lb: lb.hostname,
            rendererVersion: RENDERER_VERSION,
            files: mapKnown(pair.hosts[i]!, (host) => viewFiles(spec, host, backends)),
          },
          { parent: this },
        ),
    );
    this.renderedDigests = views.map((v) => v.digest);
    this.floatingIps = pair.floatingIps.addresses;

    if (args.delivery) {
      const d = args.delivery;
      let after: pulumi.Resource[] = pair.vms;
      ctx.lbs.forEach((lb, i) => {
        // one LB at a time: the second restarts what reads a changed secret only after the first one's delivery ended
        const delivery: SecretDelivery = new SecretDelivery(
          `${lb.vm}-secrets`,
          {
            host: pair.sshAddresses[i]!,
            user: d.user,
            privateKey: d.privateKey,
            agent: image.ref.apply((ref) => agent(ref)),
            secrets: pulumi.secret(
              pulumi
                .all([this.metricsPassword, args.registryAuth, access?.token])
                .apply(([metricsPassword, registryAuth, clusterToken]) => ({
                  metricsPassword,
                  ...(registryAuth ? { registryAuth } : {}),
                  ...(clusterToken ? { clusterToken } : {}),
                })),
            ),
          },
          {
            parent: this,
            dependsOn: after,
            aliases: [{ type: "edgepair:index:TokenDelivery", name: `${lb.vm}-token` }],
          },
        );
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

/** Before anything is created: the platform arguments must be for the platform the spec was written for. */
function checkPlatform(platform: EdgePairPlatformArgs, specType: PlatformType): void {
  const given = (["libvirt", "openstack"] as const).filter((p) => platform[p] !== undefined);
  if (given.length !== 1) {
    throw new pulumi.RunError(
      `platform: must name exactly one of libvirt, openstack, got ${given.length === 0 ? "none" : given.join(" and ")}`,
    );
  }
  if (given[0] !== specType) {
    throw new pulumi.RunError(
      `platform: the arguments are for ${given[0]} but the spec's platform.type is ${specType}; they must name the same platform`,
    );
  }
}

/** Every file the agent will write on this LB, by path: mode and content. Secrets are referenced by path only. */
export function viewFiles(
  spec: ResolvedSpec,
  host: HostFacts,
  backends: ReturnType<typeof resolveBackends>,
): Record<string, ViewFile> {
  return Object.fromEntries(
    renderAll({ spec, host, backends }).map((f) => [
      f.path,
      { mode: f.mode.toString(8).padStart(4, "0"), content: f.content },
    ]),
  );
}
