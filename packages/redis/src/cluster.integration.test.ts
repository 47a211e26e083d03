import { createRateSync, type RateSync } from "@ratesync/core";
import { Cluster } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { keysFor } from "./keys.js";
import { RedisCluster } from "./test-support/redis-servers.js";

// A 3-master Redis Cluster of this file's own, on loopback ports 7101-7103.
const cluster = new RedisCluster(7101);
let rs: RateSync;

beforeAll(async () => {
  await cluster.start();
  rs = createRateSync({ autoload: false });
  rs.configureStore("c", { engine: "redis", nodes: cluster.nodes, keyPrefix: "cl:", requestTimeoutMs: 2000 });
  rs.configureLimiter("both", { store: "c", ratePerSecond: 50, burst: 3, maxConcurrent: 2 });
  rs.configureLimiter("window", { store: "c", algorithm: "sliding_window", limit: 3, windowSeconds: 60 });
  // Connect eagerly: a fresh Cluster client discovers its slots first, which on a loaded machine
  // can take longer than one call's deadline (the first call would then be degraded).
  await rs.initializeAllLimiters();
}, 60_000);

afterAll(async () => {
  await rs?.close();
  await cluster.stop();
}, 30_000);

describe("Redis Cluster", () => {
  it("decides rate and concurrency together on keys spread over every master", async () => {
    const keys = Array.from({ length: 30 }, (_, i) => `user-${i}:{tricky}`);
    for (const key of keys) {
      const first = await rs.tryAcquire("both", { key });
      const second = await rs.tryAcquire("both", { key });
      const third = await rs.tryAcquire("both", { key });
      expect([first.allowed, second.allowed, third.allowed, first.degraded]).toEqual([true, true, false, false]);
      expect(third.policy.kind).toBe("concurrency");
      await first.slot?.release();
      await second.slot?.release();
    }
    for (const key of keys.slice(0, 5)) {
      for (let i = 0; i < 3; i++) expect((await rs.tryAcquire("window", { key })).allowed).toBe(true);
      expect((await rs.tryAcquire("window", { key })).allowed).toBe(false);
    }
  });

  it("puts every key of one (limiter, key) in one hash slot, and different keys on several masters", async () => {
    const probe = new Cluster(cluster.nodes.map((url) => ({ host: "127.0.0.1", port: Number(new URL(url).port) })));
    try {
      const slotsSeen = new Set<number>();
      for (let i = 0; i < 30; i++) {
        const { all } = keysFor("cl:", "both", `user-${i}:{tricky}`);
        const slots = await Promise.all(all.map((key) => probe.cluster("KEYSLOT", key)));
        expect(new Set(slots).size).toBe(1);
        slotsSeen.add(slots[0] as number);
      }
      expect(slotsSeen.size).toBeGreaterThan(10);
    } finally {
      probe.disconnect();
    }
  });

  it("wakes a waiter through pub/sub on Cluster", async () => {
    const a = await rs.acquire("both", { key: "waiter" });
    const b = await rs.acquire("both", { key: "waiter" });
    const start = Date.now();
    setTimeout(() => void a.release(), 100);
    const c = await rs.acquire("both", { key: "waiter", timeout: 5 });
    expect(Date.now() - start).toBeLessThan(800);
    await b.release();
    await c.release();
  });
});
