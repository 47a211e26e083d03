/** A snapshot of a limiter's counters in this process, as `getLimiter(id).metrics()` returns it. */
export interface LimiterMetrics {
  /** Admitted calls (`acquire` and `tryAcquire`), degraded ones included. */
  readonly totalAcquisitions: number;
  /** Mean time `acquire` calls waited before admission, in ms (those admitted at once count as 0). */
  readonly avgWaitTimeMs: number;
  /** Longest time an `acquire` waited before admission, in ms. */
  readonly maxWaitTimeMs: number;
  /** `acquire` calls that ended with `ACQUIRE_TIMEOUT`. */
  readonly timeouts: number;
  /** Slots this process holds now. */
  readonly currentConcurrent: number;
  /** Attempts refused because every slot was taken. */
  readonly maxConcurrentReached: number;
  /** Slots released (explicitly, by disposal, or found lost). */
  readonly totalReleases: number;
  /** Attempts refused (a waiting `acquire` counts each refused attempt). */
  readonly denied: number;
  /** Calls admitted without the store, because it failed and the limiter is fail-open. */
  readonly degraded: number;
  /** Store calls that failed or passed their deadline. */
  readonly storeErrors: number;
}

/**
 * The mutable counters behind {@link LimiterMetrics}: plain numbers bumped in place, so keeping
 * metrics allocates nothing per call and reading them never touches the store.
 */
export class MetricsRecorder {
  acquisitions = 0;
  waitedAcquisitions = 0;
  totalWaitMs = 0;
  maxWaitMs = 0;
  timeouts = 0;
  concurrent = 0;
  concurrencyRefusals = 0;
  releases = 0;
  denied = 0;
  degraded = 0;
  storeErrors = 0;

  /** Records an admission by `acquire` after waiting `waitedMs` (0 when admitted at once). */
  recordWait(waitedMs: number): void {
    this.waitedAcquisitions++;
    this.totalWaitMs += waitedMs;
    if (waitedMs > this.maxWaitMs) this.maxWaitMs = waitedMs;
  }

  /** The current values. */
  snapshot(): LimiterMetrics {
    return {
      totalAcquisitions: this.acquisitions,
      avgWaitTimeMs: this.waitedAcquisitions === 0 ? 0 : this.totalWaitMs / this.waitedAcquisitions,
      maxWaitTimeMs: this.maxWaitMs,
      timeouts: this.timeouts,
      currentConcurrent: this.concurrent,
      maxConcurrentReached: this.concurrencyRefusals,
      totalReleases: this.releases,
      denied: this.denied,
      degraded: this.degraded,
      storeErrors: this.storeErrors,
    };
  }
}
