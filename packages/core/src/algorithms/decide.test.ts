import { describe, expect, it } from "vitest";
import {
  type ConcurrencyPolicy,
  type FixedWindowPolicy,
  type Policy,
  rateCapacity,
  type SlidingWindowPolicy,
  type TokenBucketPolicy,
} from "../policy.js";
import {
  type DecideResult,
  decide,
  type EngineDecision,
  type KeyState,
  peek,
  releaseSlot,
  renewSlot,
  stateExpiresAt,
} from "./decide.js";

const T0 = 1_700_000_100_000; // a multiple of 1000 and of 300 000

function tokenBucket(ratePerSecond: number, burst: number): TokenBucketPolicy {
  return { algorithm: "token_bucket", ratePerSecond, burst, intervalMs: 1000 / ratePerSecond };
}
function slidingWindow(limit: number, windowMs: number): SlidingWindowPolicy {
  return { algorithm: "sliding_window", limit, windowMs };
}
function fixedWindow(limit: number, windowMs: number): FixedWindowPolicy {
  return { algorithm: "fixed_window", limit, windowMs };
}
function slots(maxConcurrent: number, leaseMs: number): ConcurrencyPolicy {
  return { maxConcurrent, leaseMs };
}
function policyOf(rate: Policy["rate"], concurrency?: ConcurrencyPolicy): Policy {
  return { rate, concurrency };
}

/** Keeps one key's state between calls, as an engine does. */
class Key {
  state: KeyState | undefined;
  #ids = 0;
  constructor(readonly policy: Policy) {}

  decide(now: number, cost = 1, leaseId: string | undefined = this.policy.concurrency ? `l${++this.#ids}` : undefined) {
    const result = decide(this.state, this.policy, cost, leaseId, now);
    if (result.changed) this.state = result.state;
    return { ...result.decision, leaseId };
  }

  peek(now: number, cost = 1): EngineDecision {
    return peek(this.state, this.policy, cost, now);
  }
}

describe("decide: rate only", () => {
  it("creates the state on a first admission and updates it in place afterwards", () => {
    const policy = policyOf(tokenBucket(10, 5));
    const first = decide(undefined, policy, 1, undefined, T0);
    expect(first.changed).toBe(true);
    expect(first.state).toEqual({ rate: { since: T0, units: 1 } });
    expect(first.decision).toEqual({
      allowed: true,
      refusedBy: undefined,
      now: T0,
      remaining: 4,
      resetAt: T0 + 100,
      retryAfterMs: 0,
      inUse: 0,
      leaseExpiresAt: 0,
    });
    const state = first.state as KeyState;
    const second = decide(state, policy, 2, undefined, T0);
    expect(second.state).toBe(state);
    expect(state).toEqual({ rate: { since: T0, units: 3 } });
  });

  it("a refusal returns the same state object, unchanged, and changed: false", () => {
    const policy = policyOf(slidingWindow(2, 1000));
    const key = new Key(policy);
    key.decide(T0, 2);
    const state = key.state as KeyState;
    const before = structuredClone(state);
    const result = decide(state, policy, 1, undefined, T0 + 400);
    expect(result.changed).toBe(false);
    expect(result.state).toBe(state);
    expect(state).toEqual(before);
    expect(result.decision).toEqual({
      allowed: false,
      refusedBy: "rate",
      now: T0 + 400,
      remaining: 0,
      resetAt: T0 + 1000,
      retryAfterMs: 600,
      inUse: 0,
      leaseExpiresAt: 0,
    });
  });

  it("a policy with neither part admits everything", () => {
    const result = decide(undefined, policyOf(undefined), 7, undefined, T0);
    expect(result.decision).toMatchObject({ allowed: true, refusedBy: undefined, remaining: 0, resetAt: T0, inUse: 0 });
  });
});

