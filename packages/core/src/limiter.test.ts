import { describe, expect, it } from "vitest";
import { MemoryEngine } from "./engines/memory.js";
import { isRateSyncError } from "./errors.js";
import { createRateSync, type RateSync } from "./rate-sync.js";
import type { Slot } from "./slot.js";
import { rejectionOf } from "./testing/errors.js";
import { FakeClock } from "./testing/fake-clock.js";
import { FlakyEngine } from "./testing/flaky-engine.js";

function setup(clock = new FakeClock()): { clock: FakeClock; rs: RateSync } {
  const rs = createRateSync({ clock, random: () => 0, autoload: false });
  rs.configureStore("mem", { engine: "memory" });
  return { clock, rs };
}

describe("waiting on a token bucket", () => {
  it("admits 100 per second at 100/s with burst 1 to a tight loop of waiting acquirers, never closer than 10 ms", async () => {
    const { clock, rs } = setup();
    rs.configureLimiter("api", { store: "mem", ratePerSecond: 100 });
    const start = clock.now();
    const end = start + 5000;
    const admissions: number[] = [];
    const loops = Array.from({ length: 8 }, async () => {
      while (clock.now() < end) {
        await rs.acquire("api");
        if (clock.now() < end) admissions.push(clock.now() - start);
      }
    });
    await clock.advanceTo(end);
    // Let the loops see the end (each one is parked on its next wait).
    await clock.advance(100);
    await Promise.all(loops);
    for (let second = 0; second < 5; second++) {
      const inSecond = admissions.filter((t) => t >= second * 1000 && t < (second + 1) * 1000).length;
      expect(inSecond).toBeGreaterThanOrEqual(99);
      expect(inSecond).toBeLessThanOrEqual(101);
    }
    const sorted = [...admissions].sort((a, b) => a - b);
    for (let i = 1; i < sorted.length; i++) {
      expect((sorted[i] as number) - (sorted[i - 1] as number)).toBeGreaterThanOrEqual(10 - 1e-6);
    }
  });

  it("fails at once when the predicted wait passes the timeout, without consuming", async () => {
    const { clock, rs } = setup();
    rs.configureLimiter("slow", { store: "mem", ratePerSecond: 1, timeout: 0.5 });
    await rs.acquire("slow");
    const before = clock.now();
    const error = await rejectionOf(rs.acquire("slow"));
    expect(isRateSyncError(error, "ACQUIRE_TIMEOUT")).toBe(true);
    expect(clock.now()).toBe(before);
    expect(String((error as Error).message)).toContain("1000 ms");
    // Nothing consumed: exactly one second after the first call, a call is admitted.
    await clock.advance(1000);
    expect((await rs.tryAcquire("slow")).allowed).toBe(true);
    expect(rs.getLimiter("slow").metrics().timeouts).toBe(1);
  });

  it("waits exactly retryAfterMs when the wait fits the timeout", async () => {
    const { clock, rs } = setup();
    rs.configureLimiter("api", { store: "mem", ratePerSecond: 4, timeout: 1 });
    await rs.acquire("api");
    let admittedAt: number | undefined;
    const pending = rs.acquire("api").then((slot) => {
      admittedAt = clock.now();
      return slot;
    });
    await clock.advance(249);
    expect(admittedAt).toBeUndefined();
    await clock.advance(1);
    const slot = await pending;
    expect(admittedAt).toBe(1_700_000_000_250);
    expect(slot.waitedMs).toBe(250);
  });

  it("counts one timeout for a waiter whose later prediction passes its deadline", async () => {
    const { clock, rs } = setup();
    rs.configureLimiter("api", { store: "mem", ratePerSecond: 10, timeout: 0.15 });
    await rs.acquire("api");
    const first = rs.acquire("api");
    const second = rejectionOf(rs.acquire("api"));
    await clock.advance(100);
    await first;
    expect((await second).code).toBe("ACQUIRE_TIMEOUT");
    expect(rs.getLimiter("api").metrics().timeouts).toBe(1);
  });

  it("a timeout of 0 never waits", async () => {
    const { rs } = setup();
    rs.configureLimiter("api", { store: "mem", ratePerSecond: 1 });
    await rs.acquire("api", { timeout: 0 });
    expect(isRateSyncError(await rejectionOf(rs.acquire("api", { timeout: 0 })), "ACQUIRE_TIMEOUT")).toBe(true);
  });
});

