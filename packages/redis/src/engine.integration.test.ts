import { createHash } from "node:crypto";
import { createRateSync, type RateSync } from "@ratesync/core";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRedisEngine } from "./engine.js";
import { keysFor } from "./keys.js";
import { FIXED_WINDOW, fixedWindowScript, luaNumber, TOKEN_BUCKET, tokenBucketScript } from "./scripts.js";

const url = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const prefix = `ratesync-test-${process.pid}-${Date.now()}:`;
let rs: RateSync;

beforeAll(async () => {
  rs = createRateSync({ autoload: false });
  rs.configureStore("r", { engine: createRedisEngine({ url, keyPrefix: prefix }), requestTimeoutMs: 2000 });
  rs.configureLimiter("tb", { store: "r", ratePerSecond: 10, burst: 3 });
  rs.configureLimiter("sw", { store: "r", algorithm: "sliding_window", limit: 3, windowSeconds: 1 });
  rs.configureLimiter("fw", { store: "r", algorithm: "fixed_window", limit: 3, windowSeconds: 60 });
  rs.configureLimiter("cc", { store: "r", ratePerSecond: 100, burst: 10, maxConcurrent: 2, leaseSeconds: 2 });
  await rs.initializeAllLimiters();
});

afterAll(async () => {
  await rs.close();
});

describe("Redis engine smoke", () => {
  it.each(["tb", "sw", "fw"])("%s admits 3 then refuses", async (id) => {
    const results = [];
    for (let i = 0; i < 4; i++) results.push(await rs.tryAcquire(id, { key: "k" }));
    expect(results.map((d) => d.allowed)).toEqual([true, true, true, false]);
    expect(results.map((d) => d.remaining)).toEqual([2, 1, 0, 0]);
    expect(results[3]?.retryAfterMs).toBeGreaterThan(0);
    expect(results.every((d) => !d.degraded)).toBe(true);
  });

  it("limits concurrency and wakes a waiter on release", async () => {
    const a = await rs.acquire("cc", { key: "k" });
    const b = await rs.acquire("cc", { key: "k" });
    expect((await rs.getLimiter("cc").state("k")).concurrency).toEqual({ limit: 2, inUse: 2, remaining: 0 });
    const start = Date.now();
    setTimeout(() => void a.release(), 50);
    const c = await rs.acquire("cc", { key: "k", timeout: 5 });
    expect(Date.now() - start).toBeLessThan(500);
    await b.release();
    await c.release();
    expect((await rs.getLimiter("cc").state("k")).concurrency?.inUse).toBe(0);
  });
});

describe("Redis engine counts", () => {
  // The small scripts append a new count to the stored time as plain Lua text, which is exact
  // only below 10^14 (Lua prints numbers with 14 digits): past it they must write the count in
  // full, or the next call reads a rounded one.
  it.each([
    ["token_bucket", "tokenBucket", { ratePerSecond: 1, burst: 3e14 + 3 }],
    ["fixed_window", "fixedWindow", { algorithm: "fixed_window", limit: 3e14 + 3, windowSeconds: 3600 }],
    // With a concurrency limit the general script decides, and writes the bucket itself.
    ["token_bucket with slots", "tokenBucket", { ratePerSecond: 1, burst: 3e14 + 3, maxConcurrent: 5 }],
  ] as const)("%s stores counts past 10^14 exactly", async (name, field, policy) => {
    const engine = createRedisEngine({ url, keyPrefix: prefix });
    const id = `big-${name.replaceAll(" ", "-")}`;
    rs.configureStore(id, { engine });
    rs.configureLimiter(id, { store: id, ...policy });
    const answers = [];
    for (let i = 0; i < 2; i++) {
      const { allowed, degraded } = await rs.tryAcquire(id, { key: "k", cost: 1e14 + 1 });
      answers.push({ allowed, degraded });
    }
    // Not degraded: a write Redis refused would fail the script, and fail-open would admit anyway.
    expect(answers).toEqual([
      { allowed: true, degraded: false },
      { allowed: true, degraded: false },
    ]);
    const stored = await engine.client.get(keysFor(prefix, id, "k")[field]);
    // The key would outlive every test run (its expiry is the 10^15 ms cap): delete it.
    await rs.getLimiter(id).reset("k");
    expect(stored?.split(" ")[1]).toBe("200000000000002");
    expect(await engine.client.exists(keysFor(prefix, id, "k")[field])).toBe(0);
  });
});

