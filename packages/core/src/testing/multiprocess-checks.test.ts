import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decide, type KeyState } from "../algorithms/decide.js";
import type { Policy } from "../policy.js";
import {
  busiestInterval,
  checkSlidingWindowLog,
  checkTokenBucketLog,
  type HoldInterval,
  maxConcurrentFromIntervals,
  maxInAnyInterval,
} from "./multiprocess-checks.js";

const T0 = 1_700_000_000_000;

/** `count` admissions `stepMs` apart from `from`. */
function evenly(from: number, count: number, stepMs: number): number[] {
  return Array.from({ length: count }, (_, index) => from + index * stepMs);
}

/** The admissions the reference algorithm (core's pure `decide`) makes for calls at `arrivals`. */
function admittedBy(policy: Policy, arrivals: readonly number[]): number[] {
  let state: KeyState | undefined;
  const admitted: number[] = [];
  for (const now of [...arrivals].sort((a, b) => a - b)) {
    const result = decide(state, policy, 1, undefined, now);
    state = result.state;
    if (result.decision.allowed) admitted.push(now);
  }
  return admitted;
}

/** O(n^2) reference of the token bucket pair condition: the largest excess over the bound. */
function worstExcessByPairs(times: readonly number[], ratePerSecond: number, burst: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  let worst = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < sorted.length; i++) {
    for (let j = i; j < sorted.length; j++) {
      const bound = burst + (ratePerSecond * ((sorted[j] as number) - (sorted[i] as number))) / 1000 + 1;
      worst = Math.max(worst, j - i + 1 - bound);
    }
  }
  return worst;
}

/** O(n^2) reference of the sliding window count: the most admissions less than `lengthMs` apart. */
function maxByPairs(times: readonly number[], lengthMs: number): number {
  let most = 0;
  for (const start of times) {
    most = Math.max(most, times.filter((time) => time >= start && time - start < lengthMs).length);
  }
  return most;
}

const tokenBucket = (ratePerSecond: number, burst: number): Policy => ({
  rate: { algorithm: "token_bucket", ratePerSecond, burst, intervalMs: 1000 / ratePerSecond },
  concurrency: undefined,
});

const slidingWindow = (limit: number, windowMs: number): Policy => ({
  rate: { algorithm: "sliding_window", limit, windowMs },
  concurrency: undefined,
});

// Sorted, distinct-enough arrival times within a few seconds, as fractional epoch ms.
const arrivals = fc
  .array(fc.double({ min: 0, max: 3000, noNaN: true }), { maxLength: 300 })
  .map((offsets) => offsets.map((offset) => T0 + offset));

describe("maxInAnyInterval", () => {
  it("counts the most admissions less than the length apart, in any order", () => {
    expect(maxInAnyInterval([T0 + 999, T0, T0 + 500, T0 + 1000], 1000)).toBe(3);
    expect(maxInAnyInterval([], 1000)).toBe(0);
    expect(maxInAnyInterval([T0], 1000)).toBe(1);
    // Equal times are all in one interval.
    expect(maxInAnyInterval([T0, T0, T0], 1)).toBe(3);
  });

  it("treats an interval as half-open: one exactly the length later starts a new one", () => {
    expect(maxInAnyInterval([T0, T0 + 1000], 1000)).toBe(1);
    expect(maxInAnyInterval([T0, T0 + 999.999], 1000)).toBe(2);
  });

  it("says where the busiest interval is", () => {
    expect(busiestInterval([T0, T0 + 5000, T0 + 5100, T0 + 5200, T0 + 7000], 1000)).toEqual({
      count: 3,
      from: T0 + 5000,
      to: T0 + 5200,
    });
    expect(busiestInterval([], 1000)).toMatchObject({ count: 0 });
  });

  it("refuses lengths and times it cannot reason about", () => {
    expect(() => maxInAnyInterval([T0], 0)).toThrow(RangeError);
    expect(() => maxInAnyInterval([T0], Number.NaN)).toThrow(RangeError);
    expect(() => maxInAnyInterval([T0, Number.NaN], 1000)).toThrow(RangeError);
  });

  it("agrees with counting every pair", () => {
    fc.assert(
      fc.property(arrivals, fc.integer({ min: 1, max: 2000 }), (times, length) => {
        expect(maxInAnyInterval(times, length)).toBe(maxByPairs(times, length));
      }),
    );
  });

  it("does not modify its input", () => {
    const times = [T0 + 3, T0 + 1, T0 + 2];
    maxInAnyInterval(times, 10);
    expect(times).toEqual([T0 + 3, T0 + 1, T0 + 2]);
  });
});

