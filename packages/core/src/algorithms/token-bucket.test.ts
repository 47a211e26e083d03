import { describe, expect, it } from "vitest";
import type { TokenBucketPolicy } from "../policy.js";
import type { RateCheck } from "./rate-check.js";
import {
  applyTokenBucket,
  checkTokenBucket,
  floorUnits,
  type TokenBucketState,
  tokenBucketExpiresAt,
} from "./token-bucket.js";

/** A realistic epoch-millisecond origin; every time in these tests is explicit. */
const T0 = 1_700_000_000_000;

function tokenBucket(ratePerSecond: number, burst: number): TokenBucketPolicy {
  return { algorithm: "token_bucket", ratePerSecond, burst, intervalMs: 1000 / ratePerSecond };
}

/** A small driver: checks, and applies only when the check admits (what `decide` does). */
class Bucket {
  state: TokenBucketState | undefined;
  constructor(readonly policy: TokenBucketPolicy) {}

  take(now: number, cost = 1): RateCheck {
    const check = checkTokenBucket(this.state, this.policy, cost, now);
    if (check.allowed) this.state = applyTokenBucket(this.state, this.policy, cost, now);
    return check;
  }

  /** Check only: what a call would get, consuming nothing. */
  check(now: number, cost = 1): RateCheck {
    return checkTokenBucket(this.state, this.policy, cost, now);
  }
}

describe("token bucket (GCRA): rate 10/s, burst 5", () => {
  const policy = tokenBucket(10, 5);

  it("admits the burst at once with exact remaining and resetAt, then refuses the sixth for exactly 100 ms", () => {
    const bucket = new Bucket(policy);
    for (let i = 1; i <= 5; i++) {
      expect(bucket.take(T0)).toEqual({ allowed: true, remaining: 5 - i, resetAt: T0 + 100 * i, retryAfterMs: 0 });
    }
    expect(bucket.state).toEqual({ since: T0, units: 5 });
    expect(bucket.take(T0)).toEqual({ allowed: false, remaining: 0, resetAt: T0 + 500, retryAfterMs: 100 });
    // The refusal changed nothing.
    expect(bucket.state).toEqual({ since: T0, units: 5 });
  });

  it("admits again at exactly t0 + 100 and refuses at t0 + 99.999", () => {
    const bucket = new Bucket(policy);
    for (let i = 0; i < 5; i++) bucket.take(T0);

    const early = bucket.check(T0 + 99.999);
    expect(early.allowed).toBe(false);
    expect(early.remaining).toBe(0);
    expect(early.resetAt).toBe(T0 + 500);
    expect(early.retryAfterMs).toBeCloseTo(0.001, 3);

    expect(bucket.take(T0 + 100)).toEqual({ allowed: true, remaining: 0, resetAt: T0 + 600, retryAfterMs: 0 });
    expect(bucket.take(T0 + 100)).toEqual({ allowed: false, remaining: 0, resetAt: T0 + 600, retryAfterMs: 100 });
  });

  it("refills continuously: after 250 ms two whole units are back, the third is 50 ms away", () => {
    const bucket = new Bucket(policy);
    for (let i = 0; i < 5; i++) bucket.take(T0);
    expect(bucket.check(T0 + 250, 0)).toEqual({ allowed: true, remaining: 2, resetAt: T0 + 500, retryAfterMs: 0 });
    expect(bucket.take(T0 + 250)).toEqual({ allowed: true, remaining: 1, resetAt: T0 + 600, retryAfterMs: 0 });
    expect(bucket.take(T0 + 250)).toEqual({ allowed: true, remaining: 0, resetAt: T0 + 700, retryAfterMs: 0 });
    expect(bucket.take(T0 + 250)).toEqual({ allowed: false, remaining: 0, resetAt: T0 + 700, retryAfterMs: 50 });
    expect(bucket.take(T0 + 300)).toEqual({ allowed: true, remaining: 0, resetAt: T0 + 800, retryAfterMs: 0 });
  });

  it("never holds more than the burst, however long it idles", () => {
    const bucket = new Bucket(policy);
    bucket.take(T0);
    const later = T0 + 3_600_000;
    for (let i = 1; i <= 5; i++) expect(bucket.take(later).allowed).toBe(true);
    expect(bucket.take(later)).toEqual({ allowed: false, remaining: 0, resetAt: later + 500, retryAfterMs: 100 });
  });

  it("a fresh bucket answers a full bucket: remaining burst - cost, resetAt now + cost * interval", () => {
    expect(checkTokenBucket(undefined, policy, 1, T0)).toEqual({
      allowed: true,
      remaining: 4,
      resetAt: T0 + 100,
      retryAfterMs: 0,
    });
    expect(checkTokenBucket(undefined, policy, 5, T0)).toEqual({
      allowed: true,
      remaining: 0,
      resetAt: T0 + 500,
      retryAfterMs: 0,
    });
  });

  it("a state whose theoretical arrival is in the past is a full bucket, and a new debt starts", () => {
    const stale: TokenBucketState = { since: T0 - 1001, units: 10 };
    expect(checkTokenBucket(stale, policy, 1, T0)).toEqual(checkTokenBucket(undefined, policy, 1, T0));
    expect(applyTokenBucket(stale, policy, 1, T0)).toEqual({ since: T0, units: 1 });
  });
});

