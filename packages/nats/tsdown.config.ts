import { defineConfig } from "tsdown";
import { base } from "../../tsdown.base.js";

export default defineConfig({ ...base, entry: { index: "src/index.ts" }, platform: "node" });
