/**
 * Pure checks of what a multi-process run recorded: admission logs (ms on one clock: a store's
 * epoch ms, or the harness clock) against the rate claims of SPEC section 5, and hold intervals
 * against `max_concurrent`. No I/O and no Node.js imports, so they are unit-tested with
 * fabricated logs and usable anywhere.
 */

/** A time during which a caller held a slot, ms on the harness clock, half-open: `[start, end)`. */
export interface HoldInterval {
  /** When the holder had the slot (after its acquire resolved). */
  readonly start: number;
  /** When the holder stopped using it (before its release was sent). */
  readonly end: number;
}

/** One way an admission log breaks a limit. */
export interface LogViolation {
  /**
   * `"too-many"`: more admissions in total than the run allows; `"too-few"`: fewer than the
   * required share of that; `"interval"`: more admissions inside one interval than it allows.
   */
  readonly kind: "too-many" | "too-few" | "interval";
  /** Admissions counted (in total, or inside the interval). */
  readonly count: number;
  /** The most (or, for `"too-few"`, the least) the limit allows. */
  readonly bound: number;
  /** Start of the offending interval (the first admission in it), ms; the first admission for totals. */
  readonly from: number;
  /** End of the offending interval (the last admission in it), ms; the last admission for totals. */
  readonly to: number;
  /** What went wrong, with the numbers, for a test failure message. */
  readonly message: string;
}

/** The policy a token bucket log is checked against. */
export interface TokenBucketLogOptions {
  /** Sustained rate, admissions per second. */
  readonly ratePerSecond: number;
  /** Admissions allowed at once (the bucket's capacity). */
  readonly burst: number;
  /** Length of the run, ms: the total may be at most `burst + rate * duration + 1`. */
  readonly durationMs: number;
  /**
   * The least share of that total bound the run must reach (`0.95`: at least 95 %), so a limiter
   * that admits too little fails as well. Absent: no lower bound.
   */
  readonly minFraction?: number | undefined;
}

/** The policy a sliding window log is checked against. */
export interface SlidingWindowLogOptions {
  /** Admissions allowed in any window. */
  readonly limit: number;
  /** Window length, ms. */
  readonly windowMs: number;
}

/** The busiest interval of a log: how many admissions it holds, and the first and last of them. */
export interface BusiestInterval {
  /** Admissions inside the interval. */
  readonly count: number;
  /** The first of them, ms (`NaN` for an empty log). */
  readonly from: number;
  /** The last of them, ms (`NaN` for an empty log). */
  readonly to: number;
}

function sortedTimes(times: readonly number[]): number[] {
  for (const time of times) {
    if (!Number.isFinite(time)) throw new RangeError(`admission times must be finite numbers, got ${time}`);
  }
  return [...times].sort((a, b) => a - b);
}

function checkPositive(name: string, value: number): void {
  if (!(Number.isFinite(value) && value > 0)) throw new RangeError(`${name} must be a positive number, got ${value}`);
}

/**
 * The busiest interval of length `lengthMs` in a log: the most admissions whose times all lie
 * within a half-open interval `[t, t + lengthMs)`, i.e. any two of them less than `lengthMs`
 * apart. Half-open because that is what "in any window of that length" means for a sliding
 * window: an admission exactly `lengthMs` after another no longer shares its window.
 * O(n log n) for the sort, then one two-pointer pass.
 */
export function busiestInterval(times: readonly number[], lengthMs: number): BusiestInterval {
  checkPositive("lengthMs", lengthMs);
  const sorted = sortedTimes(times);
  let best: BusiestInterval = { count: 0, from: Number.NaN, to: Number.NaN };
  let first = 0;
  for (let last = 0; last < sorted.length; last++) {
    const end = sorted[last] as number;
    while (end - (sorted[first] as number) >= lengthMs) first++;
    const count = last - first + 1;
    if (count > best.count) best = { count, from: sorted[first] as number, to: end };
  }
  return best;
}

/**
 * The most admissions of `times` (ms, any order) inside any half-open interval of
 * `lengthMs`. See {@link busiestInterval}.
 *
 * @example
 * ```ts
 * maxInAnyInterval([0, 500, 999, 1000], 1000); // 3: 0, 500 and 999 (1000 starts a new second)
 * ```
 */
export function maxInAnyInterval(times: readonly number[], lengthMs: number): number {
  return busiestInterval(times, lengthMs).count;
}

/**
 * Checks a token bucket's admission log (ms, any order) against its claims: at most
 * `burst + rate * duration + 1` admissions in total, where the duration is the run's, or the
 * log's own span when that is longer (a call made just before the run ends is decided a round
 * trip later); at least `minFraction` of the run's budget, when given;
 * and no interval holding more than `burst + rate * length + 1`: for every pair of admissions
 * `i < j` in time order, `j - i + 1 <= burst + rate * (t_j - t_i) / 1000 + 1`. The `+ 1` forgives
 * the admission at the very edge of an interval (and rounding in the store).
 *
 * Every pair is covered in O(n) after the sort: with `f(k) = k - rate * t_k / 1000`, the pair
 * condition is `f(j) - f(i) <= burst`, so the worst pair ending at `j` starts at the smallest
 * `f(i)` seen so far.
 *
 * @returns the violations found, the worst interval only: empty when the log is within the claims.
 */