describe("token bucket: cost > 1 is all or nothing", () => {
  const policy = tokenBucket(10, 5);

  it("refuses a cost that does not fit whole, without spending the part that would fit", () => {
    const bucket = new Bucket(policy);
    expect(bucket.take(T0, 3)).toEqual({ allowed: true, remaining: 2, resetAt: T0 + 300, retryAfterMs: 0 });
    expect(bucket.take(T0, 3)).toEqual({ allowed: false, remaining: 2, resetAt: T0 + 300, retryAfterMs: 100 });
    expect(bucket.state).toEqual({ since: T0, units: 3 });
    expect(bucket.take(T0, 2)).toEqual({ allowed: true, remaining: 0, resetAt: T0 + 500, retryAfterMs: 0 });
    expect(bucket.take(T0 + 299, 3).allowed).toBe(false);
    expect(bucket.take(T0 + 300, 3)).toEqual({ allowed: true, remaining: 0, resetAt: T0 + 800, retryAfterMs: 0 });
  });

  it("a cost equal to the burst needs a full bucket: refused 1 ms early, admitted on time", () => {
    const bucket = new Bucket(policy);
    expect(bucket.take(T0, 5).allowed).toBe(true);
    expect(bucket.take(T0 + 499, 5)).toEqual({ allowed: false, remaining: 4, resetAt: T0 + 500, retryAfterMs: 1 });
    expect(bucket.take(T0 + 500, 5)).toEqual({ allowed: true, remaining: 0, resetAt: T0 + 1000, retryAfterMs: 0 });
  });
});

describe("token bucket: cost 0", () => {
  const policy = tokenBucket(10, 5);

  it("is admitted even on an empty bucket and reports the budget as it stands", () => {
    const bucket = new Bucket(policy);
    for (let i = 0; i < 5; i++) bucket.take(T0);
    expect(bucket.take(T0, 0)).toEqual({ allowed: true, remaining: 0, resetAt: T0 + 500, retryAfterMs: 0 });
    expect(bucket.take(T0 + 150, 0)).toEqual({ allowed: true, remaining: 1, resetAt: T0 + 500, retryAfterMs: 0 });
    expect(checkTokenBucket(undefined, policy, 0, T0)).toEqual({
      allowed: true,
      remaining: 5,
      resetAt: T0,
      retryAfterMs: 0,
    });
  });

  it("changes nothing observable: later answers are the same with or without cost-0 calls", () => {
    const plain = new Bucket(policy);
    const withZeros = new Bucket(policy);
    const calls: Array<[number, number]> = [
      [0, 1],
      [0, 3],
      [40, 2],
      [120, 1],
      [1_000, 5],
      [1_001, 1],
      [1_250, 2],
      [9_000, 4],
    ];
    let previous = 0;
    for (const [offset, cost] of calls) {
      withZeros.take(T0 + (previous + offset) / 2, 0);
      withZeros.take(T0 + offset, 0);
      expect(withZeros.take(T0 + offset, cost)).toEqual(plain.take(T0 + offset, cost));
      previous = offset;
    }
  });
});

