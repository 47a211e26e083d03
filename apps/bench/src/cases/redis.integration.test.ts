import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCase, SuiteUnavailableError } from "../harness.js";
import { createRedisSuite } from "./redis.js";

const url = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const tiny = { rounds: 1, seconds: 0.05, warmupSeconds: 0.02, progress: () => {} };

describe("the redis suite", () => {
  // Small on purpose: the point is that every contender answers as checked and cleans up.
  const suite = createRedisSuite({ url, distinctKeys: 50, inFlight: [1, 8, 64] });
  let admin: Redis;

  beforeAll(async () => {
    admin = new Redis(url, { lazyConnect: true });
    await admin.connect();
    await suite.open?.();
  });

  afterAll(async () => {
    await suite.close?.();
    admin.disconnect();
  });

  it("has every key shape x path x concurrency, with the three contenders and the targets of the issue", () => {
    expect(suite.cases.map((benchCase) => benchCase.name)).toEqual([
      "hot key admitted, 1 in flight",
      "hot key admitted, 8 in flight",
      "hot key admitted, 64 in flight",
      "hot key rejected, 1 in flight",
      "hot key rejected, 8 in flight",
      "hot key rejected, 64 in flight",
      "50 keys admitted, 1 in flight",
      "50 keys admitted, 8 in flight",
      "50 keys admitted, 64 in flight",
      "50 keys rejected, 1 in flight",
      "50 keys rejected, 8 in flight",
      "50 keys rejected, 64 in flight",
    ]);
    for (const benchCase of suite.cases) {
      expect(benchCase.contenders.map((contender) => contender.role)).toEqual(["ours", "peer", "ceiling"]);
      expect(benchCase.latency).toBe(true);
      const ceilingTarget = benchCase.inFlight === 64 ? [{ against: "raw EVALSHA", minRatio: 0.8 }] : [];
      expect(benchCase.targets).toEqual([{ against: "rate-limiter-flexible", minRatio: 1 }, ...ceilingTarget]);
    }
  });

  it.each([
    "hot key admitted, 8 in flight",
    "hot key rejected, 8 in flight",
    "50 keys admitted, 8 in flight",
    "50 keys rejected, 8 in flight",
  ])("%s: every contender passes its checks and leaves no key behind", async (name) => {
    const benchCase = suite.cases.find((candidate) => candidate.name === name);
    if (benchCase === undefined) throw new Error(`no case "${name}"`);
    const result = await runCase(benchCase, tiny);
    for (const contender of result.contenders) {
      expect(contender.calls).toBeGreaterThan(0);
      expect(contender.p99Ms).toBeGreaterThan(0);
    }
    expect(result.ratios.map((ratio) => ratio.role)).toEqual(["peer", "ceiling"]);
    expect(await admin.keys(`ratesync-bench:${process.pid}.*`)).toEqual([]);
  });
});

describe("createRedisSuite().open()", () => {
  it("rejects with a SuiteUnavailableError that says where and what to do when nothing listens", async () => {
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    const suite = createRedisSuite({ url: "redis://:secret@127.0.0.1:1" });
    try {
      const error: unknown = await suite.open?.().then(
        () => undefined,
        (reason: unknown) => reason,
      );
      expect(error).toBeInstanceOf(SuiteUnavailableError);
      expect((error as Error).message).toMatch(/not reachable at redis:\/\/:\*\*\*@127\.0\.0\.1:1\b.*--redis-url/);
      expect((error as Error).message).not.toContain("secret");
    } finally {
      await suite.close?.();
    }
  });
});
