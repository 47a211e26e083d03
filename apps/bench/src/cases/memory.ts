/**
 * The memory suite: ratesync's memory engine (`limiter.tryAcquire`) against
 * rate-limiter-flexible's `RateLimiterMemory.consume`, in-process, one call in flight.
 *
 * Both sides get policies that give the same answers for the whole run (everything admitted, or
 * everything after the first call refused), the same key strings, a fresh limiter every round,
 * and the same amount of work around the call: await it, look at the outcome, count it.
 */
import { createRateSync, type LimiterOptions } from "@ratesync/core";
import { RateLimiterMemory, RateLimiterRes } from "rate-limiter-flexible";
import type { BenchAlgorithm } from "../cli.js";
import { type BenchCase, type Contender, expectCount, type Round, type Suite, VerificationError } from "../harness.js";

/** Options of {@link createMemorySuite}. */
export interface MemorySuiteOptions {
  /** The algorithm of the ratesync limiters. @default "token_bucket" */
  readonly algorithm?: BenchAlgorithm | undefined;
  /** Distinct keys in the many-keys case. @default 100_000 */
  readonly distinctKeys?: number | undefined;
}

/** What every call of a round must get. */
type Expectation = "admitted" | "refused";

/** The work of a case, the same for both contenders. */
interface Load {
  /** What every timed call must get. */
  readonly expect: Expectation;
  /** The key of timed call number `index`. */
  readonly keyOf: (index: number) => string;
  /**
   * Keys called once before the timed loop (each must be admitted): to spend the only admission
   * of the refused case, or to create every key so the many-keys case measures steady state.
   */
  readonly prime: readonly string[];
  /** Every key a round touches, for the peer's cleanup. */
  readonly keys: readonly string[];
}

/** The peer's name, as the targets refer to it. */
const PEER = "rate-limiter-flexible";

/**
 * "Admit everything": more calls than a round can make on one key, in a window longer than a run.
 * A budget that is never exhausted but is really spent (state kept and updated per call), like
 * rate-limiter-flexible's counter with the same numbers. A near-infinite rate would not do: the
 * bucket would be full again before the next call, and ratesync would drop and re-create the key
 * every time, which is not the same work.
 */
const ADMIT_ALL = 1_000_000_000;

/** One day, in seconds: the window of "one call, then refuse", far longer than a round. */
const DAY_SECONDS = 86_400;

/**
 * A fixed window long enough that no run crosses a window boundary (windows are aligned on the
 * epoch, so a one-day window would reset at midnight UTC, mid-round, for a nightly run).
 * rate-limiter-flexible cannot be given the same: its expiry is a `setTimeout`, which Node.js
 * fires after 1 ms when asked for more than 24.8 days; its windows start at the first call anyway.
 */
const FOREVER_SECONDS = 1e10;

function ratesyncPolicy(algorithm: BenchAlgorithm, expect: Expectation): Omit<LimiterOptions, "store"> {
  if (algorithm === "fixed_window") {
    return { algorithm, limit: expect === "admitted" ? ADMIT_ALL : 1, windowSeconds: FOREVER_SECONDS };
  }
  return expect === "admitted"
    ? // One unit of cost every second, ADMIT_ALL of them at once: tat moves ahead one second per call.
      { algorithm, ratePerSecond: 1, burst: ADMIT_ALL }
    : // One admission per day: after the priming call the bucket stays empty for the whole run.
      { algorithm, ratePerSecond: 1 / DAY_SECONDS, burst: 1 };
}

function peerLimiter(expect: Expectation): RateLimiterMemory {
  return new RateLimiterMemory(
    expect === "admitted" ? { points: ADMIT_ALL, duration: DAY_SECONDS } : { points: 1, duration: DAY_SECONDS },
  );
}

/** Counts of what a round's calls got, checked by `verify`. */
class Outcomes {
  admitted = 0;
  refused = 0;

  verify(calls: number, expect: Expectation, contender: string): void {
    expectCount(`${contender}: answered calls`, this.admitted + this.refused, calls);
    expectCount(`${contender}: ${expect} calls`, expect === "admitted" ? this.admitted : this.refused, calls);
  }
}

/**
 * ratesync: a new registry (so a new memory engine, empty) per round, one limiter on it, and
 * `limiter.tryAcquire({ key })` per call. A refusal is a Decision with `allowed: false`.
 */
