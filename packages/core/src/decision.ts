import type { RateSyncError } from "./errors.js";
import type { Slot } from "./slot.js";

/** Which policy a decision speaks for: a rate algorithm, or the concurrency limit. */
export type PolicyKind = "token_bucket" | "sliding_window" | "fixed_window" | "concurrency";

/**
 * A policy as decisions report it: what it allows per how long. Built once per limiter, shared
 * by every decision (never allocated per call).
 */
export interface DecisionPolicy {
  /** The algorithm, or `"concurrency"` for the slot limit. */
  readonly kind: PolicyKind;
  /** The quota: burst (token bucket), limit (windows) or max concurrent slots. */
  readonly limit: number;
  /**
   * The period the quota is over, in ms: the window, or for a token bucket the time it takes to
   * refill from empty (`burst / ratePerSecond`). `undefined` for concurrency.
   */
  readonly windowMs: number | undefined;
}

/** Slot usage reported by a limiter with `maxConcurrent`. */
export interface ConcurrencyUsage {
  /** `maxConcurrent`. */
  readonly limit: number;
  /** Slots held (across every process) right after this decision. */
  readonly inUse: number;
  /** Slots free right after this decision. */
  readonly remaining: number;
}

interface DecisionBase {
  /** The limiter that decided. */
  readonly limiter: string;
  /** The key the decision is for; `undefined` for the limiter's shared budget. */
  readonly key: string | undefined;
  /** The policy that decided: the one that refused, or the rate policy when admitted. */
  readonly policy: DecisionPolicy;
  /** The quota of `policy` (same as `policy.limit`). */
  readonly limit: number;
}

/**
 * A decision the store took. Every number is the store's: nothing is estimated or made up.
 */
export interface StoreDecision extends DecisionBase {
  /** Whether the call was admitted. */
  readonly allowed: boolean;
  /** The store answered: this decision is exact. */
  readonly degraded: false;
  /** Quota of `policy` left after this call (admitted) or now (refused). */
  readonly remaining: number;
  /** Epoch ms at which `policy`'s quota is full again. */
  readonly resetAt: number;
  /**
   * Milliseconds until the same call could be admitted; 0 when admitted. For a concurrency
   * refusal this is an upper bound (the earliest lease expiry): a release usually comes sooner.
   */
  readonly retryAfterMs: number;
  /** Slot usage, for limiters with `maxConcurrent`. */
  readonly concurrency: ConcurrencyUsage | undefined;
  /** The slot this call holds, when admitted. Release it (or `await using` it) when done. */
  readonly slot: Slot | undefined;
}

/**
 * A decision taken without the store: the store failed or passed its deadline and the limiter
 * is fail-open, so the call was admitted. Nothing about the remaining quota is known, so nothing
 * is claimed: `remaining` and `resetAt` are `undefined`.
 */
export interface DegradedDecision extends DecisionBase {
  /** Always admitted: a fail-open limiter lets calls through while its store is unavailable. */
  readonly allowed: true;
  /** The store could not be asked. */
  readonly degraded: true;
  /** Why the store could not be asked, for logs and metrics. */
  readonly reason: string;
  /** The store failure. */
  readonly error: RateSyncError;
  /** Unknown while the store is unavailable. */
  readonly remaining: undefined;
  /** Unknown while the store is unavailable. */
  readonly resetAt: undefined;
  /** 0: the call was admitted. */
  readonly retryAfterMs: 0;
  /** Unknown while the store is unavailable. */
  readonly concurrency: undefined;
  /** A slot that holds nothing in the store; releasing it is harmless. */
  readonly slot: Slot;
}

/**
 * The answer to one attempt. Being limited is a decision (`allowed: false`), never an exception.
 * Narrow on `degraded` to read the store's numbers:
 *
 * @example
 * ```ts
 * const decision = await tryAcquire("api", { key: userId });
 * if (!decision.allowed) return reply.status(429).header("Retry-After", Math.ceil(decision.retryAfterMs / 1000));
 * if (!decision.degraded) console.log(`${decision.remaining} of ${decision.limit} left`);
 * ```
 */
export type Decision = StoreDecision | DegradedDecision;