describe("waiting on a sliding window", () => {
  it("admits the 6th attempt of 5 per 300 s only when the first leaves the window", async () => {
    const { clock, rs } = setup();
    rs.configureLimiter("login", { store: "mem", algorithm: "sliding_window", limit: 5, windowSeconds: 300 });
    const start = clock.now();
    for (let i = 0; i < 5; i++) {
      await rs.acquire("login", { key: "alice" });
      await clock.advance(10_000);
    }
    expect((await rs.tryAcquire("login", { key: "alice" })).allowed).toBe(false);
    let admittedAt: number | undefined;
    const sixth = rs.acquire("login", { key: "alice" }).then(() => {
      admittedAt = clock.now();
    });
    await clock.advanceTo(start + 300_000 - 1);
    expect(admittedAt).toBeUndefined();
    await clock.advanceTo(start + 300_000);
    await sixth;
    expect(admittedAt).toBe(start + 300_000);
    // Another user has a budget of their own.
    expect((await rs.tryAcquire("login", { key: "bob" })).allowed).toBe(true);
  });
});

describe("concurrency", () => {
  it("never has more than max_concurrent in flight among 50 acquirers", async () => {
    const { clock, rs } = setup();
    rs.configureLimiter("db", { store: "mem", maxConcurrent: 3 });
    let inFlight = 0;
    let peak = 0;
    let done = 0;
    const workers = Array.from({ length: 50 }, async (_, i) => {
      const slot = await rs.acquire("db");
      inFlight++;
      peak = Math.max(peak, inFlight);
      await new Promise<void>((resolve) => clock.schedule(resolve, 5 + (i % 7), true));
      inFlight--;
      await slot.release();
      done++;
    });
    for (let step = 0; step < 400 && done < 50; step++) await clock.advance(1);
    await Promise.all(workers);
    expect(done).toBe(50);
    expect(peak).toBe(3);
    const metrics = rs.getLimiter("db").metrics();
    expect(metrics.totalAcquisitions).toBe(50);
    expect(metrics.totalReleases).toBe(50);
    expect(metrics.currentConcurrent).toBe(0);
  });

  it("wakes a waiter on release without waiting for the poll", async () => {
    const { clock, rs } = setup();
    rs.configureLimiter("db", { store: "mem", maxConcurrent: 1 });
    const held = await rs.acquire("db");
    let got: Slot | undefined;
    const waiting = rs.acquire("db").then((slot) => {
      got = slot;
    });
    await clock.advance(5);
    expect(got).toBeUndefined();
    await held.release();
    await clock.advance(0);
    await waiting;
    expect(got?.held).toBe(true);
  });

  it("gives back a slot whose holder stopped renewing after lease_seconds", async () => {
    const clock = new FakeClock();
    const engine = new MemoryEngine({}, clock);
    const crashed = createRateSync({ clock, random: () => 0, autoload: false });
    const alive = createRateSync({ clock, random: () => 0, autoload: false });
    for (const rs of [crashed, alive]) {
      rs.configureStore("shared", { engine });
      rs.configureLimiter("job", { store: "shared", maxConcurrent: 1, leaseSeconds: 10 });
    }
    await crashed.acquire("job");
    await crashed.close(); // stops renewing without releasing: a crashed process
    expect((await alive.tryAcquire("job")).allowed).toBe(false);
    await clock.advance(9_999);
    expect((await alive.tryAcquire("job")).allowed).toBe(false);
    await clock.advance(1);
    expect((await alive.tryAcquire("job")).allowed).toBe(true);
  });

  it("keeps a held slot alive past lease_seconds by renewing it", async () => {
    const { clock, rs } = setup();
    rs.configureLimiter("job", { store: "mem", maxConcurrent: 1, leaseSeconds: 3 });
    const slot = await rs.acquire("job");
    await clock.advance(30_000);
    expect(slot.held).toBe(true);
    expect(slot.expiresAt).toBeGreaterThan(clock.now());
    expect((await rs.tryAcquire("job")).allowed).toBe(false);
    await slot.release();
    expect((await rs.tryAcquire("job")).allowed).toBe(true);
  });

  it("releasing twice is harmless and never frees another holder's slot", async () => {
    const { rs } = setup();
    rs.configureLimiter("job", { store: "mem", maxConcurrent: 1 });
    const first = await rs.acquire("job");
    await first.release();
    const second = await rs.acquire("job");
    await first.release();
    await first[Symbol.asyncDispose]();
    expect(second.held).toBe(true);
    expect((await rs.tryAcquire("job")).allowed).toBe(false);
    expect(rs.getLimiter("job").metrics().totalReleases).toBe(1);
  });

  it("a stale release after the lease expired does not free the new holder's slot", async () => {
    const clock = new FakeClock();
    const engine = new MemoryEngine({}, clock);
    const frozen = createRateSync({ clock, random: () => 0, autoload: false });
    const other = createRateSync({ clock, random: () => 0, autoload: false });
    for (const rs of [frozen, other]) {
      rs.configureStore("shared", { engine });
      rs.configureLimiter("job", { store: "shared", maxConcurrent: 1, leaseSeconds: 10 });
    }
    const old = await frozen.acquire("job");
    // Freeze: the lease runs out without renewal, someone else takes the slot...
    await engine.renew({ limiter: "job", key: "", leaseId: old.leaseId as string, leaseMs: 1 });
    await clock.advance(2);
    const fresh = await other.acquire("job");
    // ...and the frozen holder wakes up and releases: nothing of the new holder's is freed.
    expect(await engine.release({ limiter: "job", key: "", leaseId: old.leaseId as string })).toBe(false);
    expect(fresh.held).toBe(true);
    expect((await other.tryAcquire("job")).allowed).toBe(false);
  });

  it("tells the holder when its lease is lost", async () => {
    const { clock, rs } = setup();
    rs.configureLimiter("job", { store: "mem", maxConcurrent: 1, leaseSeconds: 3 });
    const slot = await rs.acquire("job");
    const signal = slot.signal;
    await rs.getLimiter("job").reset();
    await clock.advance(1000);
    expect(signal.aborted).toBe(true);
    expect(isRateSyncError(signal.reason, "LEASE_LOST")).toBe(true);
    expect(slot.held).toBe(false);
    expect(rs.getLimiter("job").metrics().currentConcurrent).toBe(0);
  });

  it("an aborted waiter consumes nothing and leaves no trace", async () => {
    const { clock, rs } = setup();
    rs.configureLimiter("db", { store: "mem", maxConcurrent: 1 });
    const held = await rs.acquire("db");
    const controller = new AbortController();
    const waiting = rejectionOf(rs.acquire("db", { signal: controller.signal }));
    await clock.advance(10);
    controller.abort();
    expect(isRateSyncError(await waiting, "ABORTED")).toBe(true);
    await held.release();
    const state = await rs.getLimiter("db").state();
    expect(state.concurrency?.inUse).toBe(0);
    expect(clock.pendingTimers).toBe(0);
  });

  it("an aborted rate waiter consumes nothing", async () => {
    const { clock, rs } = setup();
    rs.configureLimiter("api", { store: "mem", ratePerSecond: 1 });
    await rs.acquire("api");
    const controller = new AbortController();
    const waiting = rejectionOf(rs.acquire("api", { signal: controller.signal }));
    await clock.advance(500);
    controller.abort(new Error("user left"));
    const error = await waiting;
    expect(isRateSyncError(error, "ABORTED")).toBe(true);
    await clock.advance(500);
    expect((await rs.tryAcquire("api")).allowed).toBe(true);
    expect(clock.pendingTimers).toBe(0);
  });

  it("a concurrency waiter times out at its timeout", async () => {
    const { clock, rs } = setup();
    rs.configureLimiter("db", { store: "mem", maxConcurrent: 1, timeout: 2 });
    await rs.acquire("db");
    const waiting = rejectionOf(rs.acquire("db"));
    await clock.advance(1999);
    await clock.advance(1);
    expect(isRateSyncError(await waiting, "ACQUIRE_TIMEOUT")).toBe(true);
    expect(rs.getLimiter("db").metrics().timeouts).toBe(1);
  });

  it("rate and concurrency together: a refusal by one consumes nothing from the other", async () => {
    const { rs } = setup();
    rs.configureLimiter("both", { store: "mem", ratePerSecond: 1, burst: 2, maxConcurrent: 1 });
    const first = await rs.tryAcquire("both");
    expect(first.allowed).toBe(true);
    const refused = await rs.tryAcquire("both");
    expect(refused.allowed).toBe(false);
    expect(refused.policy.kind).toBe("concurrency");
    // The refused call did not spend the second token of the burst.
    await first.slot?.release();
    const again = await rs.tryAcquire("both");
    expect(again.allowed).toBe(true);
    expect(again.remaining).toBe(0);
  });
});

