/**
 * The redis suite: ratesync's Redis engine (`limiter.tryAcquire`) against rate-limiter-flexible's
 * `RateLimiterRedis.consume`, and a raw `EVALSHA` of a trivial script as the ceiling (one round
 * trip per decision and nothing else), at 1, 64 and 256 calls in flight, on one hot key and on
 * 10,000 keys, on the admitted and the rejected path.
 *
 * Every contender has its own ioredis client, all three built with the same settings (the ones
 * rate-limiter-flexible's documentation asks for: no offline queue), so no contender inherits
 * another's connection state. Every round writes under a key prefix of its own and deletes its
 * keys afterwards (SCAN + UNLINK, untimed), so no round finds state another left and Redis memory
 * does not grow over a run.
 */
import { createRateSync } from "@ratesync/core";
import { createRedisEngine } from "@ratesync/redis";
import { Redis } from "ioredis";
import { RateLimiterRedis, RateLimiterRes } from "rate-limiter-flexible";
import type { BenchAlgorithm } from "../cli.js";
import {
  type BenchCase,
  type Contender,
  expectCount,
  type Round,
  type Suite,
  SuiteUnavailableError,
  type Target,
  VerificationError,
} from "../harness.js";
import {
  DecisionOutcomes,
  type Expectation,
  expectPrimed,
  Outcomes,
  peerPolicy,
  RLF,
  ratesyncPolicy,
} from "./policies.js";
import { displayUrl, forEachKey, primed } from "./shared.js";

/** Options of {@link createRedisSuite}. */
export interface RedisSuiteOptions {
  /** The Redis server. @default "redis://127.0.0.1:6379" */
  readonly url?: string | undefined;
  /** The algorithm of the ratesync limiters. @default "token_bucket" */
  readonly algorithm?: BenchAlgorithm | undefined;
  /** Distinct keys in the many-keys cases. @default 10_000 */
  readonly distinctKeys?: number | undefined;
  /** Calls in flight, one case per value and path. @default [1, 64, 256] */
  readonly inFlight?: readonly number[] | undefined;
}

/** The ceiling's name, as the targets refer to it. */
const CEILING = "raw EVALSHA";

/**
 * The settings of every client of the suite, the same for the three contenders: those of
 * rate-limiter-flexible's documentation for ioredis (no offline queue: a call fails at once
 * while disconnected instead of waiting), and no retry of a failed call. `lazyConnect` only lets
 * the suite connect when, and if, one of its cases runs.
 */
export const CLIENT_OPTIONS = {
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  lazyConnect: true,
  connectTimeout: 2000,
} as const;

/**
 * The ceiling's script: what any limiter must do at the least, one atomic write of one key with
 * an expiry in one round trip. No clock, no policy, no parsing of the reply beyond a number.
 */
const CEILING_LUA = `local n = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return n`;

/** The ceiling's key expiry: a day, like the peer's window. */
const CEILING_TTL_MS = String(86_400_000);

/** Calls in flight while priming keys (untimed): enough to fill the pipe, so 10,000 keys take a moment. */
const PRIME_IN_FLIGHT = 256;

/** The work of a case, the same for every contender. */
interface Load {
  /** What every timed call must get (the ceiling answers a count either way). */
  readonly expect: Expectation;
  /** Distinct keys; timed call `index` uses `keys[index % keys.length]`. One key: the hot key. */
  readonly keys: readonly string[];
  /**
   * Whether each key is called once before the timed loop (untimed, and it must be admitted): to
   * spend the only admission of the rejected cases, or to create every key of the many-keys case
   * so that the timed calls measure updates of live keys, not first inserts.
   */
  readonly prime: boolean;
}

/** The suite's connections, once `open()` made them. */
interface Connections {
  /** ratesync's client, handed to `createRedisEngine({ client })`. */
  readonly ours: Redis;
  /** rate-limiter-flexible's `storeClient`. */
  readonly peer: Redis;
  /** The ceiling's client. */
  readonly ceiling: Redis;
  /** SHA-1 of {@link CEILING_LUA}, loaded on the server. */
  readonly ceilingSha: string;
}

/** Where the suite is connected to, and the prefix of each round's keys. */
interface Context {
  readonly connections: () => Connections;
  /** A key prefix no other round (of this run or another) uses. */
  readonly nextPrefix: () => string;
}

/** Connects one client; rejects with a {@link SuiteUnavailableError} saying what to do when Redis is not there. */
async function connect(url: string): Promise<Redis> {
  const client = new Redis(url, CLIENT_OPTIONS);
  let lastError: Error | undefined;
  // A failing call is reported by its promise; an unhandled "error" event would be printed by ioredis.
  client.on("error", (error: Error) => {
    lastError = error;
  });
  try {
    await client.connect();
    return client;
  } catch (error) {
    client.disconnect();
    const reason = (lastError ?? (error instanceof Error ? error : new Error(String(error)))).message;
    throw new SuiteUnavailableError(
      `Redis is not reachable at ${displayUrl(url)} (${reason}). Start one (redis-server, or ` +
        "docker run -p 6379:6379 redis:7) or point --redis-url / BENCH_REDIS_URL at one.",
    );
  }
}

