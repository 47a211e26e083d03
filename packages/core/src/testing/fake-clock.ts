import type { Clock } from "../clock.js";

interface Timer {
  readonly at: number;
  readonly seq: number;
  readonly callback: () => void;
  cancelled: boolean;
}

/** Lets pending promise callbacks run (a real macrotask turn), without advancing fake time. */
export function flushMicrotasks(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/**
 * A clock that only moves when told to, for tests that must not sleep. Timers scheduled on it run
 * in time order as {@link FakeClock.advance} passes them, with pending promise callbacks flushed
 * after each, so code that awaits between timers behaves as it would in real time.
 *
 * @example
 * ```ts
 * const clock = new FakeClock();
 * const rateSync = createRateSync({ clock, random: () => 0 });
 * const pending = rateSync.acquire("api");
 * await clock.advance(100);
 * await pending;
 * ```
 */
export class FakeClock implements Clock {
  #now: number;
  #seq = 0;
  #timers: Timer[] = [];

  /** @param start the initial time, epoch ms. @default 1_700_000_000_000 */
  constructor(start = 1_700_000_000_000) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  schedule(callback: () => void, delayMs: number, _keepAlive: boolean): () => void {
    const timer: Timer = { at: this.#now + Math.max(0, delayMs), seq: this.#seq++, callback, cancelled: false };
    this.#timers.push(timer);
    return () => {
      timer.cancelled = true;
    };
  }

  /** Timers scheduled and not yet run or cancelled. */
  get pendingTimers(): number {
    return this.#timers.filter((timer) => !timer.cancelled).length;
  }

  /** Moves time forward by `ms`, running every timer due on the way, in order. */
  async advance(ms: number): Promise<void> {
    await this.advanceTo(this.#now + ms);
  }

  /** Moves time forward to `time`, running every timer due on the way, in order. */
  async advanceTo(time: number): Promise<void> {
    await flushMicrotasks();
    for (;;) {
      const next = this.#nextDue(time);
      if (next === undefined) break;
      this.#now = Math.max(this.#now, next.at);
      next.callback();
      await flushMicrotasks();
    }
    this.#now = Math.max(this.#now, time);
    await flushMicrotasks();
  }

  /** Sets the time without running timers (to model a jump the code must not trust). */
  set(time: number): void {
    this.#now = time;
  }

  #nextDue(limit: number): Timer | undefined {
    this.#timers = this.#timers.filter((timer) => !timer.cancelled);
    let best: Timer | undefined;
    for (const timer of this.#timers) {
      if (timer.at > limit) continue;
      if (best === undefined || timer.at < best.at || (timer.at === best.at && timer.seq < best.seq)) best = timer;
    }
    if (best !== undefined) best.cancelled = true;
    return best;
  }
}