describe("store failure", () => {
  function flaky(failClosed: boolean) {
    const clock = new FakeClock();
    const engine = new FlakyEngine(new MemoryEngine({}, clock));
    const rs = createRateSync({ clock, random: () => 0, autoload: false });
    rs.configureStore("s", { engine, requestTimeoutMs: 50 });
    rs.configureLimiter("api", { store: "s", ratePerSecond: 1, failClosed });
    return { clock, engine, rs };
  }

  it("fail-open admits with an honest degraded decision", async () => {
    const { engine, rs } = flaky(false);
    engine.fail("error");
    const decision = await rs.tryAcquire("api");
    expect(decision.allowed).toBe(true);
    expect(decision.degraded).toBe(true);
    if (!decision.degraded) throw new Error("unreachable");
    expect(decision.remaining).toBeUndefined();
    expect(decision.resetAt).toBeUndefined();
    expect(decision.reason).toContain("simulated outage");
    expect(decision.error.code).toBe("STORE_ERROR");
    const metrics = rs.getLimiter("api").metrics();
    expect(metrics.degraded).toBe(1);
    expect(metrics.storeErrors).toBe(1);
  });

  it("fail-closed throws STORE_UNAVAILABLE", async () => {
    const { engine, rs } = flaky(true);
    engine.fail("error");
    const error = await rejectionOf(rs.tryAcquire("api"));
    expect(isRateSyncError(error, "STORE_UNAVAILABLE")).toBe(true);
    expect(isRateSyncError(await rejectionOf(rs.acquire("api")), "STORE_UNAVAILABLE")).toBe(true);
  });

  it("a hanging store settles at the deadline, then recovers by itself", async () => {
    const { clock, engine, rs } = flaky(true);
    engine.fail("hang");
    const pending = rejectionOf(rs.tryAcquire("api"));
    await clock.advance(50);
    const error = await pending;
    expect(isRateSyncError(error, "STORE_UNAVAILABLE")).toBe(true);
    expect(String((error as Error).message)).toContain("50 ms");
    engine.recover();
    const decision = await rs.tryAcquire("api");
    expect(decision.allowed).toBe(true);
    expect(decision.degraded).toBe(false);
    expect((await rs.tryAcquire("api")).allowed).toBe(false);
  });
});

