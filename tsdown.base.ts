import type { UserConfig } from "tsdown";

/**
 * The build every package shares: ESM and CJS side by side, with declarations for both, for the
 * runtimes the packages support (Node.js 20+ and edge runtimes, hence the neutral platform).
 */
export const base: UserConfig = {
  format: ["esm", "cjs"],
  dts: true,
  clean: true,
  platform: "neutral",
  target: "es2022",
  // No source maps: they would point at src/, which is not published, and dist/ is plain,
  // readable JavaScript.
  sourcemap: false,
  // ".js" for ESM and ".cjs" for CJS on every platform, as the packages' "exports" say (tsdown would
  // otherwise write ".mjs" for packages built for Node).
  fixedExtension: false,
};
