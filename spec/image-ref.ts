/**
 * OCI image references pinned by digest: the only way to name one image for both LBs (a tag can move under a
 * running pair between the two switches). One rule for the spec, the agent settings and the BootcImage component.
 */

/** REPOSITORY[:TAG]@sha256:<64 hex>: a tag may sit before the digest, but the digest is what is pulled. */
export const DIGEST_PINNED_REF =
  /^(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*(?::\d{1,5})?\/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?@sha256:[0-9a-f]{64}$/;

export const DIGEST_PINNED_RULE = "must be an image reference pinned by digest: REPOSITORY@sha256:<64 hex>";

export function isDigestPinned(ref: string): boolean {
  return DIGEST_PINNED_REF.test(ref);
}
