import type { FixedWindowPolicy } from "../policy.js";
import type { RateCheck } from "./rate-check.js";

/**
 * Fixed window state: the start of the window the count belongs to (epoch ms, a multiple of
 * `windowMs`) and the cost admitted in it. A state from an older window counts as empty.
 */
export interface FixedWindowState {
  start: number;
  count: number;
}

/** Start of the aligned window that contains `now`. */
export function windowStart(policy: FixedWindowPolicy, now: number): number {
  return Math.floor(now / policy.windowMs) * policy.windowMs;
}

/** Checks whether `cost` fits the current window at `now`, without changing the state. */
export function checkFixedWindow(
  state: FixedWindowState | undefined,
  policy: FixedWindowPolicy,
  cost: number,
  now: number,
): RateCheck {
  const start = windowStart(policy, now);
  const used = state !== undefined && state.start === start ? state.count : 0;
  const end = start + policy.windowMs;
  // The budget is full again at the window's end, or now when the window holds nothing.
  if (used + cost > policy.limit) {
    return { allowed: false, remaining: policy.limit - used, resetAt: used > 0 ? end : now, retryAfterMs: end - now };
  }
  return {
    allowed: true,
    remaining: policy.limit - used - cost,
    resetAt: used + cost > 0 ? end : now,
    retryAfterMs: 0,
  };
}

/** Counts `cost` in the current window. Call only after {@link checkFixedWindow} allowed the same call. */
export function applyFixedWindow(
  state: FixedWindowState | undefined,
  policy: FixedWindowPolicy,
  cost: number,
  now: number,
): FixedWindowState {
  const start = windowStart(policy, now);
  if (state === undefined) return { start, count: cost };
  if (state.start !== start) {
    state.start = start;
    state.count = cost;
  } else {
    state.count += cost;
  }
  return state;
}

/** The epoch millisecond after which this state is the same as no state. */
export function fixedWindowExpiresAt(state: FixedWindowState, policy: FixedWindowPolicy): number {
  return state.start + policy.windowMs;
}
