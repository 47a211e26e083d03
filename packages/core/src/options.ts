import type { Engine } from "./engines/engine.js";
import type { Algorithm, Policy } from "./policy.js";

/**
 * Options of `configureLimiter`: the camelCase twins of a `[limiters.<id>]` table in
 * `rate-sync.toml`. A limiter needs a rate policy (`ratePerSecond`), a window policy (`limit` and
 * `windowSeconds`) or `maxConcurrent`; at least one.
 */
export interface LimiterOptions {
  /** Id of the store that coordinates this limiter. */
  store: string;
  /**
   * The rate algorithm.
   * @default "token_bucket" (when `ratePerSecond` is set), or the window algorithm named here
   */
  algorithm?: Algorithm | undefined;
  /** Token bucket: sustained admissions per second (> 0). */
  ratePerSecond?: number | undefined;
  /**
   * Token bucket: admissions available at once (integer >= 1). With 1, starts are spaced
   * `1 / ratePerSecond` apart.
   * @default 1
   */
  burst?: number | undefined;
  /** Sliding and fixed window: admissions per window (integer >= 1). */
  limit?: number | undefined;
  /** Sliding and fixed window: window length in seconds (> 0). */
  windowSeconds?: number | undefined;
  /** Slots that may be held at once, across every process (integer >= 1). Combinable with any algorithm. */
  maxConcurrent?: number | undefined;
  /**
   * Seconds a slot survives without renewal; holders renew every third of it while alive.
   * @default 60
   */
  leaseSeconds?: number | undefined;
  /** Seconds a waiting `acquire` may wait by default. Absent: wait without limit. */
  timeout?: number | undefined;
  /**
   * What happens when the store cannot answer: `false` admits the call with a degraded decision,
   * `true` fails it with `STORE_UNAVAILABLE` (HTTP adapters answer 503).
   * @default false
   */
  failClosed?: boolean | undefined;
}

/** The validated, resolved configuration of a limiter, as `getLimiter(id).config` shows it. */
export interface LimiterConfig {
  /** The limiter id. */
  readonly id: string;
  /** The store id. */
  readonly store: string;
  /** The rate algorithm, or `undefined` for a concurrency-only limiter. */
  readonly algorithm: Algorithm | undefined;
  /** Token bucket rate, when the algorithm is `token_bucket`. */
  readonly ratePerSecond: number | undefined;
  /** Token bucket burst, when the algorithm is `token_bucket`. */
  readonly burst: number | undefined;
  /** Window limit, for the window algorithms. */
  readonly limit: number | undefined;
  /** Window length in seconds, for the window algorithms. */
  readonly windowSeconds: number | undefined;
  /** Slots that may be held at once, when limited. */
  readonly maxConcurrent: number | undefined;
  /** Lease length in seconds. */
  readonly leaseSeconds: number;
  /** Default wait limit in seconds; `undefined` waits without limit. */
  readonly timeout: number | undefined;
  /** Whether an unavailable store refuses calls (`true`) or admits them degraded (`false`). */
  readonly failClosed: boolean;
  /** The normalised policy the engines enforce. */
  readonly policy: Policy;
}

/** Options every store accepts, whatever its engine. */
export interface CommonStoreOptions {
  /**
   * Deadline of one store call in milliseconds: past it the call counts as failed and the
   * limiter's failure policy applies. Not used by local engines (memory).
   * @default 1000
   */
  requestTimeoutMs?: number | undefined;
}

/** Options of the built-in memory engine. */
export interface MemoryEngineOptions {
  /**
   * Most keys (per store) held at once. Idle keys are dropped first; when every held key is
   * still live, a call for a new key cannot be stored and counts as a store failure (degraded
   * allow, or `STORE_UNAVAILABLE` when fail-closed), so live keys are never reset.
   * @default 1_000_000
   */
  maxKeys?: number | undefined;
}

/**
 * Engine options by engine name. Engine packages add theirs by declaration merging, so that
 * `configureStore("main", { engine: "redis", url })` is type-checked once `@ratesync/redis` is
 * installed:
 *
 * ```ts
 * declare module "@ratesync/core" {
 *   interface EngineOptionsMap { redis: RedisEngineOptions }
 * }
 * ```
 */
export interface EngineOptionsMap {
  memory: MemoryEngineOptions;
}

/** Store options for one of the engines in {@link EngineOptionsMap}. */
export type KnownStoreOptions = {
  [E in keyof EngineOptionsMap]: { engine: E } & EngineOptionsMap[E] & CommonStoreOptions;
}[keyof EngineOptionsMap];

/** Store options for a custom engine: registered by name, or an engine instance passed directly. */
export interface CustomStoreOptions extends CommonStoreOptions {
  /** A registered engine's name, or an engine instance (which the store then never closes). */
  engine: Engine | (string & {});
  [option: string]: unknown;
}

/** Options of `configureStore`: an engine and its connection options. */
export type StoreOptions = KnownStoreOptions | CustomStoreOptions;
