/**
 * The stack's OpenStack knobs (`edgepair:openstack`, structured config like `edgepair:spec`): which networks,
 * flavor and image the pair uses. Validated before anything is planned; errors name the field.
 */
import { z } from "zod";
import { fromZodIssues, SpecError } from "./errors";

const id = z.string().min(1);

export const openstackSettingsSchema = z
  .strictObject({
    privateNetwork: z.union([
      z.strictObject({ existing: z.strictObject({ networkId: id, subnetId: id }) }),
      z.strictObject({ create: z.strictObject({ dnsNameservers: z.array(z.string()).optional() }) }),
    ]),
    publicNetwork: z.strictObject({ networkId: id, subnetId: id }),
    externalNetworkName: id,
    flavorName: id,
    imageName: id.optional(),
    imageId: id.optional(),
    keyPair: id.optional(),
    availabilityZone: id.optional(),
    antiAffinity: z.enum(["hard", "soft"]).optional(),
  })
  .refine((s) => (s.imageName === undefined) !== (s.imageId === undefined), {
    message: "exactly one of imageName, imageId is required",
    path: ["imageName"],
  });

export type OpenStackSettings = z.output<typeof openstackSettingsSchema>;

/** Throws a SpecError whose lines start with `prefix` (e.g. "edgepair:openstack"). */
export function parseOpenStackSettings(raw: unknown, prefix: string): OpenStackSettings {
  const r = openstackSettingsSchema.safeParse(raw);
  if (!r.success) throw new SpecError(fromZodIssues(r.error.issues, prefix));
  return r.data;
}
