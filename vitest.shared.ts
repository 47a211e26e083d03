import { defineProject } from "vitest/config";

/** The vitest project settings every package shares; a package's own config only names itself. */
export function ratesyncProject(name: string) {
  return defineProject({
    resolve: {
      conditions: ["@ratesync/source"],
    },
    ssr: {
      resolve: {
        conditions: ["@ratesync/source"],
      },
    },
    test: {
      name,
      include: ["src/**/*.test.ts"],
      environment: "node",
      testTimeout: 20_000,
    },
  });
}
