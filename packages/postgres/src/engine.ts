import type {
  Deadline,
  DecideRequest,
  Engine,
  EngineContext,
  EngineDecision,
  EngineDefinition,
  EngineTarget,
  LeaseRequest,
  PeekRequest,
  Policy,
  RenewRequest,
} from "@ratesync/core";
import {
  BUILTIN_ENGINE_KEYS,
  DEFAULT_REQUEST_TIMEOUT_MS,
  DeadlineQueue,
  decide,
  RateSyncError,
  systemClock,
  TargetCache,
} from "@ratesync/core";
import postgres, { type Sql } from "postgres";
import { rowId } from "./identifiers.js";
import {
  DEFAULT_SCHEMA,
  DEFAULT_TABLE,
  type PostgresObjects,
  postgresAdmitStatement,
  postgresFunctionsVersion,
  postgresObjects,
  postgresSetupSql,
} from "./sql.js";

/** A postgres.js client (`postgres(url)`), the engine's or one you pass in. */
export type PostgresClient = Sql;

/**
 * Options of {@link createPostgresEngine} (and of `[stores.<id>]` with `engine = "postgres"`, in
 * snake_case there).
 */
export interface PostgresEngineOptions {
  /**
   * Connection URL, `postgres://[user[:password]@]host[:port]/database[?sslmode=require]`. Without
   * a URL (and without a client), postgres.js reads the usual `PGHOST`, `PGUSER`, `PGDATABASE`...
   */
  url?: string | undefined;
  /**
   * A postgres.js client you created. The engine uses it as is and never closes it; its
   * `max` is then the pool size.
   */
  client?: PostgresClient | undefined;
  /** Schema of the table and functions: letters, digits, underscores. @default "public" */
  schema?: string | undefined;
  /** Table name (the functions are named after it): at most 48 characters. @default "ratesync" */
  table?: string | undefined;
  /**
   * Create the schema, table and functions on first use, when missing (idempotent, safe when
   * several processes start at once). Without it, a missing table is an error that says how to
   * create it; see `postgresSetupSql()`.
   * @default true
   */
  autoCreate?: boolean | undefined;
  /**
   * Create the table `UNLOGGED` (only when the engine creates it): faster writes, but PostgreSQL
   * empties it after a crash and does not replicate it. See the engine docs.
   * @default false
   */
  unlogged?: boolean | undefined;
  /**
   * Make every write wait for PostgreSQL's WAL flush, as a plain statement does. Off by default:
   * writes commit with `synchronous_commit = off` (the engine's own connections open with it; on a
   * client passed in, each write's transaction sets it for itself), so a decision does not wait
   * for the disk (several times faster, and a hot row's lock is held for microseconds instead
   * of a flush), at the price of losing the last fraction of a second of decisions if the server
   * crashes (never a corrupt or inconsistent row). See the engine docs.
   * @default false
   */
  durableCommit?: boolean | undefined;
  /** Connections in the engine's own pool. @default 10 */
  poolSize?: number | undefined;
  /** How long to wait for a new connection, in ms. @default 5000 */
  connectTimeoutMs?: number | undefined;
  /**
   * How long a call may wait for a row another call holds (PostgreSQL `lock_timeout`: set on the
   * engine's own connections, or per write on a client passed in). @default the call's deadline
   * (`requestTimeoutMs`)
   */
  lockTimeoutMs?: number | undefined;
  /**
   * Deadline of one call, in ms: past it the call fails (and the server ends the statement soon after). A store
   * configured with `engine = "postgres"` passes its own `request_timeout_ms`; set this when you
   * create the engine yourself and want the engine (rather than the limiter) to enforce it.
   */
  requestTimeoutMs?: number | undefined;
  /**
   * How often expired rows are deleted, in ms (in batches that skip rows in use, so decisions are
   * never blocked). `0` turns the sweep off (run `SELECT "<table>_sweep"(1000)` yourself).
   * @default 60000
   */
  cleanupIntervalMs?: number | undefined;
}

/**
 * Queries the engine's pool sends on one connection before it opens another: the second waits on
 * the server behind the first, with no round trip between. A decision is a short statement, so
 * pipelining two loses little where the round trip dominates, and on a server with fewer cores
 * than connections it saves a process switch per query: at 10 calls in flight on the 2-core test
 * machine, the same statement through 5 connections ran about 25 % faster than through 10.
 */
const PIPELINE_DEPTH = 2;

/** Rows deleted per sweep statement, and statements per sweep at most. */
const SWEEP_BATCH = 1000;
const SWEEP_BATCHES = 20;

/**
 * Errors that mean PostgreSQL cannot be reached (postgres.js' connection codes, Node.js socket
 * errors, and the server shutting down or starting up).
 */
const UNREACHABLE = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ENOTFOUND",
  "EHOSTUNREACH",
  "ETIMEDOUT",
  "EPIPE",
  "CONNECT_TIMEOUT",
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "57P01",
  "57P02",
  "57P03",
]);

/** How long calls fail at once after one found PostgreSQL unreachable, in ms. */
const FAIL_FAST_MS = 250;

/** PostgreSQL error codes the engine explains. */
const LOCK_NOT_AVAILABLE = "55P03";
const MISSING = new Set(["42P01", "42883", "3F000"]);

/** The `code` of a PostgreSQL or postgres.js error, if any. */
function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/** The decide function's policy arguments: kind, a, b. */
function rateArgs(policy: Policy): [kind: 0 | 1 | 2 | 3, a: number, b: number] {
  const rate = policy.rate;
  if (rate === undefined) return [0, 0, 0];
  switch (rate.algorithm) {
    case "token_bucket":
      return [1, rate.intervalMs, rate.burst];
    case "sliding_window":
      return [2, rate.windowMs, rate.limit];
    case "fixed_window":
      return [3, rate.windowMs, rate.limit];
  }
}

