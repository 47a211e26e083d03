/**
 * The statistics a benchmark reports: the median of per-round throughputs, and latency
 * percentiles from a fixed-size histogram that costs the same at call one and call ten million.
 */

/**
 * The median of `values`: the middle value, or the mean of the two middle values for an even count.
 * Medians rather than means, because one round disturbed by the machine (a GC pause, another
 * process) moves a mean a lot and a median not at all.
 *
 * @throws RangeError when `values` is empty.
 */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError("median() of an empty list");
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  const upper = sorted[middle] as number;
  return sorted.length % 2 === 1 ? upper : ((sorted[middle - 1] as number) + upper) / 2;
}

/** A range that holds the true median of what was sampled, with the stated confidence. */
export interface MedianInterval {
  /** Lower end: one of the sampled values. */
  readonly low: number;
  /** Upper end: one of the sampled values. */
  readonly high: number;
  /**
   * The chance that the true median lies in the range (0 to 1), whatever the distribution of the
   * values, provided they are independent draws of it. Below the asked confidence when there are
   * too few values to reach it: then the range is the whole sample.
   */
  readonly confidence: number;
}

/**
 * A confidence interval for the median of whatever `values` were drawn from, without assuming a
 * distribution (the sign-test interval): with the values sorted, `[x(k), x(n+1-k)]` misses the
 * median only when at least n+1-k of the values fall on one side of it, which for independent
 * draws has the binomial probability of n fair coin tosses. The narrowest such range whose
 * confidence is at least `confidence`; the whole sample when even that falls short.
 *
 * A benchmark uses it on the per-round ratios of two contenders: a range entirely above a target
 * shows the target met, one entirely below shows it missed, and one across it shows that the run
 * cannot tell.
 *
 * @throws RangeError when `values` is empty or `confidence` is not between 0 and 1.
 * @example
 * ```ts
 * medianInterval([1.02, 0.97, 1.05, 1.01, 1.04, 0.99, 1.03]); // { low: 0.97, high: 1.05, confidence: 0.984375 }
 * ```
 */
export function medianInterval(values: readonly number[], confidence = 0.9): MedianInterval {
  if (values.length === 0) throw new RangeError("medianInterval() of an empty list");
  if (!(confidence > 0 && confidence < 1)) {
    throw new RangeError(`medianInterval(): confidence must be between 0 and 1, got ${confidence}`);
  }
  const sorted = [...values].sort((a, b) => a - b);
  const n = sorted.length;
  // tail[k] = P(Binomial(n, 1/2) <= k - 1): the chance that x(k) is above the median.
  let k = 1;
  let tail = 0.5 ** n;
  let term = tail;
  // Widen k (narrow the range) while the next one still has the confidence asked for.
  for (let next = 2; next <= (n + 1) >> 1; next++) {
    term = (term * (n - next + 2)) / (next - 1);
    if (1 - 2 * (tail + term) < confidence) break;
    tail += term;
    k = next;
  }
  return { low: sorted[k - 1] as number, high: sorted[n - k] as number, confidence: Math.max(0, 1 - 2 * tail) };
}

/** Smallest latency the histogram tells apart, in ms (100 ns): anything faster lands in bucket 0. */
const MIN_MS = 1e-4;
/** Each bucket is 2% wider than the one before: a reported percentile is within 1% of the truth. */
const GROWTH = 1.02;
const LN_GROWTH = Math.log(GROWTH);
/** Buckets from 100 ns up to about 2 minutes; slower calls are counted in the last one. */
const BUCKETS = 2 + Math.ceil(Math.log(120_000 / MIN_MS) / LN_GROWTH);

/**
 * Latencies in log-spaced buckets (2% apart, from 100 ns to about 2 minutes): recording is one
 * logarithm and one increment, memory is fixed (about 8 KiB) however many calls are recorded,
 * so it can stay on for a long network benchmark without the recorder becoming what is measured.
 *
 * @example
 * ```ts
 * const histogram = new LatencyHistogram();
 * const t0 = performance.now();
 * await client.get(key);
 * histogram.record(performance.now() - t0);
 * histogram.percentile(0.99); // ms
 * ```
 */
export class LatencyHistogram {
  readonly #counts = new Float64Array(BUCKETS);
  #count = 0;

  /** Latencies recorded so far. */
  get count(): number {
    return this.#count;
  }

  /** Records one latency, in milliseconds. */
  record(ms: number): void {
    const index = ms <= MIN_MS ? 0 : Math.min(BUCKETS - 1, 1 + Math.floor(Math.log(ms / MIN_MS) / LN_GROWTH));
    this.#counts[index] = (this.#counts[index] as number) + 1;
    this.#count++;
  }

  /** Adds every latency recorded by `other` (to combine rounds). */
  merge(other: LatencyHistogram): void {
    for (let i = 0; i < BUCKETS; i++) this.#counts[i] = (this.#counts[i] as number) + (other.#counts[i] as number);
    this.#count += other.#count;
  }

  /**
   * The latency below which a fraction `q` of the recorded calls fall, in ms (`q = 0.5` is the
   * median, `0.99` the p99); `undefined` when nothing was recorded.
   */
  percentile(q: number): number | undefined {
    if (this.#count === 0) return undefined;
    const rank = Math.max(1, Math.ceil(q * this.#count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.#counts[i] as number;
      if (seen >= rank) return i === 0 ? MIN_MS : MIN_MS * GROWTH ** (i - 0.5);
    }
    return MIN_MS * GROWTH ** (BUCKETS - 1.5);
  }
}