function ratesync(algorithm: BenchAlgorithm, load: Load): Contender {
  const { expect, keyOf, prime } = load;
  return {
    name: "ratesync",
    role: "ours",
    async start(): Promise<Round> {
      const rs = createRateSync({ autoload: false });
      rs.configureStore("mem", { engine: "memory" });
      rs.configureLimiter("bench", { store: "mem", ...ratesyncPolicy(algorithm, expect) });
      const limiter = rs.getLimiter("bench");
      for (const key of prime) {
        const first = await limiter.tryAcquire({ key });
        if (!first.allowed || first.degraded) {
          throw new VerificationError(`ratesync: the priming call for "${key}" was not admitted by the store.`);
        }
      }
      const outcomes = new Outcomes();
      let degraded = 0;
      return {
        async call(index) {
          const decision = await limiter.tryAcquire({ key: keyOf(index) });
          // A degraded decision is an admission the store never made: it must not count as work done.
          if (decision.degraded) degraded++;
          if (decision.allowed) outcomes.admitted++;
          else outcomes.refused++;
        },
        verify(calls) {
          expectCount("ratesync: degraded decisions (store failures)", degraded, 0);
          outcomes.verify(calls, expect, "ratesync");
        },
        dispose: () => rs.close(),
      };
    },
  };
}

/**
 * rate-limiter-flexible: a new `RateLimiterMemory` per round and `consume(key)` per call. A
 * refusal rejects the promise with a `RateLimiterRes`, which is caught and counted; anything
 * else it rejects with is a real error and ends the run.
 */
function peer(load: Load): Contender {
  const { expect, keyOf, prime } = load;
  return {
    name: PEER,
    role: "peer",
    async start(): Promise<Round> {
      const limiter = peerLimiter(expect);
      // Rejects (and so ends the run) if a priming call is refused.
      for (const key of prime) await limiter.consume(key);
      const outcomes = new Outcomes();
      return {
        async call(index) {
          try {
            await limiter.consume(keyOf(index));
            outcomes.admitted++;
          } catch (error) {
            if (!(error instanceof RateLimiterRes)) throw error;
            outcomes.refused++;
          }
        },
        verify(calls) {
          outcomes.verify(calls, expect, PEER);
        },
        async dispose() {
          // Every key holds an (unref'd) expiry timer for a day; delete() clears it, so timers and
          // the maps they keep alive do not pile up across rounds and slow later ones.
          await Promise.all(load.keys.map((key) => limiter.delete(key)));
        },
      };
    },
  };
}

/**
 * The memory suite's three cases: one hot key admitted, one hot key refused (over its limit),
 * and calls spread over 100,000 distinct keys, all admitted.
 *
 * @example
 * ```ts
 * const suite = createMemorySuite({ algorithm: "token_bucket" });
 * for (const benchCase of suite.cases) console.log(await runCase(benchCase, settings));
 * ```
 */
export function createMemorySuite(options: MemorySuiteOptions = {}): Suite {
  const algorithm = options.algorithm ?? "token_bucket";
  const distinctKeys = options.distinctKeys ?? 100_000;
  const hotKey = "user:42";
  const hot = () => hotKey;
  // The same strings for both sides, made once: no key is built inside the timed loop.
  const keys = Array.from({ length: distinctKeys }, (_, i) => `user:${i}`);
  const hotAdmitted: Load = { expect: "admitted", keyOf: hot, prime: [], keys: [hotKey] };
  const hotRefused: Load = { expect: "refused", keyOf: hot, prime: [hotKey], keys: [hotKey] };
  const manyKeys: Load = {
    expect: "admitted",
    keyOf: (index) => keys[index % distinctKeys] as string,
    prime: keys,
    keys,
  };

  const cases: BenchCase[] = [
    {
      suite: "memory",
      name: "hot key admitted",
      description: `One key, every call admitted (ratesync ${algorithm} with a budget of ${ADMIT_ALL.toLocaleString("en-US")}; rate-limiter-flexible ${ADMIT_ALL.toLocaleString("en-US")} points per day).`,
      inFlight: 1,
      latency: false,
      contenders: [ratesync(algorithm, hotAdmitted), peer(hotAdmitted)],
      target: { peer: PEER, minRatio: 1.0 },
    },
    {
      suite: "memory",
      name: "hot key rejected",
      description:
        "One key over its limit: one admission per day, spent before the timed loop, so every timed call is refused (ratesync returns allowed: false; rate-limiter-flexible rejects with a RateLimiterRes).",
      inFlight: 1,
      latency: false,
      contenders: [ratesync(algorithm, hotRefused), peer(hotRefused)],
      target: { peer: PEER, minRatio: 2.0 },
    },
    {
      suite: "memory",
      name: `${distinctKeys.toLocaleString("en-US")} keys`,
      description: `Calls cycle through ${distinctKeys.toLocaleString("en-US")} distinct keys (the same strings for both), every call admitted. Each round first creates every key (untimed), so the timed calls measure lookups and updates among ${distinctKeys.toLocaleString("en-US")} live keys, not first-insert cost.`,
      inFlight: 1,
      latency: false,
      contenders: [ratesync(algorithm, manyKeys), peer(manyKeys)],
      target: { peer: PEER, minRatio: 1.0 },
    },
  ];
  return { name: "memory", cases };
}
