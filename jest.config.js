/** Tests run TypeScript through ts-jest; type checking is done once by `tsc --noEmit` in `npm test`. */

// ESM-only packages in node_modules (@kubernetes/client-node 1.x and its openid-client, oauth4webapi, jose): Jest 30
// loads require(esm) natively only on Node >= 24.9, so on Node 20 they are rewritten to CommonJS with @swc/core.
const esmOnly = ["@kubernetes/client-node", "openid-client", "oauth4webapi", "jose"].join("|");

module.exports = {
  preset: "ts-jest",
  testEnvironment: "node",
  roots: ["<rootDir>/test"],
  transform: {
    "^.+\\.ts$": ["ts-jest", { diagnostics: false }],
    [`/node_modules/(${esmOnly})/.+\\.js$`]: "<rootDir>/test/fixtures/kube/esm-to-cjs.js",
  },
  transformIgnorePatterns: [`/node_modules/(?!(${esmOnly})/)`],
  testTimeout: 60000,
  // On two cores Jest runs every file in its main process (one worker means in band), and that process only grows:
  // a full run left it at 9 GB RSS near its end. There the agents that the lab tests run in-process answered scrapes
  // and VRRP changes seconds late (metrics-lab failed only in full runs: split brain seen after 5 s, alone 0.7 s;
  // render-vrrp took 271 s, alone 150 s), most likely from garbage collection and forks of that heap. A memory limit
  // makes Jest use one worker instead and start a fresh one whenever a file leaves it above the limit.
  workerIdleMemoryLimit: "1GB",
};
