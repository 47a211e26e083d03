import { defineConfig } from "tsdown";
import { base } from "../../tsdown.base.js";

// Named exports and the plugin as the default export, as Fastify plugins ship; "named" says the
// mix is intended (CommonJS users take `require("@ratesync/fastify").ratesync`).
export default defineConfig({
  ...base,
  entry: { index: "src/index.ts" },
  platform: "node",
  outputOptions: { exports: "named" },
});
