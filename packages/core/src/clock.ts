/**
 * Time as ratesync sees it. The memory engine and the waiting logic take their time from a
 * `Clock`, so tests can inject a fake one and never sleep; remote engines take decisions on the
 * store's clock instead and use this one only to schedule waits.
 */
export interface Clock {
  /** Epoch milliseconds, never going backwards. */
  now(): number;
  /**
   * Runs `callback` after `delayMs`. Returns a function that cancels it.
   * @param keepAlive whether the pending timer keeps a Node.js process alive. Waits do; lease
   *   renewals do not (a program with nothing else to do may exit while holding a slot).
   */
  schedule(callback: () => void, delayMs: number, keepAlive: boolean): () => void;
}

/** The longest delay `setTimeout` honours. */
const MAX_TIMER_MS = 2 ** 31 - 1;

interface NodeTimer {
  unref?: () => void;
}

const origin = typeof performance !== "undefined" ? performance.timeOrigin : Date.now();
const monotonic: () => number =
  typeof performance !== "undefined"
    ? () => origin + performance.now()
    : (() => {
        // A runtime without `performance`: keep Date.now() from ever going backwards.
        let last = 0;
        return () => {
          const now = Date.now();
          if (now > last) last = now;
          return last;
        };
      })();

/**
 * The real clock: `performance.timeOrigin + performance.now()`, i.e. epoch milliseconds that
 * never jump back when the wall clock is adjusted. Timers are the runtime's `setTimeout`.
 */
export const systemClock: Clock = {
  now: monotonic,
  schedule(callback, delayMs, keepAlive) {
    let timer: ReturnType<typeof setTimeout>;
    const arm = (remaining: number): void => {
      // setTimeout fires at once for delays past 2^31 - 1 ms (24.8 days): re-arm in steps instead.
      const step = Math.min(Math.max(remaining, 0), MAX_TIMER_MS);
      timer = setTimeout(() => (remaining > MAX_TIMER_MS ? arm(remaining - MAX_TIMER_MS) : callback()), step);
      if (!keepAlive) (timer as unknown as NodeTimer).unref?.();
    };
    arm(delayMs);
    return () => clearTimeout(timer);
  },
};

/**
 * Resolves after `delayMs` on `clock`, or rejects with `signal.reason` as soon as `signal` aborts.
 * Leaves no timer or listener behind either way.
 */
export function sleep(clock: Clock, delayMs: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      cancel();
      reject(signal?.reason);
    };
    const cancel = clock.schedule(
      () => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      },
      delayMs,
      true,
    );
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
