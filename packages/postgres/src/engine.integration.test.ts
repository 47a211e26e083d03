import type { Policy } from "@ratesync/core";
import { createRateSync, isRateSyncError, registerEngine } from "@ratesync/core";
import { rejectionOf } from "@ratesync/core/testing";
import postgres from "postgres";
import { afterAll, describe, expect, it } from "vitest";
import { engine, PostgresEngine } from "./engine.js";
import { rowId } from "./identifiers.js";
import { postgresFunctionsVersion, postgresObjects, postgresSetupSql } from "./sql.js";
import { dropSchema, TEST_URL, uniqueSchema } from "./test-support/databases.js";

const schemas: string[] = [];
function schema(label: string): string {
  const name = uniqueSchema(label);
  schemas.push(name);
  return name;
}

const admin = postgres(TEST_URL, { max: 2, onnotice: () => {} });
// Under pnpm, core cannot import this package by name from its own directory: register it.
registerEngine(engine);
afterAll(async () => {
  await admin.end({ timeout: 1 });
  await Promise.all(schemas.map((name) => dropSchema(name)));
}, 30_000);

const window: Policy = { rate: { algorithm: "fixed_window", limit: 5, windowMs: 60_000 }, concurrency: undefined };
const call = { limiter: "l", key: "k", policy: window, cost: 1, leaseId: undefined } as const;

/**
 * Locks the row of (limiter "l", `key`) in schema `name` from another session (SELECT ... FOR
 * UPDATE in an open transaction); resolves once it is held, with a function that ends the
 * transaction and waits for it.
 */
async function holdRow(name: string, key: string): Promise<() => Promise<void>> {
  let release: () => void = () => {};
  const held = new Promise<void>((resolve) => {
    release = resolve;
  });
  let locked: () => void = () => {};
  const isLocked = new Promise<void>((resolve) => {
    locked = resolve;
  });
  const holder = admin.begin(async (tx) => {
    await tx.unsafe(`SELECT 1 FROM "${name}"."ratesync" WHERE id = $1 FOR UPDATE`, [rowId("l", key)]);
    locked();
    await held;
  });
  await Promise.race([isLocked, holder]);
  return async () => {
    release();
    await holder;
  };
}

describe("PostgreSQL engine setup", () => {
  it("without auto_create, a missing table is an error that says how to create it; with the SQL run, it works", async () => {
    const name = schema("manual");
    const engine = new PostgresEngine({ url: TEST_URL, schema: name, autoCreate: false, requestTimeoutMs: 2000 });
    try {
      const error = await rejectionOf(engine.decide(call));
      expect(isRateSyncError(error, "STORE_ERROR")).toBe(true);
      expect(error.message).toContain(`"${name}"."ratesync"`);
      expect(error.message).toContain("postgresSetupSql");
      expect(error.message).toContain("auto_create");
      // Nothing was created behind the user's back.
      const [row] = await admin`SELECT to_regclass(${`"${name}"."ratesync"`}) AS t`;
      expect(row?.t).toBeNull();
      await admin.begin((tx) => tx.unsafe(postgresSetupSql({ schema: name })).simple());
      expect((await engine.decide(call)).remaining).toBe(4);
    } finally {
      await engine.close();
    }
  });

  it("creates schema, table and functions once when eight processes start at the same time", async () => {
    const name = schema("race");
    const engines = Array.from({ length: 8 }, () => new PostgresEngine({ url: TEST_URL, schema: name, poolSize: 2 }));
    try {
      const results = await Promise.allSettled(engines.map((engine) => engine.init()));
      expect(results.filter((result) => result.status === "rejected")).toEqual([]);
      const decisions = await Promise.all(engines.map((engine) => engine.decide(call)));
      // One budget of 5 for all of them: the table was created once, not once per process.
      expect(
        decisions
          .filter((decision) => decision.allowed)
          .map((decision) => decision.remaining)
          .sort(),
      ).toEqual([0, 1, 2, 3, 4]);
      expect(decisions.filter((decision) => decision.allowed)).toHaveLength(5);
    } finally {
      await Promise.all(engines.map((engine) => engine.close()));
    }
  });

  it("creates an UNLOGGED table when asked", async () => {
    const name = schema("unlogged");
    const engine = new PostgresEngine({ url: TEST_URL, schema: name, unlogged: true });
    try {
      await engine.init();
      const [row] = await admin`
        SELECT c.relpersistence AS p FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = ${name} AND c.relname = 'ratesync'`;
      expect(row?.p).toBe("u");
    } finally {
      await engine.close();
    }
  });

  it("recreates its table after it is dropped, when auto_create is on", async () => {
    const name = schema("dropped");
    const engine = new PostgresEngine({ url: TEST_URL, schema: name, requestTimeoutMs: 2000 });
    try {
      await engine.decide(call);
      await admin.unsafe(`DROP TABLE "${name}"."ratesync" CASCADE`);
      const error = await rejectionOf(engine.decide(call));
      expect(error.message).toContain("created again on the next call");
      expect((await engine.decide(call)).remaining).toBe(4);
    } finally {
      await engine.close();
    }
  });
});

