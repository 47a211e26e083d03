/**
 * `pnpm bench`: runs the selected suites, prints the results table and the targets, and writes
 * JSON with `--json`. Speed is reported, never asserted: the exit code is non-zero only for a
 * usage error, a limiter that answered wrongly (a result that would be meaningless), or a suite
 * asked for by name whose backend cannot be reached (otherwise such a suite is skipped).
 */
import { createRequire } from "node:module";
import { resolve } from "node:path";
import { createHttpSuite } from "./cases/http.js";
import { createMemorySuite } from "./cases/memory.js";
import { createNatsSuite } from "./cases/nats.js";
import { createPostgresSuite } from "./cases/postgres.js";
import { createRedisSuite } from "./cases/redis.js";
import { type BenchOptions, parseOptions, USAGE, UsageError } from "./cli.js";
import { type CaseResult, type RunSettings, runCase, type Suite, SuiteUnavailableError } from "./harness.js";
import { describeEnvironment, formatResults, formatTargets, type SkippedSuite, writeReport } from "./report.js";

/** Every suite by name; later issues add postgres, nats and http here. */
const SUITES: Readonly<Record<string, (options: BenchOptions) => Suite>> = {
  memory: (options) => createMemorySuite({ algorithm: options.algorithm }),
  redis: (options) => createRedisSuite({ url: options.redisUrl, algorithm: options.algorithm }),
  http: (options) => createHttpSuite({ algorithm: options.algorithm }),
  nats: (options) => createNatsSuite({ url: options.natsUrl, algorithm: options.algorithm }),
  postgres: (options) => createPostgresSuite({ url: options.postgresUrl, algorithm: options.algorithm }),
};

const require = createRequire(import.meta.url);

/** The installed version of a measured package, read from its package.json. */
function versionOf(name: string): string {
  const manifest: unknown = require(`${name}/package.json`);
  const version = (manifest as { version?: unknown }).version;
  return typeof version === "string" ? version : "unknown";
}

function progress(line: string): void {
  process.stderr.write(`${line}\n`);
}

/** "5 rounds", or "memory 5 / redis 3 rounds" when the suites ran different numbers. */
function describeRounds(rounds: Readonly<Record<string, number>>): string {
  const counts = new Set(Object.values(rounds));
  if (counts.size === 1) return `${[...counts][0]} rounds`;
  return `${Object.entries(rounds)
    .map(([suite, count]) => `${suite} ${count}`)
    .join(" / ")} rounds`;
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
  progress(
    `ratesync bench: ${names.join(", ")}; rounds of ${options.seconds} s per contender, ` +
      `${options.warmupSeconds} s warm-up, ratesync algorithm ${options.algorithm}`,
  );

  const results: CaseResult[] = [];
  const known: string[] = [];
  const skipped: SkippedSuite[] = [];
  const versions: Record<string, string> = {};
  const roundsBySuite: Record<string, number> = {};
  for (const name of names) {
    const suite = (SUITES[name] as (options: BenchOptions) => Suite)(options);
    const selected = suite.cases.filter(
      (benchCase) =>
        options.cases === undefined || options.cases.some((text) => benchCase.name.toLowerCase().includes(text)),
    );
    known.push(...suite.cases.map((benchCase) => `${name} / ${benchCase.name}`));
    // No case of the suite selected: do not even connect to its backend.
    if (selected.length === 0) continue;
    const settings: RunSettings = {
      rounds: options.rounds ?? (options.quick ? suite.defaultRounds.quick : suite.defaultRounds.full),
      seconds: options.seconds,
      warmupSeconds: options.warmupSeconds,
    };
    try {
      let servers: Readonly<Record<string, string>> = {};
      try {
        servers = (await suite.open?.()) ?? {};
      } catch (error) {
        if (!(error instanceof SuiteUnavailableError)) throw error;
        // Asked for by name, a suite that cannot run fails the run; otherwise it is skipped.
        if (options.suites?.includes(name)) {
          throw new SuiteUnavailableError(`The ${name} suite cannot run: ${error.message}`);
        }
        skipped.push({ suite: name, reason: error.message });
        progress(`Skipping the ${name} suite: ${error.message}`);
        continue;
      }
      for (const pkg of suite.packages) versions[pkg] = versionOf(pkg);
      Object.assign(versions, servers);
      roundsBySuite[name] = settings.rounds;
      progress(
        `${name}: ${selected.length} ${selected.length === 1 ? "case" : "cases"}, ${settings.rounds} ${settings.rounds === 1 ? "round" : "rounds"} x ${settings.seconds} s per contender`,
      );
      for (const benchCase of selected) results.push(await runCase(benchCase, settings));
    } finally {
      await suite.close?.();
    }
  }
  const skippedText =
    skipped.length === 0
      ? ""
      : `\n${skipped.map((entry) => `Skipped the ${entry.suite} suite: ${entry.reason}`).join("\n")}\n`;
  if (results.length === 0) {
    if (skipped.length > 0) {
      process.stdout.write(`Nothing was measured.\n${skippedText}`);
      return;
    }
    throw new UsageError(`No case matches --case ${options.cases?.join(", ")}; the cases are: ${known.join(", ")}.`);
  }

  const environment = describeEnvironment(versions);
  const servers = "redis-server" in versions ? `; Redis ${versions["redis-server"]}` : "";
  process.stdout.write(
    `\nResults (${environment.node}, ${environment.cpu}, ${environment.cpus} CPUs${servers}; ` +
      `median of ${describeRounds(roundsBySuite)} x ${options.seconds} s; ratesync algorithm ${options.algorithm})\n\n` +
      `${formatResults(results)}\n\nTargets (ours/this = ratesync ops/s divided by the other contender's; speed is reported, not asserted)\n\n` +
      `${formatTargets(results)}\n${skippedText}`,
  );
  if (options.json !== undefined) {
    // `pnpm bench` runs the script inside apps/bench; a relative path means where pnpm was started.
    const path = resolve(process.env.INIT_CWD ?? process.cwd(), options.json);
    await writeReport(path, {
      version: 2,
      environment,
      settings: {
        rounds: roundsBySuite,
        seconds: options.seconds,
        warmupSeconds: options.warmupSeconds,
        algorithm: options.algorithm,
      },
      results,
      skipped,
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
  if (error instanceof SuiteUnavailableError) {
    // Not a bug of the bench: no stack, just what is missing and how to provide it.
    process.stderr.write(`bench: ${error.message}\n`);
    process.exitCode = 1;
    return;
  }
  process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
