/**
 * The appliance image both LBs boot and `bootc switch` to must be named by digest. A tag can move between the two
 * LBs' pulls (or between a preview and the update), and then the pair runs two different images. The reference
 * reaches the stack as the BootcImage component's `ref` output, the EdgePair's `imageRef` output and, when the
 * spec names the image to switch to, the LoadBalancer custom resource's `spec.image` (the day-2 carrier).
 */
import type { StackValidationPolicy } from "@pulumi/policy";
import { isDigestPinned } from "../spec/image-ref";
import { label } from "./lib/stack";
import { TYPES } from "./lib/types";
import { record, str } from "./lib/values";

/** Where each type carries the reference: [object path, property]. */
const WHERE: Record<string, [string[], string]> = {
  [TYPES.bootcImage]: [[], "ref"],
  [TYPES.edgePair]: [[], "imageRef"],
  [TYPES.loadBalancerCr]: [["spec"], "image"],
};

export const imagePinnedByDigest: StackValidationPolicy = {
  name: "image-pinned-by-digest",
  description:
    "The appliance image is referenced by digest (registry/repo@sha256:<64 hex>), never by a tag alone, so both LBs boot and switch to exactly the image that was reviewed.",
  enforcementLevel: "mandatory",
  severity: "high",
  validateStack: (args, report) => {
    for (const r of args.resources) {
      const where = WHERE[r.type];
      if (!where) continue;
      const [path, key] = where;
      let obj: unknown = r.props;
      for (const p of path) obj = record(obj, p);
      // unknown in a preview when the reference comes from another resource (an image build): judged by `up`
      const ref = str(obj, key);
      if (ref !== undefined && !isDigestPinned(ref)) {
        report(
          `${label(r)} ${[...path, key].join(".")} is "${ref}": pin it by digest (registry/repo@sha256:<64 hex>)`,
          r.urn,
        );
      }
    }
  },
};
