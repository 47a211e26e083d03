import { describe, expect, it } from "vitest";
import { closestName, withSuggestion } from "./suggest.js";

const LIMITER_KEYS = ["store", "algorithm", "rate_per_second", "burst", "limit", "window_seconds", "max_concurrent"];

describe("closestName", () => {
  it.each([
    ["rate_per_secnd", "rate_per_second"], // one deletion
    ["rate_per_secondd", "rate_per_second"], // one insertion
    ["rate_pre_second", "rate_per_second"], // a swap of neighbours counts as one edit
    ["burts", "burst"],
    ["brust", "burst"],
    ["limt", "limit"],
    ["window_second", "window_seconds"],
    ["max_concurent", "max_concurrent"],
    ["algoritm", "algorithm"],
    ["stor", "store"],
  ])("suggests %j for %j", (input, expected) => {
    expect(closestName(input, LIMITER_KEYS)).toBe(expected);
  });

  it.each([
    ["ratePerSecond", "rate_per_second"],
    ["RATE_PER_SECOND", "rate_per_second"],
    ["maxConcurrent", "max_concurrent"],
    ["window-seconds", "window_seconds"],
  ])("matches %j to %j whatever its case and separators", (input, expected) => {
    expect(closestName(input, LIMITER_KEYS)).toBe(expected);
  });

  it("folds spelling differences before measuring distance", () => {
    // "rate_per_second" is 4 edits from "ratePerSecond" but the same word.
    expect(closestName("ratePerSecond", ["rate_per_second", "ratePerSecnd"])).toBe("rate_per_second");
  });

  it.each([["banana"], ["x"], ["timeout_ms_total"], ["qqqqq"]])("suggests nothing for the unrelated %j", (input) => {
    expect(closestName(input, LIMITER_KEYS)).toBeUndefined();
  });

  it("never suggests a word that shares nothing with a short input", () => {
    // Distance 2 is within the budget of 2, but equals the length of both words.
    expect(closestName("x", ["db"])).toBeUndefined();
    expect(closestName("ab", ["cd"])).toBeUndefined();
  });

  it("allows a third of the input's length in edits for long names", () => {
    expect(closestName("conect_timeot_ms", ["connect_timeout_ms"])).toBe("connect_timeout_ms");
    // 18 characters allow 6 edits: 6 pass, 7 do not.
    expect(closestName("xxxxxxt_timeout_ms", ["connect_timeout_ms"])).toBe("connect_timeout_ms");
    expect(closestName("xxxxxxx_timeout_ms", ["connect_timeout_ms"])).toBeUndefined();
  });

  it("counts each swap of neighbours as one edit", () => {
    // Two swaps: 2 edits, within the budget; plain Levenshtein would count 4.
    expect(closestName("ubrts", ["burst"])).toBe("burst");
    expect(closestName("tiemuot", ["timeout"])).toBe("timeout");
  });

  it("prefers the nearest candidate and breaks ties by order", () => {
    expect(closestName("limut", ["limits", "limit"])).toBe("limit");
    expect(closestName("ab", ["ac", "ad"])).toBe("ac");
  });

  it("suggests nothing from no candidates", () => {
    expect(closestName("store", [])).toBeUndefined();
  });

  it("suggests nothing for an exact match it was not asked about", () => {
    expect(closestName("", ["a"])).toBeUndefined();
  });
});

describe("withSuggestion", () => {
  it("adds the closest name as a question", () => {
    expect(withSuggestion('unknown engine "rediss"', "rediss", ["memory", "redis"])).toBe(
      'unknown engine "rediss"; did you mean "redis"?',
    );
  });

  it("ends the sentence when nothing is close", () => {
    expect(withSuggestion('unknown engine "dynamo"', "dynamo", ["memory", "redis"])).toBe('unknown engine "dynamo".');
  });
});
