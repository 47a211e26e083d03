import type { TokenBucketPolicy } from "../policy.js";
import { type RateCheck, TIME_EPSILON_MS } from "./rate-check.js";

/**
 * Token bucket state in GCRA form: the theoretical arrival time (`tat`), the epoch millisecond at
 * which the bucket is full again. A missing state is a full bucket.
 *
 * GCRA keeps one number per key instead of a token count and a refill timestamp, so a decision is
 * a comparison and an addition: cheap in memory, and easy to run atomically inside a store.
 */
export interface TokenBucketState {
  tat: number;
}

/**
 * Checks whether `cost` fits the bucket at `now`, without changing it.
 *
 * The bucket holds `burst * intervalMs` of "credit"; each unit of cost spends `intervalMs` of it.
 * A call is admitted when, after spending, the debt (`newTat - now`) stays within the credit.
 */
export function checkTokenBucket(
  state: TokenBucketState | undefined,
  policy: TokenBucketPolicy,
  cost: number,
  now: number,
): RateCheck {
  const interval = policy.intervalMs;
  const capacityMs = policy.burst * interval;
  // Work with the debt (ms of credit already spent) rather than absolute times: epoch times near
  // 1.7e12 carry only about 2e-4 ms of precision, and subtracting two of them would lose it.
  const debt = state === undefined || state.tat <= now ? 0 : state.tat - now;
  const debtAfter = debt + cost * interval;
  if (debtAfter > capacityMs + TIME_EPSILON_MS) {
    return {
      allowed: false,
      remaining: floorUnits((capacityMs - debt) / interval),
      resetAt: now + debt,
      retryAfterMs: debtAfter - capacityMs,
    };
  }
  return {
    allowed: true,
    remaining: floorUnits((capacityMs - debtAfter) / interval),
    resetAt: now + debtAfter,
    retryAfterMs: 0,
  };
}

/** Spends `cost` from the bucket. Call only after {@link checkTokenBucket} allowed the same call. */
export function applyTokenBucket(
  state: TokenBucketState | undefined,
  policy: TokenBucketPolicy,
  cost: number,
  now: number,
): TokenBucketState {
  const base = state === undefined || state.tat < now ? now : state.tat;
  const tat = base + cost * policy.intervalMs;
  if (state === undefined) return { tat };
  state.tat = tat;
  return state;
}

/** The epoch millisecond after which this state is the same as no state (a full bucket). */
export function tokenBucketExpiresAt(state: TokenBucketState): number {
  return state.tat;
}

/** Whole units in `value`, forgiving the rounding error of the division that produced it. */
export function floorUnits(value: number): number {
  const units = Math.floor(value + 1e-6);
  return Math.max(units, 0);
}
