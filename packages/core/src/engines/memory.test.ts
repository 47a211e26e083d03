import { describe, expect, it } from "vitest";
import type { Policy } from "../policy.js";
import { thrownBy } from "../testing/errors.js";
import { FakeClock } from "../testing/fake-clock.js";
import { MemoryEngine } from "./memory.js";

const bucket: Policy = {
  rate: { algorithm: "token_bucket", ratePerSecond: 10, burst: 2, intervalMs: 100 },
  concurrency: undefined,
};
const slots: Policy = { rate: undefined, concurrency: { maxConcurrent: 2, leaseMs: 1000 } };

function call(engine: MemoryEngine, key: string, policy = bucket, leaseId?: string) {
  return engine.decide({ limiter: "l", key, policy, cost: 1, leaseId });
}

describe("MemoryEngine", () => {
  it("keeps limiters and keys apart, whatever the key looks like", () => {
    const engine = new MemoryEngine({}, new FakeClock());
    const keys = ["a", "a:b", "a\u0000b", "{a}", "🔑", "x".repeat(4096), " "];
    for (const key of keys) {
      expect(call(engine, key).allowed).toBe(true);
      expect(call(engine, key).allowed).toBe(true);
      expect(call(engine, key).allowed).toBe(false);
    }
    // The same key under another limiter has its own budget.
    expect(engine.decide({ limiter: "other", key: "a", policy: bucket, cost: 2, leaseId: undefined }).allowed).toBe(
      true,
    );
  });

  it("drops idle keys as new keys arrive, without timers", async () => {
    const clock = new FakeClock();
    const engine = new MemoryEngine({}, clock);
    for (let i = 0; i < 1000; i++) call(engine, `k${i}`);
    expect(engine.size).toBe(1000);
    // Every bucket is full again after 100 ms: the keys are idle.
    await clock.advance(200);
    for (let i = 0; i < 1000; i++) call(engine, `fresh${i}`);
    expect(engine.size).toBeLessThan(1100);
  });

  it("stays bounded under a flood of distinct keys without resetting live ones", async () => {
    const clock = new FakeClock();
    const engine = new MemoryEngine({ maxKeys: 100 }, clock);
    for (let i = 0; i < 100; i++) {
      call(engine, `live${i}`);
      call(engine, `live${i}`);
    }
    // Every key is live (its bucket is empty): a new key is a store failure, not an eviction.
    const error = thrownBy(() => call(engine, "newcomer"));
    expect(error.code).toBe("STORE_ERROR");
    expect(error.message).toContain("max_keys");
    expect(call(engine, "live7").allowed).toBe(false);
    expect(engine.size).toBe(100);
    // Once they go idle, new keys fit again: a flood of 1,000 keys, each live for 100 ms, one
    // every 2 ms, never needs more than 50 at once and is always admitted.
    await clock.advance(300);
    for (let i = 0; i < 1000; i++) {
      expect(call(engine, `flood${i}`).allowed).toBe(true);
      await clock.advance(2);
    }
    expect(engine.size).toBeLessThanOrEqual(100);
  });

  it("notifies release listeners of the key only", () => {
    const engine = new MemoryEngine({}, new FakeClock());
    const heard: string[] = [];
    const stopA = engine.onRelease({ limiter: "l", key: "a" }, () => heard.push("a"));
    engine.onRelease({ limiter: "l", key: "b" }, () => heard.push("b"));
    call(engine, "a", slots, "lease-1");
    call(engine, "b", slots, "lease-2");
    expect(engine.release({ limiter: "l", key: "a", leaseId: "lease-1" })).toBe(true);
    expect(engine.release({ limiter: "l", key: "a", leaseId: "lease-1" })).toBe(false);
    expect(heard).toEqual(["a"]);
    stopA();
    call(engine, "a", slots, "lease-3");
    engine.release({ limiter: "l", key: "a", leaseId: "lease-3" });
    expect(heard).toEqual(["a"]);
  });

  it("renews live leases and refuses to revive expired ones", async () => {
    const clock = new FakeClock();
    const engine = new MemoryEngine({}, clock);
    call(engine, "k", slots, "lease");
    await clock.advance(900);
    expect(engine.renew({ limiter: "l", key: "k", leaseId: "lease", leaseMs: 1000 })).toBe(clock.now() + 1000);
    await clock.advance(999);
    expect(engine.peek({ limiter: "l", key: "k", policy: slots, cost: 1 }).inUse).toBe(1);
    await clock.advance(1);
    expect(engine.renew({ limiter: "l", key: "k", leaseId: "lease", leaseMs: 1000 })).toBeUndefined();
    expect(engine.peek({ limiter: "l", key: "k", policy: slots, cost: 1 }).inUse).toBe(0);
  });

  it("reset forgets the key and close forgets everything", async () => {
    const engine = new MemoryEngine({}, new FakeClock());
    call(engine, "k");
    call(engine, "k");
    engine.reset({ limiter: "l", key: "k" });
    expect(call(engine, "k").allowed).toBe(true);
    await engine.close();
    expect(engine.size).toBe(0);
  });
});
