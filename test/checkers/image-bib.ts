/**
 * bootc-image-builder's build config (images/bib/config.json). bib reads /config.toml or /config.json by extension
 * and decodes it strictly (an unknown key is an error; osbuild/bootc-image-builder bib/internal/buildconfig); of the
 * blueprint it applies, for disk images, the customizations below (its README; reference/anchors.md B.6). JSON
 * rather than TOML: JSON needs no parser beyond the runtime's, and bib accepts it the same way.
 *
 * Besides the keys, bib's documented limits: `/var` itself and the paths bootc makes symlinks into /var cannot be
 * mountpoints; kickstart and user customizations cannot be combined (osbuild/bootc-image-builder #528). The root
 * filesystem type is not part of the config: Fedora images have none by default, so bib needs `--rootfs ext4|xfs`.
 */
import { z } from "zod";
import type { CheckResult } from "./run";

const SIZE = z.union([
  z.number().int().positive(),
  z.string().regex(/^\d+(\.\d+)?\s*(B|kB|KB|KiB|MB|MiB|GB|GiB|TB|TiB)?$/, 'a size such as "10 GiB"'),
]);

const bibConfig = z.strictObject({
  customizations: z
    .strictObject({
      user: z
        .array(
          z.strictObject({
            name: z.string().min(1),
            password: z.string().optional(),
            key: z.string().optional(),
            groups: z.array(z.string()).optional(),
          }),
        )
        .optional(),
      group: z.array(z.strictObject({ name: z.string().min(1), gid: z.number().int().optional() })).optional(),
      kernel: z.strictObject({ name: z.string().optional(), append: z.string().optional() }).optional(),
      filesystem: z.array(z.strictObject({ mountpoint: z.string(), minsize: SIZE })).optional(),
      installer: z
        .strictObject({
          kickstart: z.strictObject({ contents: z.string() }).optional(),
          modules: z
            .strictObject({ enable: z.array(z.string()).optional(), disable: z.array(z.string()).optional() })
            .optional(),
        })
        .optional(),
    })
    .optional(),
});

/** bootc's symlinks into /var (home -> var/home, ...): bib cannot mount a filesystem there. */
const SYMLINKED = ["/home", "/root", "/opt", "/srv", "/mnt", "/usr/local"];

export function checkBibConfig(text: string): CheckResult {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    return { ok: false, output: `not JSON: ${(err as Error).message}` };
  }
  const parsed = bibConfig.safeParse(doc);
  if (!parsed.success) {
    return {
      ok: false,
      output: parsed.error.issues.map((i) => `${i.path.join(".") || "(top)"}: ${i.message}`).join("\n"),
    };
  }
  const c = parsed.data.customizations ?? {};
  const problems: string[] = [];
  (c.filesystem ?? []).forEach((f, i) => {
    const mp = f.mountpoint;
    if (
      !mp.startsWith("/") ||
      mp.includes("//") ||
      (mp.length > 1 && mp.endsWith("/")) ||
      mp.split("/").includes("..")
    ) {
      problems.push(`customizations.filesystem[${i}].mountpoint: must be a clean absolute path, is ${mp}`);
    } else if (mp === "/var") {
      problems.push(`customizations.filesystem[${i}].mountpoint: /var itself cannot be a mountpoint`);
    } else if (SYMLINKED.some((s) => mp === s || mp.startsWith(`${s}/`))) {
      problems.push(`customizations.filesystem[${i}].mountpoint: ${mp} is a symlink into /var on bootc systems`);
    }
  });
  if (c.installer?.kickstart && c.user && c.user.length > 0)
    problems.push("customizations: kickstart and user cannot be combined");
  return { ok: problems.length === 0, output: problems.join("\n") };
}