/** Deletes every key whose name starts with `prefix` (which holds no glob character). */
async function unlinkPrefix(client: Redis, prefix: string): Promise<void> {
  let cursor = "0";
  do {
    const [next, keys] = await client.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
    cursor = next;
    if (keys.length > 0) await client.unlink(...keys);
  } while (cursor !== "0");
}

/**
 * ratesync: per round a new registry with a new Redis engine on the suite's client (the engine
 * never closes a client it was given) under the round's key prefix, one limiter, and
 * `limiter.tryAcquire({ key })` per call. A refusal is a Decision with `allowed: false`; a
 * degraded decision (a store failure answered by the fail-open policy) fails the round.
 */
function ratesync(context: Context, algorithm: BenchAlgorithm, load: Load): Contender {
  const { expect, keys } = load;
  const count = keys.length;
  return {
    name: "ratesync",
    role: "ours",
    async start(): Promise<Round> {
      const client = context.connections().ours;
      const prefix = context.nextPrefix();
      const rs = createRateSync({ autoload: false });
      rs.configureStore("redis", { engine: createRedisEngine({ client, keyPrefix: prefix }) });
      rs.configureLimiter("bench", { store: "redis", ...ratesyncPolicy(algorithm, expect) });
      const limiter = rs.getLimiter("bench");
      const dispose = async () => {
        await rs.close();
        await unlinkPrefix(client, prefix);
      };
      if (load.prime) {
        await primed(
          () =>
            forEachKey(keys, PRIME_IN_FLIGHT, async (key) => {
              expectPrimed("ratesync", key, await limiter.tryAcquire({ key }));
            }),
          dispose,
        );
      }
      const outcomes = new DecisionOutcomes();
      return {
        async call(index) {
          outcomes.count(await limiter.tryAcquire({ key: keys[index % count] as string }));
        },
        verify(calls) {
          outcomes.verify(calls, expect, "ratesync");
        },
        dispose,
      };
    },
  };
}

/**
 * rate-limiter-flexible: per round a new `RateLimiterRedis` on the suite's client under the
 * round's key prefix, and `consume(key)` per call. A refusal rejects with a `RateLimiterRes`,
 * caught and counted; any other rejection (a Redis error) is a real error and ends the run.
 */
function peer(context: Context, load: Load): Contender {
  const { expect, keys } = load;
  const count = keys.length;
  return {
    name: RLF,
    role: "peer",
    async start(): Promise<Round> {
      const client = context.connections().peer;
      const prefix = context.nextPrefix();
      const limiter = new RateLimiterRedis({
        storeClient: client,
        useRedisPackage: false,
        // Its keys are `${keyPrefix}:${key}`: under the round's prefix like everyone's.
        keyPrefix: `${prefix}rlflx`,
        ...peerPolicy(expect),
      });
      const dispose = () => unlinkPrefix(client, prefix);
      if (load.prime) {
        await primed(
          () =>
            forEachKey(keys, PRIME_IN_FLIGHT, async (key) => {
              try {
                await limiter.consume(key);
              } catch (error) {
                if (!(error instanceof RateLimiterRes)) throw error;
                throw new VerificationError(`${RLF}: the priming call for "${key}" was refused.`);
              }
            }),
          dispose,
        );
      }
      const outcomes = new Outcomes();
      return {
        call: (index) => outcomes.countConsume(limiter.consume(keys[index % count] as string)),
        verify(calls) {
          outcomes.verify(calls, expect, RLF);
        },
        dispose,
      };
    },
  };
}

/**
 * The ceiling: `EVALSHA` of {@link CEILING_LUA} on the round's key, through a client like the
 * others. Not a limiter (it admits and refuses nothing), so it is checked differently: every reply
 * must be a count, and the largest must be the number of calls its busiest key received, which
 * proves every call reached Redis and wrote.
 */
function ceiling(context: Context, load: Load): Contender {
  const count = load.keys.length;
  return {
    name: CEILING,
    role: "ceiling",
    async start(): Promise<Round> {
      const { ceiling: client, ceilingSha } = context.connections();
      const prefix = context.nextPrefix();
      // Built before the loop: the ceiling pays for nothing but the round trip.
      const keys = load.keys.map((key) => `${prefix}${key}`);
      const dispose = () => unlinkPrefix(client, prefix);
      if (load.prime) {
        await primed(
          () =>
            forEachKey(keys, PRIME_IN_FLIGHT, async (key) => {
              await client.evalsha(ceilingSha, 1, key, CEILING_TTL_MS);
            }),
          dispose,
        );
      }
      let answered = 0;
      let notCounts = 0;
      let highest = 0;
      return {
        async call(index) {
          const reply = await client.evalsha(ceilingSha, 1, keys[index % count] as string, CEILING_TTL_MS);
          answered++;
          if (typeof reply !== "number") notCounts++;
          else if (reply > highest) highest = reply;
        },
        verify(calls) {
          expectCount(`${CEILING}: answered calls`, answered, calls);
          expectCount(`${CEILING}: replies that are not a count`, notCounts, 0);
          // Calls cycle through the keys from the first, so the first key gets the most of them.
          expectCount(
            `${CEILING}: writes to the busiest key`,
            highest,
            Math.ceil(calls / count) + (load.prime ? 1 : 0),
          );
        },
        dispose,
      };
    },
  };
}

