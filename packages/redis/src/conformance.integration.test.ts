import { describeEngineConformance } from "@ratesync/core/testing";
import { afterAll, beforeAll } from "vitest";
import { RedisEngine } from "./engine.js";
import { RedisCluster } from "./test-support/redis-servers.js";

const url = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const run = `conf-${process.pid}-${Date.now()}`;

describeEngineConformance({
  name: "redis standalone",
  clock: "store",
  shared: true,
  create: () => new RedisEngine({ url, keyPrefix: `${run}:`, requestTimeoutMs: 2000 }),
});

// A 3-master Cluster of this file's own (other test files use other ports), started before any
// test so that no case pays for its creation.
const cluster = new RedisCluster(7111);
beforeAll(() => cluster.start(), 60_000);
afterAll(() => cluster.stop(), 30_000);

describeEngineConformance({
  name: "redis cluster",
  clock: "store",
  shared: true,
  create: async () => {
    const engine = new RedisEngine({ nodes: cluster.nodes, keyPrefix: `${run}:`, requestTimeoutMs: 2000 });
    // A fresh Cluster client discovers the slots first, which can take longer than one call's deadline.
    await engine.init();
    return engine;
  },
});