describe("arguments", () => {
  it.each([
    [{ key: "" }, "INVALID_KEY"],
    [{ key: 42 }, "INVALID_KEY"],
    [{ key: "x".repeat(5000) }, "INVALID_KEY"],
    [{ cost: -1 }, "INVALID_ARGUMENT"],
    [{ cost: 1.5 }, "INVALID_ARGUMENT"],
    [{ cost: Number.NaN }, "INVALID_ARGUMENT"],
    [{ cost: "1" }, "INVALID_ARGUMENT"],
    [{ cost: 6 }, "COST_EXCEEDS_CAPACITY"],
  ])("tryAcquire(%j) fails with %s", async (options, code) => {
    const { rs } = setup();
    rs.configureLimiter("api", { store: "mem", ratePerSecond: 1, burst: 5 });
    const error = await rejectionOf(rs.tryAcquire("api", options as never));
    expect(isRateSyncError(error, code as never)).toBe(true);
  });

  it.each([[-1], [Number.NaN], ["5"]])("acquire with timeout %j fails with INVALID_ARGUMENT", async (timeout) => {
    const { rs } = setup();
    rs.configureLimiter("api", { store: "mem", ratePerSecond: 1 });
    const error = await rejectionOf(rs.acquire("api", { timeout: timeout as never }));
    expect(isRateSyncError(error, "INVALID_ARGUMENT")).toBe(true);
    expect((error as Error).message).toContain(String(timeout));
  });

  it("cost 0 is admitted even when the budget is spent, and spends nothing", async () => {
    const { rs } = setup();
    rs.configureLimiter("api", { store: "mem", ratePerSecond: 1 });
    await rs.tryAcquire("api");
    const free = await rs.tryAcquire("api", { cost: 0 });
    expect(free.allowed).toBe(true);
    expect(free.remaining).toBe(0);
  });

  it("a cost above the window limit fails at once", async () => {
    const { rs } = setup();
    rs.configureLimiter("w", { store: "mem", algorithm: "fixed_window", limit: 3, windowSeconds: 1 });
    expect(isRateSyncError(await rejectionOf(rs.acquire("w", { cost: 4 })), "COST_EXCEEDS_CAPACITY")).toBe(true);
  });
});

