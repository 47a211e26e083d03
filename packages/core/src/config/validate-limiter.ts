/**
 * Validation of a limiter's options (a `[limiters.<id>]` table or `configureLimiter` options)
 * into the resolved {@link LimiterConfig} with its normalised {@link Policy}.
 */
import type { LimiterConfig } from "../options.js";
import { ALGORITHMS, type Algorithm, type ConcurrencyPolicy, type Policy, type RatePolicy } from "../policy.js";
import { type ConfigIssue, IssueCollector, quoteList } from "./issues.js";
import { keyName, type Spelling, tableName } from "./keys.js";
import { checkId, reportUnknownKeys } from "./shared-checks.js";
import { withSuggestion } from "./suggest.js";
import {
  booleanValue,
  describeGot,
  integerRule,
  isTable,
  nonEmptyString,
  nonNegativeNumber,
  positiveNumber,
  type ValueRule,
  wrongValueMessage,
} from "./values.js";

/** Default `lease_seconds`: how long a slot survives without renewal. */
export const DEFAULT_LEASE_SECONDS = 60;

/** Default token bucket `burst`: starts spaced `1 / rate` apart, as the seed did. */
export const DEFAULT_BURST = 1;

/** Every limiter key, in TOML spelling, in the order the docs list them. */
export const LIMITER_KEYS = [
  "store",
  "algorithm",
  "rate_per_second",
  "burst",
  "limit",
  "window_seconds",
  "max_concurrent",
  "lease_seconds",
  "timeout",
  "fail_closed",
] as const;

type LimiterKey = (typeof LIMITER_KEYS)[number];
type ValueKey = Exclude<LimiterKey, "algorithm">;

const TOKEN_BUCKET_KEYS = ["rate_per_second", "burst"] as const satisfies readonly ValueKey[];
const WINDOW_KEYS = ["limit", "window_seconds"] as const satisfies readonly ValueKey[];
const WINDOW_ALGORITHMS = ["sliding_window", "fixed_window"] as const satisfies readonly Algorithm[];

const RULES = {
  store: nonEmptyString,
  rate_per_second: positiveNumber,
  burst: integerRule(1),
  limit: integerRule(1),
  window_seconds: positiveNumber,
  max_concurrent: integerRule(1),
  lease_seconds: positiveNumber,
  timeout: nonNegativeNumber,
  fail_closed: booleanValue,
} as const satisfies Record<ValueKey, ValueRule<unknown>>;

/** The result of {@link validateLimiterOptions}: a config when there are no issues, else the issues. */
export interface LimiterValidation {
  /** The resolved configuration; `undefined` when there is at least one issue. */
  readonly config: LimiterConfig | undefined;
  /** Every problem found. */
  readonly issues: ConfigIssue[];
}

/** One limiter's raw options, read in the source's spelling. */
class LimiterTable {
  readonly issues: IssueCollector;
  readonly #raw: Readonly<Record<string, unknown>>;
  readonly #spelling: Spelling;

  constructor(raw: Readonly<Record<string, unknown>>, spelling: Spelling, issues: IssueCollector) {
    this.#raw = raw;
    this.#spelling = spelling;
    this.issues = issues;
  }