describe("checkTokenBucketLog", () => {
  const options = { ratePerSecond: 100, burst: 20, durationMs: 10_000 };

  it("accepts a full bucket spent at once, then one admission per interval", () => {
    // 20 at the start, then one every 10 ms for 10 s: 1020, the most a perfect limiter admits.
    const log = [...evenly(T0, 20, 0), ...evenly(T0 + 10, 1000, 10)];
    expect(checkTokenBucketLog(log, { ...options, minFraction: 0.95 })).toEqual([]);
  });

  it("measures the total over the log's span when calls made at the end were decided a little later", () => {
    // 20 at once, then one every 10 ms up to 10.04 s: 1025 admissions over a 10,040 ms span are
    // within burst + rate * span + 1; the same count crammed into 10 s is not.
    const late = [...evenly(T0, 20, 0), ...evenly(T0 + 10, 1004, 10)];
    expect(checkTokenBucketLog(late, options)).toEqual([]);
    const crammed = [...evenly(T0, 20, 0), ...evenly(T0 + 10, 1004, 9990 / 1004)];
    expect(checkTokenBucketLog(crammed, options).map((violation) => violation.kind)).toContain("too-many");
  });

  it("forgives one admission at the edge, not two", () => {
    const perfect = [...evenly(T0, 20, 0), ...evenly(T0 + 10, 1000, 10)];
    expect(checkTokenBucketLog([...perfect, T0 + 5000], options)).toEqual([]);
    const violations = checkTokenBucketLog([...perfect, T0 + 5000, T0 + 5000], options);
    expect(violations.map((violation) => violation.kind)).toEqual(["too-many", "interval"]);
  });

  it("catches a burst in the middle of a run whose total is fine", () => {
    // 300 admissions in 10 s is far below the total bound, but 100 of them land within 100 ms.
    const log = [...evenly(T0, 200, 50), ...evenly(T0 + 5000, 100, 1)];
    const violations = checkTokenBucketLog(log, options);
    expect(violations).toHaveLength(1);
    const [violation] = violations;
    expect(violation).toMatchObject({ kind: "interval" });
    expect(violation?.count).toBeGreaterThan(violation?.bound ?? Number.POSITIVE_INFINITY);
    expect(violation?.from).toBeGreaterThanOrEqual(T0 + 4950);
    expect(violation?.to).toBeLessThanOrEqual(T0 + 5100);
    expect(violation?.message).toMatch(/admissions within .* more than burst 20/);
  });

  it("catches a rate that is slightly too high over a long interval", () => {
    // 110/s instead of 100/s: every second is only 10 over, but over 10 s the excess passes the burst.
    const log = evenly(T0, 1100, 1000 / 110);
    expect(checkTokenBucketLog(log, options).map((violation) => violation.kind)).toEqual(["too-many", "interval"]);
  });

  it("catches too few admissions when a share is required", () => {
    const log = evenly(T0, 900, 10);
    expect(checkTokenBucketLog(log, options)).toEqual([]);
    const violations = checkTokenBucketLog(log, { ...options, minFraction: 0.95 });
    expect(violations).toMatchObject([{ kind: "too-few", count: 900, bound: 0.95 * 1021 }]);
  });

  it("accepts an empty log unless a share is required", () => {
    expect(checkTokenBucketLog([], options)).toEqual([]);
    expect(checkTokenBucketLog([], { ...options, minFraction: 0.5 })).toMatchObject([{ kind: "too-few" }]);
  });

  it("finds the same worst interval as checking every pair", () => {
    fc.assert(
      fc.property(arrivals, fc.integer({ min: 1, max: 10 }), fc.integer({ min: 1, max: 200 }), (times, burst, rate) => {
        const violations = checkTokenBucketLog(times, { ratePerSecond: rate, burst, durationMs: 3000 });
        const interval = violations.find((violation) => violation.kind === "interval");
        const worst = worstExcessByPairs(times, rate, burst);
        if (worst > 1e-9) {
          expect(interval).toBeDefined();
          expect((interval?.count ?? 0) - (interval?.bound ?? 0)).toBeCloseTo(worst, 6);
        } else if (worst < -1e-9) {
          expect(interval).toBeUndefined();
        }
      }),
    );
  });

  it("never flags what the reference algorithm admits", () => {
    fc.assert(
      fc.property(arrivals, fc.integer({ min: 1, max: 10 }), fc.integer({ min: 1, max: 200 }), (times, burst, rate) => {
        const admitted = admittedBy(tokenBucket(rate, burst), times);
        expect(checkTokenBucketLog(admitted, { ratePerSecond: rate, burst, durationMs: 3000 })).toEqual([]);
      }),
    );
  });
});

