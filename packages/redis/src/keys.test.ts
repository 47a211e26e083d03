import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { encodeTarget, keysFor } from "./keys.js";

describe("key encoding", () => {
  it("is injective: different (limiter, key) pairs never share keys", () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), fc.string(), fc.string(), (l1, k1, l2, k2) => {
        fc.pre(l1 !== l2 || k1 !== k2);
        expect(encodeTarget(l1, k1)).not.toBe(encodeTarget(l2, k2));
      }),
      { numRuns: 5000 },
    );
    // Pairs that a naive "limiter:key" join would confuse.
    expect(encodeTarget("a:b", "c")).not.toBe(encodeTarget("a", "b:c"));
    expect(encodeTarget("a", "")).not.toBe(encodeTarget("a", "."));
    // Lone surrogates, which UTF-8 would turn into the same replacement character.
    expect(encodeTarget("a", "\ud800")).not.toBe(encodeTarget("a", "\udc00"));
    expect(encodeTarget("a", "\ud800")).not.toBe(encodeTarget("a", "\ufffd"));
  });

  it("never lets input choose the Cluster slot: one brace pair, ours, around the whole tag", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme" }), fc.string({ unit: "grapheme" }), (limiter, key) => {
        const keys = keysFor("p:", limiter, key);
        for (const name of [...keys.all, keys.channel]) {
          expect(name.split("{").length).toBe(2);
          expect(name.split("}").length).toBe(2);
          expect(name.startsWith("p:{")).toBe(true);
        }
      }),
    );
  });

  it("keeps keys short whatever the user key's length", () => {
    const long = "x".repeat(4096);
    const a = encodeTarget("api", `${long}a`);
    const b = encodeTarget("api", `${long}b`);
    expect(a.length).toBeLessThan(64);
    expect(a).not.toBe(b);
    expect(a.startsWith("h.")).toBe(true);
  });
});
