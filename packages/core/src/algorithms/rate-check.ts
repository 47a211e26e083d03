/**
 * The answer of a rate algorithm to "may this cost be admitted now?", without changing its state.
 * Every number is exact for the state and time given; `retryAfterMs` is 0 when allowed.
 */
export interface RateCheck {
  /** Whether the cost fits now. */
  readonly allowed: boolean;
  /** Cost still admissible after this call (when allowed) or now (when refused). */
  readonly remaining: number;
  /** Epoch milliseconds at which the budget is full again. */
  readonly resetAt: number;
  /** Milliseconds until this same cost would be admitted; 0 when allowed. */
  readonly retryAfterMs: number;
}

/**
 * Tolerance for floating-point comparisons of times, in milliseconds. Intervals
 * such as `1000 / 7` are not exact in binary, and epoch times near 1.7e12 ms hold only about
 * 2e-4 ms of precision; without a tolerance a call arriving exactly on time could be refused by a
 * rounding error. Half a microsecond covers two units of that precision and no more. Engines that
 * reimplement the algorithms (Lua, SQL) use the same.
 */
export const TIME_EPSILON_MS = 5e-4;
