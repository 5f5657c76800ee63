/**
 * One LB VM on libvirt: a copy-on-write disk over the appliance's base image, the NoCloud seed and the domain with
 * its public and private NICs (fixed MACs, so the keyfiles' MAC match holds from first boot).
 */
import * as pulumi from "@pulumi/pulumi";
import { CloudInitDisk, Domain, Volume, type DomainType } from "../../providers/libvirt";

export interface LibvirtLbVmArgs {
  uri?: pulumi.Input<string>;
  pool: pulumi.Input<string>;
  /** The appliance's qcow2 in `basePool` (a volume name or path libvirt knows). */
  baseImage: pulumi.Input<string>;
  basePool?: pulumi.Input<string>;
  vcpu: pulumi.Input<number>;
  memoryMiB: pulumi.Input<number>;
  domainType?: pulumi.Input<DomainType>;
  /** Secret: carries the bootstrap secrets. Create-only (see below). */
  userData: pulumi.Input<string>;
  metaData: pulumi.Input<string>;
  publicNic: { network: pulumi.Input<string>; mac: string };
  privateNic: { network: pulumi.Input<string>; mac: string };
  /** the third NIC, on the sync link (spec.syncNetwork) */
  syncNic?: { network: pulumi.Input<string>; mac: string };
}

export class LibvirtLbVm extends pulumi.ComponentResource {
  public readonly domain: Domain;
  public readonly disk: Volume;
  public readonly seed: CloudInitDisk;

  constructor(name: string, args: LibvirtLbVmArgs, opts?: pulumi.ComponentResourceOptions) {
    super("edgepair:index:LbVm", name, {}, opts);
    const uri = args.uri ? { uri: args.uri } : {};
    // Names, MACs and addresses are fixed per LB, so an LB's disk, seed and domain can never exist twice: replacing the
    // VM (`pulumi up --replace` of all three, or a change that forces it) always deletes the old one first. The
    // providers say so when an input forces the replacement; a --replace with unchanged inputs needs it said here.
    const once = { parent: this, deleteBeforeReplace: true };
    this.disk = new Volume(
      `${name}-disk`,
      { ...uri, pool: args.pool, base: args.baseImage, ...(args.basePool ? { basePool: args.basePool } : {}) },
      once,
    );
    // cloud-init reads the seed once per instance; a changed seed would never be consumed, yet it would show in
    // every preview and could tempt a replacement. Day 2 reaches the VM through the LoadBalancer resource instead.
    this.seed = new CloudInitDisk(
      `${name}-seed`,
      { ...uri, pool: args.pool, userData: pulumi.secret(args.userData), metaData: args.metaData },
      {
        ...once,
        ignoreChanges: ["userData", "metaData"],
      },
    );
    this.domain = new Domain(
      name,
      {
        ...uri,
        vcpu: args.vcpu,
        memoryMiB: args.memoryMiB,
        ...(args.domainType ? { type: args.domainType } : {}),
        disks: [{ pool: args.pool, volume: this.disk.name }],
        cloudInit: { pool: args.pool, volume: this.seed.name },
        // order matters: public, private, sync, as the host facts' interface names assume
        nics: [args.publicNic, args.privateNic, ...(args.syncNic ? [args.syncNic] : [])],
      },
      once,
    );
    this.registerOutputs({ domain: this.domain.name, disk: this.disk.name, seed: this.seed.name });
  }
}