describe("token bucket: fractional intervals", () => {
  it.each([
    ["a small origin", 0],
    ["an epoch origin", T0],
  ])("rate 3/s, burst 1 (%s): admits exactly on time at t0 + k * 1000/3", (_label, t0) => {
    const bucket = new Bucket(tokenBucket(3, 1));
    expect(bucket.take(t0).allowed).toBe(true);
    const early = bucket.take(t0 + 333);
    expect(early.allowed).toBe(false);
    expect(early.retryAfterMs).toBeCloseTo(1 / 3, 3);
    for (let k = 1; k <= 30; k++) {
      const onTime = t0 + (k * 1000) / 3;
      expect(bucket.take(onTime).allowed, `call ${k} at t0 + ${k}000/3`).toBe(true);
      expect(bucket.take(onTime).allowed).toBe(false);
    }
    // Whole seconds: exactly three per second.
    expect(bucket.take(t0 + 10_000 + 333).allowed).toBe(false);
    expect(bucket.take(t0 + 10_000 + 1000 / 3).allowed).toBe(true);
  });

  it("rate 3/s, burst 3: after a full burst, the next unit is back at t0 + 1000/3", () => {
    const bucket = new Bucket(tokenBucket(3, 3));
    expect(bucket.take(0, 3).remaining).toBe(0);
    expect(bucket.take(333).allowed).toBe(false);
    expect(bucket.take(1000 / 3)).toMatchObject({ allowed: true, remaining: 0 });
    expect(bucket.take(1000, 0)).toMatchObject({ allowed: true, remaining: 2 });
    expect(bucket.take(1000, 2)).toMatchObject({ allowed: true, remaining: 0 });
  });

  it("rate 0.5/s (interval 2000 ms), burst 2", () => {
    const bucket = new Bucket(tokenBucket(0.5, 2));
    expect(bucket.take(T0, 2)).toEqual({ allowed: true, remaining: 0, resetAt: T0 + 4000, retryAfterMs: 0 });
    expect(bucket.take(T0 + 1000)).toEqual({ allowed: false, remaining: 0, resetAt: T0 + 4000, retryAfterMs: 1000 });
    expect(bucket.take(T0 + 2000)).toEqual({ allowed: true, remaining: 0, resetAt: T0 + 6000, retryAfterMs: 0 });
  });

  // Regression: one ulp of 1.7e12 is 2^-12 ms = 2.4e-4 ms, so `(now + interval) - now` differs from
  // `interval` by up to 1.2e-4 ms; with a tolerance of 1e-6 ms a call that fits exactly was refused.
  it("rate 7/s, burst 1: a fresh bucket admits its first call at an epoch timestamp", () => {
    const policy = tokenBucket(7, 1);
    expect(checkTokenBucket(undefined, policy, 1, 0).allowed).toBe(true);
    const atEpoch = checkTokenBucket(undefined, policy, 1, T0);
    expect(atEpoch).toMatchObject({ allowed: true, remaining: 0, retryAfterMs: 0 });
  });
});