describe("PostgreSQL engine from a configuration file", () => {
  it("takes every option in TOML spelling", async () => {
    const name = schema("toml");
    const rs = createRateSync({ autoload: false });
    rs.loadConfigFromString(`
[stores.pg]
engine = "postgres"
url = "${TEST_URL}"
schema = "${name}"
table = "limits"
auto_create = true
unlogged = true
durable_commit = true
pool_size = 2
connect_timeout_ms = 2000
lock_timeout_ms = 500
request_timeout_ms = 2000

[limiters.api]
store = "pg"
rate_per_second = 1
burst = 2
max_concurrent = 1
`);
    try {
      const first = await rs.tryAcquire("api", { key: "k" });
      expect(first).toMatchObject({ allowed: true, degraded: false, remaining: 1 });
      expect((await rs.tryAcquire("api", { key: "k" })).allowed).toBe(false);
      await first.slot?.release();
      const [row] = await admin`
        SELECT c.relpersistence AS p FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = ${name} AND c.relname = 'limits'`;
      expect(row?.p).toBe("u");
    } finally {
      await rs.close();
    }
  });
});

describe("PostgreSQL engine upgrades", () => {
  it("replaces functions of another version, and without auto_create says they are outdated", async () => {
    const name = schema("upgrade");
    const first = new PostgresEngine({ url: TEST_URL, schema: name });
    await first.init();
    await first.close();
    const decide = postgresObjects(name).signatures[0] as string;
    await admin.unsafe(`COMMENT ON FUNCTION ${decide} IS 'ratesync 0000000000000000'`);
    const manual = new PostgresEngine({ url: TEST_URL, schema: name, autoCreate: false });
    const auto = new PostgresEngine({ url: TEST_URL, schema: name });
    try {
      expect((await rejectionOf(manual.init())).message).toContain("another version");
      await auto.init();
      const [row] = await admin`SELECT obj_description(to_regprocedure(${decide}), 'pg_proc') AS v`;
      expect(row?.v).toBe(postgresFunctionsVersion(postgresObjects(name)));
      await manual.init();
    } finally {
      await manual.close();
      await auto.close();
    }
  });
});

