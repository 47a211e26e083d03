/**
 * The limiter over the engine (SPEC section 5, "Waiting" and "Store failure"): a registry whose
 * store is the engine instance, as an application uses it. Checks what depends on the engine:
 * waits that end on its numbers or its release notifications, leases renewed through it, and the
 * failure policy around it (with {@link FlakyEngine} standing in for an outage).
 */
import { expect } from "vitest";
import type { Decision } from "../../decision.js";
import type { Engine } from "../../engines/engine.js";
import { isRateSyncError } from "../../errors.js";
import type { LimiterOptions } from "../../options.js";
import type { RateSync } from "../../rate-sync.js";
import { rejectionOf } from "../errors.js";
import { FlakyEngine } from "../flaky-engine.js";
import { conformanceCase, type Run, STORE_ID, type Suite, type Watched, waitFor, watch } from "./harness.js";

/** A function giving the time elapsed since it was made: fake-clock ms, or real ms. */
function stopwatch(run: Run): () => number {
  const clock = run.clock;
  if (clock !== undefined) {
    const start = clock.now();
    return () => clock.now() - start;
  }
  const start = performance.now();
  return () => performance.now() - start;
}

/**
 * How long `pending` takes to settle, in the run's time: on a fake clock, time moves in 10 ms
 * steps only while it is still pending, so a waiter woken by a notification settles at 0 ms.
 */
async function settleTime(run: Run, pending: Watched<unknown>, limitMs: number): Promise<number> {
  const elapsed = stopwatch(run);
  const clock = run.clock;
  if (clock === undefined) {
    await waitFor(() => pending.settled, limitMs);
    return elapsed();
  }
  for (;;) {
    await run.settle();
    if (pending.settled || elapsed() >= limitMs) return elapsed();
    await clock.advance(10);
  }
}

/** Configures limiter `name` on `rs` (a fresh id, reset at the end) and returns its id. */
function limiter(run: Run, engine: Engine, rs: RateSync, name: string, options: Omit<LimiterOptions, "store">): string {
  const id = run.limiterId(engine, name);
  rs.configureLimiter(id, { store: STORE_ID, ...options });
  return id;
}

/** The store's numbers of a decision, failing the test when it is degraded. */
function exact(decision: Decision): Exclude<Decision, { degraded: true }> {
  expect(decision.degraded, "a decision from a working store is exact").toBe(false);
  if (decision.degraded) throw new Error("unreachable");
  return decision;
}

