import { createRateSync, type Decision, isRateSyncError, type RateSync } from "@ratesync/core";
import { rejectionOf } from "@ratesync/core/testing";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRedisEngine, RedisEngine } from "./engine.js";
import { RedisServer, waitFor } from "./test-support/redis-servers.js";

// A Redis of this file's own, which the tests kill and restart.
const server = new RedisServer(6391);
const secured = new RedisServer(6392, ["--requirepass", "s3cret-pass"]);

beforeAll(async () => {
  await Promise.all([server.start(), secured.start()]);
}, 30_000);

afterAll(async () => {
  await Promise.all([server.stop(), secured.stop()]);
});

function registry(url: string, requestTimeoutMs = 300): RateSync {
  const rs = createRateSync({ autoload: false });
  rs.configureStore("r", { engine: createRedisEngine({ url, keyPrefix: "fault:" }), requestTimeoutMs });
  rs.configureLimiter("open", { store: "r", ratePerSecond: 1000, burst: 1000 });
  rs.configureLimiter("closed", { store: "r", ratePerSecond: 1000, burst: 1000, failClosed: true });
  rs.configureLimiter("slots", { store: "r", maxConcurrent: 2, failClosed: true });
  return rs;
}

async function timed<T>(run: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const start = performance.now();
  const value = await run();
  return { value, ms: performance.now() - start };
}

describe("Redis failure and recovery", () => {
  it("settles every call within its deadline while Redis is down, then recovers by itself", async () => {
    const rs = registry(server.url);
    try {
      expect((await rs.tryAcquire("open")).degraded).toBe(false);
      await server.kill();

      for (let i = 0; i < 3; i++) {
        const open = await timed(() => rs.tryAcquire("open"));
        expect(open.value.allowed).toBe(true);
        expect(open.value.degraded).toBe(true);
        expect(open.ms).toBeLessThan(300 + 200);
        const closed = await timed(() => rejectionOf(rs.tryAcquire("closed")));
        expect(closed.value.code).toBe("STORE_UNAVAILABLE");
        expect(closed.ms).toBeLessThan(300 + 200);
        const waiting = await timed(() => rejectionOf(rs.acquire("slots", { timeout: 5 })));
        expect(waiting.value.code).toBe("STORE_UNAVAILABLE");
        expect(waiting.ms).toBeLessThan(300 + 200);
      }

      await server.start();
      const back = performance.now();
      let decision: Decision | undefined;
      await waitFor(
        "exact decisions after the restart",
        async () => {
          decision = await rs.tryAcquire("open");
          return !decision.degraded;
        },
        5000,
      );
      const recoveryMs = performance.now() - back;
      console.log(`redis: decisions exact again ${recoveryMs.toFixed(0)} ms after the restart`);
      expect(recoveryMs).toBeLessThan(5000);
      // Exact again: the restarted Redis lost the state, so a fresh budget.
      expect(decision?.remaining).toBe(999);
      expect((await rs.tryAcquire("closed")).degraded).toBe(false);
    } finally {
      await rs.close();
    }
  }, 30_000);

  it("survives SCRIPT FLUSH without a caller-visible error", async () => {
    const rs = registry(server.url, 2000);
    const admin = new Redis(server.url);
    try {
      rs.configureLimiter("window", { store: "r", algorithm: "fixed_window", limit: 10, windowSeconds: 3600 });
      expect((await rs.tryAcquire("window", { key: "flush" })).degraded).toBe(false);
      await admin.script("FLUSH");
      const after = await rs.tryAcquire("window", { key: "flush" });
      expect(after.degraded).toBe(false);
      expect(after.remaining).toBe(8);
    } finally {
      admin.disconnect();
      await rs.close();
    }
  });

  it("never puts the password of a URL into an error message", async () => {
    const wrong = registry("redis://:wrong-password-123@127.0.0.1:6392", 1000);
    const right = registry("redis://:s3cret-pass@127.0.0.1:6392", 1000);
    try {
      const degraded = await wrong.tryAcquire("open");
      expect(degraded.degraded).toBe(true);
      const error = await rejectionOf(wrong.tryAcquire("closed"));
      for (const text of [
        degraded.degraded ? degraded.reason : "",
        error.message,
        String(error.cause),
        JSON.stringify(error.details),
      ]) {
        expect(text).not.toContain("wrong-password-123");
      }
      expect((await right.tryAcquire("open")).degraded).toBe(false);
    } finally {
      await wrong.close();
      await right.close();
    }
  });

  it("gives every key it writes an expiry", async () => {
    const prefix = `ttl-${process.pid}:`;
    const rs = createRateSync({ autoload: false });
    rs.configureStore("r", { engine: createRedisEngine({ url: server.url, keyPrefix: prefix }) });
    rs.configureLimiter("tb", { store: "r", ratePerSecond: 5, burst: 2, maxConcurrent: 3 });
    rs.configureLimiter("sw", { store: "r", algorithm: "sliding_window", limit: 3, windowSeconds: 10 });
    rs.configureLimiter("fw", { store: "r", algorithm: "fixed_window", limit: 3, windowSeconds: 10 });
    const admin = new Redis(server.url);
    try {
      for (const id of ["tb", "sw", "fw"]) {
        for (let i = 0; i < 4; i++) {
          const decision = await rs.tryAcquire(id, { key: `k${i % 2}`, cost: i === 3 ? 0 : 1 });
          await decision.slot?.release();
        }
      }
      const held = await rs.acquire("tb", { key: "held" });
      const keys = await admin.keys(`${prefix}*`);
      expect(keys.length).toBeGreaterThan(5);
      for (const key of keys) expect(await admin.pttl(key), key).toBeGreaterThan(0);
      await held.release();
    } finally {
      admin.disconnect();
      await rs.close();
    }
  });

  it("never closes a client it was given, and closes the one it created", async () => {
    const given = new Redis(server.url, { enableOfflineQueue: false, lazyConnect: true });
    await given.connect();
    const borrowed = new RedisEngine({ client: given, keyPrefix: "own:" });
    const owned = new RedisEngine({ url: server.url, keyPrefix: "own:" });
    const policy = { rate: { algorithm: "fixed_window", limit: 5, windowMs: 1000 }, concurrency: undefined } as const;
    await borrowed.decide({ limiter: "x", key: "", policy, cost: 1, leaseId: undefined });
    await owned.decide({ limiter: "x", key: "", policy, cost: 1, leaseId: undefined });
    const ownedClient = owned.client;
    await borrowed.close();
    await owned.close();
    expect(given.status).toBe("ready");
    expect(ownedClient.status).toBe("end");
    expect(
      isRateSyncError(await rejectionOf(owned.decide({ limiter: "x", key: "", policy, cost: 1, leaseId: undefined }))),
    ).toBe(true);
    given.disconnect();
  });
});