describe("token bucket at epoch-millisecond times", () => {
  // BUG (reported): each admission stores `tat = base + interval` at epoch magnitude, where a
  // double holds only 2^-12 ms; with a non-binary interval (1000/11, 1000/7) the rounding errors of
  // consecutive admissions add up in one direction. After two admissions `remaining` (floored with a
  // 1e-6-unit slack) is already one short; after a few more the debt exceeds TIME_EPSILON_MS
  // (5e-4 ms) and a fresh bucket refuses part of its own burst (retryAfterMs ~0.0005 ms).
  it.each([
    [11, 7],
    [11, 50],
    [7, 20],
    [3, 60],
  ])(
    "rate %i/s, burst %i: a fresh bucket admits its whole burst at once, counting remaining down, then refills on time",
    (rate, burst) => {
      for (const t0 of [0, T0]) {
        const bucket = new Bucket(tokenBucket(rate, burst));
        const remaining: number[] = [];
        for (let i = 0; i <= burst; i++) {
          const check = bucket.take(t0);
          if (check.allowed) remaining.push(check.remaining);
        }
        const countdown = Array.from({ length: burst }, (_, i) => burst - 1 - i);
        expect(remaining, `burst at t0 = ${t0}`).toEqual(countdown);
        let admitted = 0;
        for (let i = 0; i <= rate; i++) if (bucket.take(t0 + 1000).allowed) admitted++;
        expect(admitted, `one second later, t0 = ${t0}`).toBe(Math.min(rate, burst));
      }
    },
  );

  it("cost = burst in one call is admitted on a fresh bucket at an epoch timestamp", () => {
    for (const rate of [3, 7, 11, 13]) {
      expect(checkTokenBucket(undefined, tokenBucket(rate, 50), 50, T0)).toMatchObject({ allowed: true, remaining: 0 });
    }
  });
});

describe("token bucket: burst 1 spaces starts 1/rate apart", () => {
  it("rate 2/s: one start every 500 ms, retryAfterMs counts down to the slot", () => {
    const bucket = new Bucket(tokenBucket(2, 1));
    expect(bucket.take(T0)).toEqual({ allowed: true, remaining: 0, resetAt: T0 + 500, retryAfterMs: 0 });
    for (const delta of [0, 1, 250, 499]) {
      expect(bucket.take(T0 + delta)).toEqual({
        allowed: false,
        remaining: 0,
        resetAt: T0 + 500,
        retryAfterMs: 500 - delta,
      });
    }
    expect(bucket.take(T0 + 500)).toEqual({ allowed: true, remaining: 0, resetAt: T0 + 1000, retryAfterMs: 0 });
    // A late caller does not bank time: the next start is 500 ms after it.
    expect(bucket.take(T0 + 1700)).toEqual({ allowed: true, remaining: 0, resetAt: T0 + 2200, retryAfterMs: 0 });
    expect(bucket.take(T0 + 2199).retryAfterMs).toBe(1);
  });
});

describe("token bucket: state helpers", () => {
  const policy = tokenBucket(10, 5);

  it("applyTokenBucket updates the state in place and returns it", () => {
    const state: TokenBucketState = { since: T0, units: 1 };
    const next = applyTokenBucket(state, policy, 2, T0);
    expect(next).toBe(state);
    expect(state).toEqual({ since: T0, units: 3 });
    expect(applyTokenBucket(undefined, policy, 2, T0)).toEqual({ since: T0, units: 2 });
  });

  it("checkTokenBucket never changes the state", () => {
    const state: TokenBucketState = { since: T0, units: 5 };
    checkTokenBucket(state, policy, 1, T0);
    checkTokenBucket(state, policy, 5, T0 + 1000);
    expect(state).toEqual({ since: T0, units: 5 });
  });

  it("the state expires at its theoretical arrival: from then on it answers like no state", () => {
    const bucket = new Bucket(policy);
    bucket.take(T0, 3);
    const state = bucket.state as TokenBucketState;
    expect(tokenBucketExpiresAt(state, policy)).toBe(T0 + 300);
    for (const cost of [0, 1, 5]) {
      expect(checkTokenBucket(state, policy, cost, T0 + 300)).toEqual(
        checkTokenBucket(undefined, policy, cost, T0 + 300),
      );
    }
    expect(checkTokenBucket(state, policy, 5, T0 + 299)).not.toEqual(checkTokenBucket(undefined, policy, 5, T0 + 299));
  });

  it("floorUnits forgives rounding of the times just below a whole unit and never goes negative", () => {
    expect(floorUnits(300, 100)).toBe(3);
    expect(floorUnits(299.9999, 100)).toBe(3);
    expect(floorUnits(299.99, 100)).toBe(2);
    expect(floorUnits(50, 100)).toBe(0);
    expect(floorUnits(-50, 100)).toBe(0);
    expect(floorUnits(-300, 100)).toBe(0);
  });
});