describe("checkSlidingWindowLog", () => {
  const options = { limit: 100, windowMs: 1000 };

  it("accepts the limit in every window, up to the window's edge", () => {
    // 100 every second, the next second's first admission exactly one window after the first.
    expect(checkSlidingWindowLog(evenly(T0, 1000, 10), options)).toEqual([]);
    expect(checkSlidingWindowLog([...evenly(T0, 100, 0), ...evenly(T0 + 1000, 100, 0)], options)).toEqual([]);
  });

  it("catches one admission too many, however close to the window's edge", () => {
    const log = [...evenly(T0, 100, 0), T0 + 999.999];
    expect(checkSlidingWindowLog(log, options)).toMatchObject([
      { kind: "interval", count: 101, bound: 100, from: T0, to: T0 + 999.999 },
    ]);
  });

  it("catches a window that straddles two aligned seconds (what a fixed window allows)", () => {
    // 100 at the end of one second and 100 at the start of the next: fine per aligned second.
    const log = [...evenly(T0 + 900, 100, 1), ...evenly(T0 + 1000, 100, 1)];
    expect(checkSlidingWindowLog(log, options)).toMatchObject([{ kind: "interval", count: 200 }]);
  });

  it("never flags what the reference algorithm admits", () => {
    fc.assert(
      fc.property(
        arrivals,
        fc.integer({ min: 1, max: 20 }),
        fc.integer({ min: 1, max: 1500 }),
        (times, limit, windowMs) => {
          const admitted = admittedBy(slidingWindow(limit, windowMs), times);
          expect(checkSlidingWindowLog(admitted, { limit, windowMs })).toEqual([]);
        },
      ),
    );
  });
});

describe("maxConcurrentFromIntervals", () => {
  it("counts overlapping holds", () => {
    const holds: HoldInterval[] = [
      { start: 0, end: 10 },
      { start: 5, end: 15 },
      { start: 6, end: 7 },
      { start: 20, end: 30 },
    ];
    expect(maxConcurrentFromIntervals(holds)).toBe(3);
    expect(maxConcurrentFromIntervals([])).toBe(0);
  });

  it("does not count a hold that starts when another ends, nor an empty one", () => {
    expect(
      maxConcurrentFromIntervals([
        { start: 0, end: 10 },
        { start: 10, end: 20 },
        { start: 20, end: 20 },
      ]),
    ).toBe(1);
  });

  it("catches one hold too many", () => {
    const five = Array.from({ length: 5 }, (_, index) => ({ start: index, end: 100 }));
    expect(maxConcurrentFromIntervals(five)).toBe(5);
    expect(maxConcurrentFromIntervals([...five, { start: 99.999, end: 120 }])).toBe(6);
  });

  it("refuses an interval that ends before it starts", () => {
    expect(() => maxConcurrentFromIntervals([{ start: 10, end: 5 }])).toThrow(RangeError);
    expect(() => maxConcurrentFromIntervals([{ start: Number.NaN, end: 5 }])).toThrow(RangeError);
  });

  it("agrees with counting at every start", () => {
    const holds = fc.array(
      fc
        .tuple(fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 0, max: 50 }))
        .map(([start, length]) => ({ start, end: start + length })),
      { maxLength: 100 },
    );
    fc.assert(
      fc.property(holds, (intervals) => {
        // The most overlap is reached at some interval's start.
        const expected = Math.max(
          0,
          ...intervals
            .filter(({ start, end }) => end > start)
            .map(({ start }) => intervals.filter((other) => other.start <= start && start < other.end).length),
        );
        expect(maxConcurrentFromIntervals(intervals)).toBe(expected);
      }),
    );
  });
});