export function checkTokenBucketLog(times: readonly number[], options: TokenBucketLogOptions): LogViolation[] {
  const { ratePerSecond, burst, durationMs, minFraction } = options;
  checkPositive("ratePerSecond", ratePerSecond);
  checkPositive("burst", burst);
  if (!(Number.isFinite(durationMs) && durationMs >= 0))
    throw new RangeError(`durationMs must be >= 0, got ${durationMs}`);
  const sorted = sortedTimes(times);
  const violations: LogViolation[] = [];
  const perMs = ratePerSecond / 1000;
  const first = sorted[0] ?? Number.NaN;
  const last = sorted[sorted.length - 1] ?? Number.NaN;

  const spanMs = Math.max(durationMs, sorted.length > 0 ? last - first : 0);
  const most = burst + perMs * spanMs + 1;
  if (sorted.length > most) {
    violations.push({
      kind: "too-many",
      count: sorted.length,
      bound: most,
      from: first,
      to: last,
      message: `${sorted.length} admissions in ${spanMs} ms, more than burst ${burst} + ${ratePerSecond}/s * ${spanMs / 1000} s + 1 = ${most}`,
    });
  }
  const budget = burst + perMs * durationMs + 1;
  if (minFraction !== undefined && sorted.length < minFraction * budget) {
    violations.push({
      kind: "too-few",
      count: sorted.length,
      bound: minFraction * budget,
      from: first,
      to: last,
      message: `${sorted.length} admissions in a run of ${durationMs} ms, fewer than ${minFraction * 100} % of ${budget} = ${minFraction * budget}`,
    });
  }

  // Times relative to the first admission keep f(k) small, so no precision is lost to epoch ms.
  let minIndex = 0;
  let minF = Number.POSITIVE_INFINITY;
  let worst = 0;
  let worstFrom = 0;
  let worstTo = 0;
  for (let k = 0; k < sorted.length; k++) {
    const f = k - perMs * ((sorted[k] as number) - first);
    if (f < minF) {
      minF = f;
      minIndex = k;
    }
    const excess = f - minF;
    if (excess > worst) {
      worst = excess;
      worstFrom = minIndex;
      worstTo = k;
    }
  }
  if (worst > burst) {
    const from = sorted[worstFrom] as number;
    const to = sorted[worstTo] as number;
    const count = worstTo - worstFrom + 1;
    const bound = burst + perMs * (to - from) + 1;
    violations.push({
      kind: "interval",
      count,
      bound,
      from,
      to,
      message: `${count} admissions within ${(to - from).toFixed(3)} ms (from ${from} to ${to}), more than burst ${burst} + ${ratePerSecond}/s * ${((to - from) / 1000).toFixed(6)} s + 1 = ${bound.toFixed(3)}`,
    });
  }
  return violations;
}

/**
 * Checks a sliding window's admission log (ms, any order): no half-open interval of
 * `windowMs` may hold more than `limit` admissions. The claim is exact (SPEC section 5), so
 * there is no tolerance: check the store's own admission times, not times observed after a
 * network round trip.
 *
 * @returns the violation at the busiest window, or an empty array.
 */
export function checkSlidingWindowLog(times: readonly number[], options: SlidingWindowLogOptions): LogViolation[] {
  checkPositive("limit", options.limit);
  const busiest = busiestInterval(times, options.windowMs);
  if (busiest.count <= options.limit) return [];
  return [
    {
      kind: "interval",
      count: busiest.count,
      bound: options.limit,
      from: busiest.from,
      to: busiest.to,
      message: `${busiest.count} admissions within ${(busiest.to - busiest.from).toFixed(3)} ms (from ${busiest.from} to ${busiest.to}), more than the limit of ${options.limit} per ${options.windowMs} ms`,
    },
  ];
}

/**
 * The most intervals (half-open `[start, end)`) that overlap at any instant: slots in flight at
 * once, as measured by their holders. An interval that ends when another starts does not overlap
 * it; an empty one (`end === start`) holds nothing.
 *
 * @example
 * ```ts
 * maxConcurrentFromIntervals([{ start: 0, end: 10 }, { start: 5, end: 15 }, { start: 10, end: 20 }]); // 2
 * ```
 */
export function maxConcurrentFromIntervals(intervals: readonly HoldInterval[]): number {
  // +1 at a start, -1 at an end; at equal times ends come first, so touching intervals never count twice.
  const events: [time: number, delta: number][] = [];
  for (const { start, end } of intervals) {
    if (!(Number.isFinite(start) && Number.isFinite(end)) || end < start) {
      throw new RangeError(`a hold interval needs finite start <= end, got [${start}, ${end})`);
    }
    if (end === start) continue;
    events.push([start, 1], [end, -1]);
  }
  events.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let current = 0;
  let most = 0;
  for (const [, delta] of events) {
    current += delta;
    if (current > most) most = current;
  }
  return most;
}
