/**
 * The SQL of the PostgreSQL engine: one table and seven functions per (schema, table). The
 * engine calls one function per decision, release, renewal or reset, so each is one round trip
 * and one short transaction that writes a single row.
 *
 * The functions mirror `@ratesync/core`'s pure algorithms (`algorithms/*.ts`) step for step, in
 * the same double-precision order (PostgreSQL's `double precision` is the same IEEE 754 binary64
 * as a JavaScript number), and the engine conformance suite compares every answer with them.
 * Time is the server's own `clock_timestamp()`, read once per decision, so application clocks
 * never change a decision; a decision is never taken at a time earlier than one stored in the row.
 */
import { createHash } from "node:crypto";
import { TIME_EPSILON_MS } from "@ratesync/core";
import { checkIdentifier, quoteIdentifier, quoteLiteral, releaseChannel } from "./identifiers.js";

/** Where the engine keeps its state: validated names, quoted forms, and the names of its functions. */
export interface PostgresObjects {
  /** The schema name, as given. */
  readonly schema: string;
  /** The table name, as given. */
  readonly table: string;
  /** `"schema"."table"`. */
  readonly qualifiedTable: string;
  /** Quoted, schema-qualified names of the functions. */
  readonly functions: {
    readonly decide: string;
    readonly admit: string;
    readonly admitBatch: string;
    readonly release: string;
    readonly renew: string;
    readonly reset: string;
    readonly sweep: string;
  };
  /** Signatures for `to_regprocedure`, to check that every function exists. */
  readonly signatures: readonly string[];
  /** The LISTEN/NOTIFY channel of releases in this table. */
  readonly channel: string;
}

/** Options of {@link postgresSetupSql}. */
export interface PostgresSetupOptions {
  /** Schema of the table and functions; created when missing. @default "public" */
  schema?: string | undefined;
  /** Table name (the functions are named after it). @default "ratesync" */
  table?: string | undefined;
  /**
   * Create the table `UNLOGGED`: no write-ahead log, so roughly a third fewer writes per decision,
   * but PostgreSQL empties it after a crash and it is not replicated to standbys. See the docs.
   * @default false
   */
  unlogged?: boolean | undefined;
}

/** The default schema. */
export const DEFAULT_SCHEMA = "public";
/** The default table name. */
export const DEFAULT_TABLE = "ratesync";

/** Validates the names and derives everything the engine and the setup SQL refer to. */
export function postgresObjects(schema: string = DEFAULT_SCHEMA, table: string = DEFAULT_TABLE): PostgresObjects {
  checkIdentifier("schema", schema);
  checkIdentifier("table", table);
  const s = quoteIdentifier(schema);
  const fn = (suffix: string): string => `${s}.${quoteIdentifier(`${table}_${suffix}`)}`;
  const functions = {
    decide: fn("decide"),
    admit: fn("admit"),
    admitBatch: fn("admit_batch"),
    release: fn("release"),
    renew: fn("renew"),
    reset: fn("reset"),
    sweep: fn("sweep"),
  };
  return {
    schema,
    table,
    qualifiedTable: `${s}.${quoteIdentifier(table)}`,
    functions,
    signatures: [
      `${functions.decide}(text,integer,integer,double precision,double precision,double precision,integer,double precision,text,integer,boolean)`,
      `${functions.admit}(text,integer,double precision,double precision,double precision,integer,boolean)`,
      `${functions.admitBatch}(text,integer,double precision,double precision,double precision[],integer,boolean)`,
      `${functions.release}(text,text,integer,boolean)`,
      `${functions.renew}(text,text,double precision,integer,boolean)`,
      `${functions.reset}(text,integer,boolean)`,
      `${functions.sweep}(integer)`,
    ],
    channel: releaseChannel(schema, table),
  };
}

/**
 * Epoch milliseconds of a `timestamptz` expression, with the microseconds PostgreSQL keeps (to
 * within a quarter of a microsecond: `date_part` works in double precision, which is also what
 * makes it several times cheaper than `extract`'s numeric).
 */
function epochMs(timestamp: string): string {
  return `(date_part('epoch', ${timestamp}) * 1000)`;
}

/** The store's clock in epoch milliseconds, read where it is used. */
const NOW_MS = epochMs("clock_timestamp()");