/**
 * The redis suite: {hot key, 10,000 keys} x {admitted, rejected} x {1, 64, 256 in flight}, each
 * with ratesync, rate-limiter-flexible and the raw EVALSHA ceiling. Targets: ratesync at least as
 * fast as rate-limiter-flexible everywhere, and at least 0.8x the ceiling at 64 in flight.
 *
 * Nothing connects until `open()`; when Redis cannot be reached it rejects with a
 * `SuiteUnavailableError` and the run skips the suite.
 *
 * @example
 * ```ts
 * const suite = createRedisSuite({ url: "redis://127.0.0.1:6379" });
 * await suite.open?.();
 * try {
 *   for (const benchCase of suite.cases) console.log(await runCase(benchCase, settings));
 * } finally {
 *   await suite.close?.();
 * }
 * ```
 */
export function createRedisSuite(options: RedisSuiteOptions = {}): Suite {
  const url = options.url ?? "redis://127.0.0.1:6379";
  const algorithm = options.algorithm ?? "token_bucket";
  const distinctKeys = options.distinctKeys ?? 10_000;
  const inFlights = options.inFlight ?? [1, 64, 256];

  // The pid and the start time tell this run's keys from any other's on the same server.
  const runPrefix = `ratesync-bench:${process.pid}.${Date.now().toString(36)}:`;
  let rounds = 0;
  let connections: Connections | undefined;
  let clients: Redis[] = [];
  const context: Context = {
    connections() {
      if (connections === undefined) throw new Error("The redis suite was not opened: call open() before its cases.");
      return connections;
    },
    nextPrefix: () => `${runPrefix}${++rounds}:`,
  };

  const hot: Load["keys"] = ["user:42"];
  // The same strings for every contender, made once: no key is built inside the timed loop.
  const many: Load["keys"] = Array.from({ length: distinctKeys }, (_, i) => `user:${i}`);
  const keyCount = distinctKeys.toLocaleString("en-US");
  const shapes = [
    { label: "hot key", keys: hot, where: "One key" },
    {
      label: `${keyCount} keys`,
      keys: many,
      where: `Calls cycle through ${keyCount} distinct keys (the same strings for all)`,
    },
  ];

  const cases: BenchCase[] = [];
  for (const shape of shapes) {
    for (const expect of ["admitted", "refused"] as const) {
      const load: Load = { expect, keys: shape.keys, prime: expect === "refused" || shape.keys.length > 1 };
      const work =
        expect === "admitted"
          ? `every call admitted (ratesync ${algorithm} with a budget that no run exhausts; ${RLF} 1,000,000,000 points per day)${load.prime ? "; every key is created before the timed loop" : ""}`
          : `every key's only admission of the day is spent before the timed loop, so every timed call is refused (ratesync returns allowed: false; ${RLF} rejects with a RateLimiterRes)`;
      for (const inFlight of inFlights) {
        const targets: Target[] = [{ against: RLF, minRatio: 1.0 }];
        if (inFlight === 64) targets.push({ against: CEILING, minRatio: 0.8 });
        cases.push({
          suite: "redis",
          name: `${shape.label} ${expect === "admitted" ? "admitted" : "rejected"}, ${inFlight} in flight`,
          description: `${shape.where}, ${work}. ${inFlight} calls in flight. Ceiling: EVALSHA of INCR + PEXPIRE on the same key.`,
          inFlight,
          latency: true,
          contenders: [ratesync(context, algorithm, load), peer(context, load), ceiling(context, load)],
          targets,
        });
      }
    }
  }

  return {
    name: "redis",
    cases,
    // 12 cases x 3 contenders: 3 rounds of 1 s keep a full run near two minutes.
    defaultRounds: { full: 3, quick: 2 },
    packages: ["@ratesync/core", "@ratesync/redis", RLF, "ioredis"],
    async open() {
      const settled = await Promise.allSettled([connect(url), connect(url), connect(url)]);
      clients = settled.flatMap((result) => (result.status === "fulfilled" ? [result.value] : []));
      const failed = settled.find((result) => result.status === "rejected");
      if (failed !== undefined) throw failed.reason;
      const [ours, peerClient, ceilingClient] = clients as [Redis, Redis, Redis];
      const ceilingSha = String(await ceilingClient.script("LOAD", CEILING_LUA));
      connections = { ours, peer: peerClient, ceiling: ceilingClient, ceilingSha };
      const info = await ours.info("server");
      return { "redis-server": /redis_version:(\S+)/.exec(info)?.[1] ?? "unknown" };
    },
    async close() {
      const sweeper = clients[0];
      // A round that failed half-way may have left keys behind; none of this run's may stay.
      if (sweeper?.status === "ready") await unlinkPrefix(sweeper, runPrefix).catch(() => {});
      await Promise.all(clients.map((client) => client.quit().catch(() => client.disconnect())));
      clients = [];
      connections = undefined;
    },
  };
}
