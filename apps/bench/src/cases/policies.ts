/**
 * The policies every suite gives its contenders, so that ratesync and rate-limiter-flexible answer
 * the same way for a whole run (everything admitted, or everything after one call refused), and
 * the counting each round checks its answers with.
 */
import type { Decision, LimiterOptions } from "@ratesync/core";
import { RateLimiterRes } from "rate-limiter-flexible";
import type { BenchAlgorithm } from "../cli.js";
import { expectCount, VerificationError } from "../harness.js";

/** What every timed call of a round must get. */
export type Expectation = "admitted" | "refused";

/** rate-limiter-flexible's name, as the contenders and the targets refer to it. */
export const RLF = "rate-limiter-flexible";

/**
 * "Admit everything": more calls than a round can make on one key, in a window longer than a run.
 * A budget that is never exhausted but is really spent (state kept and updated per call), like
 * rate-limiter-flexible's counter with the same numbers. A near-infinite rate would not do: the
 * bucket would be full again before the next call, and ratesync would drop and re-create the key
 * every time, which is not the same work.
 */
export const ADMIT_ALL = 1_000_000_000;

/** One day, in seconds: the window of "one call, then refuse", far longer than a round. */
export const DAY_SECONDS = 86_400;

/**
 * A fixed window long enough that no run crosses a window boundary (windows are aligned on the
 * epoch, so a one-day window would reset at midnight UTC, mid-round, for a nightly run).
 * rate-limiter-flexible cannot be given the same: its memory expiry is a `setTimeout`, which
 * Node.js fires after 1 ms when asked for more than 24.8 days; its windows start at the first
 * call anyway.
 */
const FOREVER_SECONDS = 1e10;

/** ratesync's limiter options (without the store) for a case that expects `expect`. */
export function ratesyncPolicy(algorithm: BenchAlgorithm, expect: Expectation): Omit<LimiterOptions, "store"> {
  if (algorithm === "fixed_window") {
    return { algorithm, limit: expect === "admitted" ? ADMIT_ALL : 1, windowSeconds: FOREVER_SECONDS };
  }
  return expect === "admitted"
    ? // One unit of cost every second, ADMIT_ALL of them at once: tat moves ahead one second per call.
      { algorithm, ratePerSecond: 1, burst: ADMIT_ALL }
    : // One admission per day: after the priming call the bucket stays empty for the whole run.
      { algorithm, ratePerSecond: 1 / DAY_SECONDS, burst: 1 };
}

/** rate-limiter-flexible's `points` and `duration` (seconds) for a case that expects `expect`. */
export function peerPolicy(expect: Expectation): { points: number; duration: number } {
  return { points: expect === "admitted" ? ADMIT_ALL : 1, duration: DAY_SECONDS };
}

/** Counts of what a round's calls got, checked after the round. */
export class Outcomes {
  admitted = 0;
  refused = 0;

  /**
   * Counts one rate-limiter-flexible `consume`: it resolves when admitted and rejects with a
   * `RateLimiterRes` when refused; any other rejection is a real error and ends the run.
   */
  async countConsume(consume: Promise<unknown>): Promise<void> {
    try {
      await consume;
      this.admitted++;
    } catch (error) {
      if (!(error instanceof RateLimiterRes)) throw error;
      this.refused++;
    }
  }

  /** Throws a `VerificationError` unless all `calls` were answered, each as `expect`. */
  verify(calls: number, expect: Expectation, contender: string): void {
    expectCount(`${contender}: answered calls`, this.admitted + this.refused, calls);
    expectCount(`${contender}: ${expect} calls`, expect === "admitted" ? this.admitted : this.refused, calls);
  }
}

/**
 * {@link Outcomes} of ratesync's decisions, which also counts the degraded ones: a degraded
 * decision is an admission the store never made (a store failure answered by the fail-open
 * policy), so it must not count as work done, and any fails the round.
 */
export class DecisionOutcomes extends Outcomes {
  degraded = 0;
  #firstFailure: string | undefined;

  /** Counts one decision. */
  count(decision: Decision): void {
    if (decision.degraded) {
      this.degraded++;
      this.#firstFailure ??= decision.reason;
    }
    if (decision.allowed) this.admitted++;
    else this.refused++;
  }

  /** {@link Outcomes.verify}, after a `VerificationError` for any degraded decision, saying why. */
  override verify(calls: number, expect: Expectation, contender: string): void {
    if (this.degraded > 0) {
      // Say why: a store blocked by someone else's slow work reads very differently from a bug.
      throw new VerificationError(
        `${contender}: ${this.degraded} degraded decisions (store failures admitted by the fail-open policy), expected none. The first: ${this.#firstFailure}`,
      );
    }
    super.verify(calls, expect, contender);
  }
}

/** Throws a `VerificationError` unless an untimed priming call was admitted by the store itself. */
export function expectPrimed(contender: string, key: string, decision: Decision): void {
  if (decision.allowed && !decision.degraded) return;
  const why = decision.degraded ? `degraded: ${decision.reason}` : "refused";
  throw new VerificationError(`${contender}: the priming call for "${key}" was ${why}.`);
}
