import type { TokenBucketPolicy } from "../policy.js";
import { type RateCheck, TIME_EPSILON_MS } from "./rate-check.js";

/**
 * Token bucket state in GCRA form. GCRA keeps, instead of a token count and a refill timestamp,
 * the "theoretical arrival time" (TAT): the epoch millisecond at which the bucket is full again. A
 * decision is then a comparison and an addition: cheap in memory, easy to run atomically in a store.
 *
 * The TAT is kept as `since + units * intervalMs`: the moment the bucket last left "full" and the
 * whole units of cost spent since. Adding `intervalMs` to an epoch time rounds (epoch times near
 * 1.7e12 ms carry only ~2e-4 ms of precision), and in a bucket that stays in debt those roundings
 * would pile up until a call arriving exactly on time is refused. Counting whole units keeps the
 * error to one rounding, whatever the history. A missing state is a full bucket.
 */
export interface TokenBucketState {
  /** Epoch ms at which the bucket was last full (the start of the current debt). */
  since: number;
  /** Whole units of cost spent since `since`. */
  units: number;
}

/** The theoretical arrival time: the epoch ms at which the bucket is full again. */
export function theoreticalArrival(state: TokenBucketState, policy: TokenBucketPolicy): number {
  return state.since + state.units * policy.intervalMs;
}

/**
 * Checks whether `cost` fits the bucket at `now`, without changing it.
 *
 * The bucket holds `burst * intervalMs` of credit; each unit of cost spends `intervalMs` of it. A
 * call is admitted when, after spending, the debt (how far the TAT is ahead of `now`) stays within
 * the credit.
 */
export function checkTokenBucket(
  state: TokenBucketState | undefined,
  policy: TokenBucketPolicy,
  cost: number,
  now: number,
): RateCheck {
  const interval = policy.intervalMs;
  const capacityMs = policy.burst * interval;
  const tat = state === undefined ? now : theoreticalArrival(state, policy);
  const debt = tat <= now ? 0 : tat - now;
  const debtAfter = debt + cost * interval;
  if (debtAfter > capacityMs + TIME_EPSILON_MS) {
    return {
      allowed: false,
      remaining: floorUnits(capacityMs - debt, interval),
      resetAt: now + debt,
      retryAfterMs: debtAfter - capacityMs,
    };
  }
  return {
    allowed: true,
    remaining: floorUnits(capacityMs - debtAfter, interval),
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
  if (state === undefined) return { since: now, units: cost };
  if (theoreticalArrival(state, policy) <= now) {
    // The bucket had refilled: a new debt starts now.
    state.since = now;
    state.units = cost;
  } else {
    state.units += cost;
  }
  return state;
}

/** The epoch millisecond after which this state is the same as no state (a full bucket). */
export function tokenBucketExpiresAt(state: TokenBucketState, policy: TokenBucketPolicy): number {
  return theoreticalArrival(state, policy);
}

/**
 * Whole units of `intervalMs` in `creditMs`, forgiving the rounding error (up to
 * {@link TIME_EPSILON_MS}) of the times it was computed from.
 */
export function floorUnits(creditMs: number, intervalMs: number): number {
  return Math.max(0, Math.floor((creditMs + TIME_EPSILON_MS) / intervalMs));
}
