/**
 * Property tests: the algorithms against naive reference models that are obviously correct
 * (a continuous token count, a list of every admission, a count per aligned window, a map of
 * leases), over thousands of random call sequences with explicit times.
 *
 * Times are integers, and policies use small integers, so the reference models compute exactly:
 * the token model counts thousandths of a token (`elapsed * rate` is exact for the rates drawn),
 * so only the algorithm's own floating point (GCRA with intervals such as 1000/7) needs a tolerance.
 */
import { isDeepStrictEqual } from "node:util";
import * as fc from "fast-check";
import { describe, it } from "vitest";
import {
  type ConcurrencyPolicy,
  type FixedWindowPolicy,
  type Policy,
  type RatePolicy,
  rateCapacity,
  type SlidingWindowPolicy,
  type TokenBucketPolicy,
} from "../policy.js";
import { applyConcurrency, checkConcurrency, type LeaseState, releaseLease, renewLease } from "./concurrency.js";
import { decide, type EngineDecision, type KeyState, peek, releaseSlot, renewSlot, stateExpiresAt } from "./decide.js";

const RUNS = 2000;
/** What the token bucket's floating point may be off by, in ms (intervals such as 1000/7 are inexact). */
const TIME_TOLERANCE = 1e-6;
/** A realistic epoch-millisecond origin. */
const EPOCH = 1_700_000_000_000;

// ---------------------------------------------------------------------------------------------
// Reference models
// ---------------------------------------------------------------------------------------------

/** What a reference model says of one call, in the same terms as the algorithms. */
interface ModelAnswer {
  allowed: boolean;
  /** After the call when allowed; as it stands when refused. */
  remaining: number;
  /** When the budget is full again after the call (allowed) or as it stands (refused). */
  resetAt: number;
  retryAfterMs: number;
}

interface RateModel {
  check(cost: number, now: number): ModelAnswer;
  admit(cost: number, now: number): void;
}

/**
 * Token bucket as a continuous token count: `tokens = min(burst, tokens + elapsed * rate)`, admitted
 * iff `tokens >= cost`. Counted in thousandths of a token, so with integer times it is exact.
 */
class TokenModel implements RateModel {
  #milli = 0;
  #last: number | undefined;
  readonly #full: number;
  constructor(readonly policy: TokenBucketPolicy) {
    this.#full = policy.burst * 1000;
  }