  /** The key's name in the source's spelling, for lookups and messages. */
  name(key: LimiterKey): string {
    return keyName(key, this.#spelling);
  }

  /** Whether the key is set; `undefined` counts as unset, as TypeScript optional options do. */
  has(key: LimiterKey): boolean {
    return this.#raw[this.name(key)] !== undefined;
  }

  /** The key's value when it satisfies its rule; otherwise reports it and returns `undefined`. */
  read<K extends ValueKey>(key: K): (typeof RULES)[K] extends ValueRule<infer T> ? T | undefined : never;
  read(key: ValueKey): unknown {
    const value = this.#raw[this.name(key)];
    if (value === undefined) return undefined;
    const rule: ValueRule<unknown> = RULES[key];
    if (rule.check(value)) return value;
    this.issues.add(this.name(key), wrongValueMessage(rule, value, this.#spelling, key === "store"));
    return undefined;
  }

  /** The algorithm, when set and known; reports an unknown one with the closest name. */
  readAlgorithm(): Algorithm | undefined {
    const value = this.#raw[this.name("algorithm")];
    if (value === undefined) return undefined;
    if (typeof value === "string" && isAlgorithm(value)) return value;
    const problem =
      typeof value === "string"
        ? withSuggestion(`unknown algorithm ${JSON.stringify(value)}`, value, ALGORITHMS)
        : `expected an algorithm name, got ${describeGot(value, this.#spelling)}.`;
    this.issues.add(
      this.name("algorithm"),
      `${problem} Use ${quoteList(ALGORITHMS)}, or remove the key for token_bucket.`,
    );
    return undefined;
  }
}

/**
 * Validates one limiter's options and resolves them into a {@link LimiterConfig}. Reports every
 * problem (unknown keys with the closest valid name, wrong types, out-of-range numbers, keys of
 * another algorithm, a missing policy), never only the first.
 *
 * @param id - The limiter id (a non-empty string).
 * @param raw - A `[limiters.<id>]` table (after environment expansion) or `configureLimiter` options.
 * @param spelling - `"toml"` for snake_case keys, `"ts"` for camelCase; messages use the same spelling.
 * @param file - The file the options came from, for messages.
 */
export function validateLimiterOptions(id: string, raw: unknown, spelling: Spelling, file?: string): LimiterValidation {
  const issues = new IssueCollector(file, tableName("limiters", String(id)));
  checkId(id, "limiter", issues);
  if (!isTable(raw)) {
    issues.add(undefined, `expected a table of limiter options, got ${describeGot(raw, spelling)}. Write one.`);
    return { config: undefined, issues: issues.issues };
  }
  const table = new LimiterTable(raw, spelling, issues);
  reportUnknownKeys(
    raw,
    LIMITER_KEYS.map((key) => table.name(key)),
    issues,
  );

  const store = table.read("store");
  if (!table.has("store")) {
    issues.add(table.name("store"), "missing; name the store that coordinates this limiter. Add it.");
  }
  const ratePerSecond = table.read("rate_per_second");
  const burst = table.read("burst");
  const limit = table.read("limit");
  const windowSeconds = table.read("window_seconds");
  const maxConcurrent = table.read("max_concurrent");
  const leaseSeconds = table.read("lease_seconds") ?? DEFAULT_LEASE_SECONDS;
  const timeout = table.read("timeout");
  const failClosed = table.read("fail_closed") ?? false;

  checkTimeInMs(table, "rate_per_second", ratePerSecond, (rate) => 1000 / rate);
  checkTimeInMs(table, "window_seconds", windowSeconds, (seconds) => seconds * 1000);
  checkTimeInMs(table, "lease_seconds", leaseSeconds, (seconds) => seconds * 1000);

  const algorithm = algorithmInUse(table);
  checkPolicyShape(table, algorithm);
  if (issues.issues.length > 0 || store === undefined) return { config: undefined, issues: issues.issues };

  const rate = ratePolicy(algorithm, { ratePerSecond, burst, limit, windowSeconds });
  const concurrency: ConcurrencyPolicy | undefined =
    maxConcurrent === undefined ? undefined : Object.freeze({ maxConcurrent, leaseMs: leaseSeconds * 1000 });
  const policy: Policy = Object.freeze({ rate, concurrency });
  const tokenBucket = rate?.algorithm === "token_bucket" ? rate : undefined;
  const window = rate !== undefined && rate.algorithm !== "token_bucket" ? rate : undefined;
  const config: LimiterConfig = Object.freeze({
    id,
    store,
    algorithm: rate?.algorithm,
    ratePerSecond: tokenBucket?.ratePerSecond,
    burst: tokenBucket?.burst,
    limit: window?.limit,
    windowSeconds: window === undefined ? undefined : windowSeconds,
    maxConcurrent,
    leaseSeconds,
    timeout,
    failClosed,
    policy,
  });
  return { config, issues: issues.issues };
}

function isAlgorithm(value: string): value is Algorithm {
  return (ALGORITHMS as readonly string[]).includes(value);
}

/**
 * The algorithm whose keys apply: the one named, else token bucket when its keys are present,
 * else none (a concurrency-only limiter). `"invalid"` when it cannot be known: an unknown
 * algorithm, or window keys with no algorithm (which of the two windows is meant cannot be guessed).
 */
function algorithmInUse(table: LimiterTable): Algorithm | "invalid" | undefined {
  if (table.has("algorithm")) return table.readAlgorithm() ?? "invalid";
  if (TOKEN_BUCKET_KEYS.some((key) => table.has(key))) return "token_bucket";
  const windowKeys = WINDOW_KEYS.filter((key) => table.has(key));
  if (windowKeys.length === 0) return undefined;
  table.issues.add(
    table.name("algorithm"),
    `missing; ${windowKeys.map((key) => table.name(key)).join(" and ")} ${windowKeys.length === 1 ? "needs" : "need"} ` +
      `${table.name("algorithm")} = ${quoteList(WINDOW_ALGORITHMS)}. Add one.`,
  );
  return "invalid";
}

/**
 * Reports keys the algorithm in use requires but lacks, keys of another algorithm, a limiter with
 * no policy at all, and a lease without concurrency.
 */
function checkPolicyShape(table: LimiterTable, algorithm: Algorithm | "invalid" | undefined): void {
  const { issues } = table;
  const name = (key: LimiterKey): string => table.name(key);
  const reportForeign = (keys: readonly ValueKey[], owners: string, switchTo: string): void => {
    for (const key of keys.filter((key) => table.has(key))) {
      issues.add(
        name(key),
        `applies to ${owners} only, but this limiter uses ${String(algorithm)}; ` +
          `remove it or set ${name("algorithm")} = ${switchTo}.`,
      );
    }
  };
  const reportMissing = (keys: readonly ValueKey[]): void => {
    for (const key of keys.filter((key) => !table.has(key))) {
      issues.add(name(key), `missing; ${String(algorithm)} needs it (${RULES[key].expected}). Add it.`);
    }
  };

  if (algorithm === "token_bucket") {
    reportForeign(WINDOW_KEYS, quoteList(WINDOW_ALGORITHMS, "and"), quoteList(WINDOW_ALGORITHMS));
    reportMissing(["rate_per_second"]);
  } else if (algorithm === "sliding_window" || algorithm === "fixed_window") {
    reportForeign(TOKEN_BUCKET_KEYS, '"token_bucket"', '"token_bucket"');
    reportMissing(WINDOW_KEYS);
  } else if (algorithm === undefined && !table.has("max_concurrent")) {
    issues.add(
      undefined,
      `no policy; a limiter needs at least one of: ${name("rate_per_second")} (token bucket), ` +
        `${name("algorithm")} = ${quoteList(WINDOW_ALGORITHMS)} with ${name("limit")} and ${name("window_seconds")}, ` +
        `or ${name("max_concurrent")} (concurrency). Add one.`,
    );
  }
  if (table.has("lease_seconds") && !table.has("max_concurrent")) {
    issues.add(
      name("lease_seconds"),
      `applies only with ${name("max_concurrent")} (it is how long a slot lives without renewal); ` +
        `remove it or set ${name("max_concurrent")}.`,
    );
  }
}

/**
 * Reports a value that passed its rule but whose time in milliseconds (one token's interval, a
 * window, a lease) is not a finite number: a limiter that would never refill or never end.
 */
function checkTimeInMs(
  table: LimiterTable,
  key: "rate_per_second" | "window_seconds" | "lease_seconds",
  value: number | undefined,
  toMs: (value: number) => number,
): void {
  if (value === undefined || Number.isFinite(toMs(value))) return;
  table.issues.add(
    table.name(key),
    key === "rate_per_second"
      ? `too small: got ${value}, so one token's interval in milliseconds is not a finite number. Use a rate of at least 1e-300.`
      : `too large: got ${value}, so the time in milliseconds is not a finite number. Use at most 1e300 seconds.`,
  );
}

/** The normalised rate policy, in the units engines use (ms), for a limiter without issues. */
function ratePolicy(
  algorithm: Algorithm | "invalid" | undefined,
  values: {
    readonly ratePerSecond: number | undefined;
    readonly burst: number | undefined;
    readonly limit: number | undefined;
    readonly windowSeconds: number | undefined;
  },
): RatePolicy | undefined {
  const { ratePerSecond, limit, windowSeconds } = values;
  if (algorithm === "token_bucket" && ratePerSecond !== undefined) {
    const burst = values.burst ?? DEFAULT_BURST;
    return Object.freeze({ algorithm, ratePerSecond, burst, intervalMs: 1000 / ratePerSecond });
  }
  if ((algorithm === "sliding_window" || algorithm === "fixed_window") && limit !== undefined) {
    if (windowSeconds === undefined) return undefined;
    return Object.freeze({ algorithm, limit, windowMs: windowSeconds * 1000 });
  }
  return undefined;
}