describe("Redis from rate-sync.toml", () => {
  it('loads @ratesync/redis for engine = "redis", with an environment variable in the URL', async () => {
    const toml = createRateSync({ autoload: false, env: { TEST_REDIS_URL: url } });
    toml.loadConfigFromString(`
[stores.main]
engine = "redis"
url = "\${TEST_REDIS_URL:-redis://127.0.0.1:6379}"
key_prefix = "${prefix}toml:"
request_timeout_ms = 2000

[limiters.login]
store = "main"
algorithm = "sliding_window"
limit = 2
window_seconds = 300
`);
    try {
      const results = [];
      for (let i = 0; i < 3; i++) results.push((await toml.tryAcquire("login", { key: "alice" })).allowed);
      expect(results).toEqual([true, true, false]);
      expect(toml.listStores().main).toEqual({ id: "main", engine: "redis", open: true });
    } finally {
      await toml.close();
    }
  });
});

describe("Redis engine writes", () => {
  it("sends the calls of one tick in a few batched socket writes, with every reply its own", async () => {
    const { Redis } = await import("ioredis");
    const client = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, lazyConnect: true });
    const own = createRateSync({ autoload: false });
    try {
      await client.connect();
      own.configureStore("r", { engine: createRedisEngine({ client, keyPrefix: `${prefix}writes:` }) });
      own.configureLimiter("fw", { store: "r", algorithm: "fixed_window", limit: 40, windowSeconds: 60 });
      await own.tryAcquire("fw", { key: "warm" });

      // Count what reaches the socket: single writes and batched writes (writev) separately.
      const socket = client.stream as unknown as { _write: unknown; _writev: unknown };
      const counts = { write: 0, writev: 0, chunks: 0 };
      const write = socket._write as (...args: unknown[]) => void;
      const writev = socket._writev as (chunks: unknown[], ...rest: unknown[]) => void;
      socket._write = function (this: unknown, ...args: unknown[]) {
        counts.write++;
        return write.apply(this, args);
      };
      socket._writev = function (this: unknown, chunks: unknown[], ...rest: unknown[]) {
        counts.writev++;
        counts.chunks += chunks.length;
        return writev.call(this, chunks, ...rest);
      };
      // 50 calls and one command of the user's own, all in one tick, on one key of limit 40.
      const calls = Array.from({ length: 50 }, () => own.tryAcquire("fw", { key: "k" }));
      const pong = client.ping();
      const decisions = await Promise.all(calls);
      expect(await pong).toBe("PONG");
      socket._write = write;
      socket._writev = writev;

      // The first call at once, the other 49 in batches of 16 (the last batch also holds the
      // user's PING): 5 writes, not 51.
      expect(counts.write + counts.writev).toBeLessThanOrEqual(5);
      expect(counts.write + counts.chunks).toBe(51);
      expect(decisions.filter((d) => d.allowed)).toHaveLength(40);
      expect(decisions.map((d) => d.remaining).slice(0, 40)).toEqual(Array.from({ length: 40 }, (_, i) => 39 - i));
    } finally {
      await own.close();
      client.disconnect();
    }
  });
});

