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
};