/** Registers the limiter-over-engine cases. */
export function registerLimiterCases(suite: Suite): void {
  const fake = suite.fake;
  /** The limiter's per-call deadline in the failure cases. */
  const requestTimeoutMs = suite.pick(100, 150);

  conformanceCase(suite, "limiter: tryAcquire, state() and reset() report the engine's numbers", async (run) => {
    const engine = await run.engine();
    const rs = run.registry(engine);
    const id = limiter(run, engine, rs, "api", { ratePerSecond: 5, burst: 2 });
    const sinceFirst = stopwatch(run);
    const first = exact(await rs.tryAcquire(id));
    expect(first.allowed).toBe(true);
    expect(first.remaining).toBe(1);
    expect(first.limit).toBe(2);
    expect(exact(await rs.tryAcquire(id)).remaining).toBe(0);
    const refused = exact(await rs.tryAcquire(id));
    expect(refused.allowed).toBe(false);
    expect(Number.isInteger(refused.retryAfterMs), "retryAfterMs is whole milliseconds").toBe(true);
    // One interval after the first call, in whole ms rounded up.
    if (fake) expect(refused.retryAfterMs).toBe(200);
    else expect(refused.retryAfterMs).toBeGreaterThanOrEqual(200 - sinceFirst() - 1);
    expect(refused.retryAfterMs).toBeLessThanOrEqual(200);
    const limiterApi = rs.getLimiter(id);
    const spent = await limiterApi.state();
    expect(spent.allowed).toBe(false);
    expect(spent.remaining).toBe(0);
    await limiterApi.reset();
    const full = await limiterApi.state();
    expect(full.allowed).toBe(true);
    expect(full.remaining).toBe(2);
  });

  conformanceCase(
    suite,
    "limiter: acquire sleeps as long as the engine's retryAfterMs, then is admitted",
    async (run) => {
      const engine = await run.engine();
      const rs = run.registry(engine);
      const id = limiter(run, engine, rs, "wait-rate", { ratePerSecond: 5 });
      const elapsed = stopwatch(run);
      await rs.acquire(id);
      const pending = watch(rs.acquire(id));
      if (run.clock !== undefined) {
        await run.clock.advance(199);
        expect(pending.settled, "admitted before the interval was over").toBe(false);
        await run.clock.advance(1);
        expect(pending.settled, "admitted when the interval was over").toBe(true);
        expect((await pending.promise).waitedMs).toBe(200);
      } else {
        await pending.promise;
        // Admitted no earlier than one interval after the first call (1 ms for clock granularity).
        expect(elapsed()).toBeGreaterThanOrEqual(199);
        expect(elapsed()).toBeLessThan(200 + 300);
      }
    },
  );

  conformanceCase(
    suite,
    "limiter: acquire fails at once when the predicted wait passes its timeout, and spends nothing",
    async (run) => {
      const engine = await run.engine();
      const rs = run.registry(engine);
      const id = limiter(run, engine, rs, "fail-fast", { ratePerSecond: 1 });
      await rs.acquire(id);
      const sinceFirst = stopwatch(run);
      const error = await rejectionOf(rs.acquire(id, { timeout: 0.5 }));
      expect(isRateSyncError(error, "ACQUIRE_TIMEOUT"), String(error)).toBe(true);
      // "At once": long before its own 500 ms timeout.
      if (fake) expect(sinceFirst()).toBe(0);
      else expect(sinceFirst()).toBeLessThan(250);
      // Had the failed acquire spent anything, the next one would wait a second interval.
      const next = watch(rs.acquire(id, { timeout: 5 }));
      if (run.clock !== undefined) {
        await run.clock.advance(999);
        expect(next.settled, "admitted before the interval was over").toBe(false);
        await run.clock.advance(1);
        expect(next.settled, "admitted one interval after the first call").toBe(true);
      } else {
        await next.promise;
        expect(sinceFirst(), "ms from the first call to the next admission").toBeLessThan(1000 + 300);
      }
      await next.promise;
    },
  );

  conformanceCase(
    suite,
    "limiter: a waiter for a slot is woken by the release, long before the fallback poll",
    async (run) => {
      const engine = await run.engine();
      const rs = run.registry(engine);
      const id = limiter(run, engine, rs, "wake", { maxConcurrent: 1, leaseSeconds: 30 });
      const held = await rs.acquire(id);
      const waiter = watch(rs.acquire(id));
      // Let the waiter park (and a remote engine's subscription reach its server).
      await run.settle(300);
      expect(waiter.settled, "a waiter admitted while the only slot is held").toBe(false);
      await held.release();
      const took = await settleTime(run, waiter, 2000);
      expect(waiter.settled, "the waiter never got the released slot").toBe(true);
      // The fallback poll is 1 s; an engine without onRelease polls every 100 ms.
      expect(took, "ms from the release to the waiter's admission").toBeLessThan(500);
      const slot = await waiter.promise;
      expect(slot.held).toBe(true);
      await slot.release();
    },
  );

  conformanceCase(
    suite,
    "limiter: a waiter on one engine instance is woken by a release through another",
    async (run) => {
      const first = await run.engine();
      const second = await run.engine();
      const rsFirst = run.registry(first);
      const rsSecond = run.registry(second);
      const id = limiter(run, first, rsFirst, "wake-shared", { maxConcurrent: 1, leaseSeconds: 30 });
      rsSecond.configureLimiter(id, { store: STORE_ID, maxConcurrent: 1, leaseSeconds: 30 });
      const held = await rsFirst.acquire(id);
      const waiter = watch(rsSecond.acquire(id));
      await run.settle(300);
      expect(waiter.settled, "admitted while another process holds the only slot").toBe(false);
      await held.release();
      const took = await settleTime(run, waiter, 2000);
      expect(waiter.settled).toBe(true);
      expect(took, "ms from the release to the other process's admission").toBeLessThan(500);
      await (await waiter.promise).release();
    },
    { when: suite.options.shared, unless: "needs shared: true" },
  );

  conformanceCase(suite, "limiter: an aborted waiter ends at once and leaves no trace in the store", async (run) => {
    const engine = await run.engine();
    const rs = run.registry(engine);
    const slotsId = limiter(run, engine, rs, "abort-slots", { maxConcurrent: 1, leaseSeconds: 30 });
    const held = await rs.acquire(slotsId);
    const controller = new AbortController();
    const waiter = watch(rs.acquire(slotsId, { signal: controller.signal }));
    await run.settle();
    const elapsed = stopwatch(run);
    controller.abort();
    const error = await rejectionOf(waiter.promise);
    expect(isRateSyncError(error, "ABORTED"), String(error)).toBe(true);
    expect(elapsed()).toBeLessThan(fake ? 1 : 250);
    const limiterApi = rs.getLimiter(slotsId);
    expect((await limiterApi.state()).concurrency?.inUse, "slots held after the waiter gave up").toBe(1);
    await held.release();
    expect((await limiterApi.state()).concurrency?.inUse).toBe(0);

    const rateId = limiter(run, engine, rs, "abort-rate", { ratePerSecond: 2 });
    await rs.acquire(rateId);
    const rateController = new AbortController();
    const rateWaiter = watch(rs.acquire(rateId, { signal: rateController.signal }));
    await run.settle(20);
    rateController.abort();
    expect(isRateSyncError(await rejectionOf(rateWaiter.promise), "ABORTED")).toBe(true);
    // One interval after the first call the budget is back: the aborted waiter spent nothing.
    const wait = (await rs.getLimiter(rateId).state()).retryAfterMs;
    await run.advance(wait + (fake ? 0 : 20));
    expect((await rs.tryAcquire(rateId)).allowed).toBe(true);
  });

  conformanceCase(
    suite,
    "limiter: a held slot is renewed through the engine past leaseSeconds; a holder that stops renewing loses it after leaseSeconds",
    async (run) => {
      const engine = await run.engine();
      const leaseSeconds = suite.pick(3, 0.3);
      const leaseMs = leaseSeconds * 1000;
      const holder = run.registry(engine);
      const other = run.registry(engine);
      const id = limiter(run, engine, holder, "renewal", { maxConcurrent: 1, leaseSeconds });
      other.configureLimiter(id, { store: STORE_ID, maxConcurrent: 1, leaseSeconds });
      const slot = await holder.acquire(id);
      const firstExpiry = slot.expiresAt as number;
      await run.advance(2.5 * leaseMs);
      expect(slot.held, "the slot was lost although its holder is alive").toBe(true);
      expect(slot.expiresAt as number).toBeGreaterThan(firstExpiry);
      expect((await other.tryAcquire(id)).allowed, "another process got a slot that is held and renewed").toBe(false);

      // The holder "dies": its registry stops renewing without releasing.
      await holder.close();
      const sinceDeath = stopwatch(run);
      expect((await other.tryAcquire(id)).allowed, "a dead holder's slot must outlive it until its lease ends").toBe(
        false,
      );
      let freed = false;
      while (!freed && sinceDeath() <= leaseMs + suite.pick(0, 300)) {
        const decision = await other.tryAcquire(id);
        freed = decision.allowed;
        if (!freed) await run.advance(suite.pick(100, 20));
      }
      expect(freed, "the dead holder's slot came back within leaseSeconds").toBe(true);
    },
  );

  conformanceCase(
    suite,
    "failure policy: fail-open admits with a degraded decision that claims nothing, and is exact again after recovery",
    async (run) => {
      const engine = await run.engine();
      const flaky = new FlakyEngine(engine);
      const rs = run.registry(flaky, { requestTimeoutMs });
      const id = limiter(run, engine, rs, "fail-open", {
        ratePerSecond: 1,
        burst: 3,
        maxConcurrent: 2,
        leaseSeconds: 30,
      });
      flaky.fail("error");
      const degraded = await rs.tryAcquire(id);
      expect(degraded.allowed).toBe(true);
      expect(degraded.degraded).toBe(true);
      if (!degraded.degraded) throw new Error("unreachable");
      expect(degraded.remaining).toBeUndefined();
      expect(degraded.resetAt).toBeUndefined();
      expect(degraded.concurrency).toBeUndefined();
      expect(degraded.error.code).toBe("STORE_ERROR");
      const slot = await rs.acquire(id);
      expect(slot.leaseId, "a degraded slot holds nothing in the store").toBeUndefined();
      await slot.release();

      flaky.recover();
      const a = exact(await rs.tryAcquire(id));
      expect(a.allowed).toBe(true);
      expect(a.remaining, "the outage spent nothing").toBe(2);
      expect(a.concurrency?.inUse).toBe(1);
      const b = exact(await rs.tryAcquire(id));
      expect(b.remaining).toBe(1);
      expect(b.concurrency?.inUse).toBe(2);
      const c = exact(await rs.tryAcquire(id));
      expect(c.allowed).toBe(false);
      await a.slot?.release();
      await b.slot?.release();
      expect((await rs.getLimiter(id).state()).concurrency?.inUse).toBe(0);
    },
  );

  conformanceCase(
    suite,
    "failure policy: fail-closed rejects tryAcquire, acquire, state() and reset() with STORE_UNAVAILABLE",
    async (run) => {
      const engine = await run.engine();
      const flaky = new FlakyEngine(engine);
      const rs = run.registry(flaky, { requestTimeoutMs });
      const id = limiter(run, engine, rs, "fail-closed", { ratePerSecond: 1, burst: 3, failClosed: true });
      flaky.fail("error");
      const unavailable = async (promise: Promise<unknown>, what: string): Promise<void> => {
        const error = await rejectionOf(promise);
        expect(isRateSyncError(error, "STORE_UNAVAILABLE"), `${what}: ${String(error)}`).toBe(true);
      };
      await unavailable(rs.tryAcquire(id), "tryAcquire");
      await unavailable(rs.acquire(id), "acquire");
      await unavailable(rs.getLimiter(id).state(), "state");
      await unavailable(rs.getLimiter(id).reset(), "reset");
      flaky.recover();
      expect(exact(await rs.tryAcquire(id)).remaining, "the outage spent nothing").toBe(2);
    },
  );

  conformanceCase(
    suite,
    "failure policy: a hanging store settles every call within requestTimeoutMs, then decisions are exact again",
    async (run) => {
      const engine = await run.engine();
      const flaky = new FlakyEngine(engine);
      const rs = run.registry(flaky, { requestTimeoutMs });
      for (const failClosed of [false, true]) {
        const id = limiter(run, engine, rs, `hang-${failClosed ? "closed" : "open"}`, {
          ratePerSecond: 1,
          burst: 3,
          failClosed,
        });
        flaky.fail("hang");
        const elapsed = stopwatch(run);
        const pending = watch(rs.tryAcquire(id));
        if (run.clock !== undefined) {
          await run.clock.advance(requestTimeoutMs - 1);
          expect(pending.settled, "settled before the deadline").toBe(false);
          await run.clock.advance(1);
          expect(pending.settled, "settled at the deadline").toBe(true);
        } else {
          await waitFor(() => pending.settled, requestTimeoutMs + 2000);
          expect(pending.settled).toBe(true);
          expect(elapsed()).toBeGreaterThanOrEqual(requestTimeoutMs - 2);
          expect(elapsed()).toBeLessThan(requestTimeoutMs + 500);
        }
        if (failClosed) {
          const error = await rejectionOf(pending.promise);
          expect(isRateSyncError(error, "STORE_UNAVAILABLE"), String(error)).toBe(true);
        } else {
          const decision = await pending.promise;
          expect(decision.allowed).toBe(true);
          expect(decision.degraded).toBe(true);
        }
        flaky.recover();
        expect(exact(await rs.tryAcquire(id)).remaining, "exact after recovery").toBe(2);
      }
    },
  );

  conformanceCase(
    suite,
    "limiter: a cost above the capacity fails with COST_EXCEEDS_CAPACITY without a store call",
    async (run) => {
      const engine = await run.engine();
      const counted = new FlakyEngine(engine);
      const rs = run.registry(counted);
      const id = limiter(run, engine, rs, "capacity", { ratePerSecond: 1, burst: 3 });
      const error = await rejectionOf(rs.tryAcquire(id, { cost: 4 }));
      expect(isRateSyncError(error, "COST_EXCEEDS_CAPACITY"), String(error)).toBe(true);
      expect(counted.calls.decide).toBe(0);
      expect(exact(await rs.tryAcquire(id, { cost: 3 })).remaining).toBe(0);
    },
  );

  conformanceCase(suite, "limiter: initializeLimiter connects and verifies the store", async (run) => {
    const engine = await run.engine();
    const rs = run.registry(engine);
    const id = limiter(run, engine, rs, "init", { ratePerSecond: 1 });
    await rs.initializeLimiter(id);
    expect(exact(await rs.tryAcquire(id)).allowed).toBe(true);
  });
}
