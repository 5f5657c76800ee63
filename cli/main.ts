/**
 * `edgepair` from a checkout (bin/edgepair.js, `npm run edgepair`): the shared command line plus the network-namespace
 * lab (`lab up|status|smoke|failover|down`, lab/cli.ts). The LB image runs cli/appliance.ts, which has no lab.
 */
import { registerLab } from "../lab/cli";
import { runProgram } from "./program";

export function mainAsync(argv: string[], out?: (s: string) => void): Promise<number> {
  return runProgram(argv, [registerLab], out);
}

if (require.main === module) void mainAsync(process.argv.slice(2)).then((code) => (process.exitCode = code));
