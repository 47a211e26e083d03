/**
 * Slots as leases, rate and concurrency decided in one step, peek and reset, and atomicity under
 * concurrent calls (SPEC section 5).
 */
import { expect } from "vitest";
import type { EngineDecision } from "../../algorithms/decide.js";
import type { Engine, EngineTarget } from "../../engines/engine.js";
import type { Policy, RatePolicy } from "../../policy.js";
import {
  conformanceCase,
  expectTime,
  fixedWindow,
  freshWindow,
  policyOf,
  type Run,
  type Suite,
  slidingWindow,
  slots,
  tokenBucket,
} from "./harness.js";

/** Fires `count` decisions at once (each with its own lease when the policy has slots), split over `engines`. */
async function burst(
  run: Run,
  engines: readonly Engine[],
  target: EngineTarget,
  policy: Policy,
  count: number,
): Promise<EngineDecision[]> {
  for (const engine of engines) run.touch(engine, target);
  const calls = Array.from({ length: count }, (_, i) => {
    const engine = engines[i % engines.length] as Engine;
    const leaseId = policy.concurrency === undefined ? undefined : run.leaseId();
    return Promise.resolve(engine.decide({ ...target, policy, cost: 1, leaseId }));
  });
  return Promise.all(calls);
}

/** Registers the concurrency, peek and reset cases. */
export function registerConcurrencyCases(suite: Suite): void {
  const fake = suite.fake;
  /** Lease length of the expiry cases: exact on a fake clock, short in real time. */
  const leaseMs = suite.pick(1000, 300);
  /** A lease that outlives any case. */
  const longLeaseMs = 10_000;

  conformanceCase(
    suite,
    "leases: never more than maxConcurrent held; a lease frees its slot leaseMs after it was taken",
    async (run) => {
      const engine = await run.engine();
      const s = run.subject(engine, { limiter: run.id("leases"), key: "" }, policyOf(undefined, slots(2, leaseMs)));
      const l1 = await s.decide();
      expect(l1.allowed).toBe(true);
      expect(l1.inUse).toBe(1);
      expectTime(l1.leaseExpiresAt, l1.now + leaseMs, "leaseExpiresAt");
      // No rate part: nothing to report about a rate budget.
      expect(l1.remaining).toBe(0);
      expectTime(l1.resetAt, l1.now, "resetAt without a rate part");
      await s.until(l1.now + leaseMs / 4);
      const l2 = await s.decide();
      expect(l2.allowed).toBe(true);
      expect(l2.inUse).toBe(2);

      const refused = await s.decide();
      s.landedBefore(refused, l1.leaseExpiresAt);
      expect(refused.allowed).toBe(false);
      expect(refused.refusedBy).toBe("concurrency");
      expect(refused.inUse).toBe(2);
      expect(refused.leaseExpiresAt).toBe(0);
      expectTime(refused.retryAfterMs, l1.leaseExpiresAt - refused.now, "retryAfterMs: the earliest expiry");
      const peeked = await s.peek();
      expect(peeked.allowed).toBe(false);
      expect(peeked.inUse).toBe(2);

      await s.until(l1.now + leaseMs / 2);
      const halfway = await s.decide();
      s.landedBefore(halfway, l1.leaseExpiresAt);
      expect(halfway.allowed).toBe(false);
      if (fake) {
        await s.until(l1.leaseExpiresAt - 1);
        expect((await s.decide()).allowed).toBe(false);
      }

      // The first lease expires (its holder "crashed"): its slot is free, exactly on time.
      await s.until(l1.leaseExpiresAt);
      const l3 = await s.decide();
      s.landedBefore(l3, l2.leaseExpiresAt);
      if (fake) expect(l3.now).toBe(l1.leaseExpiresAt);
      expect(l3.allowed).toBe(true);
      expect(l3.inUse).toBe(2);
      // A stale release frees nothing, and the expired lease cannot be renewed.
      expect(await s.release(l1.leaseId as string)).toBe(false);
      expect(await s.renew(l1.leaseId as string)).toBeUndefined();
      const held = await s.peek();
      s.landedBefore(held, l2.leaseExpiresAt);
      expect(held.inUse).toBe(2);

      // release() answers true once, then false.
      expect(await s.release(l2.leaseId as string)).toBe(true);
      expect(await s.release(l2.leaseId as string)).toBe(false);
      expect((await s.peek()).inUse).toBe(1);
      expect(await s.release(l3.leaseId as string)).toBe(true);
      expect((await s.peek()).inUse).toBe(0);
    },
  );

  conformanceCase(
    suite,
    "renew extends a live lease from the store's now; an expired, released or unknown lease is not renewed",
    async (run) => {
      const engine = await run.engine();
      const s = run.subject(engine, { limiter: run.id("renew"), key: "" }, policyOf(undefined, slots(1, leaseMs)));
      const l1 = await s.decide();
      await s.until(l1.now + leaseMs / 2);
      const renewed = await s.renew(l1.leaseId as string);
      expect(renewed).toBeDefined();
      expect(renewed as number).toBeGreaterThan(l1.leaseExpiresAt);

      // Past the original expiry the renewed lease still holds the slot.
      await s.until(l1.leaseExpiresAt);
      const stillHeld = await s.decide();
      s.landedBefore(stillHeld, renewed as number);
      expect(stillHeld.allowed).toBe(false);
      expect(stillHeld.refusedBy).toBe("concurrency");
      expectTime(stillHeld.retryAfterMs, (renewed as number) - stillHeld.now, "retryAfterMs: the renewed expiry");

      await s.until(renewed as number);
      expect(await s.renew(l1.leaseId as string), "renew of an expired lease").toBeUndefined();
      const l2 = await s.decide();
      expect(l2.allowed).toBe(true);
      expect(l2.inUse).toBe(1);
      const longer = await s.renew(l2.leaseId as string, 3 * leaseMs);
      expect(longer).toBeDefined();
      expect(await s.release(l2.leaseId as string)).toBe(true);
      expect(await s.renew(l2.leaseId as string), "renew of a released lease").toBeUndefined();
      expect(await s.renew(run.leaseId()), "renew of an unknown lease").toBeUndefined();
      expect(await s.release(run.leaseId()), "release of an unknown lease").toBe(false);
    },
  );

  conformanceCase(
    suite,
    "a release after the lease expired frees nothing, not even the next holder's slot",
    async (run) => {
      const engine = await run.engine();
      const s = run.subject(engine, { limiter: run.id("stale"), key: "" }, policyOf(undefined, slots(1, leaseMs)));
      // Expired, and nothing has happened since: the store may still hold the lease's entry.
      const l0 = await s.decide();
      await s.until(l0.leaseExpiresAt);
      expect(await s.release(l0.leaseId as string), "release of an expired lease").toBe(false);
      // Expired, and someone else has the slot now.
      const l1 = await s.decide();
      expect(l1.allowed).toBe(true);
      await s.until(l1.leaseExpiresAt);
      const l2 = await s.decide();
      expect(l2.allowed).toBe(true);
      expect(await s.release(l1.leaseId as string)).toBe(false);
      const refused = await s.decide();
      s.landedBefore(refused, l2.leaseExpiresAt);
      expect(refused.allowed).toBe(false);
      expect(refused.inUse).toBe(1);
      expect(await s.release(l2.leaseId as string)).toBe(true);
    },
  );

  conformanceCase(
    suite,
    "rate and concurrency are decided together: a refusal by either consumes nothing of the other",
    async (run) => {
      const engine = await run.engine();
      const interval = 1000;
      const s = run.subject(
        engine,
        { limiter: run.id("both"), key: "" },
        policyOf(tokenBucket(1, 3), slots(1, longLeaseMs)),
      );
      const a = await s.decide();
      expect(a.allowed).toBe(true);
      expect(a.remaining).toBe(2);
      expect(a.inUse).toBe(1);

      const bySlots = await s.decide();
      expect(bySlots.allowed).toBe(false);
      expect(bySlots.refusedBy).toBe("concurrency");
      expect(bySlots.remaining, "a concurrency refusal spends no rate budget").toBe(2);
      expect(bySlots.leaseExpiresAt).toBe(0);
      expectTime(bySlots.retryAfterMs, a.leaseExpiresAt - bySlots.now, "retryAfterMs of a concurrency refusal");
      expect((await s.peek()).remaining).toBe(2);

      expect(await s.release(a.leaseId as string)).toBe(true);
      const c = await s.decide(2);
      expect(c.allowed).toBe(true);
      expect(c.remaining).toBe(0);
      expect(await s.release(c.leaseId as string)).toBe(true);

      const byRate = await s.decide(1);
      s.landedBefore(byRate, a.now + interval);
      expect(byRate.allowed).toBe(false);
      expect(byRate.refusedBy).toBe("rate");
      expect(byRate.inUse, "a rate refusal takes no slot").toBe(0);
      expect(byRate.leaseExpiresAt).toBe(0);
      expect((await s.peek(0)).inUse).toBe(0);

      // Both refuse: the rate's wait wins (it is exact; the lease bound is only an upper bound).
      const holder = await s.decide(0);
      expect(holder.allowed).toBe(true);
      const both = await s.decide(1);
      s.landedBefore(both, a.now + interval);
      expect(both.allowed).toBe(false);
      expect(both.refusedBy).toBe("rate");
      expectTime(both.retryAfterMs, a.now + interval - both.now, "retryAfterMs when both refuse: the rate's");
      expect(await s.release(holder.leaseId as string)).toBe(true);
    },
  );

  conformanceCase(suite, "peek consumes nothing: no rate budget, no slot", async (run) => {
    const engine = await run.engine();
    const s = run.subject(
      engine,
      { limiter: run.id("peek"), key: "" },
      policyOf(tokenBucket(1, 2), slots(1, longLeaseMs)),
    );
    for (let i = 0; i < 3; i++) {
      const p = await s.peek();
      expect(p.allowed).toBe(true);
      expect(p.remaining).toBe(2);
      expect(p.inUse).toBe(0);
      expect(p.leaseExpiresAt).toBe(0);
    }
    expect((await s.peek(2)).allowed).toBe(true);
    const a = await s.decide();
    expect(a.remaining).toBe(1);
    for (let i = 0; i < 3; i++) {
      const p = await s.peek();
      expect(p.allowed).toBe(false);
      expect(p.refusedBy).toBe("concurrency");
      expect(p.remaining).toBe(1);
      expect(p.inUse).toBe(1);
    }
    const tooMuch = await s.peek(2);
    expect(tooMuch.refusedBy).toBe("rate");
    expect(tooMuch.retryAfterMs).toBeGreaterThan(0);
    expect(await s.release(a.leaseId as string)).toBe(true);
    const b = await s.decide();
    s.landedBefore(b, a.now + 1000);
    expect(b.allowed).toBe(true);
    expect(b.remaining, "only the two decisions spent anything").toBe(0);
    expect(await s.release(b.leaseId as string)).toBe(true);
  });

  conformanceCase(suite, "reset forgets everything of the target: rate state and slots", async (run) => {
    const engine = await run.engine();
    const windowMs = 10_000;
    const rates: RatePolicy[] = [tokenBucket(1, 2), slidingWindow(2, windowMs), fixedWindow(2, windowMs)];
    for (const rate of rates) {
      const s = run.subject(
        engine,
        { limiter: run.id(`reset-${rate.algorithm}`), key: "" },
        policyOf(rate, slots(1, longLeaseMs)),
      );
      const windowEnd =
        rate.algorithm === "fixed_window" ? await freshWindow(s, windowMs, 1000) : Number.POSITIVE_INFINITY;
      const a = await s.decide(2);
      expect(a.allowed).toBe(true);
      expect((await s.peek()).allowed).toBe(false);
      await s.reset();
      const p = await s.peek();
      s.landedBefore(p, windowEnd);
      expect(p.allowed, `${rate.algorithm}: admitted after reset`).toBe(true);
      expect(p.remaining).toBe(2);
      expect(p.inUse).toBe(0);
      const b = await s.decide();
      expect(b.allowed).toBe(true);
      expect(b.remaining).toBe(1);
      expect(b.inUse).toBe(1);
      expect(await s.release(a.leaseId as string), "release of a lease forgotten by reset").toBe(false);
      expect(await s.renew(a.leaseId as string), "renew of a lease forgotten by reset").toBeUndefined();
      expect(await s.release(b.leaseId as string)).toBe(true);
    }
    // Resetting a target that holds nothing is harmless.
    await run.subject(engine, { limiter: run.id("reset-nothing"), key: "never" }, policyOf(tokenBucket(1, 1))).reset();
  });

  conformanceCase(
    suite,
    "concurrent calls are decided one at a time: never more than the budget or the slots",
    async (run) => {
      const engines = [await run.engine()];
      if (suite.options.shared) engines.push(await run.engine());
      const byNumber = (a: number, b: number): number => a - b;
      const target = (name: string): EngineTarget => ({ limiter: run.id(name), key: "" });
      const rateOnly = await burst(run, engines, target("atomic-rate"), policyOf(tokenBucket(0.5, 4)), 12);
      const admitted = rateOnly.filter((d) => d.allowed);
      expect(admitted.length, "admitted out of 12 concurrent calls on a burst of 4").toBe(4);
      // Each admission saw the state the previous one left: no two read the same budget.
      expect(admitted.map((d) => d.remaining).sort(byNumber)).toEqual([0, 1, 2, 3]);

      const slotsOnly = await burst(
        run,
        engines,
        target("atomic-slots"),
        policyOf(undefined, slots(3, longLeaseMs)),
        12,
      );
      const holders = slotsOnly.filter((d) => d.allowed);
      expect(holders.length, "slots taken by 12 concurrent calls on 3 slots").toBe(3);
      expect(holders.map((d) => d.inUse).sort(byNumber)).toEqual([1, 2, 3]);
      for (const d of slotsOnly.filter((d) => !d.allowed)) expect(d.inUse).toBe(3);

      const both = policyOf(tokenBucket(0.5, 5), slots(3, longLeaseMs));
      const mixedTarget = target("atomic-both");
      const mixed = await burst(run, engines, mixedTarget, both, 12);
      const admittedBoth = mixed.filter((d) => d.allowed);
      expect(admittedBoth.length).toBe(3);
      // The nine concurrency refusals spent no rate budget.
      expect(admittedBoth.map((d) => d.remaining).sort(byNumber)).toEqual([2, 3, 4]);
      for (const d of mixed.filter((d) => !d.allowed)) expect(d.refusedBy).toBe("concurrency");
      const after = await (engines[0] as Engine).peek({ ...mixedTarget, policy: both, cost: 1 });
      expect(after.remaining, "rate budget left after 3 admissions and 9 concurrency refusals").toBe(2);
      expect(after.inUse).toBe(3);
    },
  );
}