describe("decide: concurrency only", () => {
  const policy = policyOf(undefined, slots(2, 30_000));

  it("takes a lease per admission and reports slots held after the call", () => {
    const key = new Key(policy);
    expect(key.decide(T0)).toMatchObject({ allowed: true, inUse: 1, leaseExpiresAt: T0 + 30_000, remaining: 0 });
    expect(key.decide(T0 + 5)).toMatchObject({ allowed: true, inUse: 2, leaseExpiresAt: T0 + 30_005 });
    expect(key.state).toEqual({ leases: { l1: T0 + 30_000, l2: T0 + 30_005 } });
    expect(key.decide(T0 + 10)).toMatchObject({
      allowed: false,
      refusedBy: "concurrency",
      inUse: 2,
      retryAfterMs: 29_990,
      leaseExpiresAt: 0,
    });
    expect(key.decide(T0 + 30_000)).toMatchObject({ allowed: true, inUse: 2, leaseExpiresAt: T0 + 60_000 });
    expect(key.state).toEqual({ leases: { l2: T0 + 30_005, l4: T0 + 60_000 } });
  });

  it("releaseSlot and renewSlot act on the state's leases", () => {
    const key = new Key(policy);
    key.decide(T0);
    expect(renewSlot(key.state, "l1", 30_000, T0 + 1000)).toBe(T0 + 31_000);
    expect(releaseSlot(key.state, "l1", T0 + 2000)).toBe(true);
    expect(releaseSlot(key.state, "l1", T0 + 2000)).toBe(false);
    expect(renewSlot(key.state, "l1", 30_000, T0 + 2000)).toBeUndefined();
    expect(releaseSlot(undefined, "l1", T0)).toBe(false);
    expect(renewSlot(undefined, "l1", 30_000, T0)).toBeUndefined();
    expect(renewSlot({ rate: { since: T0, units: 0 } }, "l1", 30_000, T0)).toBeUndefined();
  });
});

