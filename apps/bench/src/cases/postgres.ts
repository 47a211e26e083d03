/**
 * The postgres suite: ratesync's PostgreSQL engine (`limiter.tryAcquire`, on a logged and on an
 * UNLOGGED table) against rate-limiter-flexible's `RateLimiterPostgres.consume` (on a `pg` Pool,
 * the client it requires), and a raw single-statement upsert through `postgres` as the ceiling
 * (one round trip and one row write per decision, nothing else), at 1 and 10 calls in flight, on
 * one hot key and on 10,000 keys, on the admitted and the rejected path.
 *
 * Every contender has its own pool of the same size. Every contender gets a table of its own per
 * case (created before its first round, untimed), emptied after every round (TRUNCATE, untimed),
 * so no round finds state another left, and the whole schema is dropped when the suite closes.
 */
import { createRateSync } from "@ratesync/core";
import { createPostgresEngine } from "@ratesync/postgres";
import pg from "pg";
import postgres, { type Sql } from "postgres";
import { RateLimiterPostgres, RateLimiterRes } from "rate-limiter-flexible";
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

/** Options of {@link createPostgresSuite}. */
export interface PostgresSuiteOptions {
  /** The PostgreSQL database. @default "postgres://postgres@127.0.0.1:5432/test" */
  readonly url?: string | undefined;
  /** The algorithm of the ratesync limiters. @default "token_bucket" */
  readonly algorithm?: BenchAlgorithm | undefined;
  /** Distinct keys in the many-keys cases. @default 10_000 */
  readonly distinctKeys?: number | undefined;
  /** Calls in flight, one case per value and path. @default [1, 10] */
  readonly inFlight?: readonly number[] | undefined;
  /** Connections in each contender's pool. @default 10 */
  readonly poolSize?: number | undefined;
}

/** The ceiling's name, as the targets refer to it. */
const CEILING = "raw upsert";

/**
 * The ceiling with commits that do not wait for the WAL flush (`synchronous_commit = off`), as
 * ratesync's engine commits by default (`durable_commit = false`): the same durability, so the
 * ratio against it measures the engine, not the commit setting.
 */
const CEILING_ASYNC = "raw upsert (async commit)";

/** Calls in flight while priming keys (untimed). */
const PRIME_IN_FLIGHT = 32;

/** A day in ms: the ceiling's row expiry, like the peer's window. */
const DAY_MS = 86_400_000;

/** The work of a case, the same for every contender. */
interface Load {
  readonly expect: Expectation;
  /** Distinct keys; timed call `index` uses `keys[index % keys.length]`. */
  readonly keys: readonly string[];
  /** Whether each key is called once before the timed loop (untimed; it must be admitted). */
  readonly prime: boolean;
}

/** The suite's pools, once `open()` made them. */
interface Connections {
  /** Where ratesync's engines connect: each opens its own pool, as configured from a file. */
  readonly url: string;
  /** Connections in every contender's pool. */
  readonly poolSize: number;
  /** rate-limiter-flexible's `storeClient`. */
  readonly peer: pg.Pool;
  /** The ceiling's client. */
  readonly ceiling: Sql;
  /** The ceiling's client with `synchronous_commit = off`. */
  readonly ceilingAsync: Sql;
  /** The schema every table of this run lives in. */
  readonly schema: string;
}

interface Context {
  readonly connections: () => Connections;
}

/** A postgres.js client for the ceilings (with the pool size ratesync's engines get). */
function client(url: string, max: number, asyncCommit = false): Sql {
  return postgres(url, {
    max,
    onnotice: () => {},
    fetch_types: false,
    ...(asyncCommit ? { connection: { synchronous_commit: "off" } } : {}),
  });
}

/**
 * ratesync: per round a new registry with a new engine and its own pool (as `engine = "postgres"`
 * with a `url` makes it: the sessions open with `synchronous_commit = off` and `lock_timeout`), on
 * the case's own table (created, with its functions, by the engine on the first round), one
 * limiter, and `limiter.tryAcquire({ key })` per call. The connections the case needs are open
 * before the round starts, as a running service's are. A degraded decision (a store failure
 * answered by the fail-open policy) fails the round.
 */
