/**
 * Driver of `postgres-gc-survival.sh`: one contender at one call in flight on one hot key, every
 * call admitted, run under `node --trace-gc-nvp`. Prints `measure` once its warm-up is over (the
 * script counts the collections after it) and `calls <n>` at the end.
 *
 * Usage: node --trace-gc-nvp scripts/postgres-gc-survival.mjs <ratesync|raw>
 * Environment: BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test), SECONDS
 * (measured, default 3).
 */
import { createRateSync } from "@ratesync/core";
import { createPostgresEngine } from "@ratesync/postgres";
import postgres from "postgres";

const contender = process.argv[2];
const url = process.env.BENCH_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const seconds = Number(process.env.SECONDS ?? 3);
const schema = `ratesync_gc_${process.pid}`;

/** Calls `call` one at a time for `forSeconds`; resolves to the number of calls. */
async function drive(call, forSeconds) {
  const end = performance.now() + forSeconds * 1000;
  let calls = 0;
  while (performance.now() < end) {
    for (let i = 0; i < 64; i++) await call();
    calls += 64;
  }
  return calls;
}

/** ratesync's limiter on its own engine, as `rate-sync.toml` would configure it. */
async function ratesync() {
  const engine = createPostgresEngine({ url, schema, table: "limits", requestTimeoutMs: 5000 });
  const registry = createRateSync({ autoload: false });
  registry.configureStore("pg", { engine, requestTimeoutMs: 5000 });
  registry.configureLimiter("gc", { store: "pg", algorithm: "token_bucket", ratePerSecond: 1, burst: 1e9 });
  await registry.initializeAllLimiters();
  const limiter = registry.getLimiter("gc");
  return {
    call: async () => {
      if (!(await limiter.tryAcquire({ key: "hot" })).allowed) throw new Error("a call was refused");
    },
    close: async () => {
      await registry.close();
      await engine.close();
    },
  };
}

/** The bench's ceiling: one prepared upsert of a counter through postgres.js. */
async function raw() {
  const sql = postgres(url, {
    max: 1,
    onnotice: () => {},
    fetch_types: false,
    connection: { synchronous_commit: "off" },
  });
  const table = `"${schema}"."raw"`;
  await sql.unsafe(
    `CREATE TABLE ${table} (k text PRIMARY KEY, n bigint NOT NULL, expires_at double precision NOT NULL)`,
  );
  const text = `INSERT INTO ${table} AS r (k, n, expires_at) VALUES ($1, 1, $2) ON CONFLICT (k) DO UPDATE SET n = r.n + 1, expires_at = excluded.expires_at RETURNING n`;
  return {
    call: async () => {
      await sql.unsafe(text, ["hot", Date.now() + 86_400_000], { prepare: true }).values();
    },
    close: () => sql.end({ timeout: 1 }),
  };
}

const contenders = { ratesync, raw };
const make = contenders[contender];
if (make === undefined) throw new Error(`Unknown contender "${contender}": use ratesync or raw.`);
const admin = postgres(url, { max: 1, onnotice: () => {} });
await admin.unsafe(`CREATE SCHEMA "${schema}"`);
try {
  const { call, close } = await make();
  await drive(call, 1);
  console.log("measure");
  console.log(`calls ${await drive(call, seconds)}`);
  await close();
} finally {
  await admin.unsafe(`DROP SCHEMA "${schema}" CASCADE`);
  await admin.end({ timeout: 1 });
}