type DecideRow = [
  allowed: boolean,
  refusedBy: number,
  now: number,
  remaining: number,
  resetAt: number,
  retryAfterMs: number,
  inUse: number,
  leaseExpiresAt: number,
];

/** A query's rows, as postgres.js' `values()` gives them. */
type Rows = unknown[][];

/** A query's parameters. */
type Params = (string | number | boolean | null)[];

/**
 * An engine call in progress: its caller's promise, settled once: with its answer, its error, or
 * a timeout error when its deadline (in the engine's {@link DeadlineQueue}) passes first. The
 * engine settles it from the handler of its last query, so a call costs one promise of its own
 * rather than one per step.
 */
class Call<T> {
  readonly #deadlines: DeadlineQueue;
  readonly #deadline: Deadline;
  readonly #resolve: (value: T) => void;
  readonly #reject: (error: unknown) => void;
  /** Runs once the call is settled, however it was (the calls that waited for it are sent). */
  after: (() => void) | undefined = undefined;

  /** @param deadline - the deadline the call already has (it started elsewhere), if any */
  constructor(
    deadlines: DeadlineQueue,
    timeoutError: () => Error,
    resolve: (value: T) => void,
    reject: (error: unknown) => void,
    deadline?: Deadline,
  ) {
    this.#deadlines = deadlines;
    this.#resolve = resolve;
    this.#reject = reject;
    this.#deadline =
      deadline ??
      deadlines.start(() => {
        reject(timeoutError());
        this.after?.();
      });
  }

  /** True once the call is settled (answered, failed or expired): a late answer is dropped. */
  get done(): boolean {
    return this.#deadline.done;
  }

  resolve(value: T): void {
    if (!this.#deadlines.settle(this.#deadline)) return;
    this.#resolve(value);
    this.after?.();
  }

  reject(error: unknown): void {
    if (!this.#deadlines.settle(this.#deadline)) return;
    this.#reject(error);
    this.after?.();
  }
}

/** The options of every query the engine sends: a prepared statement (shared, postgres.js copies it). */
const PREPARED = { prepare: true } as const;

/** A rate-only call waiting for the one in flight on its row. */
interface RateCall {
  readonly cost: number;
  readonly call: Call<EngineDecision>;
}

/** Whether two rate-only policies have the same algorithm and numbers (their calls may go in one batch). */
function sameRate(one: Policy, other: Policy): boolean {
  if (one === other) return true;
  const [kind, a, b] = rateArgs(one);
  const [otherKind, otherA, otherB] = rateArgs(other);
  return kind === otherKind && a === otherA && b === otherB;
}

/** Most calls sent in one batch. */
const MAX_BATCH = 256;

/**
 * Rate policies that get an admit statement of their own (their numbers written in), per engine:
 * each is a prepared statement on every connection, so a process that makes policies on the fly
 * must not make them without bound. Further policies use the admit function alone.
 */
const MAX_ADMIT_STATEMENTS = 64;

/** What the engine keeps for a (limiter, key). */
interface RowTarget {
  /** The row's id. */
  readonly id: string;
  /**
   * The last rate-only decision on the row in this process admitted and left budget: the next
   * call is likely admitted too and tries the admit statement first (one UPDATE). Other calls go
   * to the admit function, which also decides a refusal on one read and inserts a fresh key, so
   * they need no second query.
   */
  admitted: boolean;
  /**
   * The policy of the rate-only call (or batch) of this process in flight on the row, if any:
   * later calls with its numbers wait in {@link RowTarget.waiting} (see `#rate`). Kept here
   * rather than in a map by row, so a lone call costs no lookup. (Should the target cache forget
   * the target meanwhile, calls on the fresh target go alone for a moment: PostgreSQL orders them
   * on the row lock all the same.)
   */
  inFlight: Policy | undefined;
  /**
   * The calls waiting for the one in flight, in arrival order; made on the row's first wait and
   * kept. A call sets and clears only `inFlight` (a policy, long-lived): a fresh object written
   * into this long-lived target on every call was one of the things that made V8 keep calls'
   * objects through the young generation's collections (see `#lone`).
   */
  waiting: RateCall[] | undefined;
}

/**
 * An answer of the admit functions: the decision, the store's time, and the rate state it was
 * taken on (`a` null: none). Token bucket: since and units; fixed window: start and count.
 */
type AdmitRow = [allowed: boolean, now: number, a: number | null, b: number | null];

/**
 * The admit function's answer, `{admitted (1 or 0), now, a, b}`: a `double precision[]`, which
 * postgres.js hands over as its text unless the client was made to fetch array types.
 */
function admitRow(value: unknown): AdmitRow {
  const fields = typeof value === "string" ? value.slice(1, -1).split(",") : (value as unknown[]);
  const number = (field: unknown): number | null => (field === null || field === "NULL" ? null : Number(field));
  return [number(fields[0]) === 1, number(fields[1]) as number, number(fields[2]), number(fields[3])];
}

/**
 * The decision an admit row stands for, worked out by core's own algorithm on the state the store
 * decided on, at the store's time: remaining, reset and retry come from one implementation for
 * every engine. The store's verdict and core's must agree; if they ever did not, the call fails
 * rather than report numbers that contradict what was written.
 */
function admitDecision(row: AdmitRow, policy: Policy, cost: number): EngineDecision {
  const [allowed, now, a, b] = row;
  const rate =
    a === null
      ? undefined
      : policy.rate?.algorithm === "token_bucket"
        ? { since: a, units: b as number }
        : { start: a, count: b as number };
  const { decision } = decide(rate === undefined ? undefined : { rate }, policy, cost, undefined, now);
  if (decision.allowed !== allowed) {
    throw new RateSyncError(
      "STORE_ERROR",
      `PostgreSQL ${allowed ? "admitted" : "refused"} a call that @ratesync/core ${allowed ? "refuses" : "admits"} on the same state (${String(a)}, ${String(b)}) at ${now}: the installed functions do not match this version of @ratesync/postgres.`,
      { details: { allowed, now, a, b, cost } },
    );
  }
  return decision;
}

function toDecision(rows: DecideRow[]): EngineDecision {
  const [allowed, refusedBy, now, remaining, resetAt, retryAfterMs, inUse, leaseExpiresAt] = rows[0] as DecideRow;
  return {
    allowed,
    refusedBy: refusedBy === 1 ? "rate" : refusedBy === 2 ? "concurrency" : undefined,
    now,
    remaining,
    resetAt,
    retryAfterMs,
    inUse,
    leaseExpiresAt,
  };
}

/** Seconds before reconnection attempt `retries`: 20 ms doubling, at most 0.5 s. */
function reconnectDelaySeconds(retries: number): number {
  return Math.min(0.02 * 2 ** retries, 0.5);
}

/** Waits for `promise` to settle, at most `ms`; never rejects, leaves no timer behind. */
async function settledWithin(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    promise.then(
      () => {},
      () => {},
    ),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
    }),
  ]);
  clearTimeout(timer);
}

