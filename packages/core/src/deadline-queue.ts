import type { Clock } from "./clock.js";

/** A call's deadline in a {@link DeadlineQueue}, from {@link DeadlineQueue.start}. */
export interface Deadline {
  /** When the call expires, in the queue's clock's milliseconds. */
  readonly at: number;
  /** True once the call settled or expired. */
  readonly done: boolean;
}

/** One call waiting for its answer. */
class PendingCall implements Deadline {
  readonly at: number;
  /** Expires the call; dropped once the call settles, so the queue keeps nothing of it. */
  expire: (() => void) | undefined;

  constructor(at: number, expire: () => void) {
    this.at = at;
    this.expire = expire;
  }

  get done(): boolean {
    return this.expire === undefined;
  }
}

/**
 * Deadlines for the calls of one store, with one timer for all of them instead of one per call.
 *
 * Every call of a store has the same timeout, so calls expire in the order they started: a FIFO
 * queue with a single timer armed for the oldest unsettled call is enough. At tens of thousands
 * of calls per second that saves a timer creation and cancellation per call, which showed in the
 * Redis benchmark.
 *
 * A settled call keeps nothing alive (its promise, its answer): under a steady load the queue is
 * never empty, and one that held every answer until its deadline had passed grew by about 2 KB a
 * call (10 calls in flight on PostgreSQL: 30 MB within a 5 s timeout), all of it copied by the
 * garbage collector. Settled calls at the head are dropped as they settle.
 *
 * When the last pending call settles, the timer is left to lapse rather than cancelled: calls
 * that follow one another (one in flight at a time) then share it too, instead of each arming
 * and cancelling one. A lapsing timer with nothing pending does nothing; {@link clear} (from the
 * store's `close()`) cancels it at once.
 *
 * Exported for engines that bound their own calls (`Engine.enforcesDeadline`).
 *
 * @example
 * ```ts
 * import { DeadlineQueue, RateSyncError, systemClock } from "@ratesync/core";
 *
 * const deadlines = new DeadlineQueue(systemClock, 1000);
 * const answer = await deadlines.bound(Promise.resolve(42), () => new RateSyncError("STORE_ERROR", "late"));
 * ```
 */
export class DeadlineQueue {
  readonly #clock: Clock;
  readonly #timeoutMs: number;
  #calls: PendingCall[] = [];
  #head = 0;
  /** Calls not yet settled. */
  #unsettled = 0;
  #cancelTimer: (() => void) | undefined;

  constructor(clock: Clock, timeoutMs: number) {
    this.#clock = clock;
    this.#timeoutMs = timeoutMs;
  }

  /**
   * Settles like `promise`, or rejects with `timeoutError()` once the deadline passes first.
   * A pending call keeps a Node.js process alive until it settles or expires.
   */
  bound<T>(promise: PromiseLike<T>, timeoutError: () => Error): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const deadline = this.start(() => reject(timeoutError()));
      promise.then(
        (value) => {
          this.settle(deadline);
          resolve(value);
        },
        (error: unknown) => {
          this.settle(deadline);
          reject(error);
        },
      );
    });
  }

  /**
   * Starts the deadline of a call that settles itself: `expire` runs once the deadline passes,
   * unless {@link settle} came first. {@link bound} for a caller that settles a promise of its own
   * (an engine whose call is several steps, or that saves the promise `bound` makes per call).
   */
  start(expire: () => void): Deadline {
    const call = new PendingCall(this.#clock.now() + this.#timeoutMs, expire);
    this.#calls.push(call);
    this.#unsettled++;
    if (this.#cancelTimer === undefined) this.#arm();
    return call;
  }

  /**
   * Ends the deadline of a call that settled: its `expire` will not run. False when it already
   * ran (the call expired first) or the call settled before.
   */
  settle(deadline: Deadline): boolean {
    // Only the queue makes deadlines (start).
    const call = deadline as PendingCall;
    if (call.expire === undefined) return false;
    call.expire = undefined;
    // Nothing pending: drop the settled calls; the armed timer lapses (see the class comment).
    if (--this.#unsettled === 0) {
      this.#calls = [];
      this.#head = 0;
    } else if (this.#calls[this.#head] === call) {
      // Calls mostly settle in the order they started: drop the settled ones in front.
      this.#dropSettled();
    }
    return true;
  }

  /** Rejects every pending call now with its timeout error, and cancels the timer (an engine's `close()`). */
  expireAll(): void {
    const calls = this.#calls.slice(this.#head);
    this.clear();
    for (const call of calls) {
      const expire = call.expire;
      call.expire = undefined;
      expire?.();
    }
  }

  /** Cancels the timer and forgets every call (they settle as their promises do, unbounded). */
  clear(): void {
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
    this.#calls = [];
    this.#head = 0;
    this.#unsettled = 0;
  }

  /**
   * Drops the settled calls in front of the oldest unsettled one (copying the rest once the
   * dropped part is most of the array); returns that call, if any.
   */
  #dropSettled(): PendingCall | undefined {
    const calls = this.#calls;
    let head = this.#head;
    while (head < calls.length && (calls[head] as PendingCall).expire === undefined) head++;
    if (head >= calls.length) {
      this.#calls = [];
      this.#head = 0;
      return undefined;
    }
    if (head > 1024 && head * 2 > calls.length) {
      this.#calls = calls.slice(head);
      head = 0;
    }
    this.#head = head;
    return this.#calls[head];
  }

  /** Arms the timer for the oldest unsettled call, dropping settled ones on the way. */
  #arm(): void {
    const oldest = this.#dropSettled();
    this.#cancelTimer =
      oldest === undefined
        ? undefined
        : this.#clock.schedule(() => this.#expire(), oldest.at - this.#clock.now(), true);
  }

  /** Rejects every call whose deadline has passed, then re-arms for the next. */
  #expire(): void {
    this.#cancelTimer = undefined;
    const now = this.#clock.now();
    const calls = this.#calls;
    const expired: (() => void)[] = [];
    let head = this.#head;
    while (head < calls.length) {
      const call = calls[head] as PendingCall;
      if (call.expire !== undefined) {
        if (call.at > now) break;
        expired.push(call.expire);
        call.expire = undefined;
        this.#unsettled--;
      }
      head++;
    }
    this.#head = head;
    if (this.#unsettled === 0) {
      this.#calls = [];
      this.#head = 0;
    } else {
      this.#arm();
    }
    for (const expire of expired) expire();
  }
}