  level(now: number): number {
    if (this.#last === undefined) return this.#full;
    return Math.min(this.#full, this.#milli + (now - this.#last) * this.policy.ratePerSecond);
  }

  check(cost: number, now: number): ModelAnswer {
    const rate = this.policy.ratePerSecond;
    const level = this.level(now);
    const need = cost * 1000;
    if (level >= need) {
      const after = level - need;
      return {
        allowed: true,
        remaining: Math.floor(after / 1000),
        resetAt: now + (this.#full - after) / rate,
        retryAfterMs: 0,
      };
    }
    return {
      allowed: false,
      remaining: Math.floor(level / 1000),
      resetAt: now + (this.#full - level) / rate,
      retryAfterMs: (need - level) / rate,
    };
  }

  admit(cost: number, now: number): void {
    this.#milli = this.level(now) - cost * 1000;
    this.#last = now;
  }
}

/** Sliding window as the list of every admission: a call at `t` sees those in `(t - W, t]`. */
class SlidingModel implements RateModel {
  readonly admissions: Array<{ t: number; cost: number }> = [];
  constructor(readonly policy: SlidingWindowPolicy) {}

  used(now: number): number {
    let used = 0;
    for (const a of this.admissions) if (a.t > now - this.policy.windowMs && a.t <= now) used += a.cost;
    return used;
  }

  check(cost: number, now: number): ModelAnswer {
    const { limit, windowMs } = this.policy;
    const used = this.used(now);
    const live = this.admissions.filter((a) => a.t > now - windowMs && a.cost > 0);
    const newest = live.length === 0 ? undefined : Math.max(...live.map((a) => a.t));
    if (used + cost <= limit) {
      const resetAt = cost > 0 ? now + windowMs : newest === undefined ? now : newest + windowMs;
      return { allowed: true, remaining: limit - used - cost, resetAt, retryAfterMs: 0 };
    }
    // The first moment at which enough has left: one of the live admissions' exits.
    let retryAt = Number.POSITIVE_INFINITY;
    for (const exit of live.map((a) => a.t + windowMs).sort((a, b) => a - b)) {
      if (this.used(exit) + cost <= limit) {
        retryAt = exit;
        break;
      }
    }
    return {
      allowed: false,
      remaining: limit - used,
      resetAt: newest === undefined ? now : newest + windowMs,
      retryAfterMs: retryAt - now,
    };
  }

  admit(cost: number, now: number): void {
    this.admissions.push({ t: now, cost });
  }
}

/** Fixed window as a count per `floor(t / W)`. */
class FixedModel implements RateModel {
  readonly counts = new Map<number, number>();
  constructor(readonly policy: FixedWindowPolicy) {}

  check(cost: number, now: number): ModelAnswer {
    const { limit, windowMs } = this.policy;
    const index = Math.floor(now / windowMs);
    const used = this.counts.get(index) ?? 0;
    const end = (index + 1) * windowMs;
    if (used + cost <= limit) {
      return { allowed: true, remaining: limit - used - cost, resetAt: used + cost > 0 ? end : now, retryAfterMs: 0 };
    }
    return { allowed: false, remaining: limit - used, resetAt: used > 0 ? end : now, retryAfterMs: end - now };
  }

  admit(cost: number, now: number): void {
    const index = Math.floor(now / this.policy.windowMs);
    this.counts.set(index, (this.counts.get(index) ?? 0) + cost);
  }
}

function modelFor(rate: RatePolicy): RateModel {
  switch (rate.algorithm) {
    case "token_bucket":
      return new TokenModel(rate);
    case "sliding_window":
      return new SlidingModel(rate);
    case "fixed_window":
      return new FixedModel(rate);
  }
}

/** Concurrency as a map of leases; a lease is live while `now < expiresAt`. */
class LeaseModel {
  readonly leases = new Map<string, number>();
  constructor(readonly policy: ConcurrencyPolicy) {}

  live(now: number): number[] {
    return [...this.leases.values()].filter((expiresAt) => expiresAt > now);
  }

  check(now: number): { allowed: boolean; inUse: number; retryAfterMs: number } {
    const live = this.live(now);
    if (live.length < this.policy.maxConcurrent) return { allowed: true, inUse: live.length, retryAfterMs: 0 };
    return { allowed: false, inUse: live.length, retryAfterMs: Math.min(...live) - now };
  }

  acquire(id: string, now: number): void {
    this.leases.set(id, now + this.policy.leaseMs);
  }

  release(id: string, now: number): boolean {
    const expiresAt = this.leases.get(id);
    this.leases.delete(id);
    return expiresAt !== undefined && expiresAt > now;
  }

  renew(id: string, leaseMs: number, now: number): number | undefined {
    const expiresAt = this.leases.get(id);
    if (expiresAt === undefined || expiresAt <= now) return undefined;
    this.leases.set(id, now + leaseMs);
    return now + leaseMs;
  }
}

// ---------------------------------------------------------------------------------------------
// Arbitraries
// ---------------------------------------------------------------------------------------------

/** Rates whose `elapsed * rate` is exact for integer elapsed: integer or simple intervals, and 1000/3, 1000/7. */
const RATES = [0.5, 1, 2, 3, 4, 5, 7, 8, 10, 11, 13, 20, 25, 50, 100, 1000];

const tokenBucketArb: fc.Arbitrary<TokenBucketPolicy> = fc
  .record({ ratePerSecond: fc.constantFrom(...RATES), burst: fc.integer({ min: 1, max: 6 }) })
  .map(({ ratePerSecond, burst }) => ({
    algorithm: "token_bucket",
    ratePerSecond,
    burst,
    intervalMs: 1000 / ratePerSecond,
  }));

/** Bursts as large as real configurations use: long runs of admissions in debt. */
const bigBucketArb: fc.Arbitrary<TokenBucketPolicy> = fc
  .record({
    ratePerSecond: fc.constantFrom(...RATES),
    burst: fc.oneof(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 7, max: 100 })),
  })
  .map(({ ratePerSecond, burst }) => ({
    algorithm: "token_bucket",
    ratePerSecond,
    burst,
    intervalMs: 1000 / ratePerSecond,
  }));

const limitArb = fc.oneof(
  { arbitrary: fc.integer({ min: 1, max: 6 }), weight: 4 },
  { arbitrary: fc.integer({ min: 7, max: 40 }), weight: 1 },
);

const slidingWindowArb: fc.Arbitrary<SlidingWindowPolicy> = fc
  .record({ limit: limitArb, windowMs: fc.constantFrom(1, 2, 3, 7, 10, 50, 100, 1000, 300_000) })
  .map(({ limit, windowMs }) => ({ algorithm: "sliding_window", limit, windowMs }));

const fixedWindowArb: fc.Arbitrary<FixedWindowPolicy> = fc
  .record({ limit: limitArb, windowMs: fc.constantFrom(1, 3, 7, 10, 100, 1000, 60_000) })
  .map(({ limit, windowMs }) => ({ algorithm: "fixed_window", limit, windowMs }));

const concurrencyArb: fc.Arbitrary<ConcurrencyPolicy> = fc.record({
  maxConcurrent: fc.integer({ min: 1, max: 4 }),
  leaseMs: fc.constantFrom(1, 5, 10, 100, 1000),
});

/** The time scale on which a policy's state changes: steps are drawn around it. */
function scaleOf(rate: RatePolicy | undefined, concurrency?: ConcurrencyPolicy): number {
  let scale = concurrency?.leaseMs ?? 1;
  if (rate !== undefined) {
    const own = rate.algorithm === "token_bucket" ? rate.intervalMs * rate.burst : rate.windowMs;
    scale = Math.max(scale, own);
  }
  return Math.max(1, Math.ceil(scale));
}

/** Time steps: many at the same instant, many small, some across the scale, a few long idles. */
function deltaArb(scale: number): fc.Arbitrary<number> {
  return fc.oneof(
    { arbitrary: fc.constant(0), weight: 4 },
    { arbitrary: fc.integer({ min: 1, max: Math.max(1, Math.ceil(scale / 4)) }), weight: 4 },
    { arbitrary: fc.integer({ min: 1, max: 2 * scale }), weight: 2 },
    { arbitrary: fc.integer({ min: 0, max: 10 * scale }), weight: 1 },
  );
}

interface RateStep {
  dt: number;
  cost: number;
  peek: boolean;
}

function rateStepsArb(capacity: number, scale: number, maxLength = 40): fc.Arbitrary<RateStep[]> {
  return fc.array(
    fc.record({
      dt: deltaArb(scale),
      cost: fc.oneof(
        { arbitrary: fc.constant(1), weight: 3 },
        { arbitrary: fc.integer({ min: 1, max: capacity }), weight: 2 },
      ),
      peek: fc.oneof({ arbitrary: fc.constant(false), weight: 3 }, { arbitrary: fc.constant(true), weight: 1 }),
    }),
    { minLength: 1, maxLength, size: "max" },
  );
}

interface RateScenario<P extends RatePolicy> {
  policy: P;
  t0: number;
  steps: RateStep[];
}

function rateScenarioArb<P extends RatePolicy>(
  policyArb: fc.Arbitrary<P>,
  originArb: fc.Arbitrary<number>,
  maxLength = 40,
): fc.Arbitrary<RateScenario<P>> {
  return policyArb.chain((policy) =>
    fc.record({
      policy: fc.constant(policy),
      t0: originArb,
      steps: rateStepsArb(rateCapacity(policy), scaleOf(policy), maxLength),
    }),
  );
}

const smallOrigin = fc.integer({ min: 0, max: 1_000_000 });
const epochOrigin = fc.integer({ min: 0, max: 1_000_000 }).map((offset) => EPOCH + offset);

// ---------------------------------------------------------------------------------------------
// Checks shared by the properties
// ---------------------------------------------------------------------------------------------

function same(actual: unknown, expected: unknown, what: string): void {
  if (actual !== expected) throw new Error(`${what}: expected ${String(expected)}, got ${String(actual)}`);
}

function deepSame(actual: unknown, expected: unknown, what: string): void {
  if (!isDeepStrictEqual(actual, expected)) {
    throw new Error(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  }
}

function expectTime(actual: number, expected: number, what: string, tolerance: number): void {
  if (actual === expected) return;
  if (Math.abs(actual - expected) <= tolerance) return;
  throw new Error(`${what}: expected ${expected}, got ${actual}`);
}

function toleranceFor(rate: RatePolicy | undefined): number {
  return rate?.algorithm === "token_bucket" ? TIME_TOLERANCE : 0;
}

/** (d) retryAfterMs is exact: the same call admits at now + retryAfterMs, and not 1 ms earlier. */
function expectRetryExact(
  state: KeyState | undefined,
  policy: Policy,
  cost: number,
  now: number,
  decision: EngineDecision,
): void {
  const wait = decision.retryAfterMs;
  same(Number.isFinite(wait), true, "a cost within capacity always has a finite wait");
  if (!(wait > 0)) throw new Error(`a refusal with retryAfterMs ${wait}`);
  const onTime = decide(structuredClone(state), policy, cost, "probe", now + wait).decision;
  if (decision.refusedBy === "rate") {
    // A rate refusal reports the rate's own exact wait: after it, the rate no longer refuses
    // (the slots may, when they were full too).
    if (onTime.refusedBy === "rate") throw new Error(`rate still refuses at now + retryAfterMs (${wait})`);
  } else {
    same(onTime.allowed, true, `refused at now + retryAfterMs (${wait})`);
  }
  if (wait >= 1) {
    const early = decide(structuredClone(state), policy, cost, "probe", now + wait - 1).decision;
    same(early.refusedBy, decision.refusedBy, `admitted 1 ms before now + retryAfterMs (${wait})`);
  }
}

/** (e) remaining after an admission is the number of further cost-1 calls admitted at that instant. */
function expectRemainingExact(state: KeyState | undefined, rate: RatePolicy, now: number, remaining: number): void {
  const policy: Policy = { rate, concurrency: undefined };
  const probe: KeyState | undefined = structuredClone(state) ?? {};
  const rateOnly: KeyState = { rate: probe.rate };
  for (let i = 0; i < remaining; i++) {
    same(decide(rateOnly, policy, 1, undefined, now).decision.allowed, true, `cost-1 call ${i + 1} of ${remaining}`);
  }
  same(decide(rateOnly, policy, 1, undefined, now).decision.allowed, false, `a cost-1 call beyond remaining`);
}

/** (b) the admitted cost in every window/interval never exceeds the policy. */
function expectWithinPolicy(rate: RatePolicy, admitted: ReadonlyArray<{ t: number; cost: number }>): void {
  switch (rate.algorithm) {
    case "token_bucket": {
      // Any closed interval [a, b] holds at most burst + rate * (b - a) / 1000.
      for (let i = 0; i < admitted.length; i++) {
        let sum = 0;
        for (let j = i; j < admitted.length; j++) {
          const a = admitted[i] as { t: number; cost: number };
          const b = admitted[j] as { t: number; cost: number };
          sum += b.cost;
          const bound = rate.burst + (rate.ratePerSecond * (b.t - a.t)) / 1000;
          if (sum > bound + 1e-9) throw new Error(`[${a.t}, ${b.t}] holds ${sum} > ${bound}`);
        }
      }
      return;
    }
    case "sliding_window": {
      // Any interval [a, a + W) holds at most limit (the worst ones start at an admission).
      for (const a of admitted) {
        let sum = 0;
        for (const b of admitted) if (b.t >= a.t && b.t < a.t + rate.windowMs) sum += b.cost;
        if (sum > rate.limit) throw new Error(`[${a.t}, ${a.t + rate.windowMs}) holds ${sum} > ${rate.limit}`);
      }
      return;
    }
    case "fixed_window": {
      const counts = new Map<number, number>();
      for (const a of admitted) {
        const index = Math.floor(a.t / rate.windowMs);
        const sum = (counts.get(index) ?? 0) + a.cost;
        counts.set(index, sum);
        if (sum > rate.limit) throw new Error(`window ${index} holds ${sum} > ${rate.limit}`);
      }
      return;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Rate algorithms against their models
// ---------------------------------------------------------------------------------------------

/** Runs one scenario through decide/peek and the model side by side, checking (a)-(e). */
function runRateScenario<P extends RatePolicy>({ policy: rate, t0, steps }: RateScenario<P>): void {
  const policy: Policy = { rate, concurrency: undefined };
  const model = modelFor(rate);
  const tolerance = toleranceFor(rate);
  const admitted: Array<{ t: number; cost: number }> = [];
  let state: KeyState | undefined;
  let now = t0;
  for (const [index, step] of steps.entries()) {
    now += step.dt;
    const cost = step.cost;
    const where = `step ${index} (t0 + ${now - t0}, cost ${cost})`;
    const expected = model.check(cost, now);
    const before = structuredClone(state);

    if (step.peek) {
      const peeked = peek(state, policy, cost, now);
      deepSame(state, before, `${where}: peek changed the state`);
      same(peeked.allowed, expected.allowed, `${where}: peek allowed`);
      same(peeked.refusedBy, expected.allowed ? undefined : "rate", `${where}: peek refusedBy`);
      // A peek reports the budget before the call.
      same(
        peeked.remaining,
        expected.allowed ? expected.remaining + cost : expected.remaining,
        `${where}: peek remaining`,
      );
      expectTime(peeked.retryAfterMs, expected.retryAfterMs, `${where}: peek retryAfterMs`, tolerance);
      const standing = model.check(0, now);
      expectTime(peeked.resetAt, standing.resetAt, `${where}: peek resetAt`, tolerance);
      continue;
    }

    const { decision, state: next, changed } = decide(state, policy, cost, undefined, now);
    // (a) the same decision as the model, with the same numbers.
    same(decision.allowed, expected.allowed, `${where}: allowed`);
    same(decision.remaining, expected.remaining, `${where}: remaining`);
    expectTime(decision.retryAfterMs, expected.retryAfterMs, `${where}: retryAfterMs`, tolerance);
    expectTime(decision.resetAt, expected.resetAt, `${where}: resetAt`, tolerance);
    same(changed, decision.allowed, `${where}: changed`);
    if (decision.allowed) {
      same(decision.refusedBy, undefined, `${where}: refusedBy`);
      state = next;
      model.admit(cost, now);
      admitted.push({ t: now, cost });
      // (e)
      expectRemainingExact(state, rate, now, decision.remaining);
      // An admission leaves a state a store must keep for a while.
      same(stateExpiresAt(state as KeyState, policy) > now, true, `${where}: stateExpiresAt after an admission`);
    } else {
      same(decision.refusedBy, "rate", `${where}: refusedBy`);
      // (c) a refusal changes nothing.
      same(next, state, "a refusal returns the state it was given");
      deepSame(state, before, `${where}: a refusal changed the state`);
      // (d)
      expectRetryExact(state, policy, cost, now, decision);
    }
  }
  // (b)
  expectWithinPolicy(rate, admitted);
  expectExpiryExact(state, policy);
}

/** From `stateExpiresAt` on, the stored state answers exactly as no state (a store may forget it). */
function expectExpiryExact(state: KeyState | undefined, policy: Policy): void {
  if (state === undefined) return;
  const at = stateExpiresAt(state, policy);
  const capacity = policy.rate === undefined ? 1 : rateCapacity(policy.rate);
  for (const t of [at, at + 1, at + 12_345]) {
    for (const cost of new Set([0, 1, capacity])) {
      const where = `stateExpiresAt ${at}, at ${t}, cost ${cost}`;
      deepSame(peek(state, policy, cost, t), peek(undefined, policy, cost, t), `${where}: peek`);
      deepSame(
        decide(structuredClone(state), policy, cost, "probe", t).decision,
        decide(undefined, policy, cost, "probe", t).decision,
        `${where}: decide`,
      );
    }
  }
}

describe("properties: rate algorithms against reference models", () => {
  it("token bucket (GCRA) decides as a continuous token count; (a)-(e) hold", () => {
    fc.assert(fc.property(rateScenarioArb(tokenBucketArb, smallOrigin), runRateScenario), { numRuns: RUNS });
  });

  // BUG (reported; see token-bucket.test.ts "at epoch-millisecond times"): fails while the stored
  // tat accumulates rounding at epoch magnitude.
  it("token bucket at epoch-millisecond times decides as the exact token count", () => {
    fc.assert(fc.property(rateScenarioArb(bigBucketArb, epochOrigin, 150), runRateScenarioAtEpoch), { numRuns: RUNS });
  });

  it("sliding window decides as the list of every admission; (a)-(e) hold", () => {
    fc.assert(fc.property(rateScenarioArb(slidingWindowArb, smallOrigin), runRateScenario), { numRuns: RUNS });
  });

  it("sliding window over long runs (the log is compacted) still decides as the model", () => {
    const busy: fc.Arbitrary<SlidingWindowPolicy> = fc
      .record({ limit: fc.integer({ min: 1, max: 12 }), windowMs: fc.constantFrom(3, 10, 50) })
      .map(({ limit, windowMs }) => ({ algorithm: "sliding_window", limit, windowMs }));
    fc.assert(fc.property(rateScenarioArb(busy, smallOrigin, 300), runRateScenario), { numRuns: 500 });
  });

  it("sliding window at epoch-millisecond times", () => {
    fc.assert(fc.property(rateScenarioArb(slidingWindowArb, epochOrigin), runRateScenario), { numRuns: RUNS });
  });

  it("fixed window decides as a count per aligned window; (a)-(e) hold", () => {
    fc.assert(fc.property(rateScenarioArb(fixedWindowArb, smallOrigin), runRateScenario), { numRuns: RUNS });
  });

  it("fixed window at epoch-millisecond times", () => {
    fc.assert(fc.property(rateScenarioArb(fixedWindowArb, epochOrigin), runRateScenario), { numRuns: RUNS });
  });

  it("cost 0 is always admitted and never changes a later answer", () => {
    const anyRate: fc.Arbitrary<RatePolicy> = fc.oneof(tokenBucketArb, slidingWindowArb, fixedWindowArb);
    const scenario = anyRate.chain((rate) =>
      fc.record({
        rate: fc.constant(rate),
        t0: smallOrigin,
        steps: rateStepsArb(rateCapacity(rate), scaleOf(rate)),
        zeros: fc.array(fc.boolean(), { minLength: 40, maxLength: 40, size: "max" }),
      }),
    );
    fc.assert(
      fc.property(scenario, ({ rate, t0, steps, zeros }) => {
        const policy: Policy = { rate, concurrency: undefined };
        let plain: KeyState | undefined;
        let withZeros: KeyState | undefined;
        let now = t0;
        for (const [index, step] of steps.entries()) {
          const previous = now;
          now += step.dt;
          if (zeros[index] === true) {
            // A cost-0 call between the two calls, and one at the same instant.
            for (const at of [previous + Math.floor(step.dt / 2), now]) {
              const zero = decide(withZeros, policy, 0, undefined, at);
              same(zero.decision.allowed, true, "cost 0: allowed");
              same(zero.decision.retryAfterMs, 0, "cost 0: retryAfterMs");
              if (zero.changed) withZeros = zero.state;
            }
          }
          if (step.peek) {
            deepSame(
              peek(withZeros, policy, step.cost, now),
              peek(plain, policy, step.cost, now),
              "cost-0 calls changed a later peek",
            );
            continue;
          }
          const a = decide(plain, policy, step.cost, undefined, now);
          const b = decide(withZeros, policy, step.cost, undefined, now);
          deepSame(b.decision, a.decision, "cost-0 calls changed a later decision");
          if (a.changed) plain = a.state;
          if (b.changed) withZeros = b.state;
        }
      }),
      { numRuns: RUNS },
    );
  });
});

/**
 * At epoch times the token model is still exact (integers below 2^53), while the algorithm's times
 * carry about 2.4e-4 ms of precision: decisions and remaining must still match exactly, waits
 * within a microsecond. Every step is a decide (the peek flag is ignored).
 */
function runRateScenarioAtEpoch(scenario: RateScenario<TokenBucketPolicy>): void {
  const { policy: rate, t0, steps } = scenario;
  const policy: Policy = { rate, concurrency: undefined };
  const model = new TokenModel(rate);
  let state: KeyState | undefined;
  let now = t0;
  for (const [index, step] of steps.entries()) {
    now += step.dt;
    const expected = model.check(step.cost, now);
    const where = `step ${index} (t0 + ${now - t0}, cost ${step.cost})`;
    const { decision, state: next } = decide(state, policy, step.cost, undefined, now);
    same(decision.allowed, expected.allowed, `${where}: allowed`);
    same(decision.remaining, expected.remaining, `${where}: remaining`);
    expectTime(decision.retryAfterMs, expected.retryAfterMs, `${where}: retryAfterMs`, 1e-3);
    if (decision.allowed) {
      state = next;
      model.admit(step.cost, now);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Concurrency, alone and decided together with a rate
// ---------------------------------------------------------------------------------------------

type SlotOp =
  | { kind: "acquire"; dt: number; cost: number }
  | { kind: "peek"; dt: number; cost: number }
  | { kind: "release"; dt: number; pick: number }
  | { kind: "renew"; dt: number; pick: number; leaseFactor: number };

function slotOpsArb(capacity: number, scale: number): fc.Arbitrary<SlotOp[]> {
  const dt = deltaArb(scale);
  const cost = fc.integer({ min: 1, max: capacity });
  return fc.array(
    fc.oneof(
      { arbitrary: fc.record({ kind: fc.constant("acquire" as const), dt, cost }), weight: 5 },
      { arbitrary: fc.record({ kind: fc.constant("peek" as const), dt, cost }), weight: 1 },
      { arbitrary: fc.record({ kind: fc.constant("release" as const), dt, pick: fc.nat() }), weight: 3 },
      {
        arbitrary: fc.record({
          kind: fc.constant("renew" as const),
          dt,
          pick: fc.nat(),
          leaseFactor: fc.constantFrom(1, 1, 2, 0.5),
        }),
        weight: 2,
      },
    ),
    { minLength: 1, maxLength: 40, size: "max" },
  );
}

/** (b) for slots: from the algorithm's own answers, at no instant are more than max leases held. */
function expectSlotsWithinPolicy(max: number, held: ReadonlyMap<string, { start: number; end: number }>): void {
  const spans = [...held.values()];
  for (const s of spans) {
    const at = s.start;
    const live = spans.filter((o) => o.start <= at && at < o.end).length;
    if (live > max) throw new Error(`${live} slots held at ${at} > ${max}`);
  }
}

describe("properties: concurrency against a map of leases", () => {
  it("check/apply/release/renew agree with the model; slots never exceed the maximum", () => {
    const scenario = concurrencyArb.chain((policy) =>
      fc.record({ policy: fc.constant(policy), t0: smallOrigin, ops: slotOpsArb(1, scaleOf(undefined, policy)) }),
    );
    fc.assert(
      fc.property(scenario, ({ policy, t0, ops }) => {
        const model = new LeaseModel(policy);
        let leases: LeaseState | undefined;
        const ids: string[] = [];
        const held = new Map<string, { start: number; end: number }>();
        let now = t0;
        for (const op of ops) {
          now += op.dt;
          if (op.kind === "acquire" || op.kind === "peek") {
            const before = structuredClone(leases);
            const check = checkConcurrency(leases, policy, now);
            deepSame(leases, before, "checkConcurrency changed the leases");
            deepSame(check, model.check(now), `checkConcurrency at t0 + ${now - t0}`);
            if (op.kind === "peek" || !check.allowed) continue;
            const id = `l${ids.length}`;
            ids.push(id);
            leases = applyConcurrency(leases, policy, id, now);
            model.acquire(id, now);
            held.set(id, { start: now, end: now + policy.leaseMs });
            // Every lease in the state is one the model knows, with the same expiry.
            for (const [key, expiresAt] of Object.entries(leases))
              same(model.leases.get(key), expiresAt, `lease ${key}`);
            continue;
          }
          if (ids.length === 0) continue;
          const id = ids[op.pick % ids.length] as string;
          if (op.kind === "release") {
            const released = releaseLease(leases, id, now);
            same(released, model.release(id, now), `release ${id} at t0 + ${now - t0}`);
            const span = held.get(id);
            if (released && span !== undefined) span.end = now;
          } else {
            const leaseMs = Math.max(1, Math.round(policy.leaseMs * op.leaseFactor));
            const renewed = renewLease(leases, id, leaseMs, now);
            same(renewed, model.renew(id, leaseMs, now), `renew ${id} at t0 + ${now - t0}`);
            const span = held.get(id);
            if (renewed !== undefined && span !== undefined) span.end = renewed;
          }
        }
        expectSlotsWithinPolicy(policy.maxConcurrent, held);
      }),
      { numRuns: RUNS },
    );
  });

  it("decide with rate and concurrency: all or nothing, refusedBy, exact waits, (a)-(e)", () => {
    const rateOrNone: fc.Arbitrary<RatePolicy | undefined> = fc.oneof(
      { arbitrary: fc.constant(undefined), weight: 1 },
      { arbitrary: tokenBucketArb, weight: 2 },
      { arbitrary: slidingWindowArb, weight: 2 },
      { arbitrary: fixedWindowArb, weight: 2 },
    );
    const scenario = fc.tuple(rateOrNone, concurrencyArb).chain(([rate, concurrency]) =>
      fc.record({
        policy: fc.constant<Policy>({ rate, concurrency }),
        t0: smallOrigin,
        ops: slotOpsArb(rate === undefined ? 1 : rateCapacity(rate), scaleOf(rate, concurrency)),
      }),
    );
    fc.assert(
      fc.property(scenario, ({ policy, t0, ops }) => {
        const rate = policy.rate;
        const concurrency = policy.concurrency as ConcurrencyPolicy;
        const rateModel = rate === undefined ? undefined : modelFor(rate);
        const leaseModel = new LeaseModel(concurrency);
        const tolerance = toleranceFor(rate);
        const ids: string[] = [];
        const held = new Map<string, { start: number; end: number }>();
        const admitted: Array<{ t: number; cost: number }> = [];
        let state: KeyState | undefined;
        let now = t0;
        for (const [index, op] of ops.entries()) {
          now += op.dt;
          const where = `op ${index} ${op.kind} at t0 + ${now - t0}`;
          if (op.kind === "acquire" || op.kind === "peek") {
            const cost = rate === undefined ? 1 : op.cost;
            const r = rateModel?.check(cost, now);
            const standing = rateModel?.check(0, now);
            const s = leaseModel.check(now);
            const rateAllowed = r === undefined || r.allowed;
            const allowed = rateAllowed && s.allowed;
            const refusedBy = !rateAllowed ? "rate" : !s.allowed ? "concurrency" : undefined;
            const wait = !rateAllowed ? (r?.retryAfterMs ?? 0) : s.allowed ? 0 : s.retryAfterMs;
            const before = structuredClone(state);

            if (op.kind === "peek") {
              const peeked = peek(state, policy, cost, now);
              deepSame(state, before, `${where}: peek changed the state`);
              same(peeked.allowed, allowed, where);
              same(peeked.refusedBy, refusedBy, where);
              same(peeked.inUse, s.inUse, where);
              same(peeked.remaining, standing?.remaining ?? 0, where);
              expectTime(peeked.resetAt, standing?.resetAt ?? now, `${where}: resetAt`, tolerance);
              expectTime(peeked.retryAfterMs, wait, `${where}: retryAfterMs`, tolerance);
              continue;
            }

            const id = `l${ids.length}`;
            ids.push(id);
            const { decision, state: next, changed } = decide(state, policy, cost, id, now);
            // (a)
            same(decision.allowed, allowed, `${where}: allowed`);
            same(decision.refusedBy, refusedBy, `${where}: refusedBy`);
            expectTime(decision.retryAfterMs, wait, `${where}: retryAfterMs`, tolerance);
            same(decision.inUse, allowed ? s.inUse + 1 : s.inUse, `${where}: inUse`);
            same(decision.leaseExpiresAt, allowed ? now + concurrency.leaseMs : 0, `${where}: leaseExpiresAt`);
            // After the call when admitted; the budget as it stands when refused (nothing was spent).
            const rateAnswer = allowed ? r : standing;
            same(decision.remaining, rateAnswer?.remaining ?? 0, `${where}: remaining`);
            expectTime(decision.resetAt, rateAnswer?.resetAt ?? now, `${where}: resetAt`, tolerance);
            same(changed, allowed, `${where}: changed`);
            if (allowed) {
              state = next;
              rateModel?.admit(cost, now);
              leaseModel.acquire(id, now);
              held.set(id, { start: now, end: now + concurrency.leaseMs });
              admitted.push({ t: now, cost });
              if (rate !== undefined) expectRemainingExact(state, rate, now, decision.remaining);
            } else {
              // (c) all or nothing: neither part consumed.
              same(next, state, "a refusal returns the state it was given");
              deepSame(state, before, `${where}: a refusal changed the state`);
              // (d)
              expectRetryExact(state, policy, cost, now, decision);
            }
            continue;
          }
          if (ids.length === 0) continue;
          const id = ids[op.pick % ids.length] as string;
          if (op.kind === "release") {
            const released = releaseSlot(state, id, now);
            same(released, leaseModel.release(id, now), `${where}: release ${id}`);
            const span = held.get(id);
            if (released && span !== undefined) span.end = now;
          } else {
            const leaseMs = Math.max(1, Math.round(concurrency.leaseMs * op.leaseFactor));
            const renewed = renewSlot(state, id, leaseMs, now);
            same(renewed, leaseModel.renew(id, leaseMs, now), `${where}: renew ${id}`);
            const span = held.get(id);
            if (renewed !== undefined && span !== undefined) span.end = renewed;
          }
        }
        // (b)
        expectSlotsWithinPolicy(concurrency.maxConcurrent, held);
        if (rate !== undefined) expectWithinPolicy(rate, admitted);
        expectExpiryExact(state, policy);
      }),
      { numRuns: RUNS },
    );
  });
});
