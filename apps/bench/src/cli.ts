import { parseArgs } from "node:util";

/** The rate algorithms a suite can run ratesync with (those whose state stays small on a hot key). */
export const BENCH_ALGORITHMS = ["token_bucket", "fixed_window"] as const;

/** One of {@link BENCH_ALGORITHMS}. */
export type BenchAlgorithm = (typeof BENCH_ALGORITHMS)[number];

/** What a run measures and how long it takes, from the command line and the environment. */
export interface BenchOptions {
  /** Suites to run; `undefined` runs every available suite. */
  readonly suites: readonly string[] | undefined;
  /** Only the cases whose name contains one of these (case-insensitive); `undefined` runs all. */
  readonly cases: readonly string[] | undefined;
  /**
   * Timed rounds per contender and case; `undefined` lets each suite choose (memory 5, redis 3;
   * with `--quick`, 3 and 2).
   */
  readonly rounds: number | undefined;
  /** Length of one timed round, in seconds. @default 1 (0.25 with `--quick`) */
  readonly seconds: number;
  /** Untimed warm-up per contender and case, in seconds (lets the JIT settle). @default 0.5 (0.2 with `--quick`) */
  readonly warmupSeconds: number;
  /** The algorithm ratesync limiters use. @default "token_bucket" (the library's default) */
  readonly algorithm: BenchAlgorithm;
  /** The Redis server of the redis suite. @default "redis://127.0.0.1:6379" */
  readonly redisUrl: string;
  /** The NATS server (with JetStream) of the nats suite. @default "nats://127.0.0.1:4222" */
  readonly natsUrl: string;
  /** The PostgreSQL database of the postgres suite. @default "postgres://postgres@127.0.0.1:5432/test" */
  readonly postgresUrl: string;
  /** Where to write the results as JSON; `undefined` writes no file. */
  readonly json: string | undefined;
  /** Whether `--quick` (or `BENCH_QUICK=1`) asked for the short run. */
  readonly quick: boolean;
  /** Whether `--help` was asked for. */
  readonly help: boolean;
}

/** The `--help` text. */
export const USAGE = `Usage: pnpm bench [-- options]

Options (each also read from the environment variable in brackets):
  --suite <names>      suites to run, comma-separated or repeated (default: all)   [BENCH_SUITE]
                       available: memory, redis, postgres, nats, http
  --case <text>        only cases whose name contains the text, comma-separated    [BENCH_CASE]
                       or repeated ("10,000 keys admitted, 1 in flight" is one)
  --rounds <n>         timed rounds per contender                                  [BENCH_ROUNDS]
                       (default: memory 5, redis/postgres/nats 3, http 7;
                        quick: memory 3, redis/postgres/nats 2, http 4)
  --seconds <s>        length of one round in seconds (default 1, quick 0.25)      [BENCH_SECONDS]
  --warmup <s>         untimed warm-up per contender (default 0.5, quick 0.2)      [BENCH_WARMUP]
  --algorithm <name>   ratesync algorithm: token_bucket (default) or fixed_window  [BENCH_ALGORITHM]
  --redis-url <url>    Redis of the redis suite (default redis://127.0.0.1:6379)   [BENCH_REDIS_URL]
  --nats-url <url>     NATS of the nats suite (default nats://127.0.0.1:4222)      [BENCH_NATS_URL]
  --postgres-url <url> PostgreSQL of the postgres suite                            [BENCH_POSTGRES_URL]
                       (default postgres://postgres@127.0.0.1:5432/test)
  --json <path>        also write the results as JSON to this file                 [BENCH_JSON]
  --quick              a short run to check that everything works                  [BENCH_QUICK=1]
  --help               this text
`;

/** A command line or environment value that cannot be used; `main` prints it with the usage. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

function positive<F extends number | undefined>(
  name: string,
  raw: string | undefined,
  fallback: F,
  integer: boolean,
): number | F {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value))) {
    throw new UsageError(`${name} must be a ${integer ? "whole number" : "number"} > 0, got "${raw}".`);
  }
  return value;
}

/**
 * The commas that separate items of a list: not one followed by a space, nor one between two
 * digits, so that a case name such as "10,000 keys admitted, 1 in flight" stays whole (split at
 * every comma, it would leave "10", which every case of that suite contains).
 */
