import { defineConfig } from "vitest/config";
import { serialProject } from "./vitest.shared.js";
import SummaryReporter from "./vitest.summary.js";

// One vitest process for the whole repository: each package is a project, and every project
// resolves workspace packages to their TypeScript sources through the "@ratesync/source" condition.
// The "serial" project (multi-process and contention tests) runs after all others, one file at a time.
export default defineConfig({
  test: {
    projects: ["packages/*", "apps/*", serialProject()],
    reporters: ["default", new SummaryReporter()],
  },
});