/**
 * The SQL that creates the engine's schema, table and functions, idempotently. `auto_create`
 * runs exactly this (in one transaction); without it, run it yourself once, as a role allowed to
 * create them, for example with `psql --single-transaction -f setup.sql`.
 *
 * Safe to run from several processes at once: a transaction-level advisory lock serialises the
 * runs, and every statement is `IF NOT EXISTS` or `CREATE OR REPLACE`.
 *
 * @throws RateSyncError `CONFIG_INVALID` when `schema` or `table` is not a plain identifier.
 * @example
 * ```ts
 * import { postgresSetupSql } from "@ratesync/postgres";
 *
 * const sql = postgresSetupSql({ schema: "limits", table: "ratesync" });
 * console.log(sql.includes('CREATE TABLE IF NOT EXISTS "limits"."ratesync"')); // true
 * ```
 */
export function postgresSetupSql(options: PostgresSetupOptions = {}): string {
  const objects = postgresObjects(options.schema ?? DEFAULT_SCHEMA, options.table ?? DEFAULT_TABLE);
  const { schema, table, qualifiedTable: t, functions: f } = objects;
  const functions = functionsSql(objects);
  return `-- ratesync PostgreSQL engine: schema ${schema}, table ${table}. Run in one transaction.
SET LOCAL client_min_messages = warning;
-- Wait for a concurrent setup however long it takes (statement_timeout still bounds it): the
-- engine's own sessions carry a lock_timeout as short as one call's deadline.
SET LOCAL lock_timeout = 0;
-- Serialises concurrent setups (several processes starting at once).
SELECT pg_advisory_xact_lock(hashtext(${quoteLiteral(`ratesync setup ${schema}.${table}`)}));

DO $ratesync$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = ${quoteLiteral(schema)}) THEN
    CREATE SCHEMA ${quoteIdentifier(schema)};
  END IF;
END
$ratesync$;

-- One row per (limiter, key). A row whose expires_at has passed is the same as no row: the
-- functions treat it as fresh state, and ${f.sweep} deletes it in the background.
CREATE ${options.unlogged === true ? "UNLOGGED " : ""}TABLE IF NOT EXISTS ${t} (
  -- base64url(limiter) "." base64url(key), or "h." and a SHA-256 of both for long pairs.
  id text COLLATE "C" PRIMARY KEY,
  -- Algorithm of the rate state: 0 none, 1 token bucket, 2 sliding window, 3 fixed window.
  rate_kind smallint NOT NULL DEFAULT 0,
  -- Token bucket: epoch ms the bucket was last full; fixed window: window start; sliding: total cost in the log.
  rate_a double precision NOT NULL DEFAULT 0,
  -- Token bucket: whole units spent since rate_a; fixed window: cost admitted in the window.
  rate_b double precision NOT NULL DEFAULT 0,
  -- Sliding window log: admission times (epoch ms, oldest first) and their costs.
  log_at double precision[],
  log_cost double precision[],
  -- Concurrency leases: ids and expiries (epoch ms).
  lease_ids text[],
  lease_expiries double precision[],
  -- Epoch ms after which the row is the same as no row.
  expires_at double precision NOT NULL,
  -- Bumped by every write: decisions write only if the row is still the version they read.
  version bigint NOT NULL DEFAULT 0
) WITH (fillfactor = 80);

${functions}
-- Marks which version of the functions is installed: the engine recreates them when it differs.
COMMENT ON FUNCTION ${objects.signatures[0]} IS ${quoteLiteral(functionsVersion(functions))};
`;
}

/** The version mark of a set of functions: a digest of their SQL. */
function functionsVersion(functions: string): string {
  return `ratesync ${createHash("sha256").update(functions).digest("hex").slice(0, 16)}`;
}

/**
 * The comment `postgresSetupSql` puts on the decide function: the engine compares it to tell
 * whether the installed functions are the ones it expects.
 */
export function postgresFunctionsVersion(objects: PostgresObjects): string {
  return functionsVersion(functionsSql(objects));
}

/** A token bucket or fixed window policy's numbers, as the admit statement writes them in. */
export interface AdmitPolicy {
  /** 1: token bucket (`a` interval ms, `b` burst); 3: fixed window (`a` window ms, `b` limit). */
  readonly kind: 1 | 3;
  readonly a: number;
  readonly b: number;
}

/** core's TIME_EPSILON_MS, as SQL. */
const TIME_EPSILON_SQL = float8(TIME_EPSILON_MS);

/**
 * A finite number as a `double precision` SQL literal that reads back as exactly the same number
 * (`float8` is PostgreSQL's short name for the type).
 */
function float8(value: number): string {
  if (!Number.isFinite(value)) throw new RangeError(`Not a finite number: ${value}`);
  return `${String(value)}::float8`;
}

