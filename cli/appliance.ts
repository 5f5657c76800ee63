/**
 * `edgepair` on the LB image (tools/bundle-agent bundles this file): the shared command line, validate, render and
 * the agent, without the lab, which only runs from a checkout.
 */
import { runProgram } from "./program";

if (require.main === module) void runProgram(process.argv.slice(2)).then((code) => (process.exitCode = code));
