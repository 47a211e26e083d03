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
 * Tolerance for floating-point comparisons of times, in milliseconds. Intervals such as
 * `1000 / 3` are not exact in binary; without it a call arriving exactly on time could be refused
 * by a rounding error of 1e-13 ms. Engines that reimplement the algorithms (Lua, SQL) use the same.
 */
export const TIME_EPSILON_MS = 1e-6;
