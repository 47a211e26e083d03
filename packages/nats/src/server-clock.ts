import type { Clock } from "@ratesync/core";

/** One round trip: the offsets (server time minus local time) it allows. */
interface Sample {
  /** Least offset the round trip allows: the server stamped no earlier than when we sent. */
  readonly low: number;
  /** Greatest offset it allows: the server stamped no later than when we heard back. */
  readonly high: number;
  /** Local time of the answer. */
  readonly at: number;
}

/** Samples kept. */
const MAX_SAMPLES = 32;

/** Default of `maxAgeMs`: old samples stop counting, so a drifting clock is followed. */
const DEFAULT_MAX_AGE_MS = 60_000;

/**
 * The NATS server's clock, as seen from this process. NATS KV runs no code on the server, so
 * decisions are taken here; to keep application clocks from changing them, the engine runs the
 * algorithms on an estimate of the server's time, never on its own.
 *
 * Each sample is a round trip: a write sent at local time `sent`, acknowledged at `received`, that
 * the server stamped between `serverLow` and `serverHigh` (the `created` time of the entry it
 * stored, which NATS reports in whole milliseconds). The server stamped it inside the round trip,
 * so the offset of its clock to ours lies in `[serverLow - received, serverHigh - sent]`. Every
 * recent sample must hold at once, so the estimate is the middle of the intersection of their
 * intervals: the more samples, the tighter it gets, whatever queueing delayed each one. Should the
 * intervals not meet (a clock stepped, a server changed), the tightest recent sample alone decides.
 * `now()` never goes backwards.
 */
export class ServerClock {
  readonly #local: Clock;
  readonly #maxAgeMs: number;
  readonly #samples: Sample[] = [];
  #offset: number | undefined;
  #uncertainty = Number.POSITIVE_INFINITY;
  #last = Number.NEGATIVE_INFINITY;

  constructor(local: Clock, maxAgeMs = DEFAULT_MAX_AGE_MS) {
    this.#local = local;
    this.#maxAgeMs = maxAgeMs;
  }

  /** Whether at least one sample was taken: `now()` needs one. */
  get synced(): boolean {
    return this.#offset !== undefined;
  }

  /** The current estimate of server time minus local time, ms (`undefined` before any sample). */
  get offsetMs(): number | undefined {
    return this.#offset;
  }

  /** How far the estimate can be off, ms: half the width of the offsets the samples allow. */
  get uncertaintyMs(): number {
    return this.#uncertainty;
  }

  /** The local clock, for timing round trips. */
  local(): number {
    return this.#local.now();
  }

  /**
   * Records one round trip: sent and answered at local times `sent` and `received`, stamped by the
   * server (epoch ms) at some time in `[serverLow, serverHigh]` in between. Impossible samples (a
   * negative round trip, a stamp that is not a number) are ignored.
   */
  sample(sent: number, received: number, serverLow: number, serverHigh = serverLow): void {
    if (!(received >= sent) || !Number.isFinite(serverLow) || !(serverHigh >= serverLow)) return;
    this.#samples.push({ low: serverLow - received, high: serverHigh - sent, at: received });
    if (this.#samples.length > MAX_SAMPLES) this.#samples.shift();
    const newest = this.#samples[this.#samples.length - 1] as Sample;
    const oldest = received - this.#maxAgeMs;
    let low = Number.NEGATIVE_INFINITY;
    let high = Number.POSITIVE_INFINITY;
    let tightest = newest;
    for (const candidate of this.#samples) {
      if (candidate.at < oldest && candidate !== newest) continue;
      if (candidate.low > low) low = candidate.low;
      if (candidate.high < high) high = candidate.high;
      if (candidate.high - candidate.low < tightest.high - tightest.low) tightest = candidate;
    }
    if (low > high) {
      low = tightest.low;
      high = tightest.high;
    }
    this.#offset = (low + high) / 2;
    this.#uncertainty = (high - low) / 2;
  }

  /**
   * The server's time now, epoch ms, never less than `floor` (a time the server is known to have
   * passed, such as the stamp of the entry just read) and never less than a previous answer.
   */
  now(floor = Number.NEGATIVE_INFINITY): number {
    if (this.#offset === undefined) throw new Error("ServerClock.now() before any sample");
    let now = this.#local.now() + this.#offset;
    if (now < floor) now = floor;
    if (now < this.#last) now = this.#last;
    this.#last = now;
    return now;
  }
}
