import { defineConfig } from "tsdown";
import { base } from "../../tsdown.base.js";

export default defineConfig({
  ...base,
  entry: {
    index: "src/index.ts",
    "http/index": "src/http/index.ts",
    "testing/index": "src/testing/index.ts",
    // Forked as a child process by the multi-process harness, so it must exist as a file of its own.
    "testing/multiprocess-worker": "src/testing/multiprocess-worker.ts",
  },
  // The TOML parser is inlined, with its Node-only `global` mapped to `globalThis`: loaded as a
  // package it reads `global.Date` on import, which throws on edge runtimes such as Workers.
  deps: { alwaysBundle: ["@iarna/toml"], onlyBundle: ["@iarna/toml"], neverBundle: [/^node:/] },
  define: { global: "globalThis" },
});
