/**
 * `pnpm bench`: runs the selected suites, prints the results table and the targets, and writes
 * JSON with `--json`. Speed is reported, never asserted: the exit code is non-zero only for a
 * usage error or a limiter that answered wrongly (a result that would be meaningless).
 */
import { createRequire } from "node:module";
import { resolve } from "node:path";
import { createMemorySuite } from "./cases/memory.js";
import { type BenchOptions, parseOptions, USAGE, UsageError } from "./cli.js";
import { type CaseResult, type RunSettings, runCase, type Suite } from "./harness.js";
import { describeEnvironment, formatResults, formatTargets, writeReport } from "./report.js";

/** Every suite by name; later issues add redis, postgres, nats and http here. */
const SUITES: Readonly<Record<string, (options: BenchOptions) => Suite>> = {
  memory: (options) => createMemorySuite({ algorithm: options.algorithm }),
};

const require = createRequire(import.meta.url);

/** The installed version of a measured package, read from its package.json. */
function versionOf(name: string): string {
  const manifest: unknown = require(`${name}/package.json`);
  const version = (manifest as { version?: unknown }).version;
  return typeof version === "string" ? version : "unknown";
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  if (options.help) {
    process.stdout.write(USAGE);
    return;
  }
  const names = options.suites ?? Object.keys(SUITES);
  const unknown = names.filter((name) => SUITES[name] === undefined);
  if (unknown.length > 0) {
    throw new UsageError(
      `Unknown suite ${unknown.map((name) => `"${name}"`).join(", ")}; available: ${Object.keys(SUITES).join(", ")}.`,
    );
  }
  const settings: RunSettings = {
    rounds: options.rounds,
    seconds: options.seconds,
    warmupSeconds: options.warmupSeconds,
  };
  process.stderr.write(
    `ratesync bench: ${names.join(", ")}; ${settings.rounds} rounds x ${settings.seconds} s per contender, ` +
      `${settings.warmupSeconds} s warm-up, ratesync algorithm ${options.algorithm}\n`,
  );

  const results: CaseResult[] = [];
  const known: string[] = [];
  for (const name of names) {
    const suite = (SUITES[name] as (options: BenchOptions) => Suite)(options);
    try {
      const selected = suite.cases.filter(
        (benchCase) =>
          options.cases === undefined || options.cases.some((text) => benchCase.name.toLowerCase().includes(text)),
      );
      known.push(...suite.cases.map((benchCase) => `${name} / ${benchCase.name}`));
      for (const benchCase of selected) results.push(await runCase(benchCase, settings));
    } finally {
      await suite.close?.();
    }
  }
  if (results.length === 0) {
    throw new UsageError(`No case matches --case ${options.cases?.join(", ")}; the cases are: ${known.join(", ")}.`);
  }

  const environment = describeEnvironment({
    "@ratesync/core": versionOf("@ratesync/core"),
    "rate-limiter-flexible": versionOf("rate-limiter-flexible"),
  });
  process.stdout.write(
    `\nResults (${environment.node}, ${environment.cpu}, ${environment.cpus} CPUs; ` +
      `median of ${settings.rounds} rounds x ${settings.seconds} s; ratesync algorithm ${options.algorithm})\n\n` +
      `${formatResults(results)}\n\nTargets (ours/peer = ratesync ops/s divided by the peer's; speed is reported, not asserted)\n\n` +
      `${formatTargets(results)}\n`,
  );
  if (options.json !== undefined) {
    // `pnpm bench` runs the script inside apps/bench; a relative path means where pnpm was started.
    const path = resolve(process.env.INIT_CWD ?? process.cwd(), options.json);
    await writeReport(path, {
      version: 1,
      environment,
      settings: {
        rounds: settings.rounds,
        seconds: settings.seconds,
        warmupSeconds: settings.warmupSeconds,
        algorithm: options.algorithm,
      },
      results,
    });
    process.stdout.write(`\nWrote ${path}\n`);
  }
}

main().catch((error: unknown) => {
  if (error instanceof UsageError) {
    process.stderr.write(`${error.message}\n\n${USAGE}`);
    process.exitCode = 2;
    return;
  }
  process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