function ratesync(
  context: Context,
  algorithm: BenchAlgorithm,
  load: Load,
  table: string,
  unlogged: boolean,
  inFlight: number,
): Contender {
  const { expect, keys } = load;
  const count = keys.length;
  const name = unlogged ? "ratesync (unlogged)" : "ratesync";
  return {
    name,
    role: "ours",
    async start(): Promise<Round> {
      const connections = context.connections();
      const { url, poolSize, schema } = connections;
      const engine = createPostgresEngine({ url, poolSize, schema, table, unlogged, requestTimeoutMs: 5000 });
      const rs = createRateSync({ autoload: false });
      rs.configureStore("pg", { engine, requestTimeoutMs: 5000 });
      rs.configureLimiter("bench", { store: "pg", ...ratesyncPolicy(algorithm, expect) });
      await rs.initializeAllLimiters();
      // As many connections open as the case keeps calls in flight, as in the other contenders'
      // long-lived pools (postgres.js opens one only when all are busy). Not the whole pool: it
      // hands idle connections out in turn, so one call at a time would visit ten server
      // processes instead of one, each with cold caches.
      await Promise.all(Array.from({ length: Math.min(inFlight, poolSize) }, () => engine.client`SELECT 1`));
      const limiter = rs.getLimiter("bench");
      const dispose = async () => {
        await rs.close();
        // The registry leaves an engine it was handed open.
        await engine.close();
        await connections.ceiling.unsafe(`TRUNCATE "${schema}"."${table}"`);
      };
      if (load.prime) {
        await primed(
          () =>
            forEachKey(keys, PRIME_IN_FLIGHT, async (key) => {
              expectPrimed(name, key, await limiter.tryAcquire({ key }));
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
          outcomes.verify(calls, expect, name);
        },
        dispose,
      };
    },
  };
}

/**
 * rate-limiter-flexible: `RateLimiterPostgres` on the suite's `pg` Pool and the case's own table.
 * It creates its table asynchronously after construction: the first round waits for its ready
 * callback. A refusal rejects with a `RateLimiterRes`, counted; anything else ends the run.
 */
function peer(context: Context, load: Load, table: string): Contender {
  const { expect, keys } = load;
  const count = keys.length;
  return {
    name: RLF,
    role: "peer",
    async start(): Promise<Round> {
      const { peer: pool, schema } = context.connections();
      const limiter = await new Promise<RateLimiterPostgres>((resolve, reject) => {
        const created: RateLimiterPostgres = new RateLimiterPostgres(
          {
            storeClient: pool,
            storeType: "pool",
            schemaName: schema,
            tableName: table,
            // Its background cleanup would run inside some rounds and not others.
            clearExpiredByTimeout: false,
            ...peerPolicy(expect),
          },
          (error?: unknown) => (error === undefined || error === null ? resolve(created) : reject(error)),
        );
      });
      const dispose = async () => {
        await pool.query(`TRUNCATE "${schema}"."${table}"`);
      };
      if (load.prime) {
        await forEachKey(keys, PRIME_IN_FLIGHT, async (key) => {
          try {
            await limiter.consume(key);
          } catch (error) {
            await dispose();
            if (!(error instanceof RateLimiterRes)) throw error;
            throw new VerificationError(`${RLF}: the priming call for "${key}" was refused.`);
          }
        });
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
 * The ceiling: one `INSERT ... ON CONFLICT DO UPDATE ... RETURNING` of a counter with an expiry,
 * a prepared statement through postgres.js: what any limiter must do at the least (one atomic
 * write of one row in one round trip). Not a limiter, so it is checked differently: every call
 * must be answered with a count, and the busiest key's count must be the calls it received.
 */
function ceiling(context: Context, load: Load, table: string, asyncCommit: boolean): Contender {
  const count = load.keys.length;
  const name = asyncCommit ? CEILING_ASYNC : CEILING;
  return {
    name,
    role: "ceiling",
    async start(): Promise<Round> {
      const connections = context.connections();
      const sql = asyncCommit ? connections.ceilingAsync : connections.ceiling;
      const schema = connections.schema;
      const t = `"${schema}"."${table}"`;
      await sql.unsafe(
        `CREATE TABLE IF NOT EXISTS ${t} (k text COLLATE "C" PRIMARY KEY, n bigint NOT NULL, expires_at double precision NOT NULL)`,
      );
      const text = `INSERT INTO ${t} AS r (k, n, expires_at) VALUES ($1, 1, $2)
        ON CONFLICT (k) DO UPDATE SET n = r.n + 1, expires_at = excluded.expires_at RETURNING n`;
      const upsert = (key: string) => sql.unsafe(text, [key, Date.now() + DAY_MS], { prepare: true }).values();
      const dispose = async () => {
        await sql.unsafe(`TRUNCATE ${t}`);
      };
      if (load.prime) await forEachKey(load.keys, PRIME_IN_FLIGHT, async (key) => void (await upsert(key)));
      let answered = 0;
      let notCounts = 0;
      let highest = 0;
      return {
        async call(index) {
          const rows = await upsert(load.keys[index % count] as string);
          answered++;
          // bigint arrives as a string from postgres.js.
          const n = Number(rows[0]?.[0]);
          if (!Number.isInteger(n)) notCounts++;
          else if (n > highest) highest = n;
        },
        verify(calls) {
          expectCount(`${name}: answered calls`, answered, calls);
          expectCount(`${name}: replies that are not a count`, notCounts, 0);
          expectCount(`${name}: writes to the busiest key`, highest, Math.ceil(calls / count) + (load.prime ? 1 : 0));
        },
        dispose,
      };
    },
  };
}

/**
 * The postgres suite: {hot key, 10,000 keys} x {admitted, rejected} x {1, 10 in flight}, each with
 * ratesync (logged and UNLOGGED table), rate-limiter-flexible and the raw upsert ceiling, with
 * commits that wait for the WAL flush and with commits that do not (ratesync's default). Targets:
 * ratesync at least as fast as rate-limiter-flexible, and at least 0.8x the ceiling at the same
 * commit setting.
 *
 * Nothing connects until `open()`; when PostgreSQL cannot be reached it rejects with a
 * `SuiteUnavailableError` and the run skips the suite.
 *
 * @example
 * ```ts
 * const suite = createPostgresSuite({ url: "postgres://postgres@127.0.0.1:5432/test" });
 * await suite.open?.();
 * try {
 *   for (const benchCase of suite.cases) console.log(await runCase(benchCase, settings));
 * } finally {
 *   await suite.close?.();
 * }
 * ```
 */
export function createPostgresSuite(options: PostgresSuiteOptions = {}): Suite {
  const url = options.url ?? "postgres://postgres@127.0.0.1:5432/test";
  const algorithm = options.algorithm ?? "token_bucket";
  const distinctKeys = options.distinctKeys ?? 10_000;
  const inFlights = options.inFlight ?? [1, 10];
  const poolSize = options.poolSize ?? 10;

  // The pid and the start time tell this run's schema from any other's on the same server.
  const schema = `ratesync_bench_${process.pid}_${Date.now().toString(36)}`;
  let connections: Connections | undefined;
  const context: Context = {
    connections() {
      if (connections === undefined)
        throw new Error("The postgres suite was not opened: call open() before its cases.");
      return connections;
    },
  };

  const hot: Load["keys"] = ["user:42"];
  const many: Load["keys"] = Array.from({ length: distinctKeys }, (_, i) => `user:${i}`);
  const keyCount = distinctKeys.toLocaleString("en-US");
  const shapes = [
    { label: "hot key", keys: hot, where: "One key" },
    { label: `${keyCount} keys`, keys: many, where: `Calls cycle through ${keyCount} distinct keys` },
  ];

  const cases: BenchCase[] = [];
  let tables = 0;
  for (const shape of shapes) {
    for (const expect of ["admitted", "refused"] as const) {
      const load: Load = { expect, keys: shape.keys, prime: expect === "refused" || shape.keys.length > 1 };
      const work =
        expect === "admitted"
          ? `every call admitted (ratesync ${algorithm} with a budget no run exhausts; ${RLF} 1,000,000,000 points per day)${load.prime ? "; every key is created before the timed loop" : ""}`
          : `every key's only admission of the day is spent before the timed loop, so every timed call is refused`;
      for (const inFlight of inFlights) {
        const n = ++tables;
        const targets: Target[] = [
          { against: RLF, minRatio: 1.0 },
          { against: CEILING_ASYNC, minRatio: 0.8 },
        ];
        cases.push({
          suite: "postgres",
          name: `${shape.label} ${expect === "admitted" ? "admitted" : "rejected"}, ${inFlight} in flight`,
          description: `${shape.where}, ${work}. ${inFlight} calls in flight, pools of ${poolSize}. Ceilings: INSERT ... ON CONFLICT DO UPDATE ... RETURNING of a counter, prepared, with synchronous_commit on and (like ratesync by default) off.`,
          inFlight,
          latency: true,
          contenders: [
            ratesync(context, algorithm, load, `rs_${n}`, false, inFlight),
            peer(context, load, `rlflx_${n}`),
            ceiling(context, load, `raw_${n}`, false),
            ceiling(context, load, `rawa_${n}`, true),
            ratesync(context, algorithm, load, `rsu_${n}`, true, inFlight),
          ],
          targets,
        });
      }
    }
  }

  return {
    name: "postgres",
    cases,
    defaultRounds: { full: 3, quick: 2 },
    // postgres.js exports no package.json, so its version cannot be read here (3.4.9, pinned in package.json).
    packages: ["@ratesync/core", "@ratesync/postgres", RLF, "pg"],
    async open() {
      const probe = client(url, 1);
      let version: string;
      try {
        const [row] = await probe`SHOW server_version`;
        version = String(row?.server_version ?? "unknown");
        await probe.unsafe(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
      } catch (error) {
        throw new SuiteUnavailableError(
          `PostgreSQL is not reachable at ${displayUrl(url)} (${error instanceof Error ? error.message : String(error)}). ` +
            "Start one or point --postgres-url / BENCH_POSTGRES_URL at one.",
        );
      } finally {
        await probe.end({ timeout: 1 });
      }
      connections = {
        url,
        poolSize,
        peer: new pg.Pool({ connectionString: url, max: poolSize }),
        ceiling: client(url, poolSize),
        ceilingAsync: client(url, poolSize, true),
        schema,
      };
      return { postgresql: version };
    },
    async close() {
      const open = connections;
      connections = undefined;
      if (open === undefined) return;
      await Promise.all([open.ceilingAsync.end({ timeout: 1 }), open.peer.end()]);
      // A round that failed half-way may have left rows behind; none of this run's may stay.
      await open.ceiling.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {});
      await open.ceiling.end({ timeout: 1 });
    },
  };
}