describe("decide: rate and concurrency together are all or nothing", () => {
  it("a rate refusal takes no slot", () => {
    const key = new Key(policyOf(tokenBucket(10, 5), slots(2, 30_000)));
    expect(key.decide(T0, 5)).toMatchObject({ allowed: true, remaining: 0, inUse: 1 });
    const state = key.state as KeyState;
    const before = structuredClone(state);
    const result: DecideResult = decide(state, key.policy, 1, "l2", T0 + 50);
    expect(result.changed).toBe(false);
    expect(result.state).toBe(state);
    expect(state).toEqual(before);
    expect(result.decision).toEqual({
      allowed: false,
      refusedBy: "rate",
      now: T0 + 50,
      remaining: 0,
      resetAt: T0 + 500,
      retryAfterMs: 50,
      inUse: 1,
      leaseExpiresAt: 0,
    });
    expect(Object.keys(state.leases ?? {})).toEqual(["l1"]);
  });

  it("a concurrency refusal consumes no rate budget", () => {
    const key = new Key(policyOf(tokenBucket(10, 5), slots(2, 30_000)));
    key.decide(T0);
    key.decide(T0);
    const state = key.state as KeyState;
    const before = structuredClone(state);
    const result = decide(state, key.policy, 2, "l3", T0 + 10);
    expect(result.changed).toBe(false);
    expect(result.state).toBe(state);
    expect(state).toEqual(before);
    expect(result.decision).toMatchObject({
      allowed: false,
      refusedBy: "concurrency",
      retryAfterMs: 29_990,
      inUse: 2,
      leaseExpiresAt: 0,
    });
    // The refused call's cost 2 was not spent: after a release, the same call gets the full budget.
    expect(releaseSlot(state, "l1", T0 + 10)).toBe(true);
    expect(key.decide(T0 + 10, 2, "l4")).toMatchObject({ allowed: true, remaining: 1, inUse: 2 });
  });

  it("when both refuse, rate is named and its exact wait is reported (rate wait longer)", () => {
    const key = new Key(policyOf(tokenBucket(1, 1), slots(1, 500)));
    key.decide(T0);
    expect(key.decide(T0 + 100)).toMatchObject({ allowed: false, refusedBy: "rate", retryAfterMs: 900, inUse: 1 });
    // At +500 the lease is gone but the rate still refuses; at +1000 both admit.
    expect(key.decide(T0 + 500)).toMatchObject({ allowed: false, refusedBy: "rate", retryAfterMs: 500, inUse: 0 });
    expect(key.decide(T0 + 1000)).toMatchObject({ allowed: true, inUse: 1 });
  });

  // decide.ts documents this choice (refusalWait): a rate refusal reports the rate's exact wait even
  // when the lease bound is longer, because the lease bound is not a prediction (holders release
  // early and waiters are woken by the release). Only a refusal by concurrency alone reports it.
  it("when both refuse, rate is named and its exact wait is reported, not the longer lease bound", () => {
    const key = new Key(policyOf(tokenBucket(1, 1), slots(1, 5000)));
    key.decide(T0);
    expect(key.decide(T0 + 100)).toMatchObject({ allowed: false, refusedBy: "rate", retryAfterMs: 900 });
    // After the rate wait, the slot is the only obstacle: its bound is reported.
    expect(key.decide(T0 + 1000)).toMatchObject({ allowed: false, refusedBy: "concurrency", retryAfterMs: 4000 });
    expect(key.decide(T0 + 4999)).toMatchObject({ allowed: false, refusedBy: "concurrency", retryAfterMs: 1 });
    expect(key.decide(T0 + 5000)).toMatchObject({ allowed: true, inUse: 1, leaseExpiresAt: T0 + 10_000 });
  });

  it("a refusal by concurrency alone reports the time to the earliest lease expiry", () => {
    const key = new Key(policyOf(slidingWindow(10, 1000), slots(2, 3000)));
    key.decide(T0);
    key.decide(T0 + 700);
    expect(key.decide(T0 + 1000)).toMatchObject({
      allowed: false,
      refusedBy: "concurrency",
      retryAfterMs: 2000,
      inUse: 2,
    });
    expect(key.decide(T0 + 3000)).toMatchObject({ allowed: true, inUse: 2 });
  });

  it("throws without a lease id when a slot would be taken", () => {
    const policy = policyOf(undefined, slots(1, 1000));
    expect(() => decide(undefined, policy, 1, undefined, T0)).toThrow(TypeError);
  });

  // Regression: decide once applied the rate part before it validated the lease id.
  it("a call that throws for a missing lease id consumes nothing", () => {
    const policy = policyOf(tokenBucket(10, 5), slots(2, 1000));
    const state: KeyState = { rate: { since: T0, units: 1 }, leases: { a: T0 + 500 } };
    const before = structuredClone(state);
    expect(() => decide(state, policy, 1, undefined, T0)).toThrow(TypeError);
    expect(state).toEqual(before);
  });

  // Regression: on a concurrency refusal, decide once reported the rate check's figures as if the
  // call had been admitted (remaining after spending `cost`). Nothing was spent: it must report the
  // budget as it stands, as peek does.
  it("a concurrency refusal reports the rate budget as it stands (remaining and resetAt)", () => {
    const key = new Key(policyOf(slidingWindow(5, 1000), slots(1, 10_000)));
    expect(key.decide(T0)).toMatchObject({ allowed: true, remaining: 4, resetAt: T0 + 1000 });
    const asItStands = key.peek(T0 + 10, 2);
    expect(asItStands).toMatchObject({ allowed: false, refusedBy: "concurrency", remaining: 4, resetAt: T0 + 1000 });
    const refused = key.decide(T0 + 10, 2);
    expect(refused).toMatchObject({ allowed: false, refusedBy: "concurrency" });
    expect({ remaining: refused.remaining, resetAt: refused.resetAt }).toEqual({ remaining: 4, resetAt: T0 + 1000 });
  });
});

