import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { extractSamples } from "./samples.js";

const run = promisify(execFile);
const app = fileURLToPath(new URL("..", import.meta.url));
const root = join(app, "../..");

/** The documents whose TypeScript samples must run as written. */
const DOCUMENTS = [
  "README.md",
  "docs/guide.md",
  "docs/configuration.md",
  "docs/errors.md",
  "docs/algorithms.md",
  "docs/engines/redis.md",
  "packages/core/README.md",
  "packages/redis/README.md",
  "docs/engines/nats.md",
  "packages/nats/README.md",
  "docs/engines/postgres.md",
  "packages/postgres/README.md",
  "docs/adapters.md",
  "packages/fastify/README.md",
  "packages/express/README.md",
  "packages/hono/README.md",
  "docs/migrating.md",
  "docs/observability.md",
];

// Samples run inside this app so that `@ratesync/core` (and prom-client) resolve as they would in
// a user's project; each in its own process and directory, so none sees another's registry or file.
mkdirSync(join(app, ".samples"), { recursive: true });
const scratch = mkdtempSync(join(app, ".samples", "run-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const tsx = join(app, "node_modules", ".bin", "tsx");

const samples = DOCUMENTS.flatMap((file) => extractSamples(root, file));

describe("documentation samples", () => {
  it("finds the samples of every document that has some", () => {
    expect(new Set(samples.map((sample) => sample.file))).toEqual(
      new Set(DOCUMENTS.filter((file) => file !== "docs/algorithms.md")),
    );
  });

  it.concurrent.each(samples.map((sample) => [`${sample.file}:${sample.line}`, sample] as const))(
    "%s runs as written",
    async (_where, sample) => {
      const dir = mkdtempSync(join(scratch, "sample-"));
      writeFileSync(join(dir, "sample.ts"), sample.code);
      if (sample.toml !== undefined) {
        const path = join(dir, sample.toml.path);
        mkdirSync(dirname(path), { recursive: true });
        writeFileSync(path, sample.toml.text);
      }
      const { RATESYNC_CONFIG: _ignored, ...env } = process.env;
      try {
        await run(tsx, ["--conditions=@ratesync/source", "sample.ts"], { cwd: dir, env, timeout: 60_000 });
      } catch (error) {
        const { stdout, stderr } = error as { stdout?: string; stderr?: string };
        expect.fail(`${sample.file}:${sample.line} failed:\n${stderr ?? ""}\n${stdout ?? ""}`);
      }
    },
    60_000,
  );
});
