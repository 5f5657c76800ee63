/**
 * `lab/standin-image/build` (or `npx ts-node --swc lab/standin-image/main.ts`): builds the stand-in qcow2, or finds
 * it in the cache, and prints its path last. As root. EDGEPAIR_STANDIN_CACHE moves the cache,
 * EDGEPAIR_STANDIN_MIRROR the Debian mirror.
 */
import { buildStandinImage } from "./builder";

const HELP = `usage: lab/standin-image/build [--json]
Builds the edgepair stand-in image (Debian 12 + images/rootfs + the agent bundle) into the cache
(EDGEPAIR_STANDIN_CACHE, default /var/cache/edgepair-standin), or reuses it when no input changed.
  --json   print the image's manifest (path, hash, versions, sizes) as JSON at the end
`;

async function main(argv: string[]): Promise<number> {
  if (argv.includes("-h") || argv.includes("--help")) {
    process.stdout.write(HELP);
    return 0;
  }
  const unknown = argv.filter((a) => a !== "--json");
  if (unknown.length > 0) {
    process.stderr.write(`standin-image: unknown argument ${unknown[0]}\n${HELP}`);
    return 2;
  }
  const json = argv.includes("--json");
  // with --json, stdout carries the document only
  const image = await buildStandinImage({ out: (line) => (json ? process.stderr : process.stdout).write(`${line}\n`) });
  if (json)
    process.stdout.write(`${JSON.stringify({ path: image.path, cached: image.cached, ...image.manifest }, null, 2)}\n`);
  else process.stdout.write(`${image.path}\n`);
  return 0;
}

main(process.argv.slice(2))
  .then((code) => (process.exitCode = code))
  .catch((e: unknown) => {
    process.stderr.write(`standin-image: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  });