describe("peek", () => {
  const policies: Array<[string, Policy]> = [
    ["token bucket", policyOf(tokenBucket(10, 5), slots(2, 700))],
    ["sliding window", policyOf(slidingWindow(5, 1000), slots(2, 700))],
    ["fixed window", policyOf(fixedWindow(5, 1000), slots(2, 700))],
  ];

  it.each(policies)(
    "%s: never mutates, and agrees with decide but reports remaining before the call",
    (_name, policy) => {
      const key = new Key(policy);
      const script: Array<[number, number]> = [
        [0, 1],
        [0, 2],
        [10, 3],
        [10, 1],
        [250, 1],
        [700, 2],
        [701, 5],
        [999, 1],
        [1000, 1],
        [1400, 4],
        [5000, 5],
      ];
      for (const [offset, cost] of script) {
        const now = T0 + offset;
        const before = structuredClone(key.state);
        const peeked = key.peek(now, cost);
        expect(key.state).toEqual(before);
        const decided = key.decide(now, cost);
        expect(peeked.allowed).toBe(decided.allowed);
        expect(peeked.refusedBy).toBe(decided.refusedBy);
        expect(peeked.retryAfterMs).toBe(decided.retryAfterMs);
        expect(peeked.leaseExpiresAt).toBe(0);
        if (decided.allowed) {
          expect(peeked.remaining).toBe(decided.remaining + cost);
          expect(peeked.inUse).toBe(decided.inUse - 1);
        } else {
          expect(peeked.inUse).toBe(decided.inUse);
          // Nothing was spent: the refusal reports the budget as it stands, as the peek does.
          expect(peeked.remaining).toBe(decided.remaining);
          expect(peeked.resetAt).toBe(decided.resetAt);
        }
      }
    },
  );

  it("on no state: a full budget, nothing held, resetAt now", () => {
    expect(peek(undefined, policyOf(slidingWindow(5, 1000), slots(2, 700)), 1, T0)).toEqual({
      allowed: true,
      refusedBy: undefined,
      now: T0,
      remaining: 5,
      resetAt: T0,
      retryAfterMs: 0,
      inUse: 0,
      leaseExpiresAt: 0,
    });
    expect(peek(undefined, policyOf(tokenBucket(10, 5)), 1, T0)).toMatchObject({ remaining: 5, resetAt: T0 });
    expect(peek(undefined, policyOf(fixedWindow(3, 1000)), 1, T0)).toMatchObject({ remaining: 3, resetAt: T0 });
  });

  it("token bucket: resetAt is when the bucket is full again, as it stands", () => {
    const key = new Key(policyOf(tokenBucket(10, 5)));
    key.decide(T0, 3);
    expect(key.peek(T0 + 50)).toMatchObject({ allowed: true, remaining: 2, resetAt: T0 + 300 });
    expect(key.peek(T0 + 100, 0)).toMatchObject({ allowed: true, remaining: 3, resetAt: T0 + 300 });
    expect(key.peek(T0 + 100, 5)).toMatchObject({ allowed: false, remaining: 3, resetAt: T0 + 300, retryAfterMs: 200 });
    expect(key.peek(T0 + 400)).toMatchObject({ allowed: true, remaining: 5, resetAt: T0 + 400 });
  });

  it("sliding window: resetAt is when the newest admission leaves", () => {
    const key = new Key(policyOf(slidingWindow(5, 1000)));
    key.decide(T0, 2);
    key.decide(T0 + 300, 2);
    expect(key.peek(T0 + 500)).toMatchObject({ allowed: true, remaining: 1, resetAt: T0 + 1300 });
    expect(key.peek(T0 + 500, 2)).toMatchObject({
      allowed: false,
      remaining: 1,
      resetAt: T0 + 1300,
      retryAfterMs: 500,
    });
    expect(key.peek(T0 + 1000)).toMatchObject({ allowed: true, remaining: 3, resetAt: T0 + 1300 });
    expect(key.peek(T0 + 1300)).toMatchObject({ allowed: true, remaining: 5, resetAt: T0 + 1300 });
  });

  it("fixed window: resetAt is the window's end while it holds anything", () => {
    const key = new Key(policyOf(fixedWindow(5, 1000)));
    key.decide(T0 + 200, 4);
    expect(key.peek(T0 + 500)).toMatchObject({ allowed: true, remaining: 1, resetAt: T0 + 1000 });
    expect(key.peek(T0 + 500, 2)).toMatchObject({
      allowed: false,
      remaining: 1,
      resetAt: T0 + 1000,
      retryAfterMs: 500,
    });
    expect(key.peek(T0 + 1000)).toMatchObject({ allowed: true, remaining: 5, resetAt: T0 + 1000 });
  });
});

