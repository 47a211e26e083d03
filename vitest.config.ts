import { defineConfig } from "vitest/config";
import SummaryReporter from "./vitest.summary.js";

// One vitest process for the whole repository: each package is a project, and every project
// resolves workspace packages to their TypeScript sources through the "@ratesync/source" condition.
export default defineConfig({
  test: {
    projects: ["packages/*", "apps/*"],
    reporters: ["default", new SummaryReporter()],
  },
});
