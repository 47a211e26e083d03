/**
 * The nats suite: ratesync's NATS JetStream KV engine (`limiter.tryAcquire`) against a raw KV
 * get + compare-and-set loop through the same connection, the ceiling (what a hand-written limiter
 * on KV does: read the entry, write it back on its revision, retry on a conflict; no clock, no
 * policy), at 1 and 64 calls in flight, on one hot key and on 10,000 keys, every call admitted.
 * The engine can pass it: it batches a process's calls on one key, and skips the read when the
 * entry is its own last write (its compare-and-set proves the entry unchanged).
 *
 * No peer: no rate limiter for Node.js has a NATS engine. Both contenders share one connection
 * and one bucket (history 1, created by the engine's `auto_create`); every round writes keys of
 * its own (a new limiter id for ratesync, a new key prefix for the loop), and the bucket is
 * deleted when the suite closes.
 */
import { type KV, Kvm } from "@nats-io/kv";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { createRateSync } from "@ratesync/core";
import { createNatsEngine, isConflict } from "@ratesync/nats";
import type { BenchAlgorithm } from "../cli.js";
import {
  type BenchCase,
  type Contender,
  expectCount,
  type Round,
  type Suite,
  SuiteUnavailableError,
  VerificationError,
} from "../harness.js";
import { DecisionOutcomes, expectPrimed, ratesyncPolicy } from "./policies.js";
import { forEachKey } from "./shared.js";

/** Options of {@link createNatsSuite}. */
export interface NatsSuiteOptions {
  /** The NATS server (with JetStream). @default "nats://127.0.0.1:4222" */
  readonly url?: string | undefined;
  /** The algorithm of the ratesync limiters. @default "token_bucket" */
  readonly algorithm?: BenchAlgorithm | undefined;
  /** Distinct keys in the many-keys cases. @default 10_000 */
  readonly distinctKeys?: number | undefined;
  /** Calls in flight, one case per value. @default [1, 64] */
  readonly inFlight?: readonly number[] | undefined;
}

/** The ceiling's name, as the targets refer to it. */
const CEILING = "raw KV get + CAS";

/** Calls in flight while priming keys (untimed). */
const PRIME_IN_FLIGHT = 256;

/** Conflicts the raw loop retries one call through before it gives up (a hot key at 64 in flight conflicts a lot). */
const CEILING_MAX_CONFLICTS = 10_000;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The suite's connection and bucket, once `open()` made them. */
interface Connected {
  readonly connection: NatsConnection;
  readonly kv: KV;
  readonly bucket: string;
}

interface Context {
  readonly connected: () => Connected;
  /** A number no other round of this run uses. */
  readonly nextRound: () => number;
}

/**
 * ratesync: per round a new registry whose store is a NATS engine on the suite's connection (the
 * engine never closes a connection it was given), one limiter with an id of the round's own, and
 * `limiter.tryAcquire({ key })` per call. A degraded decision fails the round.
 */
function ratesync(context: Context, algorithm: BenchAlgorithm, keys: readonly string[]): Contender {
  const count = keys.length;
  return {
    name: "ratesync",
    role: "ours",
    async start(): Promise<Round> {
      const { connection, bucket } = context.connected();
      const rs = createRateSync({ autoload: false });
      rs.configureStore("nats", { engine: createNatsEngine({ connection, bucket }) });
      const id = `bench-${context.nextRound()}`;
      rs.configureLimiter(id, { store: "nats", ...ratesyncPolicy(algorithm, "admitted") });
      const limiter = rs.getLimiter(id);
      await rs.initializeAllLimiters();
      const outcomes = new DecisionOutcomes();
      if (count > 1) {
        await forEachKey(keys, PRIME_IN_FLIGHT, async (key) => {
          expectPrimed("ratesync", key, await limiter.tryAcquire({ key }));
        });
      }
      return {
        async call(index) {
          outcomes.count(await limiter.tryAcquire({ key: keys[index % count] as string }));
        },
        verify(calls) {
          outcomes.verify(calls, "admitted", "ratesync");
        },
        dispose: () => rs.close(),
      };
    },
  };
}

/**
 * The ceiling: per call, `kv.get(key)`, then `kv.update(key, count + 1, revision)` (or
 * `kv.create` for a new key), again from the read on a conflict. A counter, not a limiter: it is
 * checked by its counts, the busiest key's last value being the number of calls it received.
 */
