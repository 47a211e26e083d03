/**
 * The rate algorithms at their boundaries (SPEC section 5): token bucket, sliding window and
 * fixed window, costs above one and of zero, and refusals that cost nothing. Every call is also
 * checked against core's reference algorithm by {@link Subject}; the expectations written here
 * are the contract in words, so a bug shared by an engine and the reference is still caught.
 */
import { expect } from "vitest";
import type { RatePolicy } from "../../policy.js";
import {
  conformanceCase,
  expectTime,
  fixedWindow,
  freshWindow,
  policyOf,
  type Suite,
  slidingWindow,
  tokenBucket,
} from "./harness.js";

/** The store time at which a budget filled by a call at `filledAt` starts to come back. */
function budgetDeadline(rate: RatePolicy, filledAt: number, windowEnd: number): number {
  if (rate.algorithm === "token_bucket") return filledAt + rate.intervalMs;
  if (rate.algorithm === "sliding_window") return filledAt + rate.windowMs;
  return windowEnd;
}

/** Registers the rate cases. */
export function registerRateCases(suite: Suite): void {
  const fake = suite.fake;

  conformanceCase(
    suite,
    "token bucket: the whole burst at once, then one per interval, admitted exactly when retryAfterMs says",
    async (run) => {
      const engine = await run.engine();
      const interval = 200;
      const s = run.subject(engine, { limiter: run.id("tb-burst"), key: "" }, policyOf(tokenBucket(5, 3)));

      const first = await s.decide();
      expect(first.allowed).toBe(true);
      expect(first.remaining).toBe(2);
      expect(first.retryAfterMs).toBe(0);
      expectTime(first.resetAt, first.now + interval, "resetAt after one of three");
      expect((await s.decide()).remaining).toBe(1);
      const third = await s.decide();
      expect(third.allowed).toBe(true);
      expect(third.remaining).toBe(0);
      // GCRA: the bucket is full again three intervals after the first call, whenever the others came.
      expectTime(third.resetAt, first.now + 3 * interval, "resetAt of an empty bucket");

      const refused = await s.decide();
      s.landedBefore(refused, first.now + interval);
      expect(refused.allowed).toBe(false);
      expect(refused.refusedBy).toBe("rate");
      expect(refused.remaining).toBe(0);
      expectTime(
        refused.retryAfterMs,
        first.now + interval - refused.now,
        "retryAfterMs: one interval after the first",
      );
      expectTime(refused.resetAt, first.now + 3 * interval, "a refusal leaves resetAt");

      // Still refused halfway through the wait...
      await s.until(refused.now + refused.retryAfterMs / 2);
      const halfway = await s.decide();
      s.landedBefore(halfway, first.now + interval);
      expect(halfway.allowed).toBe(false);
      if (fake) {
        await s.until(first.now + interval - 1);
        const justBefore = await s.decide();
        expect(justBefore.allowed).toBe(false);
        expectTime(justBefore.retryAfterMs, 1, "retryAfterMs 1 ms before");
      }
      // ...and admitted once it is over (on a fake clock: at that exact millisecond).
      await s.until(first.now + interval);
      const onTime = await s.decide();
      if (fake) expect(onTime.now).toBe(first.now + interval);
      expect(onTime.allowed).toBe(true);
      expect(onTime.remaining).toBe(0);
      const next = await s.decide();
      s.landedBefore(next, first.now + 2 * interval);
      expect(next.allowed).toBe(false);
      expectTime(next.retryAfterMs, first.now + 2 * interval - next.now, "retryAfterMs of the next one");
    },
  );

  conformanceCase(suite, "token bucket: a cost above one is all or nothing", async (run) => {
    const engine = await run.engine();
    const interval = 200;
    const s = run.subject(engine, { limiter: run.id("tb-cost"), key: "" }, policyOf(tokenBucket(5, 3)));
    const two = await s.decide(2);
    expect(two.allowed).toBe(true);
    expect(two.remaining).toBe(1);
    expectTime(two.resetAt, two.now + 2 * interval, "resetAt after a cost of 2");

    const tooMuch = await s.decide(2);
    s.landedBefore(tooMuch, two.now + interval);
    expect(tooMuch.allowed).toBe(false);
    expect(tooMuch.remaining).toBe(1);
    // It waits for the one missing unit, not for the whole bucket.
    expectTime(tooMuch.retryAfterMs, two.now + interval - tooMuch.now, "retryAfterMs of a cost of 2 with 1 left");
    const standing = await s.peek(1);
    expect(standing.remaining).toBe(1);

    const one = await s.decide(1);
    s.landedBefore(one, two.now + interval);
    expect(one.allowed).toBe(true);
    expect(one.remaining).toBe(0);
    const all = await s.decide(3);
    expect(all.allowed).toBe(false);
    expectTime(all.retryAfterMs, two.now + 3 * interval - all.now, "retryAfterMs of the whole burst");

    await s.until(two.now + 3 * interval);
    const whole = await s.decide(3);
    expect(whole.allowed).toBe(true);
    expect(whole.remaining).toBe(0);
  });

  conformanceCase(suite, "a cost of 0 is admitted even when the budget is spent, and changes nothing", async (run) => {
    const engine = await run.engine();
    const windowMs = suite.pick(1000, 300);
    const rates: RatePolicy[] = [tokenBucket(5, 2), slidingWindow(2, windowMs), fixedWindow(2, windowMs)];
    for (const rate of rates) {
      const s = run.subject(engine, { limiter: run.id(`zero-${rate.algorithm}`), key: "" }, policyOf(rate));
      const windowEnd = rate.algorithm === "fixed_window" ? await freshWindow(s, windowMs) : 0;
      const fresh = await s.decide(0);
      expect(fresh.allowed).toBe(true);
      expect(fresh.remaining).toBe(2);
      expectTime(fresh.resetAt, fresh.now, `${rate.algorithm}: a cost of 0 on a full budget leaves it full now`);

      const fill = await s.decide(2);
      expect(fill.allowed).toBe(true);
      const deadline = budgetDeadline(rate, fill.now, windowEnd);
      const before = await s.peek(1);
      const zero = await s.decide(0);
      const after = await s.peek(1);
      s.landedBefore(after, deadline);
      expect(zero.allowed).toBe(true);
      expect(zero.retryAfterMs).toBe(0);
      expect(zero.remaining).toBe(0);
      expectTime(zero.resetAt, before.resetAt, `${rate.algorithm}: a cost of 0 keeps resetAt`);
      expect(after.allowed).toBe(false);
      expect(after.remaining).toBe(0);
      expectTime(after.resetAt, before.resetAt, `${rate.algorithm}: resetAt after a cost of 0`);
      expectTime(after.now + after.retryAfterMs, before.now + before.retryAfterMs, `${rate.algorithm}: retry time`);
    }
  });

  conformanceCase(
    suite,
    "sliding window: a refusal points at the moment the oldest admission leaves, and is admitted then",
    async (run) => {
      const engine = await run.engine();
      const w = suite.pick(1000, 300);
      const s = run.subject(engine, { limiter: run.id("sw"), key: "" }, policyOf(slidingWindow(3, w)));
      const a1 = await s.decide();
      expect(a1.allowed).toBe(true);
      expect(a1.remaining).toBe(2);
      expectTime(a1.resetAt, a1.now + w, "resetAt: the window after the admission");
      await s.until(a1.now + w / 5);
      const a2 = await s.decide();
      expect(a2.remaining).toBe(1);
      await s.until(a1.now + (2 * w) / 5);
      const a3 = await s.decide();
      expect(a3.allowed).toBe(true);
      expect(a3.remaining).toBe(0);
      expectTime(a3.resetAt, a3.now + w, "resetAt: a window after the newest admission");

      await s.until(a1.now + w / 2);
      const refused = await s.decide();
      s.landedBefore(refused, a1.now + w);
      expect(refused.allowed).toBe(false);
      expect(refused.refusedBy).toBe("rate");
      expect(refused.remaining).toBe(0);
      expectTime(refused.retryAfterMs, a1.now + w - refused.now, "retryAfterMs: when the oldest leaves");
      expectTime(refused.resetAt, a3.now + w, "resetAt of a refusal: when the newest leaves");
      if (fake) {
        await s.until(a1.now + w - 1);
        expect((await s.decide()).allowed).toBe(false);
      }

      await s.until(a1.now + w);
      const a4 = await s.decide();
      if (fake) expect(a4.now).toBe(a1.now + w);
      expect(a4.allowed).toBe(true);
      expect(a4.remaining).toBe(0);
      const again = await s.decide();
      s.landedBefore(again, a2.now + w);
      expect(again.allowed).toBe(false);
      expectTime(again.retryAfterMs, a2.now + w - again.now, "retryAfterMs: when the second oldest leaves");

      // Once a2 has left one unit is free: a cost of 2 waits for a3 too, all or nothing.
      await s.until(a2.now + w);
      const two = await s.decide(2);
      s.landedBefore(two, a3.now + w);
      expect(two.allowed).toBe(false);
      expect(two.remaining).toBe(1);
      expectTime(two.retryAfterMs, a3.now + w - two.now, "retryAfterMs of a cost of 2: when enough has left");
      const one = await s.decide(1);
      expect(one.allowed).toBe(true);
      expect(one.remaining).toBe(0);
    },
  );

  conformanceCase(
    suite,
    "sliding window: a stream of calls never has more than limit in any window, and is refused only when it is full",
    async (run) => {
      const engine = await run.engine();
      const w = suite.pick(1000, 300);
      const limit = 4;
      const s = run.subject(engine, { limiter: run.id("sw-stream"), key: "" }, policyOf(slidingWindow(limit, w)));
      const step = suite.pick(37, 11);
      const admitted: number[] = [];
      const refused: number[] = [];
      const first = await s.decide();
      admitted.push(first.now);
      for (;;) {
        await run.advance(step);
        const d = await s.decide();
        (d.allowed ? admitted : refused).push(d.now);
        if (d.now - first.now > suite.pick(3, 2.2) * w) break;
      }
      const inWindowEndingAt = (t: number): number => admitted.filter((a) => a > t - w && a <= t).length;
      for (const t of admitted)
        expect(inWindowEndingAt(t), `admissions in the window ending at ${t}`).toBeLessThanOrEqual(limit);
      // Exact, not an estimate: every refusal saw a window that really held `limit` admissions.
      for (const t of refused) expect(inWindowEndingAt(t), `admissions in the window of a refusal at ${t}`).toBe(limit);
      expect(admitted.length).toBeGreaterThanOrEqual(2 * limit);
      expect(refused.length).toBeGreaterThan(0);
    },
  );

  conformanceCase(
    suite,
    "fixed window: at most limit per window aligned on the store's clock, all back at the boundary",
    async (run) => {
      const engine = await run.engine();
      const w = suite.pick(1000, 400);
      const s = run.subject(engine, { limiter: run.id("fw"), key: "" }, policyOf(fixedWindow(3, w)));
      let end = await freshWindow(s, w);
      if (fake) {
        // Start mid-window: the window is aligned on the clock, not on the first call.
        await s.until(end - 0.4 * w);
      }
      const a1 = await s.decide();
      s.landedBefore(a1, end);
      expect(a1.allowed).toBe(true);
      expect(a1.remaining).toBe(2);
      // The window is [floor(now / windowMs) * windowMs, + windowMs) on the store's clock.
      end = Math.floor(a1.now / w) * w + w;
      expectTime(a1.resetAt, end, "resetAt: the end of the aligned window");
      expect((await s.decide()).remaining).toBe(1);
      expect((await s.decide()).remaining).toBe(0);
      const refused = await s.decide();
      s.landedBefore(refused, end);
      expect(refused.allowed).toBe(false);
      expect(refused.refusedBy).toBe("rate");
      expectTime(refused.retryAfterMs, end - refused.now, "retryAfterMs: to the window's end");
      expectTime(refused.resetAt, end, "resetAt of a refusal");

      await s.until(end - w / 4);
      const late = await s.decide();
      s.landedBefore(late, end);
      expect(late.allowed).toBe(false);
      if (fake) {
        await s.until(end - 1);
        const justBefore = await s.decide();
        expect(justBefore.allowed).toBe(false);
        expectTime(justBefore.retryAfterMs, 1, "retryAfterMs 1 ms before the boundary");
      }

      await s.until(end);
      const next = await s.decide();
      if (fake) expect(next.now).toBe(end);
      s.landedBefore(next, end + w);
      expect(next.allowed).toBe(true);
      expect(next.remaining).toBe(2);
      expectTime(next.resetAt, end + w, "resetAt in the next window");
      const three = await s.decide(3);
      expect(three.allowed).toBe(false);
      expectTime(three.retryAfterMs, end + w - three.now, "retryAfterMs of a cost that needs the next window");
      expect((await s.decide(2)).remaining).toBe(0);
    },
  );

  conformanceCase(suite, "a refused call leaves the state exactly as it was, for every algorithm", async (run) => {
    const engine = await run.engine();
    const windowMs = suite.pick(1000, 300);
    const rates: RatePolicy[] = [tokenBucket(5, 2), slidingWindow(2, windowMs), fixedWindow(2, windowMs)];
    for (const rate of rates) {
      const s = run.subject(engine, { limiter: run.id(`refusal-${rate.algorithm}`), key: "" }, policyOf(rate));
      const windowEnd = rate.algorithm === "fixed_window" ? await freshWindow(s, windowMs) : 0;
      const fill = await s.decide(2);
      expect(fill.allowed).toBe(true);
      const deadline = budgetDeadline(rate, fill.now, windowEnd);
      const before = await s.peek(1);
      const beforeTwo = await s.peek(2);
      const costs = [1, 2, 1, 2, 1];
      const refusals = [];
      for (const cost of costs) refusals.push(await s.decide(cost));
      const after = await s.peek(1);
      s.landedBefore(after, deadline);
      for (const refusal of refusals) expect(refusal.allowed, `${rate.algorithm}: refused`).toBe(false);
      if (fake) expect(after, `${rate.algorithm}: the state after five refusals`).toEqual(before);
      expect(after.remaining).toBe(before.remaining);
      expectTime(after.resetAt, before.resetAt, `${rate.algorithm}: resetAt after refusals`);
      // Every refusal of a cost pointed at the moment a peek of that cost did before them, and a
      // call is admitted right then: had a refusal spent anything, it would still be refused.
      const retryAt = before.now + before.retryAfterMs;
      const retryTwoAt = beforeTwo.now + beforeTwo.retryAfterMs;
      for (const [i, refusal] of refusals.entries()) {
        const expected = costs[i] === 2 ? retryTwoAt : retryAt;
        expectTime(
          refusal.now + refusal.retryAfterMs,
          expected,
          `${rate.algorithm}: retry time of a cost of ${costs[i]}`,
        );
      }
      await s.until(retryAt);
      expect((await s.decide(1)).allowed, `${rate.algorithm}: admitted at the announced time`).toBe(true);
    }
  });
}
