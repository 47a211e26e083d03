import { describe, expect, it } from "vitest";
import { LatencyHistogram, median } from "./stats.js";

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
