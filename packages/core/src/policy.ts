/**
 * Normalised policies: what a limiter enforces, in the units the algorithms and engines use
 * (milliseconds, integers). Built once at configuration time from {@link LimiterOptions}; engines
 * receive them with every call, so an engine holds no per-limiter configuration of its own.
 */

/** The rate algorithms a limiter can use. */
export type Algorithm = "token_bucket" | "sliding_window" | "fixed_window";

/** Every algorithm name, in the order the docs list them. */
export const ALGORITHMS: readonly Algorithm[] = ["token_bucket", "sliding_window", "fixed_window"];

/**
 * Token bucket in its GCRA form: a sustained `ratePerSecond`, with up to `burst` admissions at once.
 * With `burst = 1`, starts are spaced `1 / ratePerSecond` apart.
 */
export interface TokenBucketPolicy {
  readonly algorithm: "token_bucket";
  /** Sustained admissions per second. */
  readonly ratePerSecond: number;
  /** Admissions available at once when the bucket is full. */
  readonly burst: number;
  /** Milliseconds one unit of cost takes to refill: `1000 / ratePerSecond`. */
  readonly intervalMs: number;
}

/** Exact sliding window: in every interval of `windowMs`, at most `limit` admitted cost. */
export interface SlidingWindowPolicy {
  readonly algorithm: "sliding_window";
  /** Cost admitted per window. */
  readonly limit: number;
  /** Window length in milliseconds. */
  readonly windowMs: number;
}

/** Fixed window: at most `limit` admitted cost per window aligned on multiples of `windowMs` since the epoch. */
export interface FixedWindowPolicy {
  readonly algorithm: "fixed_window";
  /** Cost admitted per window. */
  readonly limit: number;
  /** Window length in milliseconds. */
  readonly windowMs: number;
}

/** One of the rate policies. */
export type RatePolicy = TokenBucketPolicy | SlidingWindowPolicy | FixedWindowPolicy;

/** Concurrency: at most `maxConcurrent` slots held at once, each a lease of `leaseMs`. */
export interface ConcurrencyPolicy {
  /** Slots that may be held at once. */
  readonly maxConcurrent: number;
  /** How long a slot survives without renewal, in milliseconds. */
  readonly leaseMs: number;
}

/** What a limiter enforces: a rate policy, a concurrency policy, or both (decided together). */
export interface Policy {
  readonly rate: RatePolicy | undefined;
  readonly concurrency: ConcurrencyPolicy | undefined;
}

/** The largest cost one call of this rate policy can ever be admitted with. */
export function rateCapacity(rate: RatePolicy): number {
  return rate.algorithm === "token_bucket" ? rate.burst : rate.limit;
}