describe("Redis engine policy scripts", () => {
  const sha = (lua: string) => createHash("sha1").update(lua).digest("hex");

  /** A registry on a client of its own whose EVALSHA calls are recorded: the script and its ARGV count. */
  async function recorded(keyPrefix: string) {
    const { Redis } = await import("ioredis");
    const client = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, lazyConnect: true });
    await client.connect();
    const calls: { sha: string; argv: number }[] = [];
    const evalsha = client.evalsha.bind(client) as (...args: unknown[]) => Promise<unknown>;
    (client as unknown as { evalsha: unknown }).evalsha = (...args: unknown[]) => {
      calls.push({ sha: args[0] as string, argv: args.length - 2 - Number(args[1]) });
      return evalsha(...args);
    };
    const own = createRateSync({ autoload: false });
    own.configureStore("r", { engine: createRedisEngine({ client, keyPrefix: `${prefix}${keyPrefix}` }) });
    const close = async () => {
      await own.close();
      client.disconnect();
    };
    return { own, calls, close };
  }

  it("decides at cost 1 with a script holding the policy's numbers, other costs with the ARGV script, on one state", async () => {
    const { own, calls, close } = await recorded("policy:");
    try {
      own.configureLimiter("tb", { store: "r", ratePerSecond: 7, burst: 5 });
      own.configureLimiter("fw", { store: "r", algorithm: "fixed_window", limit: 4, windowSeconds: 60 });
      const tb = [await own.tryAcquire("tb", { key: "k" }), await own.tryAcquire("tb", { key: "k", cost: 2 })];
      const fw = [await own.tryAcquire("fw", { key: "k" }), await own.tryAcquire("fw", { key: "k", cost: 2 })];
      tb.push(await own.tryAcquire("tb", { key: "k" }));
      fw.push(await own.tryAcquire("fw", { key: "k" }));

      expect(tb.map((d) => [d.allowed, d.remaining])).toEqual([
        [true, 4],
        [true, 2],
        [true, 1],
      ]);
      expect(fw.map((d) => [d.allowed, d.remaining])).toEqual([
        [true, 3],
        [true, 1],
        [true, 0],
      ]);
      const tbOwn = sha(tokenBucketScript({ a: 1000 / 7, b: 5 }));
      const fwOwn = sha(fixedWindowScript({ a: 60_000, b: 4 }));
      expect(calls).toEqual([
        { sha: tbOwn, argv: 0 },
        { sha: sha(TOKEN_BUCKET), argv: 3 },
        { sha: fwOwn, argv: 0 },
        { sha: sha(FIXED_WINDOW), argv: 3 },
        { sha: tbOwn, argv: 0 },
        { sha: fwOwn, argv: 0 },
      ]);
    } finally {
      await close();
    }
  });

  it("makes at most 64 policy scripts per engine, then passes the numbers in ARGV with the same decisions", async () => {
    const { own, calls, close } = await recorded("many-policies:");
    try {
      // 66 policies with different numbers, and one more with the first one's numbers.
      for (let i = 0; i < 66; i++) own.configureLimiter(`tb${i}`, { store: "r", ratePerSecond: 10 + i, burst: 3 });
      own.configureLimiter("same", { store: "r", ratePerSecond: 10, burst: 3 });
      const decisions = [];
      for (let i = 0; i < 66; i++) decisions.push(await own.tryAcquire(`tb${i}`, { key: "k" }));
      decisions.push(await own.tryAcquire("same", { key: "k" }));

      expect(decisions.every((d) => d.allowed && d.remaining === 2)).toBe(true);
      expect(calls.slice(0, 64).every((call) => call.argv === 0)).toBe(true);
      expect(new Set(calls.slice(0, 64).map((call) => call.sha)).size).toBe(64);
      expect(calls.slice(64, 66)).toEqual([
        { sha: sha(TOKEN_BUCKET), argv: 3 },
        { sha: sha(TOKEN_BUCKET), argv: 3 },
      ]);
      // Equal numbers share the script made first.
      expect(calls[66]).toEqual({ sha: calls[0]?.sha, argv: 0 });
    } finally {
      await close();
    }
  });

  it("writes numbers into a script that Redis's Lua reads back as exactly the same doubles", async () => {
    const { Redis } = await import("ioredis");
    const client = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, lazyConnect: true });
    try {
      await client.connect();
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.double({ noNaN: true, noDefaultInfinity: true }), { minLength: 1, maxLength: 100 }),
          async (xs) => {
            const lua = `return {${xs.map((x) => `string.format('%.17g', ${luaNumber(x)})`).join(", ")}}`;
            const read = ((await client.eval(lua, 0)) as string[]).map(Number);
            expect(read).toEqual(xs.map((x) => (Object.is(x, -0) ? 0 : x)));
          },
        ),
        { numRuns: 25 },
      );
      expect(() => luaNumber(Number.POSITIVE_INFINITY)).toThrow(RangeError);
      expect(() => luaNumber(Number.NaN)).toThrow(/finite number, got NaN/);
    } finally {
      client.disconnect();
    }
  });
});
