import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { clockProbeKey, encodeKvKey } from "./keys.js";

/** What NATS KV accepts as a key (the client's own check), with no empty token. */
const VALID_KV_KEY = /^[-/=\w]+(\.[-/=\w]+)*$/;

describe("KV key encoding", () => {
  it("is injective: different (limiter, key) pairs never share a KV key", () => {
    fc.assert(
      fc.property(
        fc.string({ unit: "binary" }),
        fc.string({ unit: "binary" }),
        fc.string({ unit: "binary" }),
        fc.string({ unit: "binary" }),
        (l1, k1, l2, k2) => {
          fc.pre(l1 !== l2 || k1 !== k2);
          expect(encodeKvKey(l1, k1)).not.toBe(encodeKvKey(l2, k2));
        },
      ),
      { numRuns: 5000 },
    );
    // UTF-16 strings with lone surrogates (fast-check's "binary" unit is well formed).
    fc.assert(
      fc.property(
        fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)) }),
        (key) => {
          const other = `${key}\ud800`;
          expect(encodeKvKey("api", key)).not.toBe(encodeKvKey("api", other));
        },
      ),
    );
  });

  it("separates the pairs a naive join would merge", () => {
    const pairs: [string, string][] = [
      ["a.b", "c"],
      ["a", "b.c"],
      ["a", ""],
      ["a", "."],
      ["a", "\ud800"],
      ["a", "\udc00"],
      ["a", "\ufffd"],
      ["a\0b", "c"],
      ["a", "b\0c"],
    ];
    const encoded = pairs.map(([limiter, key]) => encodeKvKey(limiter, key));
    expect(new Set(encoded).size).toBe(pairs.length);
  });

  it("always yields a valid KV key: IPv6, spaces, wildcards, dots, unicode, lone surrogates, empty", () => {
    const tricky = [
      "2001:db8::1",
      "::ffff:10.0.0.1",
      "a b",
      "*",
      ">",
      "a.*.>",
      ".",
      "..",
      "",
      "ключ",
      "🔑",
      "\ud800",
      "a\0b",
    ];
    for (const key of tricky) expect(encodeKvKey("api", key)).toMatch(VALID_KV_KEY);
    fc.assert(
      fc.property(fc.string({ unit: "grapheme" }), fc.string({ unit: "binary" }), (limiter, key) => {
        const encoded = encodeKvKey(limiter, key);
        expect(encoded).toMatch(VALID_KV_KEY);
        expect(encoded.length).toBeLessThanOrEqual(200);
      }),
    );
  });

  it("hashes very long keys into short ones that still differ", () => {
    const long = "x".repeat(4096);
    const a = encodeKvKey("api", `${long}a`);
    const b = encodeKvKey("api", `${long}b`);
    expect(a).toMatch(/^h\.[-\w]{43}$/);
    expect(a).not.toBe(b);
  });

  it("never meets the clock probe keys", () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), fc.uuid(), (limiter, key, instance) => {
        expect(encodeKvKey(limiter, key)).not.toBe(clockProbeKey(instance));
      }),
    );
  });
});
