#!/usr/bin/env node
// Runs the TypeScript CLI directly (transpile only: `npm test` type-checks the tree once).
require("ts-node").register({
  transpileOnly: true,
  swc: true,
  project: require("node:path").join(__dirname, "..", "tsconfig.json"),
});
require("../cli/main.ts")
  .mainAsync(process.argv.slice(2))
  .then((code) => (process.exitCode = code));
