import { describe, expect, it } from "vitest";
import { TargetCache } from "./target-cache.js";

describe("TargetCache", () => {
  it("derives each target once and tells limiters and keys apart", () => {
    const calls: string[] = [];
    const cache = new TargetCache((limiter, key) => {
      calls.push(`${limiter}|${key}`);
      return `${limiter}/${key}`;
    });
    expect(cache.get("a", "k")).toBe("a/k");
    expect(cache.get("a", "k")).toBe("a/k");
    expect(cache.get("b", "k")).toBe("b/k");
    expect(cache.get("a", "j")).toBe("a/j");
    expect(calls).toEqual(["a|k", "b|k", "a|j"]);
  });

  it("empties itself past its size, and on clear()", () => {
    let derived = 0;
    const cache = new TargetCache((_limiter, key) => {
      derived++;
      return key;
    }, 2);
    cache.get("a", "1");
    cache.get("b", "2");
    expect(derived).toBe(2);
    // A third target empties the cache: the first two are derived again.
    cache.get("a", "3");
    cache.get("a", "1");
    expect(derived).toBe(4);
    cache.clear();
    cache.get("a", "1");
    expect(derived).toBe(5);
  });
});
