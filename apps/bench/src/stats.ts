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