describe("PostgreSQL engine admit statement", () => {
  /** The admit function's signature, to drop it: a call that still needs it then fails. */
  const admitSignature = (name: string) => postgresObjects(name).signatures[1] as string;
  const bucket = (burst: number): Policy => ({
    rate: { algorithm: "token_bucket", ratePerSecond: 1 / 3600, intervalMs: 3_600_000, burst },
    concurrency: undefined,
  });

  it("admits a call on a row it admitted before with one UPDATE and no function; a refusal still goes to the function", async () => {
    const name = schema("statement");
    const engine = new PostgresEngine({ url: TEST_URL, schema: name });
    try {
      const first = [await engine.decide({ ...call, key: "b", policy: bucket(3) }), await engine.decide(call)];
      expect(first.map((decision) => [decision.allowed, decision.remaining])).toEqual([
        [true, 2],
        [true, 4],
      ]);
      await admin.unsafe(`DROP FUNCTION ${admitSignature(name)}`);
      // Both rows were admitted last: their next admissions need no function.
      const bucketed = await engine.decide({ ...call, key: "b", policy: bucket(3) });
      const windowed = await engine.decide(call);
      expect([bucketed.allowed, bucketed.remaining, bucketed.retryAfterMs]).toEqual([true, 1, 0]);
      // The bucket is full again one interval later than after the first call.
      expect(bucketed.resetAt).toBeCloseTo((first[0]?.resetAt as number) + 3_600_000, 2);
      expect([windowed.allowed, windowed.remaining, windowed.resetAt]).toEqual([
        true,
        3,
        Math.floor(windowed.now / 60_000) * 60_000 + 60_000,
      ]);
      // A fresh key, and a call that does not fit, do need it: an error that says so, and the
      // function is back for the next call.
      expect((await rejectionOf(engine.decide({ ...call, key: "fresh" }))).message).toContain("missing");
      const fits = await engine.decide({ ...call, key: "b", policy: bucket(3), cost: 1 });
      expect([fits.allowed, fits.remaining]).toEqual([true, 0]);
      const refused = await engine.decide({ ...call, key: "b", policy: bucket(3), cost: 1 });
      expect([refused.allowed, refused.refusedBy, refused.remaining]).toEqual([false, "rate", 0]);
      expect(refused.retryAfterMs).toBeCloseTo(3_600_000 - (refused.now - (first[0]?.now as number)), 2);
      // After a refusal the next call goes to the function first.
      await admin.unsafe(`DROP FUNCTION ${admitSignature(name)}`);
      expect((await rejectionOf(engine.decide({ ...call, key: "b", policy: bucket(3) }))).message).toContain("missing");
      expect((await engine.decide({ ...call, key: "b", policy: bucket(3) })).allowed).toBe(false);
    } finally {
      await engine.close();
    }
  });

  it("sends a call the admit statement declines on to the function, and then the calls that waited for it", async () => {
    const name = schema("declined");
    const here = new PostgresEngine({ url: TEST_URL, schema: name });
    const elsewhere = new PostgresEngine({ url: TEST_URL, schema: name });
    try {
      expect((await here.decide({ ...call, policy: bucket(3) })).remaining).toBe(2);
      // Another process spends the rest: this one still expects its next call admitted.
      await elsewhere.decide({ ...call, policy: bucket(3), cost: 2 });
      // The first call takes the statement, which declines; the second waits for it.
      const [first, second] = await Promise.all([
        here.decide({ ...call, policy: bucket(3) }),
        here.decide({ ...call, policy: bucket(3) }),
      ]);
      expect([first.allowed, first.refusedBy, first.remaining]).toEqual([false, "rate", 0]);
      expect([second.allowed, second.refusedBy, second.remaining]).toEqual([false, "rate", 0]);
      expect(first.retryAfterMs).toBeGreaterThan(3_590_000);
      // The row is free again: the next call is sent, not left waiting for a call long settled.
      expect((await here.decide({ ...call, policy: bucket(3) })).refusedBy).toBe("rate");
    } finally {
      await here.close();
      await elsewhere.close();
    }
  });

  it("makes at most 64 admit statements per engine, and never on a client passed in: those calls take the function", async () => {
    const name = schema("statements");
    const given = postgres(TEST_URL, { max: 2, onnotice: () => {} });
    const own = new PostgresEngine({ url: TEST_URL, schema: name });
    const passedIn = new PostgresEngine({ client: given, schema: name });
    try {
      const policies = Array.from({ length: 65 }, (_, i) => bucket(10 + i));
      for (const [i, policy] of policies.entries()) await own.decide({ ...call, key: `k${i}`, policy });
      await passedIn.decide({ ...call, key: "given", policy: bucket(10) });
      await admin.unsafe(`DROP FUNCTION ${admitSignature(name)}`);
      const second = await Promise.allSettled(
        policies.map((policy, i) => own.decide({ ...call, key: `k${i}`, policy })),
      );
      expect(second.slice(0, 64).map((result) => result.status)).toEqual(Array(64).fill("fulfilled"));
      expect(second[64]?.status).toBe("rejected");
      expect(
        second.slice(0, 64).map((result) => (result.status === "fulfilled" ? result.value.remaining : undefined)),
      ).toEqual(policies.slice(0, 64).map((policy) => (policy.rate as { burst: number }).burst - 2));
      expect((await rejectionOf(passedIn.decide({ ...call, key: "given", policy: bucket(10) }))).message).toContain(
        "missing",
      );
    } finally {
      await own.close();
      await passedIn.close();
      await given.end({ timeout: 1 });
    }
  });
});

