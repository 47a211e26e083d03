/**
 * The memory suite: ratesync's memory engine (`limiter.tryAcquire`) against
 * rate-limiter-flexible's `RateLimiterMemory.consume`, in-process, one call in flight.
 *
 * Both sides get policies that give the same answers for the whole run (everything admitted, or
 * everything after the first call refused), the same key strings, a fresh limiter every round,
 * and the same amount of work around the call: await it, look at the outcome, count it.
 */
import { createRateSync } from "@ratesync/core";
import { RateLimiterMemory } from "rate-limiter-flexible";
import type { BenchAlgorithm } from "../cli.js";
import type { BenchCase, Contender, Round, Suite } from "../harness.js";
import {
  ADMIT_ALL,
  DecisionOutcomes,
  type Expectation,
  expectPrimed,
  Outcomes,
  peerPolicy,
  RLF,
  ratesyncPolicy,
} from "./policies.js";

/** Options of {@link createMemorySuite}. */
export interface MemorySuiteOptions {
  /** The algorithm of the ratesync limiters. @default "token_bucket" */
  readonly algorithm?: BenchAlgorithm | undefined;
  /** Distinct keys in the many-keys case. @default 100_000 */
  readonly distinctKeys?: number | undefined;
}

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
      for (const key of prime) expectPrimed("ratesync", key, await limiter.tryAcquire({ key }));
      const outcomes = new DecisionOutcomes();
      return {
        async call(index) {
          outcomes.count(await limiter.tryAcquire({ key: keyOf(index) }));
        },
        verify(calls) {
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
    name: RLF,
    role: "peer",
    async start(): Promise<Round> {
      const limiter = new RateLimiterMemory(peerPolicy(expect));
      // Rejects (and so ends the run) if a priming call is refused.
      for (const key of prime) await limiter.consume(key);
      const outcomes = new Outcomes();
      return {
        call: (index) => outcomes.countConsume(limiter.consume(keyOf(index))),
        verify(calls) {
          outcomes.verify(calls, expect, RLF);
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
      targets: [{ against: RLF, minRatio: 1.0 }],
    },
    {
      suite: "memory",
      name: "hot key rejected",
      description:
        "One key over its limit: one admission per day, spent before the timed loop, so every timed call is refused (ratesync returns allowed: false; rate-limiter-flexible rejects with a RateLimiterRes).",
      inFlight: 1,
      latency: false,
      contenders: [ratesync(algorithm, hotRefused), peer(hotRefused)],
      targets: [{ against: RLF, minRatio: 2.0 }],
    },
    {
      suite: "memory",
      name: `${distinctKeys.toLocaleString("en-US")} keys`,
      description: `Calls cycle through ${distinctKeys.toLocaleString("en-US")} distinct keys (the same strings for both), every call admitted. Each round first creates every key (untimed), so the timed calls measure lookups and updates among ${distinctKeys.toLocaleString("en-US")} live keys, not first-insert cost.`,
      inFlight: 1,
      latency: false,
      contenders: [ratesync(algorithm, manyKeys), peer(manyKeys)],
      targets: [{ against: RLF, minRatio: 1.0 }],
    },
  ];
  return {
    name: "memory",
    cases,
    defaultRounds: { full: 5, quick: 3 },
    packages: ["@ratesync/core", RLF],
  };
}
