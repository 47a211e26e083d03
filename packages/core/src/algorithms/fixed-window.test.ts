import { describe, expect, it } from "vitest";
import type { FixedWindowPolicy } from "../policy.js";
import {
  applyFixedWindow,
  checkFixedWindow,
  type FixedWindowState,
  fixedWindowExpiresAt,
  windowStart,
} from "./fixed-window.js";
import type { RateCheck } from "./rate-check.js";

const W = 60_000;
/** The start of an aligned minute: 1_700_000_040_000 = 28_333_334 * 60_000. */
const S = 1_700_000_040_000;

function fixedWindow(limit: number, windowMs: number): FixedWindowPolicy {
  return { algorithm: "fixed_window", limit, windowMs };
}

class Counter {
  state: FixedWindowState | undefined;
  constructor(readonly policy: FixedWindowPolicy) {}

  take(now: number, cost = 1): RateCheck {
    const check = checkFixedWindow(this.state, this.policy, cost, now);
    if (check.allowed) this.state = applyFixedWindow(this.state, this.policy, cost, now);
    return check;
  }
}

describe("fixed window: alignment", () => {
  it("windows start on multiples of windowMs since the epoch, not at the first call", () => {
    const policy = fixedWindow(3, W);
    expect(S % W).toBe(0);
    expect(windowStart(policy, S)).toBe(S);
    expect(windowStart(policy, S + 1)).toBe(S);
    expect(windowStart(policy, S + W - 1)).toBe(S);
    expect(windowStart(policy, S + W - 0.001)).toBe(S);
    expect(windowStart(policy, S + W)).toBe(S + W);
    expect(windowStart(policy, S - 1)).toBe(S - W);
    expect(windowStart(fixedWindow(1, 1000), 1_700_000_000_123)).toBe(1_700_000_000_000);
    expect(windowStart(fixedWindow(1, 7), 100)).toBe(98);
  });

  it("a first call 1 ms before a boundary gets a window that resets 1 ms later", () => {
    const counter = new Counter(fixedWindow(3, W));
    expect(counter.take(S + W - 1)).toEqual({ allowed: true, remaining: 2, resetAt: S + W, retryAfterMs: 0 });
    expect(counter.state).toEqual({ start: S, count: 1 });
  });
});

describe("fixed window: limit 3 per minute", () => {
  const policy = fixedWindow(3, W);

  it("admits the limit, refuses until the boundary, and resets exactly there", () => {
    const counter = new Counter(policy);
    for (let i = 1; i <= 3; i++) {
      expect(counter.take(S + 59_000)).toEqual({ allowed: true, remaining: 3 - i, resetAt: S + W, retryAfterMs: 0 });
    }
    expect(counter.take(S + 59_000)).toEqual({ allowed: false, remaining: 0, resetAt: S + W, retryAfterMs: 1000 });
    expect(counter.take(S + 59_999)).toEqual({ allowed: false, remaining: 0, resetAt: S + W, retryAfterMs: 1 });
    expect(counter.take(S + W)).toEqual({ allowed: true, remaining: 2, resetAt: S + 2 * W, retryAfterMs: 0 });
    expect(counter.state).toEqual({ start: S + W, count: 1 });
  });

  it("retryAfterMs is the time to the boundary wherever the refusal falls in the window", () => {
    const counter = new Counter(policy);
    counter.take(S, 3);
    for (const offset of [0, 1, 30_000, 59_999]) {
      expect(counter.take(S + offset)).toEqual({
        allowed: false,
        remaining: 0,
        resetAt: S + W,
        retryAfterMs: W - offset,
      });
    }
  });

  it("allows a double burst across a boundary (the documented fixed-window trade-off)", () => {
    const counter = new Counter(policy);
    for (let i = 0; i < 3; i++) expect(counter.take(S + W - 1).allowed).toBe(true);
    for (let i = 0; i < 3; i++) expect(counter.take(S + W).allowed).toBe(true);
    expect(counter.take(S + W).allowed).toBe(false);
  });

  it("a state from an older window counts as empty, however old", () => {
    const old: FixedWindowState = { start: S - 5 * W, count: 3 };
    expect(checkFixedWindow(old, policy, 3, S + 10)).toEqual({
      allowed: true,
      remaining: 0,
      resetAt: S + W,
      retryAfterMs: 0,
    });
    expect(applyFixedWindow(old, policy, 2, S + 10)).toBe(old);
    expect(old).toEqual({ start: S, count: 2 });
  });

  it("cost > 1 is all or nothing", () => {
    const counter = new Counter(policy);
    expect(counter.take(S, 2)).toEqual({ allowed: true, remaining: 1, resetAt: S + W, retryAfterMs: 0 });
    expect(counter.take(S, 2)).toEqual({ allowed: false, remaining: 1, resetAt: S + W, retryAfterMs: W });
    expect(counter.state).toEqual({ start: S, count: 2 });
    expect(counter.take(S, 1)).toEqual({ allowed: true, remaining: 0, resetAt: S + W, retryAfterMs: 0 });
    expect(counter.take(S + W, 3)).toEqual({ allowed: true, remaining: 0, resetAt: S + 2 * W, retryAfterMs: 0 });
  });

  it("cost 0 is admitted on a full window and reports the budget as it stands", () => {
    const counter = new Counter(policy);
    counter.take(S, 3);
    expect(counter.take(S + 5, 0)).toEqual({ allowed: true, remaining: 0, resetAt: S + W, retryAfterMs: 0 });
    expect(counter.state).toEqual({ start: S, count: 3 });
  });

  it("cost 0 changes no later answer", () => {
    const plain = new Counter(policy);
    const withZeros = new Counter(policy);
    const calls: Array<[number, number]> = [
      [10, 2],
      [20, 2],
      [W + 5, 1],
      [3 * W + 1, 3],
      [3 * W + 2, 1],
      [4 * W, 1],
    ];
    let previous = 0;
    for (const [offset, cost] of calls) {
      withZeros.take(S + (previous + offset) / 2, 0);
      withZeros.take(S + offset, 0);
      expect(withZeros.take(S + offset, cost)).toEqual(plain.take(S + offset, cost));
      previous = offset;
    }
  });

  it("checkFixedWindow never changes the state", () => {
    const state: FixedWindowState = { start: S, count: 3 };
    checkFixedWindow(state, policy, 1, S + 1);
    checkFixedWindow(state, policy, 1, S + W);
    expect(state).toEqual({ start: S, count: 3 });
  });

  it("expires at the end of its window: from then on it answers like no state", () => {
    const counter = new Counter(policy);
    counter.take(S + 100, 3);
    const state = counter.state as FixedWindowState;
    expect(fixedWindowExpiresAt(state, policy)).toBe(S + W);
    for (const cost of [0, 1, 3]) {
      expect(checkFixedWindow(state, policy, cost, S + W)).toEqual(checkFixedWindow(undefined, policy, cost, S + W));
    }
    expect(checkFixedWindow(state, policy, 1, S + W - 1).allowed).toBe(false);
  });
});
