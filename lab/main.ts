/**
 * `npm run lab [-- --spec FILE]`: the lab's whole story in one run — up (with progress lines), the smoke check,
 * one unclean failover with the returning LB staying BACKUP, the status table, and down (also on failure or Ctrl-C).
 * Needs root (namespaces, mounts, daemons).
 */
import { DEFAULT_SPEC, runLabSequence } from "./cli";

function specArg(argv: string[]): string {
  const i = argv.indexOf("--spec");
  return i >= 0 && argv[i + 1] ? (argv[i + 1] as string) : DEFAULT_SPEC;
}

if (process.getuid && process.getuid() !== 0) {
  process.stderr.write("lab: needs root (network and mount namespaces, daemons)\n");
  process.exitCode = 1;
} else {
  runLabSequence(specArg(process.argv.slice(2)))
    .then((code) => (process.exitCode = code))
    .catch((e: unknown) => {
      process.stderr.write(`lab: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exitCode = 1;
    });
}