const LIST_SEPARATOR = /(?<!\d),(?!\s)|,(?![\s\d])/;

function list(values: readonly string[] | undefined, env: string | undefined): string[] | undefined {
  const raw = values !== undefined && values.length > 0 ? values : env === undefined || env === "" ? [] : [env];
  const items = raw
    .flatMap((value) => value.split(LIST_SEPARATOR))
    .map((value) => value.trim())
    .filter((value) => value !== "");
  return items.length === 0 ? undefined : items;
}

function isAlgorithm(value: string): value is BenchAlgorithm {
  return (BENCH_ALGORITHMS as readonly string[]).includes(value);
}

/**
 * Reads the options from `argv` (without the node and script paths) and `env`. Flags win over
 * environment variables; `--quick` only changes the defaults, so `--quick --rounds 7` keeps 7.
 *
 * @throws UsageError for an unknown flag or a value out of range.
 */
export function parseOptions(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>> = process.env,
): BenchOptions {
  // `pnpm bench -- --quick` hands the "--" on to the script; it separates nothing here.
  const args = argv.filter((arg) => arg !== "--");
  let parsed: ReturnType<typeof parseFlags>;
  try {
    parsed = parseFlags(args);
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  const flags = parsed.values;
  if (parsed.positionals.length > 0) throw new UsageError(`Unexpected argument "${parsed.positionals[0]}".`);
  const quick = flags.quick === true || env.BENCH_QUICK === "1" || env.BENCH_QUICK === "true";
  const algorithm = flags.algorithm ?? env.BENCH_ALGORITHM ?? "token_bucket";
  if (!isAlgorithm(algorithm)) {
    throw new UsageError(`--algorithm must be one of ${BENCH_ALGORITHMS.join(", ")}, got "${algorithm}".`);
  }
  const json = flags.json ?? env.BENCH_JSON;
  const redisUrl = flags["redis-url"] ?? env.BENCH_REDIS_URL ?? env.REDIS_URL ?? "";
  const natsUrl = flags["nats-url"] ?? env.BENCH_NATS_URL ?? env.NATS_URL ?? "";
  const postgresUrl = flags["postgres-url"] ?? env.BENCH_POSTGRES_URL ?? env.POSTGRES_URL ?? "";
  return {
    suites: list(flags.suite, env.BENCH_SUITE),
    cases: list(flags.case, env.BENCH_CASE)?.map((text) => text.toLowerCase()),
    // Left undefined: the suite's own default (a network suite runs fewer rounds than memory).
    rounds: positive("--rounds", flags.rounds ?? env.BENCH_ROUNDS, undefined, true),
    seconds: positive("--seconds", flags.seconds ?? env.BENCH_SECONDS, quick ? 0.25 : 1, false),
    warmupSeconds: positive("--warmup", flags.warmup ?? env.BENCH_WARMUP, quick ? 0.2 : 0.5, false),
    algorithm,
    redisUrl: redisUrl === "" ? "redis://127.0.0.1:6379" : redisUrl,
    natsUrl: natsUrl === "" ? "nats://127.0.0.1:4222" : natsUrl,
    postgresUrl: postgresUrl === "" ? "postgres://postgres@127.0.0.1:5432/test" : postgresUrl,
    json: json === undefined || json === "" ? undefined : json,
    quick,
    help: flags.help === true,
  };
}

function parseFlags(args: string[]) {
  return parseArgs({
    args,
    strict: true,
    allowPositionals: true,
    options: {
      suite: { type: "string", multiple: true },
      case: { type: "string", multiple: true },
      rounds: { type: "string" },
      seconds: { type: "string" },
      warmup: { type: "string" },
      algorithm: { type: "string" },
      "redis-url": { type: "string" },
      "nats-url": { type: "string" },
      "postgres-url": { type: "string" },
      json: { type: "string" },
      quick: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
}
