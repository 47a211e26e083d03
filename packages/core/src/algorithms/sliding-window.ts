import type { SlidingWindowPolicy } from "../policy.js";
import type { RateCheck } from "./rate-check.js";

/**
 * Exact sliding window state: a log of admissions, oldest first, stored flat as
 * `[time, cost, time, cost, ...]` from index `head` on, with `total` the sum of the costs in it.
 *
 * An admission at time `t` counts against every call in `(t, t + windowMs)`: at `t + windowMs`
 * it has left the window. Admissions in the same millisecond share one entry, so the log never
 * holds more than `limit` entries. This is exact (unlike the two-window estimate some libraries
 * use): no interval of `windowMs` ever holds more than `limit`.
 *
 * The log is pruned lazily: `head` moves past expired entries and the array is compacted when
 * the dead prefix outgrows the live part, so a hot key costs amortised O(1) per call.
 */
export interface SlidingWindowState {
  log: number[];
  head: number;
  total: number;
}

/** Index of the first entry still inside the window at `now`, and the cost before it. */
function firstLive(state: SlidingWindowState, windowMs: number, now: number): [index: number, expiredCost: number] {
  const log = state.log;
  const horizon = now - windowMs;
  let index = state.head;
  let expired = 0;
  while (index < log.length && (log[index] as number) <= horizon) {
    expired += log[index + 1] as number;
    index += 2;
  }
  return [index, expired];
}

/** Checks whether `cost` fits the window ending at `now`, without changing the state. */
export function checkSlidingWindow(
  state: SlidingWindowState | undefined,
  policy: SlidingWindowPolicy,
  cost: number,
  now: number,
): RateCheck {
  if (state === undefined) {
    if (cost > policy.limit) {
      return { allowed: false, remaining: policy.limit, resetAt: now, retryAfterMs: Number.POSITIVE_INFINITY };
    }
    return {
      allowed: true,
      remaining: policy.limit - cost,
      resetAt: cost > 0 ? now + policy.windowMs : now,
      retryAfterMs: 0,
    };
  }
  const [live, expired] = firstLive(state, policy.windowMs, now);
  const used = state.total - expired;
  const log = state.log;
  const newest = log.length > live ? (log[log.length - 2] as number) : now;
  if (used + cost <= policy.limit) {
    return {
      allowed: true,
      remaining: policy.limit - used - cost,
      // A cost of 0 is not recorded, so it leaves the reset time where the log puts it.
      resetAt: cost > 0 ? now + policy.windowMs : used === 0 ? now : newest + policy.windowMs,
      retryAfterMs: 0,
    };
  }
  // Walk from the oldest live admission until enough cost has left the window for this call.
  const mustLeave = used + cost - policy.limit;
  let left = 0;
  let index = live;
  while (index < log.length) {
    left += log[index + 1] as number;
    if (left >= mustLeave) break;
    index += 2;
  }
  const retryAt = index < log.length ? (log[index] as number) + policy.windowMs : Number.POSITIVE_INFINITY;
  return {
    allowed: false,
    remaining: policy.limit - used,
    resetAt: used === 0 ? now : newest + policy.windowMs,
    retryAfterMs: retryAt - now,
  };
}

/** Records `cost` at `now`. Call only after {@link checkSlidingWindow} allowed the same call. */
export function applySlidingWindow(
  state: SlidingWindowState | undefined,
  policy: SlidingWindowPolicy,
  cost: number,
  now: number,
): SlidingWindowState {
  // A cost of 0 is admitted without leaving a trace: it must not move the reset time.
  if (state === undefined)
    return cost === 0 ? { log: [], head: 0, total: 0 } : { log: [now, cost], head: 0, total: cost };
  if (cost === 0) return state;
  const [live, expired] = firstLive(state, policy.windowMs, now);
  const log = state.log;
  state.total -= expired;
  state.head = live;
  if (live > 32 && live * 2 > log.length) {
    log.splice(0, live);
    state.head = 0;
  }
  if (log.length > state.head && log[log.length - 2] === now) {
    log[log.length - 1] = (log[log.length - 1] as number) + cost;
  } else {
    log.push(now, cost);
  }
  state.total += cost;
  return state;
}

/** The epoch millisecond after which this state is the same as no state. */
export function slidingWindowExpiresAt(state: SlidingWindowState, policy: SlidingWindowPolicy): number {
  const log = state.log;
  return log.length > state.head ? (log[log.length - 2] as number) + policy.windowMs : 0;
}