describe("tryAcquireNow (the HTTP layer's hot path)", () => {
  it("decides synchronously on an open in-process store, as tryAcquire would, and throws what it rejects with", async () => {
    const { rs } = setup();
    rs.configureLimiter("api", { store: "mem", algorithm: "fixed_window", limit: 2, windowSeconds: 60 });
    const limiter = rs.getLimiter("api");
    expect((await limiter.tryAcquire({ key: "a" })).allowed).toBe(true);
    const second = limiter.tryAcquireNow({ key: "a" });
    const third = limiter.tryAcquireNow({ key: "a" });
    expect(second).not.toBeInstanceOf(Promise);
    expect([second, third].map((decision) => (decision as { allowed: boolean }).allowed)).toEqual([true, false]);
    expect([limiter.metrics().totalAcquisitions, limiter.metrics().denied]).toEqual([2, 1]);
    expect(() => limiter.tryAcquireNow({ key: "a", cost: -1 })).toThrow(
      expect.objectContaining({ code: "INVALID_ARGUMENT" }),
    );
  });

  it("returns the promise of a remote store's decision", async () => {
    const clock = new FakeClock();
    const rs = createRateSync({ clock, autoload: false });
    rs.configureStore("remote", { engine: new FlakyEngine(new MemoryEngine({}, clock)) });
    rs.configureLimiter("api", { store: "remote", ratePerSecond: 1, burst: 1 });
    const pending = rs.getLimiter("api").tryAcquireNow({ key: "a" });
    expect(pending).toBeInstanceOf(Promise);
    expect((await pending).allowed).toBe(true);
  });
});