describe("cost 0 changes nothing observable", () => {
  const cases: Array<[string, Policy]> = [
    ["token bucket", policyOf(tokenBucket(10, 3))],
    // Regression for the two windows: an admitted cost-0 call once left a trace (a log entry with
    // cost 0; a fixed-window state with count 0) that later moved `resetAt`.
    ["sliding window", policyOf(slidingWindow(3, 1000))],
    ["fixed window", policyOf(fixedWindow(3, 1000))],
  ];

  it.each(cases)("%s: every later decide and peek answers the same", (_name, policy) => {
    const plain = new Key(policy);
    const withZeros = new Key(policy);
    const script: Array<[number, number]> = [
      [0, 1],
      [100, 1],
      [400, 3],
      [1000, 1],
      [1100, 2],
      [1500, 1],
      [2600, 1],
      [4200, 3],
    ];
    let previous = 0;
    for (const [offset, cost] of script) {
      const now = T0 + offset;
      const zero = withZeros.decide(T0 + (previous + offset) / 2, 0);
      expect(zero.allowed).toBe(true);
      expect(withZeros.peek(now, cost)).toEqual(plain.peek(now, cost));
      expect(withZeros.decide(now, cost)).toEqual(plain.decide(now, cost));
      previous = offset;
    }
  });
});

describe("stateExpiresAt", () => {
  const cases: Array<[string, Policy]> = [
    ["token bucket", policyOf(tokenBucket(10, 5), slots(3, 700))],
    ["token bucket, fractional interval", policyOf(tokenBucket(3, 2), slots(3, 50))],
    ["sliding window", policyOf(slidingWindow(5, 1000), slots(3, 700))],
    ["fixed window", policyOf(fixedWindow(5, 1000), slots(3, 700))],
    ["sliding window, long lease", policyOf(slidingWindow(5, 1000), slots(3, 5000))],
    ["rate only", policyOf(slidingWindow(5, 1000))],
    ["concurrency only", policyOf(undefined, slots(2, 700))],
  ];

  it.each(cases)("%s: from that time on, the stored state behaves like a fresh one", (_name, policy) => {
    const key = new Key(policy);
    for (const [offset, cost] of [
      [0, 2],
      [30, 1],
      [450, 2],
      [620, 1],
    ] as const) {
      key.decide(T0 + offset, cost);
    }
    const stored = key.state as KeyState;
    const at = stateExpiresAt(stored, policy);
    expect(at).toBeGreaterThan(T0 + 620);
    const capacity = policy.rate === undefined ? 3 : rateCapacity(policy.rate);
    for (const now of [at, at + 1, at + 1234.5, at + 86_400_000]) {
      for (let cost = 0; cost <= capacity; cost++) {
        expect(peek(stored, policy, cost, now)).toEqual(peek(undefined, policy, cost, now));
        const fromStored = decide(structuredClone(stored), policy, cost, "probe", now);
        const fromFresh = decide(undefined, policy, cost, "probe", now);
        expect(fromStored.decision).toEqual(fromFresh.decision);
        expect(fromStored.changed).toBe(fromFresh.changed);
        // And the state they lead to behaves the same afterwards.
        const next = now + 1;
        expect(peek(fromStored.state, policy, 1, next)).toEqual(peek(fromFresh.state, policy, 1, next));
      }
    }
    // Tight: a millisecond earlier, the stored state still shows.
    expect(peek(stored, policy, 1, at - 1)).not.toEqual(peek(undefined, policy, 1, at - 1));
  });

  it("is never earlier than a live lease, and follows renewals", () => {
    const policy = policyOf(tokenBucket(10, 5), slots(2, 700));
    const key = new Key(policy);
    key.decide(T0, 1);
    const state = key.state as KeyState;
    expect(stateExpiresAt(state, policy)).toBe(T0 + 700);
    renewSlot(state, "l1", 700, T0 + 600);
    expect(stateExpiresAt(state, policy)).toBe(T0 + 1300);
    releaseSlot(state, "l1", T0 + 650);
    expect(stateExpiresAt(state, policy)).toBe(T0 + 100);
    expect(stateExpiresAt({}, policy)).toBe(0);
  });

  it("is the rate state's expiry when it outlives the leases", () => {
    const policy = policyOf(slidingWindow(5, 10_000), slots(2, 700));
    const key = new Key(policy);
    key.decide(T0, 1);
    key.decide(T0 + 50, 1);
    expect(stateExpiresAt(key.state as KeyState, policy)).toBe(T0 + 10_050);
  });
});