describe("PostgreSQL engine at work", () => {
  // The engine's own sessions get lock_timeout when they connect; on a client passed in, every
  // write sets it for its own transaction.
  it.each(["its own connections", "a client passed in"])(
    "gives up on a row held by another session within lock_timeout, on %s, with an error that says so",
    async (clientKind) => {
      const name = schema("locked");
      const given =
        clientKind === "a client passed in" ? postgres(TEST_URL, { max: 2, onnotice: () => {} }) : undefined;
      const engine = new PostgresEngine({
        ...(given === undefined ? { url: TEST_URL } : { client: given }),
        schema: name,
        requestTimeoutMs: 3000,
        lockTimeoutMs: 100,
      });
      try {
        await engine.decide(call);
        const release = await holdRow(name, "k");
        const start = performance.now();
        const error = await rejectionOf(engine.decide(call));
        const ms = performance.now() - start;
        await release();
        expect(isRateSyncError(error, "STORE_ERROR")).toBe(true);
        expect(error.message).toContain("lock_timeout");
        expect(ms).toBeLessThan(1000);
        // The refused-by-lock call spent nothing.
        expect((await engine.decide(call)).remaining).toBe(3);
      } finally {
        await engine.close();
        await given?.end({ timeout: 1 });
      }
    },
  );

  it("opens its own sessions with the lock timeout and, unless durable_commit, asynchronous commits", async () => {
    const name = schema("session");
    const fast = new PostgresEngine({ url: TEST_URL, schema: name, lockTimeoutMs: 250 });
    const durable = new PostgresEngine({ url: TEST_URL, schema: name, lockTimeoutMs: 250, durableCommit: true });
    try {
      const settings = async (engine: PostgresEngine) => {
        await engine.init();
        const [row] =
          await engine.client`SELECT current_setting('lock_timeout') AS l, current_setting('synchronous_commit') AS s`;
        return row;
      };
      const [server] = await admin`SELECT current_setting('synchronous_commit') AS s`;
      expect(await settings(fast)).toEqual({ l: "250ms", s: "off" });
      expect(await settings(durable)).toEqual({ l: "250ms", s: server?.s });
    } finally {
      await fast.close();
      await durable.close();
    }
  });

  it("coalesces concurrent calls on one key into batches that decide each call exactly, in order", async () => {
    const name = schema("batch");
    const engine = new PostgresEngine({ url: TEST_URL, schema: name, poolSize: 2 });
    const tb: Policy = {
      rate: { algorithm: "token_bucket", ratePerSecond: 1 / 60, intervalMs: 60_000, burst: 30 },
      concurrency: undefined,
    };
    try {
      await engine.init();
      const decisions = await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          engine.decide({ ...call, key: "hot", policy: tb, cost: i % 2 === 0 ? 1 : 2 }),
        ),
      );
      // Calls are decided in arrival order: admitted while the budget lasts, then refused.
      let budget = 30;
      decisions.forEach((decision, i) => {
        const cost = i % 2 === 0 ? 1 : 2;
        const fits = cost <= budget;
        if (fits) budget -= cost;
        expect({ i, allowed: decision.allowed }).toEqual({ i, allowed: fits });
        if (fits) expect(decision.remaining).toBe(budget);
      });
      expect((await engine.peek({ ...call, key: "hot", policy: tb, cost: 1 })).remaining).toBe(budget);
    } finally {
      await engine.close();
    }
  });

  it("does not decide calls whose deadline passed while they waited in a key's lane: they spend no budget", async () => {
    const name = schema("lapsed");
    // Queries wait on a held row far longer than a call's deadline.
    const engine = new PostgresEngine({ url: TEST_URL, schema: name, requestTimeoutMs: 300, lockTimeoutMs: 5000 });
    const limit: Policy = {
      rate: { algorithm: "fixed_window", limit: 1000, windowMs: 3_600_000 },
      concurrency: undefined,
    };
    const hot = { ...call, key: "lapsed", policy: limit };
    try {
      await engine.decide(hot);
      const release = await holdRow(name, "lapsed");
      // One call goes out and waits on the lock; 299 queue behind it. At its deadline the lane
      // sends the next batch of at most 256 (which waits on the lock too); by that batch's
      // deadline the 43 left have expired, so nothing sends them.
      const outcomes = await Promise.allSettled(Array.from({ length: 300 }, () => engine.decide(hot)));
      expect(outcomes.every((outcome) => outcome.status === "rejected")).toBe(true);
      await new Promise((resolve) => setTimeout(resolve, 400));
      await release();
      // The queries that were sent still run once the lock is free; give them a moment.
      await new Promise((resolve) => setTimeout(resolve, 300));
      const spent = 999 - (await engine.peek(hot)).remaining;
      expect(spent).toBeGreaterThanOrEqual(1);
      expect(spent).toBeLessThanOrEqual(257);
    } finally {
      await engine.close();
    }
  });

  it("sweeps expired rows in the background and skips rows in use", async () => {
    const name = schema("sweep");
    const short: Policy = { rate: { algorithm: "fixed_window", limit: 5, windowMs: 50 }, concurrency: undefined };
    const long: Policy = { rate: { algorithm: "fixed_window", limit: 5, windowMs: 1e10 }, concurrency: undefined };
    const engine = new PostgresEngine({ url: TEST_URL, schema: name, cleanupIntervalMs: 100 });
    const count = async () => (await admin.unsafe(`SELECT count(*)::int AS n FROM "${name}"."ratesync"`))[0]?.n;
    let release = async () => {};
    try {
      // Hold one row before it expires: the sweep must skip it, not wait for it.
      await engine.decide({ ...call, key: "held", policy: short });
      release = await holdRow(name, "held");
      await Promise.all(Array.from({ length: 30 }, (_, i) => engine.decide({ ...call, key: `k${i}`, policy: short })));
      await engine.decide({ ...call, key: "live", policy: long });
      let left = -1;
      for (let i = 0; i < 40 && left !== 2; i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        left = (await count()) as number;
      }
      // The held row and the live one remain.
      expect(left).toBe(2);
      const ids = (await admin.unsafe(`SELECT id FROM "${name}"."ratesync" ORDER BY id`)).map((row) => row.id);
      expect(ids.sort()).toEqual([rowId("l", "held"), rowId("l", "live")].sort());
    } finally {
      await release();
      await engine.close();
    }
  });

  it("reuses the connection freed most recently, two calls to a connection: few calls keep to few server processes", async () => {
    const name = schema("lifo");
    const engine = new PostgresEngine({ url: TEST_URL, schema: name, poolSize: 6 });
    const keys = Array.from({ length: 60 }, (_, i) => `key-${i}`);
    // The server processes that ran one of this engine's statements since `since` (server time).
    const serving = async (since: Date) =>
      (
        await admin`SELECT pid FROM pg_stat_activity WHERE application_name = 'ratesync'
          AND query LIKE ${`%"${name}"%`} AND state_change > ${since}`
      ).length;
    try {
      // A burst opens the whole pool.
      await Promise.all(keys.map((key) => engine.decide({ ...call, key })));
      const [opened] = await admin`SELECT count(*)::int AS n FROM pg_stat_activity
        WHERE application_name = 'ratesync' AND query LIKE ${`%"${name}"%`}`;
      expect(opened?.n).toBe(6);
      const serverNow = async () => (await admin`SELECT clock_timestamp() AS now`)[0]?.now as Date;
      const sequential = await serverNow();
      for (const key of keys) await engine.decide({ ...call, key });
      expect(await serving(sequential)).toBe(1);
      // Two at a time: pipelined on that one connection. Four at a time: two connections.
      const paired = await serverNow();
      for (let i = 0; i < keys.length; i += 2) {
        await Promise.all(keys.slice(i, i + 2).map((key) => engine.decide({ ...call, key })));
      }
      expect(await serving(paired)).toBe(1);
      const fours = await serverNow();
      for (let i = 0; i < keys.length; i += 4) {
        await Promise.all(keys.slice(i, i + 4).map((key) => engine.decide({ ...call, key })));
      }
      expect(await serving(fours)).toBe(2);
    } finally {
      await engine.close();
    }
  });

  it("never closes a client it was given, and closes the one it created", async () => {
    const given = postgres(TEST_URL, { max: 2, onnotice: () => {} });
    const name = schema("own");
    const borrowed = new PostgresEngine({ client: given, schema: name });
    const owned = new PostgresEngine({ url: TEST_URL, schema: name });
    try {
      await borrowed.decide(call);
      await owned.decide(call);
      borrowed.onRelease({ limiter: "l", key: "k" }, () => {});
      await borrowed.close();
      await owned.close();
      expect((await given`SELECT 1 AS one`)[0]?.one).toBe(1);
      expect(isRateSyncError(await rejectionOf(owned.decide(call)), "STORE_ERROR")).toBe(true);
    } finally {
      await given.end({ timeout: 1 });
    }
  });
});