/**
 * The engine's admit statement for one policy (its numbers written in; `$1` the row id, `$2` the
 * cost): a single UPDATE that admits a call on a row already holding this algorithm's state, the
 * same decision as the `admit` function (core's checkTokenBucket/applyTokenBucket or
 * checkFixedWindow/applyFixedWindow, in core's floating-point order), with no function call
 * around it. Returns the store's time and the state it decided on (the new one less the cost:
 * for a bucket that had refilled, since = now and 0 units, which core treats as the full bucket it
 * was), or no row when it did not admit: refused, no row, another algorithm's state, or a time in
 * the row after the statement's. The engine then calls the `admit` function, which tells them apart.
 *
 * The time is the statement's start on the server (`statement_timestamp()`, one reading for the
 * whole statement). A statement that waits for another call's write decides on the row that call
 * left, at its own (earlier) time: a token bucket then owes slightly more, never less, and a row
 * that holds a later time (a bucket refilled or a window begun after it) makes it decline.
 *
 * The text is kept short, on one line: postgres.js finds a prepared statement by its text on
 * every call (a hash of the whole of it). The time is written once, in a subquery that
 * PostgreSQL's planner pulls up into the expressions that use it (the plan is the same as with
 * the expression written out at each use).
 */
export function postgresAdmitStatement(objects: PostgresObjects, policy: AdmitPolicy): string {
  const t = objects.qualifiedTable;
  const now = `(SELECT date_part('epoch',statement_timestamp())*1000 AS now)c`;
  const a = float8(policy.a);
  const b = float8(policy.b);
  // The expiry written is never earlier than the state's (core's since + units * interval, or the
  // window's end; equal but in the last bit of rounding), nor than the row's (leases, another policy).
  if (policy.kind === 1) {
    const tat = `r.rate_a+r.rate_b*${a}`;
    return (
      `UPDATE ${t} r SET rate_a=CASE WHEN ${tat}<=c.now THEN c.now ELSE r.rate_a END,` +
      `rate_b=CASE WHEN ${tat}<=c.now THEN 0 ELSE r.rate_b END+$2,` +
      `expires_at=greatest(c.now+$2*${a},r.rate_a+(r.rate_b+$2)*${a},r.expires_at),version=r.version+1 ` +
      `FROM${now} WHERE r.id=$1 AND r.rate_kind=1 AND r.rate_a<=c.now ` +
      `AND greatest(${tat},c.now)-c.now+$2*${a}<=${b}*${a}+${TIME_EPSILON_SQL} ` +
      `RETURNING c.now,r.rate_a,r.rate_b-$2`
    );
  }
  const start = `floor(c.now/${a})*${a}`;
  const used = `CASE WHEN r.rate_a=${start} THEN r.rate_b ELSE 0 END`;
  return (
    `UPDATE ${t} r SET rate_a=${start},rate_b=${used}+$2,` +
    `expires_at=greatest(${start}+${a},r.expires_at),version=r.version+1 ` +
    `FROM${now} WHERE r.id=$1 AND r.rate_kind=3 AND r.rate_a<=${start} AND ${used}+$2<=${b} ` +
    `RETURNING c.now,r.rate_a,r.rate_b-$2`
  );
}

/**
 * One rate-only decision (the `admit` and `admit_batch` functions): the token bucket (p_kind 1,
 * core's checkTokenBucket and applyTokenBucket) or the fixed window (p_kind 3, checkFixedWindow
 * and applyFixedWindow), in core's floating-point order, on the state (a, b) at the instant `now`
 * for the cost `cost` (PL/pgSQL expressions; `a` is NULL when the row holds no state of this
 * algorithm). Sets `allowed` and, when admitted, the new state (n_a, n_b). Uses v_tat.
 */
function rateStep(a: string, b: string, now: string, cost: string): string {
  return `IF p_kind = 1 THEN
      v_tat := ${a} + ${b} * p_a;
      allowed := NOT (CASE WHEN ${a} IS NULL OR v_tat <= ${now} THEN 0 ELSE v_tat - ${now} END + ${cost} * p_a > p_b * p_a + eps);
      IF allowed THEN
        IF ${a} IS NULL OR v_tat <= ${now} THEN
          -- The bucket had refilled: a new debt starts now.
          n_a := ${now};
          n_b := ${cost};
        ELSE
          n_a := ${a};
          n_b := ${b} + ${cost};
        END IF;
      END IF;
    ELSE
      n_a := floor(${now} / p_a) * p_a;
      n_b := CASE WHEN ${a} = n_a THEN ${b} ELSE 0 END + ${cost};
      allowed := NOT n_b > p_b;
    END IF;`;
}

/** The expiry of the rate state (a, b) of an `admit` call: when it is the same as none. */
function rateExpires(a: string, b: string): string {
  return `CASE WHEN p_kind = 1 THEN ${a} + ${b} * p_a ELSE ${a} + p_a END`;
}

