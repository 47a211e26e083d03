import { defineProject } from "vitest/config";

/**
 * Test files whose claims need the machine to themselves: many processes hammering one key for
 * seconds and counting admissions, or many connections contending on one row. They run in a
 * project of their own, one file at a time, after every other test has finished.
 */
export const SERIAL_TESTS = [
  "src/**/multiprocess.integration.test.ts",
  "src/**/hammer.integration.test.ts",
  "src/**/contention.integration.test.ts",
];

/** Settings every project shares: workspace packages resolve to their TypeScript sources. */
const shared = {
  resolve: {
    conditions: ["@ratesync/source"],
  },
  ssr: {
    resolve: {
      conditions: ["@ratesync/source"],
    },
  },
};

/** The vitest project settings every package shares; a package's own config only names itself. */
export function ratesyncProject(name: string) {
  return defineProject({
    ...shared,
    test: {
      name,
      include: ["src/**/*.test.ts"],
      exclude: SERIAL_TESTS,
      environment: "node",
      testTimeout: 20_000,
    },
  });
}

/** The project of {@link SERIAL_TESTS} across every package: last, and one file at a time. */
export function serialProject() {
  return defineProject({
    ...shared,
    test: {
      name: "serial",
      include: SERIAL_TESTS.map((pattern) => `packages/*/${pattern}`),
      environment: "node",
      testTimeout: 20_000,
      fileParallelism: false,
      sequence: { groupOrder: 1 },
    },
  });
}
