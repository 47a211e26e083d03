import { RateSyncError } from "@ratesync/core";

interface PendingCall {
  readonly at: number;
  settled: boolean;
  readonly expire: () => void;
}

/**
 * The engine's own deadline for every call: one timer for all pending queries instead of one per
 * query. Every call has the same timeout, so calls expire in the order they started and a FIFO
 * queue with a single timer armed for the oldest pending call is enough.
 *
 * A caller whose query passes the deadline gets a `STORE_ERROR` at once, so a request never hangs on
 * a dead or frozen server. The query itself is not cancelled from here: postgres.js' `cancel()`
 * leaves a connection that was still connecting unusable (measured: the pool never recovered
 * after a restart). The server bounds it instead: `lock_timeout` for row waits, set per call, and
 * `statement_timeout` on the engine's own connections.
 */
export class QueryDeadlines {
  readonly #timeoutMs: number;
  readonly #describe: string;
  #calls: PendingCall[] = [];
  #head = 0;
  #unsettled = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = 0;

  constructor(timeoutMs: number, describe: string) {
    this.#timeoutMs = timeoutMs;
    this.#describe = describe;
  }

  /** The deadline of one call, in ms. */
  get timeoutMs(): number {
    return this.#timeoutMs;
  }

  /** Settles like `query`, or rejects with `STORE_ERROR` once the deadline passes. */
  bound<T>(query: PromiseLike<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const call: PendingCall = {
        at: performance.now() + this.#timeoutMs,
        settled: false,
        expire: () => reject(this.timeoutError()),
      };
      this.#calls.push(call);
      this.#unsettled++;
      this.#arm();
      query.then(
        (value) => {
          this.#settle(call);
          resolve(value);
        },
        (error: unknown) => {
          this.#settle(call);
          reject(error);
        },
      );
    });
  }

  /** The error of a call that passed its deadline. */
  timeoutError(): RateSyncError {
    return new RateSyncError("STORE_ERROR", `${this.#describe} did not answer within ${this.#timeoutMs} ms.`, {
      details: { timeoutMs: this.#timeoutMs },
    });
  }

  /** Expires every pending call now (used by close()). */
  clear(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    const calls = this.#calls;
    this.#calls = [];
    this.#head = 0;
    this.#unsettled = 0;
    for (const call of calls) {
      if (!call.settled) {
        call.settled = true;
        call.expire();
      }
    }
  }

  #settle(call: PendingCall): void {
    if (call.settled) return;
    call.settled = true;
    if (--this.#unsettled === 0) {
      // Nothing pending: no timer left behind, and the queue starts afresh.
      if (this.#timer !== undefined) clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#calls = [];
      this.#head = 0;
    }
  }

  #arm(): void {
    if (this.#timer !== undefined) return;
    // Skip calls already settled: the oldest unsettled one sets the timer.
    while (this.#head < this.#calls.length && (this.#calls[this.#head] as PendingCall).settled) this.#head++;
    const oldest = this.#calls[this.#head];
    if (oldest === undefined) return;
    this.#timerAt = oldest.at;
    this.#timer = setTimeout(() => this.#fire(), Math.max(0, this.#timerAt - performance.now()));
  }

  #fire(): void {
    this.#timer = undefined;
    const now = performance.now();
    while (this.#head < this.#calls.length) {
      const call = this.#calls[this.#head] as PendingCall;
      if (!call.settled && call.at > now) break;
      this.#head++;
      if (!call.settled) {
        call.settled = true;
        this.#unsettled--;
        call.expire();
      }
    }
    if (this.#head > 1024 && this.#head * 2 > this.#calls.length) {
      this.#calls = this.#calls.slice(this.#head);
      this.#head = 0;
    }
    if (this.#unsettled === 0) {
      this.#calls = [];
      this.#head = 0;
      return;
    }
    this.#arm();
  }
}