/**
 * The expiry a rate-only write gives the row: its rate state's, unless leases left by an earlier
 * policy keep it alive longer.
 */
function rowExpires(rate: string): string {
  return `CASE WHEN lease_expiries IS NULL THEN ${rate} ELSE greatest(${rate}, expires_at) END`;
}

/** The functions' SQL: CREATE OR REPLACE, so running it again replaces them in place. */
function functionsSql(objects: PostgresObjects): string {
  const { qualifiedTable: t, functions: f, channel } = objects;
  const notify = `PERFORM pg_notify(${quoteLiteral(channel)}, p_id);`;
  // Before a call locks and writes: a row held by someone else fails within the call's deadline
  // instead of hanging (lock_timeout), and unless the store asks for durable commits the commit
  // does not wait for the WAL flush (synchronous_commit off: a crash may lose the last fraction
  // of a second of decisions, never corrupt them). Set for this transaction only, and only on a
  // client passed in: a NULL p_lock_ms means the session has them already (the engine's own
  // connections, set when they open), since setting a GUC per call costs a decision up to a
  // sixth of its time.
  const prepareWrite = `IF p_lock_ms IS NOT NULL THEN
        PERFORM set_config('lock_timeout', p_lock_ms::text, true),
          set_config('synchronous_commit', CASE WHEN p_durable THEN current_setting('synchronous_commit') ELSE 'off' END, true);
      END IF;`;
  return `-- decide (p_mode 0) and peek (p_mode 1). p_kind: 0 none, 1 token bucket (p_a interval ms,
-- p_b burst), 2 sliding window and 3 fixed window (p_a window ms, p_b limit). p_max 0: no
-- concurrency limit. Refusals and peeks write nothing.
CREATE OR REPLACE FUNCTION ${f.decide}(
  p_id text, p_mode integer, p_kind integer, p_a double precision, p_b double precision,
  p_cost double precision, p_max integer, p_lease_ms double precision, p_lease_id text, p_lock_ms integer,
  p_durable boolean,
  OUT allowed boolean, OUT refused_by integer, OUT now_ms double precision, OUT remaining double precision,
  OUT reset_at double precision, OUT retry_after_ms double precision, OUT in_use integer,
  OUT lease_expires_at double precision)
LANGUAGE plpgsql AS $ratesync$
DECLARE
  -- core's TIME_EPSILON_MS.
  eps CONSTANT double precision := ${TIME_EPSILON_SQL};
  v_found boolean;
  v_locked boolean := false;
  v_version bigint;
  v_kind smallint;
  v_a double precision;
  v_b double precision;
  v_at double precision[];
  v_costs double precision[];
  v_ids text[];
  v_exp double precision[];
  v_now double precision;
  v_has boolean;
  r_ok boolean;
  r_wait double precision;
  s_remaining double precision;
  s_reset double precision;
  c_ok boolean;
  c_wait double precision;
  v_n integer;
  v_live integer;
  v_i integer;
  v_horizon double precision;
  v_used double precision;
  v_expired double precision;
  v_newest double precision;
  v_left double precision;
  v_tat double precision;
  v_debt double precision;
  v_after double precision;
  v_capacity double precision;
  v_start double precision;
  v_end double precision;
  v_earliest double precision;
  v_expires double precision;
  n_kind smallint;
  n_a double precision;
  n_b double precision;
  n_at double precision[];
  n_costs double precision[];
  n_ids text[];
  n_exp double precision[];
BEGIN
  LOOP
    -- First a plain read: a refusal (or a peek) is decided on it and writes nothing, so it takes
    -- no lock, no transaction id and no WAL flush. An admission writes only if the row is still
    -- as read; otherwise the decision is taken again under the row lock.
    IF v_locked THEN
      SELECT r.rate_kind, r.rate_a, r.rate_b, r.log_at, r.log_cost, r.lease_ids, r.lease_expiries, r.version
        INTO v_kind, v_a, v_b, v_at, v_costs, v_ids, v_exp, v_version
        FROM ${t} r WHERE r.id = p_id FOR UPDATE;
    ELSE
      SELECT r.rate_kind, r.rate_a, r.rate_b, r.log_at, r.log_cost, r.lease_ids, r.lease_expiries, r.version
        INTO v_kind, v_a, v_b, v_at, v_costs, v_ids, v_exp, v_version
        FROM ${t} r WHERE r.id = p_id;
    END IF;
    v_found := FOUND;
    -- The store's clock, read once the row is ours.
    v_now := ${NOW_MS};
    v_has := v_found AND v_kind = p_kind;
    now_ms := v_now;
    remaining := 0;
    reset_at := v_now;
    retry_after_ms := 0;
    in_use := 0;
    lease_expires_at := 0;
    r_ok := true;
    r_wait := 0;
    s_remaining := 0;
    s_reset := v_now;
    c_ok := true;
    c_wait := 0;

    -- The rate check (core's checkTokenBucket / checkSlidingWindow / checkFixedWindow), and the
    -- budget as it stands (the same check at cost 0: what refusals and peeks report).
    IF p_kind = 1 THEN
      v_capacity := p_b * p_a;
      v_tat := CASE WHEN v_has THEN v_a + v_b * p_a ELSE v_now END;
      v_debt := CASE WHEN v_tat <= v_now THEN 0 ELSE v_tat - v_now END;
      v_after := v_debt + p_cost * p_a;
      s_remaining := greatest(0, floor((v_capacity - v_debt + eps) / p_a));
      s_reset := v_now + v_debt;
      IF v_after > v_capacity + eps THEN
        r_ok := false;
        remaining := s_remaining;
        reset_at := s_reset;
        r_wait := v_after - v_capacity;
      ELSE
        remaining := greatest(0, floor((v_capacity - v_after + eps) / p_a));
        reset_at := v_now + v_after;
      END IF;
    ELSIF p_kind = 2 THEN
      v_n := CASE WHEN v_has THEN coalesce(array_length(v_at, 1), 0) ELSE 0 END;
      v_horizon := v_now - p_a;
      v_i := 1;
      v_expired := 0;
      WHILE v_i <= v_n AND v_at[v_i] <= v_horizon LOOP
        v_expired := v_expired + v_costs[v_i];
        v_i := v_i + 1;
      END LOOP;
      v_live := v_i;
      v_used := CASE WHEN v_has THEN v_a - v_expired ELSE 0 END;
      v_newest := CASE WHEN v_n >= v_live THEN v_at[v_n] ELSE v_now END;
      s_remaining := p_b - v_used;
      s_reset := CASE WHEN v_used = 0 THEN v_now ELSE v_newest + p_a END;
      IF v_used + p_cost <= p_b THEN
        remaining := p_b - v_used - p_cost;
        reset_at := CASE WHEN p_cost > 0 THEN v_now + p_a ELSE s_reset END;
      ELSE
        -- Walk from the oldest live admission until enough cost has left the window.
        r_ok := false;
        remaining := s_remaining;
        reset_at := s_reset;
        r_wait := 'Infinity';
        v_left := 0;
        v_i := v_live;
        WHILE v_i <= v_n LOOP
          v_left := v_left + v_costs[v_i];
          IF v_left >= v_used + p_cost - p_b THEN
            r_wait := v_at[v_i] + p_a - v_now;
            EXIT;
          END IF;
          v_i := v_i + 1;
        END LOOP;
      END IF;
    ELSIF p_kind = 3 THEN
      v_start := floor(v_now / p_a) * p_a;
      v_used := CASE WHEN v_has AND v_a = v_start THEN v_b ELSE 0 END;
      v_end := v_start + p_a;
      s_remaining := p_b - v_used;
      s_reset := CASE WHEN v_used > 0 THEN v_end ELSE v_now END;
      IF v_used + p_cost > p_b THEN
        r_ok := false;
        remaining := s_remaining;
        reset_at := s_reset;
        r_wait := v_end - v_now;
      ELSE
        remaining := p_b - v_used - p_cost;
        reset_at := CASE WHEN v_used + p_cost > 0 THEN v_end ELSE v_now END;
      END IF;
    END IF;

    -- The concurrency check: live leases are those expiring after now.
    IF p_max > 0 THEN
      v_earliest := 'Infinity';
      FOR v_i IN 1..coalesce(array_length(v_exp, 1), 0) LOOP
        IF v_exp[v_i] > v_now THEN
          in_use := in_use + 1;
          IF v_exp[v_i] < v_earliest THEN
            v_earliest := v_exp[v_i];
          END IF;
        END IF;
      END LOOP;
      IF in_use >= p_max THEN
        c_ok := false;
        c_wait := v_earliest - v_now;
      END IF;
    END IF;

    allowed := r_ok AND c_ok;
    -- A rate refusal's wait is exact and wins; the lease bound counts only when slots alone refuse.
    retry_after_ms := CASE WHEN NOT r_ok THEN r_wait WHEN NOT c_ok THEN c_wait ELSE 0 END;
    refused_by := CASE WHEN NOT r_ok THEN 1 WHEN NOT c_ok THEN 2 ELSE 0 END;
    IF p_mode = 1 THEN
      remaining := s_remaining;
      reset_at := s_reset;
      RETURN;
    END IF;
    IF NOT allowed THEN
      -- Refused: nothing is written. Report the rate budget as it stands.
      remaining := s_remaining;
      reset_at := s_reset;
      RETURN;
    END IF;
    -- Admitted: apply the rate part (core's apply* functions) and take the slot.
    n_kind := p_kind;
    n_a := 0;
    n_b := 0;
    n_at := NULL;
    n_costs := NULL;
    v_expires := 0;
    IF p_kind = 1 THEN
      IF v_tat <= v_now THEN
        -- The bucket had refilled: a new debt starts now.
        n_a := v_now;
        n_b := p_cost;
      ELSE
        n_a := v_a;
        n_b := v_b + p_cost;
      END IF;
      v_expires := n_a + n_b * p_a;
    ELSIF p_kind = 2 THEN
      IF p_cost > 0 THEN
        IF v_live > v_n THEN
          n_at := ARRAY[v_now];
          n_costs := ARRAY[p_cost];
        ELSE
          n_at := v_at[v_live:v_n];
          n_costs := v_costs[v_live:v_n];
          IF v_at[v_n] = v_now THEN
            n_costs[cardinality(n_costs)] := n_costs[cardinality(n_costs)] + p_cost;
          ELSE
            n_at := n_at || v_now;
            n_costs := n_costs || p_cost;
          END IF;
        END IF;
        n_a := v_used + p_cost;
      ELSIF v_has THEN
        -- A cost of 0 is admitted without leaving a trace.
        n_at := v_at;
        n_costs := v_costs;
        n_a := v_a;
      END IF;
      IF coalesce(cardinality(n_at), 0) > 0 THEN
        v_expires := n_at[cardinality(n_at)] + p_a;
      END IF;
    ELSIF p_kind = 3 THEN
      n_a := v_start;
      n_b := v_used + p_cost;
      v_expires := v_start + p_a;
    END IF;

    n_ids := v_ids;
    n_exp := v_exp;
    IF p_max > 0 THEN
      -- Drop expired leases, add this one.
      n_ids := '{}';
      n_exp := '{}';
      FOR v_i IN 1..coalesce(array_length(v_exp, 1), 0) LOOP
        IF v_exp[v_i] > v_now AND v_ids[v_i] <> p_lease_id THEN
          n_ids := n_ids || v_ids[v_i];
          n_exp := n_exp || v_exp[v_i];
        END IF;
      END LOOP;
      n_ids := n_ids || p_lease_id;
      n_exp := n_exp || (v_now + p_lease_ms);
      in_use := in_use + 1;
      lease_expires_at := v_now + p_lease_ms;
    END IF;
    -- The row lives as long as its rate state or its latest lease.
    FOR v_i IN 1..coalesce(array_length(n_exp, 1), 0) LOOP
      IF n_exp[v_i] > v_expires THEN
        v_expires := n_exp[v_i];
      END IF;
    END LOOP;

    IF NOT v_locked THEN
      ${prepareWrite}
    END IF;
    IF v_found THEN
      -- Written only if nobody wrote the row since it was read (compare-and-set on its version;
      -- a concurrent writer's lock is waited for, then the version re-checked). Under the lock
      -- (after a lost race) the check always holds.
      UPDATE ${t} SET rate_kind = n_kind, rate_a = n_a, rate_b = n_b, log_at = n_at, log_cost = n_costs,
        lease_ids = n_ids, lease_expiries = n_exp, expires_at = v_expires, version = v_version + 1
        WHERE id = p_id AND version = v_version;
      IF FOUND THEN
        RETURN;
      END IF;
    ELSE
      -- A fresh key: insert, unless another call inserted it meanwhile. No duplicate-key error
      -- can reach the caller.
      INSERT INTO ${t} AS r (id, rate_kind, rate_a, rate_b, log_at, log_cost, lease_ids, lease_expiries, expires_at)
        VALUES (p_id, n_kind, n_a, n_b, n_at, n_costs, n_ids, n_exp, v_expires)
        ON CONFLICT (id) DO NOTHING;
      IF FOUND THEN
        RETURN;
      END IF;
    END IF;
    -- Lost the race: decide again on the row as it is now, holding its lock.
    v_locked := true;
  END LOOP;
END
$ratesync$;

-- admit: the token bucket (p_kind 1: p_a interval ms, p_b burst) and the fixed window (p_kind 3:
-- p_a window ms, p_b limit) without a concurrency limit, by far the most common limiters, in a
-- function of their own that reads and writes only the rate columns. Returns {admitted (1 or 0),
-- the store's time, the rate state the decision was taken on (NULL: none)}, from which the engine
-- works out remaining, reset and retry with @ratesync/core itself. Refusals write nothing. (An
-- admission on a row that exists is usually taken by the engine's admit statement instead.)
CREATE OR REPLACE FUNCTION ${f.admit}(
  p_id text, p_kind integer, p_a double precision, p_b double precision, p_cost double precision,
  p_lock_ms integer, p_durable boolean)
RETURNS double precision[]
LANGUAGE plpgsql AS $ratesync$
DECLARE
  -- core's TIME_EPSILON_MS.
  eps CONSTANT double precision := ${TIME_EPSILON_SQL};
  allowed boolean;
  now_ms double precision;
  state_a double precision;
  state_b double precision;
  v_kind smallint;
  v_version bigint;
  v_found boolean;
  v_locked boolean := false;
  v_tat double precision;
  n_a double precision;
  n_b double precision;
BEGIN
  LOOP
    IF v_locked THEN
      SELECT r.rate_kind, r.rate_a, r.rate_b, r.version INTO v_kind, state_a, state_b, v_version
        FROM ${t} r WHERE r.id = p_id FOR UPDATE;
    ELSE
      SELECT r.rate_kind, r.rate_a, r.rate_b, r.version INTO v_kind, state_a, state_b, v_version
        FROM ${t} r WHERE r.id = p_id;
    END IF;
    v_found := FOUND;
    -- The store's clock, read after the row: later than every decision stored in it.
    now_ms := ${NOW_MS};
    IF v_kind IS DISTINCT FROM p_kind THEN
      -- No rate state of this algorithm: a full bucket, an empty window.
      state_a := NULL;
      state_b := NULL;
    END IF;
    ${rateStep("state_a", "state_b", "now_ms", "p_cost")}
    IF NOT allowed THEN
      RETURN ARRAY[0, now_ms, state_a, state_b];
    END IF;
    IF NOT v_locked THEN
      ${prepareWrite}
    END IF;
    IF v_found THEN
      -- Written only if nobody wrote the row since it was read (compare-and-set on its version;
      -- a concurrent writer's lock is waited for, then the version re-checked). Under the lock
      -- (after a lost race) the check always holds.
      UPDATE ${t} SET rate_kind = p_kind, rate_a = n_a, rate_b = n_b, log_at = NULL, log_cost = NULL,
        expires_at = ${rowExpires(rateExpires("n_a", "n_b"))}, version = v_version + 1
        WHERE id = p_id AND version = v_version;
      IF FOUND THEN
        RETURN ARRAY[1, now_ms, state_a, state_b];
      END IF;
    ELSE
      -- A fresh key: insert, unless another call inserted it meanwhile. No duplicate-key error
      -- can reach the caller.
      INSERT INTO ${t} (id, rate_kind, rate_a, rate_b, expires_at)
        VALUES (p_id, p_kind, n_a, n_b, ${rateExpires("n_a", "n_b")})
        ON CONFLICT (id) DO NOTHING;
      IF FOUND THEN
        RETURN ARRAY[1, now_ms, state_a, state_b];
      END IF;
    END IF;
    -- Lost the race: decide again on the row as it is now, holding its lock.
    v_locked := true;
  END LOOP;
END
$ratesync$;

-- admit_batch: the admit function for several calls on one key at once (calls of one process that
-- arrived while another call on the key was in flight): one lock, the decisions taken in arrival
-- order at one instant, exactly as one after the other, and one write. Returns a row per cost, with
-- the state that call was decided on.
CREATE OR REPLACE FUNCTION ${f.admitBatch}(
  p_id text, p_kind integer, p_a double precision, p_b double precision, p_costs double precision[],
  p_lock_ms integer, p_durable boolean)
RETURNS TABLE (allowed boolean, now_ms double precision, state_a double precision, state_b double precision)
LANGUAGE plpgsql AS $ratesync$
DECLARE
  -- core's TIME_EPSILON_MS.
  eps CONSTANT double precision := ${TIME_EPSILON_SQL};
  v_kind smallint;
  v_a double precision;
  v_b double precision;
  v_now double precision;
  v_cost double precision;
  v_changed boolean := false;
  v_tat double precision;
  n_a double precision;
  n_b double precision;
BEGIN
  ${prepareWrite}
  LOOP
    -- A batch means contention: lock at once. A fresh key gets a placeholder row first (fresh
    -- state, already expired), so there is always a row to lock.
    INSERT INTO ${t} (id, expires_at) VALUES (p_id, 0) ON CONFLICT (id) DO NOTHING;
    SELECT r.rate_kind, r.rate_a, r.rate_b INTO v_kind, v_a, v_b FROM ${t} r WHERE r.id = p_id FOR UPDATE;
    -- (Gone only if swept or reset between the two statements: try again.)
    EXIT WHEN FOUND;
  END LOOP;
  v_now := ${NOW_MS};
  IF v_kind IS DISTINCT FROM p_kind THEN
    v_a := NULL;
    v_b := NULL;
  END IF;
  FOREACH v_cost IN ARRAY p_costs LOOP
    now_ms := v_now;
    state_a := v_a;
    state_b := v_b;
    ${rateStep("v_a", "v_b", "v_now", "v_cost")}
    IF allowed THEN
      v_a := n_a;
      v_b := n_b;
      v_changed := true;
    END IF;
    RETURN NEXT;
  END LOOP;
  IF v_changed THEN
    UPDATE ${t} SET rate_kind = p_kind, rate_a = v_a, rate_b = v_b, log_at = NULL, log_cost = NULL,
      expires_at = ${rowExpires(rateExpires("v_a", "v_b"))}, version = version + 1
      WHERE id = p_id;
  END IF;
END
$ratesync$;

-- release: true when a live lease was removed (and announced on the release channel). An expired
-- lease may be someone else's slot by now: removing it frees nothing and wakes nobody.
CREATE OR REPLACE FUNCTION ${f.release}(p_id text, p_lease_id text, p_lock_ms integer, p_durable boolean)
RETURNS boolean
LANGUAGE plpgsql AS $ratesync$
DECLARE
  v_ids text[];
  v_exp double precision[];
  v_i integer;
  v_live boolean;
BEGIN
  ${prepareWrite}
  SELECT r.lease_ids, r.lease_expiries INTO v_ids, v_exp FROM ${t} r WHERE r.id = p_id FOR UPDATE;
  v_i := array_position(v_ids, p_lease_id);
  IF v_i IS NULL THEN
    RETURN false;
  END IF;
  v_live := v_exp[v_i] > ${NOW_MS};
  UPDATE ${t} SET lease_ids = v_ids[:v_i - 1] || v_ids[v_i + 1:],
    lease_expiries = v_exp[:v_i - 1] || v_exp[v_i + 1:], version = version + 1
    WHERE id = p_id;
  IF v_live THEN
    ${notify}
  END IF;
  RETURN v_live;
END
$ratesync$;

-- renew: the new expiry (epoch ms), or NULL when the lease is gone. An expired lease is never revived.
CREATE OR REPLACE FUNCTION ${f.renew}(p_id text, p_lease_id text, p_lease_ms double precision, p_lock_ms integer,
  p_durable boolean)
RETURNS double precision
LANGUAGE plpgsql AS $ratesync$
DECLARE
  v_ids text[];
  v_exp double precision[];
  v_i integer;
  v_now double precision;
BEGIN
  ${prepareWrite}
  SELECT r.lease_ids, r.lease_expiries INTO v_ids, v_exp FROM ${t} r WHERE r.id = p_id FOR UPDATE;
  v_i := array_position(v_ids, p_lease_id);
  IF v_i IS NULL THEN
    RETURN NULL;
  END IF;
  v_now := ${NOW_MS};
  IF v_exp[v_i] <= v_now THEN
    RETURN NULL;
  END IF;
  v_exp[v_i] := v_now + p_lease_ms;
  UPDATE ${t} SET lease_expiries = v_exp, expires_at = greatest(expires_at, v_exp[v_i]), version = version + 1
    WHERE id = p_id;
  RETURN v_exp[v_i];
END
$ratesync$;

-- reset: forgets everything stored for the key and wakes its waiters.
CREATE OR REPLACE FUNCTION ${f.reset}(p_id text, p_lock_ms integer, p_durable boolean)
RETURNS void
LANGUAGE plpgsql AS $ratesync$
BEGIN
  ${prepareWrite}
  DELETE FROM ${t} WHERE id = p_id;
  ${notify}
END
$ratesync$;

-- sweep: deletes up to p_limit expired rows, skipping rows another call holds, so it never
-- blocks a decision; returns how many it deleted. FOR UPDATE re-checks expires_at on a row
-- updated meanwhile, so a row that came back to life is kept.
CREATE OR REPLACE FUNCTION ${f.sweep}(p_limit integer)
RETURNS integer
LANGUAGE sql AS $ratesync$
  WITH doomed AS (
    SELECT r.id FROM ${t} r WHERE r.expires_at <= ${NOW_MS}
    LIMIT p_limit FOR UPDATE SKIP LOCKED
  ), gone AS (
    DELETE FROM ${t} r USING doomed WHERE r.id = doomed.id RETURNING 1
  )
  SELECT count(*)::integer FROM gone
$ratesync$;
`;
}