function ceiling(context: Context, keys: readonly string[]): Contender {
  const count = keys.length;
  return {
    name: CEILING,
    role: "ceiling",
    async start(): Promise<Round> {
      const { kv } = context.connected();
      const round = context.nextRound();
      // Built before the loop: the ceiling pays for nothing but its round trips.
      const names = keys.map((key) => `raw-${round}.${key}`);
      let answered = 0;
      const increment = async (name: string): Promise<number> => {
        for (let attempt = 0; attempt < CEILING_MAX_CONFLICTS; attempt++) {
          const entry = await kv.get(name);
          const next = entry === null || entry.operation !== "PUT" ? 1 : Number(decoder.decode(entry.value)) + 1;
          const data = encoder.encode(String(next));
          try {
            if (entry === null) await kv.create(name, data);
            else await kv.update(name, data, entry.revision);
            return next;
          } catch (error) {
            if (!isConflict(error)) throw error;
          }
        }
        throw new VerificationError(`${CEILING}: ${CEILING_MAX_CONFLICTS} conflicts in a row on "${name}".`);
      };
      if (count > 1) await forEachKey(names, PRIME_IN_FLIGHT, async (name) => void (await increment(name)));
      let highest = 0;
      return {
        async call(index) {
          const value = await increment(names[index % count] as string);
          answered++;
          if (value > highest) highest = value;
        },
        verify(calls) {
          expectCount(`${CEILING}: answered calls`, answered, calls);
          expectCount(`${CEILING}: count of the busiest key`, highest, Math.ceil(calls / count) + (count > 1 ? 1 : 0));
        },
      };
    },
  };
}

/** Connects; rejects with a {@link SuiteUnavailableError} saying what to do when NATS is not there. */
async function open(url: string): Promise<NatsConnection> {
  try {
    return await connect({ servers: url, timeout: 2000 });
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new SuiteUnavailableError(
      `NATS is not reachable at ${url} (${reason}). Start one with JetStream (nats-server -js) or point --nats-url / BENCH_NATS_URL at one.`,
    );
  }
}

/**
 * The nats suite: {hot key, 10,000 keys} x {1, 64 in flight}, every call admitted, ratesync
 * against the raw KV loop. Target: at least 0.8x the raw loop everywhere.
 *
 * @example
 * ```ts
 * const suite = createNatsSuite({ url: "nats://127.0.0.1:4222" });
 * await suite.open?.();
 * try {
 *   for (const benchCase of suite.cases) console.log(await runCase(benchCase, settings));
 * } finally {
 *   await suite.close?.();
 * }
 * ```
 */
export function createNatsSuite(options: NatsSuiteOptions = {}): Suite {
  const url = options.url ?? "nats://127.0.0.1:4222";
  const algorithm = options.algorithm ?? "token_bucket";
  const distinctKeys = options.distinctKeys ?? 10_000;
  const inFlights = options.inFlight ?? [1, 64];
  const bucket = `ratesync-bench-${process.pid}-${Date.now().toString(36)}`;
  let connected: Connected | undefined;
  let rounds = 0;
  const context: Context = {
    connected() {
      if (connected === undefined) throw new Error("The nats suite was not opened: call open() before its cases.");
      return connected;
    },
    nextRound: () => ++rounds,
  };

  const hot = ["user-42"];
  const many = Array.from({ length: distinctKeys }, (_, i) => `user-${i}`);
  const keyCount = distinctKeys.toLocaleString("en-US");
  const shapes = [
    { label: "hot key", keys: hot, where: "One key" },
    {
      label: `${keyCount} keys`,
      keys: many,
      where: `Calls cycle through ${keyCount} distinct keys, each created before the timed loop`,
    },
  ];
  const cases: BenchCase[] = [];
  for (const shape of shapes) {
    for (const inFlight of inFlights) {
      cases.push({
        suite: "nats",
        name: `${shape.label} admitted, ${inFlight} in flight`,
        description: `${shape.where}, every call admitted (ratesync ${algorithm} with a budget that no run exhausts). ${inFlight} calls in flight. Ceiling: KV get + update on the revision (create for a new key), retried on a conflict, through the same connection.`,
        inFlight,
        latency: true,
        contenders: [ratesync(context, algorithm, shape.keys), ceiling(context, shape.keys)],
        targets: [{ against: CEILING, minRatio: 0.8 }],
      });
    }
  }

  return {
    name: "nats",
    cases,
    defaultRounds: { full: 3, quick: 2 },
    // (@nats-io/* packages export no package.json, so their versions are not read here.)
    packages: ["@ratesync/core", "@ratesync/nats"],
    async open() {
      const connection = await open(url);
      try {
        // The engine creates the bucket as it would for a user (history 1, entries that expire).
        // Entries live 30 days: the "admit everything" token bucket (1/s, burst 10^9) moves its
        // state one second into the future per admission, and the engine refuses to write a
        // state that would outlive its entry.
        const engine = createNatsEngine({ connection, bucket, ttlSeconds: 30 * 86_400 });
        await engine.init();
        await engine.close();
        const kv = await new Kvm(connection).open(bucket, { allow_direct: true });
        connected = { connection, kv, bucket };
      } catch (error) {
        await connection.close();
        throw error;
      }
      return { "nats-server": connection.info?.version ?? "unknown" };
    },
    async close() {
      const current = connected;
      connected = undefined;
      if (current === undefined) return;
      await current.kv.destroy().catch(() => {});
      await current.connection.close().catch(() => {});
    },
  };
}
