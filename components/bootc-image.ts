/**
 * BootcImage: the appliance image both LBs boot and switch to. This slice takes a prebuilt image pinned by digest
 * (`ref@sha256:...`); building and pushing it is the image issue's part of this component.
 */
import * as pulumi from "@pulumi/pulumi";

const DIGEST_PINNED = /^[a-z0-9][a-z0-9._\/:-]*@sha256:[0-9a-f]{64}$/;

/** A tag can move under a running pair; only a digest names one image for both LBs. */
function checkPinned(ref: string): string {
  if (!DIGEST_PINNED.test(ref)) throw new pulumi.RunError(`image.prebuilt: must be pinned by digest (ref@sha256:<64 hex>), got "${ref}"`);
  return ref;
}

export interface BootcImageArgs {
  /** A prebuilt image, pinned by digest: `registry/repo[:tag]@sha256:<64 hex>`. */
  prebuilt: pulumi.Input<string>;
}

export class BootcImage extends pulumi.ComponentResource {
  /** The digest-pinned reference the LBs boot and `bootc switch` to. */
  public readonly ref: pulumi.Output<string>;

  constructor(name: string, args: BootcImageArgs, opts?: pulumi.ComponentResourceOptions) {
    super("edgepair:index:BootcImage", name, {}, opts);
    // a plain value is checked at once, so a bad reference stops the preview before anything is planned
    if (typeof args.prebuilt === "string") checkPinned(args.prebuilt);
    this.ref = pulumi.output(args.prebuilt).apply(checkPinned);
    this.registerOutputs({ ref: this.ref });
  }
}
