// typescript-eslint's recommended rules plus the type-aware ones that matter most in an agent that must never die on a
// rejected promise: floating and misused promises, awaiting what is not a promise. Formatting is prettier's
// (.prettierrc.json); `npm run lint` runs both, and `npm test` runs it.
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["node_modules/**", "images/agent/**", "out/**", "**/*.js", "**/*.mjs"] },
  ...tseslint.configs.recommended,
  {
    files: ["**/*.ts"],
    languageOptions: {
      parser: tseslint.parser,
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    linterOptions: { reportUnusedDisableDirectives: "error" },
    rules: {
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/no-misused-promises": "error",
      "@typescript-eslint/await-thenable": "error",
      // Pulumi serializes a dynamic provider's functions with their closures: they require what they use inside,
      // and the lab loads swc's native binding only when it compiles its helper
      "@typescript-eslint/no-require-imports": "off",
      "@typescript-eslint/no-unused-vars": [
        "error",
        { argsIgnorePattern: "^_", varsIgnorePattern: "^_", destructuredArrayIgnorePattern: "^_" },
      ],
    },
  },
  // a test may reach into arbitrary depth of a spec it mutates
  { files: ["test/**/*.ts"], rules: { "@typescript-eslint/no-explicit-any": "off" } },
);
