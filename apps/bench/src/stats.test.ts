import { describe, expect, it } from "vitest";
import { LatencyHistogram, median, medianInterval } from "./stats.js";

describe("median", () => {
  it("takes the middle value of an odd count and the mean of the two middle ones of an even count", () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([7])).toBe(7);
  });

  it("does not reorder its input", () => {
    const values = [3, 1, 2];
    median(values);
    expect(values).toEqual([3, 1, 2]);
  });

  it("refuses an empty list", () => {
    expect(() => median([])).toThrow(RangeError);
  });
});

describe("medianInterval", () => {
  it("is the whole sample for 7 values, the narrowest range with at least 90% confidence", () => {
    // [x(2), x(6)] would have 1 - 2 * 8/128 = 87.5%: too little.
    expect(medianInterval([1.02, 0.97, 1.05, 1.01, 1.04, 0.99, 1.03])).toEqual({
      low: 0.97,
      high: 1.05,
      confidence: 1 - 2 / 128,
    });
  });

  it("drops the three most extreme values at each end of 15", () => {
    const values = Array.from({ length: 15 }, (_, i) => 15 - i);
    const interval = medianInterval(values);
    expect([interval.low, interval.high]).toEqual([4, 12]);
    // 1 - 2 * P(Binomial(15, 1/2) <= 3) = 1 - 2 * 576/32768.
    expect(interval.confidence).toBeCloseTo(1 - 1152 / 32768, 12);
  });

  it("takes a higher confidence as a wider range", () => {
    const values = Array.from({ length: 15 }, (_, i) => i + 1);
    expect(medianInterval(values, 0.99)).toMatchObject({ low: 3, high: 13 });
  });

  it("says how little a small sample can tell", () => {
    expect(medianInterval([2, 1, 3])).toEqual({ low: 1, high: 3, confidence: 0.75 });
    expect(medianInterval([5])).toEqual({ low: 5, high: 5, confidence: 0 });
  });

  it("agrees with the binomial sum it stands for", () => {
    // Brute force: the chance that at most k-1 of n fair tosses land on one side.
    const choose = (n: number, k: number): number => (k === 0 ? 1 : (choose(n, k - 1) * (n - k + 1)) / k);
    for (let n = 1; n <= 40; n++) {
      const { low, confidence } = medianInterval(Array.from({ length: n }, (_, i) => i + 1));
      const k = low;
      let tail = 0;
      for (let i = 0; i < k; i++) tail += choose(n, i) / 2 ** n;
      expect(confidence).toBeCloseTo(Math.max(0, 1 - 2 * tail), 12);
      if (n >= 5) expect(confidence).toBeGreaterThanOrEqual(0.9);
      // One step narrower would fall short of 90% (or cross the middle).
      const narrower = 1 - 2 * (tail + choose(n, k) / 2 ** n);
      if (k + 1 <= (n + 1) >> 1) expect(narrower).toBeLessThan(0.9);
    }
  });

  it("refuses an empty list and a confidence outside (0, 1)", () => {
    expect(() => medianInterval([])).toThrow(RangeError);
    expect(() => medianInterval([1, 2], 1)).toThrow(/between 0 and 1, got 1/);
    expect(() => medianInterval([1, 2], Number.NaN)).toThrow(RangeError);
  });
});

describe("LatencyHistogram", () => {
  it("reports nothing before anything is recorded", () => {
    expect(new LatencyHistogram().percentile(0.5)).toBeUndefined();
  });

  it("gives percentiles within 1% of the exact ones", () => {
    const histogram = new LatencyHistogram();
    // 1..10000 µs: the exact p50 is 5 ms and the exact p99 is 9.9 ms.
    for (let us = 1; us <= 10_000; us++) histogram.record(us / 1000);
    expect(histogram.count).toBe(10_000);
    expect(histogram.percentile(0.5)).toBeCloseTo(5, 1);
    expect(Math.abs((histogram.percentile(0.5) as number) / 5 - 1)).toBeLessThan(0.01);
    expect(Math.abs((histogram.percentile(0.99) as number) / 9.9 - 1)).toBeLessThan(0.01);
  });

  it("keeps the tail: one slow call in a hundred shows in the p99, not the p50", () => {
    const histogram = new LatencyHistogram();
    for (let i = 0; i < 99; i++) histogram.record(0.05);
    histogram.record(250);
    expect(Math.abs((histogram.percentile(0.5) as number) / 0.05 - 1)).toBeLessThan(0.01);
    expect(Math.abs((histogram.percentile(0.99) as number) / 0.05 - 1)).toBeLessThan(0.01);
    expect(Math.abs((histogram.percentile(1) as number) / 250 - 1)).toBeLessThan(0.01);
  });

  it("merges rounds as if they had been recorded together", () => {
    const a = new LatencyHistogram();
    const b = new LatencyHistogram();
    for (let i = 0; i < 50; i++) a.record(1);
    for (let i = 0; i < 50; i++) b.record(3);
    a.merge(b);
    expect(a.count).toBe(100);
    expect(Math.abs((a.percentile(0.25) as number) - 1)).toBeLessThan(0.01);
    expect(Math.abs((a.percentile(0.75) as number) / 3 - 1)).toBeLessThan(0.01);
  });

  it("puts calls too fast or too slow to tell apart in the first and last buckets", () => {
    const histogram = new LatencyHistogram();
    histogram.record(0);
    histogram.record(1e9);
    expect(histogram.percentile(0.5)).toBeLessThanOrEqual(1e-4);
    expect(histogram.percentile(1)).toBeGreaterThan(100_000);
  });
});