/**
 * The PostgreSQL engine. Each decision is one statement: a call of a PL/pgSQL function the engine
 * installs (`<table>_decide`, or `<table>_admit` for a token bucket or fixed window alone), or the
 * admit statement (one UPDATE) for the next admission on a key just admitted: one round trip, one
 * short transaction that writes one row, on the server's clock. Rate and concurrency are decided
 * together; refusals write nothing.
 *
 * The connection pool is created on first use. Every call settles within its deadline; while
 * PostgreSQL is unreachable calls fail at once (the limiter applies its failure policy), and the
 * pool reconnects by itself once it is back. Waiters for a slot are woken by LISTEN/NOTIFY.
 *
 * The engine's own pool pipelines two queries to a connection and hands out the connection freed
 * most recently: calls keep to as few server processes as they need, whose caches are warm,
 * instead of visiting each in turn (postgres.js' own pool does that; at one call in flight over
 * ten connections, decisions took three times as long). Connections left idle close after a
 * minute.
 */
export class PostgresEngine implements Engine {
  readonly name = "postgres";
  readonly remote = true;
  /**
   * With a known deadline (from the store, or `requestTimeoutMs`), the engine bounds every call
   * itself, so the limiter needs no timer per call.
   */
  readonly enforcesDeadline: boolean;
  /** The validated names the engine uses. */
  readonly objects: PostgresObjects;
  readonly #options: PostgresEngineOptions;
  /**
   * The deadline of every call: one timer for all pending queries. A query past it is not
   * cancelled from here (postgres.js' `cancel()` left a connection that was still connecting
   * unusable: the pool never recovered after a restart); the server bounds it instead, with
   * `lock_timeout` per call and `statement_timeout` on the engine's own connections.
   */
  readonly #deadlines: DeadlineQueue;
  readonly #timeoutMs: number;
  readonly #lockMs: number;
  readonly #statementTimeoutMs: number;
  readonly #durable: boolean;
  /**
   * The functions' `p_lock_ms` and `p_durable`: on the engine's own connections `null`, since
   * each session gets its `lock_timeout` and `synchronous_commit` when it opens; on a client
   * passed in, the values, which every write then sets for its own transaction.
   */
  readonly #lockArg: number | null;
  readonly #durableArg: boolean | null;
  readonly #text: {
    decide: string;
    admit: string;
    admitBatch: string;
    release: string;
    renew: string;
    reset: string;
    sweep: string;
  };
  /** Rows with calls waiting, which `close()` ends. */
  readonly #queued = new Set<RowTarget>();
  /** The timeout error of a call, made when its deadline passes. */
  readonly #timeout = () => this.#timeoutError();
  /** Each policy's admit statement, or null when it has none (see {@link MAX_ADMIT_STATEMENTS}). */
  readonly #admitStatements = new WeakMap<Policy, string | null>();
  /** The admit statements made so far, by algorithm and numbers: policies with equal numbers share one. */
  readonly #admitStatementsByNumbers = new Map<string, string>();
  /** The client passed in, used as is. */
  readonly #given: PostgresClient | undefined;
  /** The engine's own pool: one single-connection postgres.js client per connection, made on demand. */
  readonly #own: PostgresClient[] = [];
  /** Queries in flight on each of `#own`. */
  readonly #inFlight: number[] = [];
  /** Indexes into `#own` with nothing in flight, the one freed most recently last. */
  readonly #idle: number[] = [];
  readonly #poolSize: number;
  /** Called when every connection of `#own` is idle, while `close()` waits for that. */
  #drained: (() => void) | undefined;
  /** True once the table and functions are known to exist. */
  #ready = false;
  #setup: Promise<void> | undefined;
  #listening: Promise<{ unlisten(): Promise<void> }> | undefined;
  readonly #listeners = new Map<string, Set<() => void>>();
  #sweeper: ReturnType<typeof setInterval> | undefined;
  #sweeping = false;
  /** The row of each (limiter, key). */
  readonly #targets = new TargetCache(
    (limiter, key): RowTarget => ({
      id: rowId(limiter, key),
      admitted: false,
      inFlight: undefined,
      waiting: undefined,
    }),
  );
  #closed = false;
  /** Set when a call found PostgreSQL unreachable: calls fail at once until `until`. */
  #down: { readonly until: number; readonly error: RateSyncError } | undefined;

  constructor(options: PostgresEngineOptions = {}, context?: Pick<EngineContext, "requestTimeoutMs">) {
    this.#options = options;
    // Names are checked at once: a bad one is a configuration error, not a store outage.
    this.objects = postgresObjects(options.schema ?? DEFAULT_SCHEMA, options.table ?? DEFAULT_TABLE);
    const deadline = context?.requestTimeoutMs ?? options.requestTimeoutMs;
    this.enforcesDeadline = deadline !== undefined;
    const timeoutMs = deadline ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.#deadlines = new DeadlineQueue(systemClock, timeoutMs);
    this.#timeoutMs = timeoutMs;
    this.#lockMs = Math.max(1, Math.ceil(options.lockTimeoutMs ?? timeoutMs));
    // Past the call's deadline, with room for the setup DDL on a slow first connection.
    this.#statementTimeoutMs = Math.max(Math.ceil(2 * timeoutMs), 10_000);
    this.#durable = options.durableCommit === true;
    this.#given = options.client;
    this.#poolSize = options.poolSize ?? 10;
    if (!Number.isInteger(this.#poolSize) || this.#poolSize < 1) {
      throw new RateSyncError(
        "CONFIG_INVALID",
        `pool_size must be a whole number of connections, at least 1; got ${String(options.poolSize)}.`,
        { details: { poolSize: options.poolSize } },
      );
    }
    this.#lockArg = this.#given === undefined ? null : this.#lockMs;
    this.#durableArg = this.#given === undefined ? null : this.#durable;
    const f = this.objects.functions;
    this.#text = {
      decide: `SELECT * FROM ${f.decide}($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
      admit: `SELECT ${f.admit}($1, $2, $3, $4, $5, $6, $7)`,
      admitBatch: `SELECT * FROM ${f.admitBatch}($1, $2, $3, $4, $5::double precision[], $6, $7)`,
      release: `SELECT ${f.release}($1, $2, $3, $4)`,
      renew: `SELECT ${f.renew}($1, $2, $3, $4, $5)`,
      reset: `SELECT ${f.reset}($1, $2, $3)`,
      sweep: `SELECT ${f.sweep}($1)`,
    };
  }

  /**
   * The client passed in, or the first connection of the engine's own pool (created on first use;
   * the engine spreads its calls over the others itself).
   */
  get client(): PostgresClient {
    if (this.#given !== undefined) return this.#given;
    if (this.#own.length === 0) this.#idle.push(this.#connect());
    return this.#own[0] as PostgresClient;
  }

  /** Adds a connection to the engine's own pool; returns its index. */
  #connect(): number {
    this.#own.push(this.#createClient());
    this.#inFlight.push(0);
    return this.#own.length - 1;
  }

  /**
   * The connection of the engine's own pool for the next query: one already running fewer than
   * {@link PIPELINE_DEPTH} queries, to pipeline behind them; else the idle one freed most
   * recently; else a new one while the pool has room; else the one with the fewest in flight.
   */
  #pick(): number {
    const inFlight = this.#inFlight;
    for (let i = inFlight.length - 1; i >= 0; i--) {
      const queries = inFlight[i] as number;
      if (queries > 0 && queries < PIPELINE_DEPTH) return i;
    }
    const idle = this.#idle.pop();
    if (idle !== undefined) return idle;
    if (this.#own.length < this.#poolSize) return this.#connect();
    let least = 0;
    for (let i = 1; i < inFlight.length; i++) if ((inFlight[i] as number) < (inFlight[least] as number)) least = i;
    return least;
  }

  decide(request: DecideRequest): Promise<EngineDecision> {
    const policy = request.policy;
    const algorithm = policy.rate?.algorithm;
    // The common limiters get statements of their own that touch the rate columns only.
    if (policy.concurrency === undefined && (algorithm === "token_bucket" || algorithm === "fixed_window")) {
      return this.#rate(this.#targets.get(request.limiter, request.key), policy, request.cost);
    }
    return this.#decide(0, request, request.leaseId ?? "");
  }

  /**
   * A rate-only decision, coalesced per key (SPEC "hot keys"): while a call on a key is in flight,
   * later calls of this process on the same key and policy wait for it and then go together in
   * one call of the batch function (one lock, the decisions in arrival order, one write) instead
   * of queueing one by one on the row lock. A lone call is sent at once: as the admit statement
   * (`#lone`) when this process admitted the key's last call and budget was left and the engine
   * is ready, else to the admit function (also a call made while the engine sets up or after a
   * failure, and one with other numbers than the call in flight).
   */
  #rate(target: RowTarget, policy: Policy, cost: number): Promise<EngineDecision> {
    if (target.inFlight === undefined && target.admitted && this.#ready && !this.#closed && this.#down === undefined) {
      const statement = this.#admitStatement(policy);
      if (statement !== null) return this.#lone(target, policy, cost, statement);
    }
    return this.#call<EngineDecision>((call) => {
      const inFlight = target.inFlight;
      if (inFlight !== undefined && sameRate(inFlight, policy)) {
        target.waiting ??= [];
        target.waiting.push({ cost, call });
        this.#queued.add(target);
        return;
      }
      // (A call with other numbers than the one in flight, a rare sight, goes alone.)
      if (inFlight === undefined) {
        target.inFlight = policy;
        call.after = () => this.#drain(target);
      }
      this.#admitFunction(call, target, policy, cost);
    });
  }

  /**
   * {@link #rate} for a lone call that this process expects admitted (the row's last decision
   * here admitted and left budget), the hot path of the common limiters: marks the row busy for
   * the calls that follow, sends the admit statement within the call's deadline, and sends what
   * waited once the call is settled, however it was. Should the statement decline, the call goes
   * on to the admit function through the general path, with the same deadline.
   *
   * Written as one function on purpose: its promise, its deadline and its query's handlers are
   * made here rather than through `#call`, `Call` and `#send` as the other calls are, and the call
   * writes nothing into the row target but `inFlight`. Built from those parts (with a fresh lane
   * object per call), the same work made V8 keep most calls' objects (the query, its promises,
   * the handlers) through the young generation's collections until the next full one, and the
   * collections cost more than the engine's own work: in the benchmark's one-in-flight hot-key
   * case the young bytes surviving a scavenge went from a median of 1.2 MB to 0.3 MB with this
   * shape (3 KB for a bare postgres.js query). Which shapes V8 keeps alive is not understood (no
   * retaining edge was found, and small changes flip it); a script measures it, run it before
   * and after reshaping this function: `apps/bench/scripts/postgres-gc-survival.sh`.
   */
  #lone(target: RowTarget, policy: Policy, cost: number, statement: string): Promise<EngineDecision> {
    target.inFlight = policy;
    // A statement means the engine's own pool (see #admitStatement).
    const index = this.#take();
    const client = this.#own[index] as PostgresClient;
    return new Promise<EngineDecision>((resolve, reject) => {
      const deadline = this.#deadlines.start(() => {
        reject(this.#timeoutError());
        this.#drain(target);
      });
      client
        .unsafe(statement, [target.id, cost], PREPARED)
        .values()
        .then(
          (rows: Rows) => {
            this.#free(index, client);
            if (deadline.done) return;
            const row = rows[0];
            if (row === undefined) {
              this.#declined(target, policy, cost, new Call(this.#deadlines, this.#timeout, resolve, reject, deadline));
              return;
            }
            this.#deadlines.settle(deadline);
            try {
              resolve(this.#remember(target, admitDecision([true, row[0], row[1], row[2]] as AdmitRow, policy, cost)));
            } catch (error) {
              reject(error);
            }
            this.#drain(target);
          },
          (error: unknown) => {
            this.#free(index, client);
            if (!this.#deadlines.settle(deadline)) return;
            reject(this.#explain(error));
            this.#drain(target);
          },
        );
    });
  }

  /**
   * A lone call the admit statement declined: the admit function decides it (and tells a refusal
   * from a fresh key), then what waited for it is sent.
   */
  #declined(target: RowTarget, policy: Policy, cost: number, call: Call<EngineDecision>): void {
    call.after = () => this.#drain(target);
    this.#admitFunction(call, target, policy, cost);
  }

  /** Decides `call` with the admit function. */
  #admitFunction(call: Call<EngineDecision>, target: RowTarget, policy: Policy, cost: number): void {
    const [kind, a, b] = rateArgs(policy);
    this.#send(call, this.#text.admit, [target.id, kind, a, b, cost, this.#lockArg, this.#durableArg], (rows) =>
      this.#remember(target, admitDecision(admitRow(rows[0]?.[0]), policy, cost)),
    );
  }

  /** Notes whether the row's next call is likely admitted (see {@link RowTarget}); returns the decision. */
  #remember(target: RowTarget, decision: EngineDecision): EngineDecision {
    target.admitted = decision.allowed && decision.remaining > 0;
    return decision;
  }

  /**
   * The admit statement of a token bucket or fixed window policy, made on its first call; null on
   * a client passed in (whose sessions lack the engine's `lock_timeout` and commit setting, which
   * the function sets per call), for numbers a statement cannot hold (not finite), and once
   * {@link MAX_ADMIT_STATEMENTS} exist.
   */
  #admitStatement(policy: Policy): string | null {
    const known = this.#admitStatements.get(policy);
    if (known !== undefined) return known;
    const [kind, a, b] = rateArgs(policy);
    const numbers = `${kind} ${a} ${b}`;
    let made = this.#admitStatementsByNumbers.get(numbers) ?? null;
    const writable = (kind === 1 || kind === 3) && Number.isFinite(a) && Number.isFinite(b);
    if (
      made === null &&
      writable &&
      this.#given === undefined &&
      this.#admitStatementsByNumbers.size < MAX_ADMIT_STATEMENTS
    ) {
      made = postgresAdmitStatement(this.objects, { kind, a, b });
      this.#admitStatementsByNumbers.set(numbers, made);
    }
    this.#admitStatements.set(policy, made);
    return made;
  }

  /**
   * Sends the calls that waited for the one in flight on the row, as batches, until none is
   * left; then the row is free again.
   */
  #drain(target: RowTarget): void {
    // close() ended the calls that waited.
    if (this.#closed) return;
    const waiting = target.waiting;
    // Calls whose deadline passed while they waited are not decided: they must not spend budget.
    let batch: RateCall[] = [];
    while (batch.length === 0 && waiting !== undefined && waiting.length > 0) {
      batch = waiting.splice(0, MAX_BATCH).filter((call) => !call.call.done);
    }
    if (batch.length === 0) {
      target.inFlight = undefined;
      if (waiting !== undefined) this.#queued.delete(target);
      return;
    }
    const policy = target.inFlight as Policy;
    const [kind, a, b] = rateArgs(policy);
    const costs = `{${batch.map((call) => call.cost).join(",")}}`;
    const params = [target.id, kind, a, b, costs, this.#lockArg, this.#durableArg];
    this.#run(this.#text.admitBatch, params, (rows) => rows).then(
      (rows) => {
        batch.forEach(({ cost, call }, index) => {
          const row = rows[index] as AdmitRow | undefined;
          if (row === undefined) {
            call.reject(new RateSyncError("STORE_ERROR", "PostgreSQL answered a batch short."));
            return;
          }
          try {
            call.resolve(this.#remember(target, admitDecision(row, policy, cost)));
          } catch (error) {
            call.reject(error);
          }
        });
        this.#drain(target);
      },
      (error: unknown) => {
        for (const { call } of batch) call.reject(error);
        this.#drain(target);
      },
    );
  }

  peek(request: PeekRequest): Promise<EngineDecision> {
    return this.#decide(1, request, "");
  }

  release(request: LeaseRequest): Promise<boolean> {
    return this.#run(
      this.#text.release,
      [this.#targets.get(request.limiter, request.key).id, request.leaseId, this.#lockArg, this.#durableArg],
      (rows) => rows[0]?.[0] === true,
    );
  }

  renew(request: RenewRequest): Promise<number | undefined> {
    return this.#run(
      this.#text.renew,
      [
        this.#targets.get(request.limiter, request.key).id,
        request.leaseId,
        request.leaseMs,
        this.#lockArg,
        this.#durableArg,
      ],
      (rows) => {
        const expiresAt = rows[0]?.[0];
        return typeof expiresAt === "number" ? expiresAt : undefined;
      },
    );
  }

  reset(target: EngineTarget): Promise<void> {
    return this.#run(
      this.#text.reset,
      [this.#targets.get(target.limiter, target.key).id, this.#lockArg, this.#durableArg],
      () => undefined,
    );
  }

  #decide(mode: 0 | 1, request: PeekRequest, leaseId: string): Promise<EngineDecision> {
    const [kind, a, b] = rateArgs(request.policy);
    const concurrency = request.policy.concurrency;
    return this.#run(
      this.#text.decide,
      [
        this.#targets.get(request.limiter, request.key).id,
        mode,
        kind,
        a,
        b,
        request.cost,
        concurrency?.maxConcurrent ?? 0,
        concurrency?.leaseMs ?? 0,
        leaseId,
        this.#lockArg,
        this.#durableArg,
      ],
      toDecision as (rows: unknown[][]) => EngineDecision,
    );
  }

  /** Runs one prepared statement within the deadline and maps its rows. */
  #run<T>(text: string, params: Params, map: (rows: Rows) => T): Promise<T> {
    return this.#call<T>((call) => this.#send(call, text, params, map));
  }

  /**
   * Starts a call within the deadline: `start` sends its first query (`#send`). Once the table is
   * known to exist this is the whole cost of a call: nothing is awaited before the first query is
   * sent.
   */
  #call<T>(start: (call: Call<T>) => void): Promise<T> {
    if (this.#closed) return Promise.reject(this.#closedError());
    const down = this.#down;
    if (down !== undefined) {
      // PostgreSQL could not be reached a moment ago: answer at once rather than queue behind
      // postgres.js' reconnection (a fail-open limiter then admits without waiting out its
      // deadline). Calls go through again once the pause is over.
      if (performance.now() < down.until) return Promise.reject(down.error);
      this.#down = undefined;
    }
    if (!this.#ready) return this.#prepared().then(() => this.#call(start));
    return new Promise<T>((resolve, reject) => start(new Call(this.#deadlines, this.#timeout, resolve, reject)));
  }

  /**
   * Sends one prepared statement for `call`, on the client passed in or on the connection `#pick`
   * chooses (counted as in flight on it until answered, even past the call's deadline: the
   * connection is busy until the server is done with it), and settles the call with what `answer`
   * makes of the rows. A call settled meanwhile (its deadline passed) is not answered again.
   */
  #send<T>(call: Call<T>, text: string, params: Params, answer: (rows: Rows) => T): void {
    const index = this.#given === undefined ? this.#take() : -1;
    const client = index < 0 ? (this.#given as PostgresClient) : (this.#own[index] as PostgresClient);
    (client.unsafe(text, params, PREPARED).values() as Promise<Rows>).then(
      (rows) => {
        if (index >= 0) this.#free(index, client);
        if (call.done) return;
        let value: T;
        try {
          value = answer(rows);
        } catch (error) {
          call.reject(error);
          return;
        }
        call.resolve(value);
      },
      (error: unknown) => {
        if (index >= 0) this.#free(index, client);
        if (!call.done) call.reject(this.#explain(error));
      },
    );
  }

  /**
   * Runs `work` on the client passed in, or on a connection of the engine's own pool, counted as
   * in flight on it until it settles (the setup's queries; decisions go through `#send`).
   */
  #using<T>(work: (client: PostgresClient) => Promise<T>): Promise<T> {
    if (this.#given !== undefined) return work(this.#given);
    const index = this.#take();
    const client = this.#own[index] as PostgresClient;
    return work(client).then(
      (value) => {
        this.#free(index, client);
        return value;
      },
      (error: unknown) => {
        this.#free(index, client);
        throw error;
      },
    );
  }

  /** The connection of the engine's own pool for the next query (see `#pick`), counted as in flight. */
  #take(): number {
    const index = this.#pick();
    this.#inFlight[index] = (this.#inFlight[index] as number) + 1;
    return index;
  }

  /** Counts a query on connection `index` as answered (unless the pool was closed since). */
  #free(index: number, client: PostgresClient): void {
    if (this.#own[index] !== client) return;
    const left = (this.#inFlight[index] as number) - 1;
    this.#inFlight[index] = left;
    if (left > 0) return;
    this.#idle.push(index);
    if (this.#idle.length === this.#own.length) this.#drained?.();
  }

  /**
   * Subscribes to releases of the target's slots, from any process: one LISTEN (on postgres.js'
   * dedicated listening connection, which it re-establishes after a reconnect) for the table's
   * channel, whose payload names the row; listeners are kept per row id.
   */
  onRelease(target: EngineTarget, listener: () => void): () => void {
    const id = this.#targets.get(target.limiter, target.key).id;
    let listeners = this.#listeners.get(id);
    if (listeners === undefined) {
      listeners = new Set();
      this.#listeners.set(id, listeners);
    }
    listeners.add(listener);
    if (this.#listening === undefined && !this.#closed) {
      const listening = this.client.listen(this.objects.channel, (payload) => {
        const heard = this.#listeners.get(payload);
        if (heard !== undefined) for (const wake of [...heard]) wake();
      });
      this.#listening = listening;
      // A failed LISTEN only costs waiters their fast wake-up (they still poll); try again later.
      listening.catch(() => {
        if (this.#listening === listening) this.#listening = undefined;
      });
    }
    return () => {
      const current = this.#listeners.get(id);
      if (current === undefined || !current.delete(listener) || current.size > 0) return;
      this.#listeners.delete(id);
    };
  }

  /**
   * Connects, creates the table and functions when `autoCreate` allows (or checks they exist),
   * and starts the sweep of expired rows. Waits up to `connectTimeoutMs`.
   */
  async init(): Promise<void> {
    await this.#prepared(this.#options.connectTimeoutMs ?? 5000);
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#listeners.clear();
    // Queued calls end with the engine (their batch would fail anyway).
    for (const target of this.#queued)
      for (const { call } of target.waiting?.splice(0) ?? []) call.reject(this.#closedError());
    this.#queued.clear();
    if (this.#sweeper !== undefined) clearInterval(this.#sweeper);
    this.#sweeper = undefined;
    this.#deadlines.expireAll();
    const listening = this.#listening;
    this.#listening = undefined;
    if (this.#given === undefined) {
      // A LISTEN still connecting would survive end() (postgres.js re-listens when its listening
      // connection closes): let it settle first, briefly.
      if (listening !== undefined) await settledWithin(listening, 1000);
      // Queries still running get 1 s to finish before their connections end. Ending a connection
      // with queries queued on it is not enough: postgres.js ends it once its current query is
      // answered, then connects again for the next one queued and keeps that connection open
      // (seen after a restart, when a connection was waiting to reconnect).
      if (this.#idle.length < this.#own.length) {
        const drained = new Promise<void>((resolve) => {
          this.#drained = resolve;
        });
        await settledWithin(drained, 1000);
        this.#drained = undefined;
      }
      const own = this.#own.splice(0);
      this.#inFlight.length = 0;
      this.#idle.length = 0;
      // Ends each connection and the listening one; whatever still runs is cut off.
      await Promise.all(own.map((client) => client.end({ timeout: 0 })));
    } else if (listening !== undefined) {
      await listening.then(
        (listen) => listen.unlisten(),
        () => {},
      );
    }
  }

  /** The error of a call that passed its deadline. */
  #timeoutError(): RateSyncError {
    return new RateSyncError(
      "STORE_ERROR",
      `PostgreSQL (${this.objects.qualifiedTable}) did not answer within ${this.#timeoutMs} ms.`,
      { details: { timeoutMs: this.#timeoutMs } },
    );
  }

  /** Waits (bounded) until the table and functions exist, creating them when allowed. */
  #prepared(waitMs = this.#timeoutMs): Promise<void> {
    if (this.#closed) return Promise.reject(this.#closedError());
    this.#setup ??= this.#using((sql) => this.#createObjects(sql)).then(
      () => {
        this.#ready = true;
        this.#startSweeper();
      },
      (error: unknown) => {
        // Let the next call try again.
        this.#setup = undefined;
        throw this.#explain(error);
      },
    );
    const setup = this.#setup;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(this.#timeoutError()), waitMs);
      setup.then(
        () => {
          clearTimeout(timer);
          resolve();
        },
        (error: unknown) => {
          clearTimeout(timer);
          reject(error);
        },
      );
    });
  }

  async #createObjects(sql: PostgresClient): Promise<void> {
    const { qualifiedTable, signatures, schema, table } = this.objects;
    // One query tells whether everything exists, at the version this engine expects; the DDL
    // (and its privileges) is needed only when something is missing or outdated.
    const [row] = await sql.unsafe(
      `SELECT to_regclass($1) IS NOT NULL AND ${signatures.map((_, i) => `to_regprocedure($${i + 3}) IS NOT NULL`).join(" AND ")}
         AND obj_description(to_regprocedure($3), 'pg_proc') IS NOT DISTINCT FROM $2 AS ok`,
      [qualifiedTable, postgresFunctionsVersion(this.objects), ...signatures],
    );
    if (row?.ok === true) return;
    if (this.#options.autoCreate === false) {
      throw new RateSyncError(
        "STORE_ERROR",
        `The ratesync table ${qualifiedTable} or its functions do not exist (or are from another version of @ratesync/postgres) and auto_create is false. Create them with the SQL from postgresSetupSql({ schema: "${schema}", table: "${table}" }) (see the @ratesync/postgres docs), or set auto_create = true.`,
        { details: { schema, table } },
      );
    }
    const script = postgresSetupSql({ schema, table, unlogged: this.#options.unlogged });
    await sql.begin((tx) => tx.unsafe(script).simple());
  }

  #startSweeper(): void {
    const interval = this.#options.cleanupIntervalMs ?? 60_000;
    if (interval <= 0 || this.#sweeper !== undefined || this.#closed) return;
    this.#sweeper = setInterval(() => void this.#sweep(), interval);
    // Never keeps a process alive on its own.
    this.#sweeper.unref();
  }

  /**
   * Deletes expired rows in bounded batches. Each batch skips rows that a call holds (`SKIP
   * LOCKED`), so decisions never wait for it; failures are ignored (the next sweep tries again).
   */
  async #sweep(): Promise<void> {
    if (this.#sweeping || this.#closed || !this.#ready) return;
    this.#sweeping = true;
    try {
      for (let batch = 0; batch < SWEEP_BATCHES && !this.#closed; batch++) {
        const rows = await this.#run(this.#text.sweep, [SWEEP_BATCH], (result) => result[0]?.[0]);
        if (typeof rows !== "number" || rows < SWEEP_BATCH) break;
      }
    } catch {
      // The store is down or busy: the next sweep tries again.
    } finally {
      this.#sweeping = false;
    }
  }

  /** Turns PostgreSQL's errors into ones that say what happened and what to do. */
  #explain(error: unknown): unknown {
    const code = errorCode(error);
    if (code !== undefined && UNREACHABLE.has(code)) {
      const message = error instanceof Error ? error.message : code;
      this.#down = {
        until: performance.now() + FAIL_FAST_MS,
        error: new RateSyncError(
          "STORE_ERROR",
          `PostgreSQL (${this.objects.qualifiedTable}) is unreachable (${message}); reconnecting in the background.`,
          { cause: error },
        ),
      };
      return this.#down.error;
    }
    if (code === LOCK_NOT_AVAILABLE) {
      return new RateSyncError(
        "STORE_ERROR",
        `A ratesync row in ${this.objects.qualifiedTable} stayed locked by another session for longer than ${this.#lockMs} ms (lock_timeout); the call gave up.`,
        { cause: error, details: { lockTimeoutMs: this.#lockMs } },
      );
    }
    if (code !== undefined && MISSING.has(code)) {
      // Dropped behind our back (or a fresh server): check again, and recreate if allowed.
      this.#ready = false;
      this.#setup = undefined;
      return new RateSyncError(
        "STORE_ERROR",
        `The ratesync table ${this.objects.qualifiedTable} or its functions are missing (${error instanceof Error ? error.message : code}). ` +
          (this.#options.autoCreate === false
            ? `Create them with the SQL from postgresSetupSql(), or set auto_create = true.`
            : "They are created again on the next call."),
        { cause: error },
      );
    }
    return error;
  }

  #closedError(): RateSyncError {
    return new RateSyncError("STORE_ERROR", "The PostgreSQL engine was closed; configure the store again to use it.");
  }

  #createClient(): PostgresClient {
    const options = this.#options;
    const settings = {
      // One connection per client: the engine picks the connection itself (see #pick).
      max: 1,
      // postgres.js takes seconds.
      connect_timeout: (options.connectTimeoutMs ?? 5000) / 1000,
      // postgres.js backs off up to 20 s between reconnection attempts, and calls queue meanwhile:
      // a limiter must be exact again soon after PostgreSQL is back, so retry within half a second.
      backoff: reconnectDelaySeconds,
      // Idle connections are closed after a minute: a burst does not keep its pool forever.
      idle_timeout: 60,
      // The engine binds no array or custom-typed parameter: skip the type lookup on connect.
      fetch_types: false,
      // CREATE ... IF NOT EXISTS notices are not worth a console line.
      onnotice: () => {},
      // The server ends a statement nobody waits for any more (the engine's deadline answered its
      // caller already), so a stalled query never holds a pooled connection for long.
      // The functions rely on READ COMMITTED (a fresh snapshot per statement, a re-check after a
      // lock wait): a database whose default is REPEATABLE READ or SERIALIZABLE would turn
      // contention into serialization errors.
      // Lock waits and commits are set per session rather than per call (see #lockArg): the
      // engine's connections run nothing but its own functions and setup.
      connection: {
        application_name: "ratesync",
        statement_timeout: this.#statementTimeoutMs,
        default_transaction_isolation: "read committed" as const,
        lock_timeout: this.#lockMs,
        ...(this.#durable ? {} : { synchronous_commit: "off" as const }),
      },
    };
    return options.url === undefined ? postgres(settings) : postgres(options.url, settings);
  }
}

/**
 * Creates a PostgreSQL engine.
 *
 * @example
 * ```ts
 * import { configureLimiter, configureStore } from "@ratesync/core";
 * import { createPostgresEngine } from "@ratesync/postgres";
 *
 * configureStore("main", { engine: createPostgresEngine({ url: process.env.DATABASE_URL }) });
 * // or simply: configureStore("main", { engine: "postgres", url: process.env.DATABASE_URL });
 * configureLimiter("api", { store: "main", ratePerSecond: 100, burst: 20 });
 * ```
 */
export function createPostgresEngine(options: PostgresEngineOptions = {}): PostgresEngine {
  return new PostgresEngine(options);
}

/** The engine definition `@ratesync/core` loads for `engine = "postgres"`. */
export const engine: EngineDefinition<PostgresEngineOptions> = {
  name: "postgres",
  // The keys core validates for `engine = "postgres"` before this package is even loaded.
  optionKeys: BUILTIN_ENGINE_KEYS.postgres,
  create: (options, context) => new PostgresEngine(options, context),
};
