/**
 * One LB VM on OpenStack: a Nova instance on the two ports OpenStackNetworking made for it, in the pair's
 * anti-affinity server group, first-boot data on a config drive.
 */
import * as pulumi from "@pulumi/pulumi";
import * as openstack from "@pulumi/openstack";

export type OpenStackImage =
  { imageName: pulumi.Input<string>; imageId?: never } | { imageId: pulumi.Input<string>; imageName?: never };

export type OpenStackLbServerArgs = OpenStackImage & {
  flavorName: pulumi.Input<string>;
  /** Secret: carries the bootstrap secrets. Create-only (see below). */
  userData: pulumi.Input<string>;
  /** The LB's ports; attached public first, private second, the NIC order the host facts describe. */
  ports: { public: pulumi.Input<string>; private: pulumi.Input<string> };
  serverGroupId: pulumi.Input<string>;
  availabilityZone?: pulumi.Input<string>;
  keyPair?: pulumi.Input<string>;
};

/**
 * Inputs only first boot reads, and that Nova can only apply by rebuilding the server (the provider replaces it
 * when they change). user-data and the key pair are consumed once by cloud-init; day 2 reaches the VM through the
 * LoadBalancer resource instead. The image only seeds the first boot: later images arrive by `bootc switch`, one LB
 * at a time. Without this, editing the spec or uploading a new image would replace both LBs at once.
 */
export const CREATE_ONLY_INPUTS = ["userData", "keyPair", "imageId", "imageName"];

export class OpenStackLbServer extends pulumi.ComponentResource {
  public readonly instance: openstack.compute.Instance;
  public readonly id: pulumi.Output<string>;

  constructor(name: string, args: OpenStackLbServerArgs, opts?: pulumi.ComponentResourceOptions) {
    super("edgepair:index:OpenStackLbServer", name, {}, opts);
    const image = args.imageId !== undefined ? { imageId: args.imageId } : { imageName: args.imageName };
    this.instance = new openstack.compute.Instance(
      name,
      {
        name,
        ...image,
        flavorName: args.flavorName,
        // The image's cloud-init must not configure networking (NetworkManager keyfiles do), so the metadata
        // service, which needs a configured NIC, is out of reach at first boot; a config drive is not.
        configDrive: true,
        userData: pulumi.secret(args.userData),
        networks: [{ port: args.ports.public }, { port: args.ports.private }],
        schedulerHints: [{ group: args.serverGroupId }],
        ...(args.availabilityZone !== undefined ? { availabilityZone: args.availabilityZone } : {}),
        ...(args.keyPair !== undefined ? { keyPair: args.keyPair } : {}),
      },
      {
        parent: this,
        ignoreChanges: CREATE_ONLY_INPUTS,
        additionalSecretOutputs: ["userData"],
      },
    );
    this.id = this.instance.id;
    this.registerOutputs({ id: this.id });
  }
}
