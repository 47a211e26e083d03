import { describe, expect, it } from "vitest";
import type { SlidingWindowPolicy } from "../policy.js";
import type { RateCheck } from "./rate-check.js";
import {
  applySlidingWindow,
  checkSlidingWindow,
  type SlidingWindowState,
  slidingWindowExpiresAt,
} from "./sliding-window.js";

/** A realistic epoch-millisecond origin (a multiple of 300 000, which does not matter here). */
const T0 = 1_700_000_100_000;
const W = 300_000;

function slidingWindow(limit: number, windowMs: number): SlidingWindowPolicy {
  return { algorithm: "sliding_window", limit, windowMs };
}

class Window {
  state: SlidingWindowState | undefined;
  constructor(readonly policy: SlidingWindowPolicy) {}

  take(now: number, cost = 1): RateCheck {
    const check = checkSlidingWindow(this.state, this.policy, cost, now);
    if (check.allowed) this.state = applySlidingWindow(this.state, this.policy, cost, now);
    return check;
  }

  check(now: number, cost = 1): RateCheck {
    return checkSlidingWindow(this.state, this.policy, cost, now);
  }
}

describe("sliding window: limit 5 per 300 s", () => {
  const policy = slidingWindow(5, W);

  it("refuses the sixth until exactly t0 + 300 000, when the first admission leaves the window", () => {
    const window = new Window(policy);
    for (let i = 0; i < 5; i++) {
      const now = T0 + 1000 * i;
      expect(window.take(now)).toEqual({ allowed: true, remaining: 4 - i, resetAt: now + W, retryAfterMs: 0 });
    }
    expect(window.take(T0 + 5000)).toEqual({
      allowed: false,
      remaining: 0,
      resetAt: T0 + 4000 + W,
      retryAfterMs: 295_000,
    });
    expect(window.take(T0 + 299_999)).toEqual({
      allowed: false,
      remaining: 0,
      resetAt: T0 + 4000 + W,
      retryAfterMs: 1,
    });
    expect(window.take(T0 + 300_000)).toEqual({ allowed: true, remaining: 0, resetAt: T0 + 600_000, retryAfterMs: 0 });
    // The next one waits for the second admission (t0 + 1000) to leave.
    expect(window.take(T0 + 300_000)).toEqual({
      allowed: false,
      remaining: 0,
      resetAt: T0 + 600_000,
      retryAfterMs: 1000,
    });
    expect(window.take(T0 + 300_999).allowed).toBe(false);
    expect(window.take(T0 + 301_000)).toMatchObject({ allowed: true, remaining: 0 });
  });

  it("five at t0: the sixth is refused for exactly 300 000 ms, then all five leave together", () => {
    const window = new Window(policy);
    for (let i = 0; i < 5; i++) window.take(T0);
    expect(window.take(T0)).toEqual({ allowed: false, remaining: 0, resetAt: T0 + W, retryAfterMs: 300_000 });
    expect(window.take(T0 + 299_999)).toEqual({ allowed: false, remaining: 0, resetAt: T0 + W, retryAfterMs: 1 });
    expect(window.take(T0 + 300_000)).toEqual({ allowed: true, remaining: 4, resetAt: T0 + 2 * W, retryAfterMs: 0 });
  });

  it("admissions in the same millisecond share one log entry", () => {
    const window = new Window(policy);
    window.take(T0);
    window.take(T0, 2);
    window.take(T0);
    expect(window.state).toEqual({ log: [T0, 4], head: 0, total: 4 });
    window.take(T0 + 1);
    expect(window.state).toEqual({ log: [T0, 4, T0 + 1, 1], head: 0, total: 5 });
  });

  it("a fresh window admits up to the limit at once", () => {
    expect(checkSlidingWindow(undefined, policy, 5, T0)).toEqual({
      allowed: true,
      remaining: 0,
      resetAt: T0 + W,
      retryAfterMs: 0,
    });
    expect(checkSlidingWindow(undefined, policy, 1, T0)).toEqual({
      allowed: true,
      remaining: 4,
      resetAt: T0 + W,
      retryAfterMs: 0,
    });
  });

  it("is exact where a two-window estimate is not: a burst at the end of a window still counts a whole window later", () => {
    const window = new Window(policy);
    const burst = T0 + W - 1;
    for (let i = 0; i < 5; i++) window.take(burst);
    for (const now of [burst + 1, T0 + W, T0 + W + 1, T0 + W + 150_000, burst + W - 1]) {
      expect(window.check(now)).toEqual({
        allowed: false,
        remaining: 0,
        resetAt: burst + W,
        retryAfterMs: burst + W - now,
      });
    }
    expect(window.check(burst + W)).toMatchObject({ allowed: true, remaining: 4 });
  });
});

describe("sliding window: cost > 1", () => {
  const policy = slidingWindow(5, W);

  it("is all or nothing, and waits until enough cost has left the window", () => {
    const window = new Window(policy);
    expect(window.take(T0, 2)).toMatchObject({ allowed: true, remaining: 3 });
    expect(window.take(T0 + 1000, 2)).toMatchObject({ allowed: true, remaining: 1 });
    // 4 used, 1 left: a cost of 2 waits for the first entry (2) to leave.
    expect(window.take(T0 + 2000, 2)).toEqual({
      allowed: false,
      remaining: 1,
      resetAt: T0 + 1000 + W,
      retryAfterMs: W - 2000,
    });
    expect(window.state).toEqual({ log: [T0, 2, T0 + 1000, 2], head: 0, total: 4 });
    expect(window.take(T0 + 2000, 1)).toEqual({ allowed: true, remaining: 0, resetAt: T0 + 2000 + W, retryAfterMs: 0 });
    // 5 used: a cost of 3 needs the first two entries (2 + 2) to leave.
    expect(window.take(T0 + 3000, 3)).toEqual({
      allowed: false,
      remaining: 0,
      resetAt: T0 + 2000 + W,
      retryAfterMs: 1000 + W - 3000,
    });
    expect(window.take(T0 + 1000 + W - 1, 3)).toMatchObject({ allowed: false, retryAfterMs: 1 });
    expect(window.take(T0 + 1000 + W, 3)).toEqual({
      allowed: true,
      remaining: 1,
      resetAt: T0 + 1000 + 2 * W,
      retryAfterMs: 0,
    });
  });

  it("a cost above the limit can never be admitted: retryAfterMs is infinite", () => {
    expect(checkSlidingWindow(undefined, policy, 6, T0)).toMatchObject({
      allowed: false,
      remaining: 5,
      retryAfterMs: Number.POSITIVE_INFINITY,
    });
    const window = new Window(policy);
    window.take(T0);
    expect(window.check(T0 + 1, 6)).toMatchObject({ allowed: false, retryAfterMs: Number.POSITIVE_INFINITY });
  });
});

describe("sliding window: cost 0", () => {
  it("is admitted even when the window is full, and reports the budget as it stands", () => {
    const window = new Window(slidingWindow(2, 1000));
    window.take(T0, 2);
    expect(window.take(T0 + 10, 0)).toMatchObject({ allowed: true, remaining: 0, retryAfterMs: 0 });
    expect(window.check(T0 + 20)).toMatchObject({ allowed: false, remaining: 0, retryAfterMs: 980 });
  });

  // Regression: an admitted cost-0 call was once logged as an entry, and that entry then dated
  // `resetAt` (and the state's expiry) although it held no budget.
  it("changes nothing observable: resetAt of a later refusal ignores a cost-0 call", () => {
    const policy = slidingWindow(1, 1000);
    const window = new Window(policy);
    window.take(T0, 1);
    window.take(T0 + 500, 0);
    expect(window.check(T0 + 600, 1)).toEqual({
      allowed: false,
      remaining: 0,
      resetAt: T0 + 1000,
      retryAfterMs: 400,
    });
  });
});

describe("sliding window: log maintenance", () => {
  it("stays bounded on a hot key (the dead prefix is compacted) and stays exact", () => {
    const policy = slidingWindow(3, 10);
    const window = new Window(policy);
    let refusals = 0;
    for (let step = 0; step < 2000; step++) {
      const now = T0 + step * 3;
      // Calls every 3 ms: four fall in every (now - 10, now], so some are refused; a refusal must
      // find the window full, and an admission never overfills it.
      const check = window.take(now);
      if (!check.allowed) refusals++;
      const state = window.state as SlidingWindowState;
      const live: number[] = [];
      for (let i = state.head; i < state.log.length; i += 2) {
        if ((state.log[i] as number) > now - 10) live.push(state.log[i + 1] as number);
      }
      const used = live.reduce((a, b) => a + b, 0);
      expect(used).toBeLessThanOrEqual(3);
      if (!check.allowed) expect(used).toBe(3);
      expect(state.log.length).toBeLessThanOrEqual(2 * 40);
    }
    expect(refusals).toBeGreaterThan(100);
  });

  it("keeps total equal to the cost of the entries from head on", () => {
    const window = new Window(slidingWindow(4, 100));
    const times = [0, 0, 10, 50, 99, 100, 100, 150, 210, 260, 300, 301, 302, 500];
    for (const t of times) {
      window.take(T0 + t, 1 + (t % 2));
      const state = window.state as SlidingWindowState;
      let sum = 0;
      for (let i = state.head; i < state.log.length; i += 2) sum += state.log[i + 1] as number;
      expect(state.total).toBe(sum);
    }
  });

  it("applySlidingWindow updates the state in place; checkSlidingWindow never changes it", () => {
    const policy = slidingWindow(5, W);
    const state: SlidingWindowState = { log: [T0, 1], head: 0, total: 1 };
    checkSlidingWindow(state, policy, 5, T0 + 1);
    checkSlidingWindow(state, policy, 1, T0 + 2 * W);
    expect(state).toEqual({ log: [T0, 1], head: 0, total: 1 });
    expect(applySlidingWindow(state, policy, 2, T0 + 1)).toBe(state);
    expect(state).toEqual({ log: [T0, 1, T0 + 1, 2], head: 0, total: 3 });
    // Applying after the first entry left drops it from the total.
    applySlidingWindow(state, policy, 1, T0 + W);
    expect(state.total).toBe(3);
    expect(state.log.slice(state.head)).toEqual([T0 + 1, 2, T0 + W, 1]);
  });

  it("expires when its newest entry leaves: from then on it answers like no state", () => {
    const policy = slidingWindow(5, W);
    const window = new Window(policy);
    window.take(T0, 2);
    window.take(T0 + 7000, 3);
    const state = window.state as SlidingWindowState;
    const expiresAt = slidingWindowExpiresAt(state, policy);
    expect(expiresAt).toBe(T0 + 7000 + W);
    for (const cost of [0, 1, 5, 6]) {
      expect(checkSlidingWindow(state, policy, cost, expiresAt)).toEqual(
        checkSlidingWindow(undefined, policy, cost, expiresAt),
      );
      expect(checkSlidingWindow(state, policy, cost, expiresAt + 12345)).toEqual(
        checkSlidingWindow(undefined, policy, cost, expiresAt + 12345),
      );
    }
    expect(checkSlidingWindow(state, policy, 5, expiresAt - 1).allowed).toBe(false);
    expect(slidingWindowExpiresAt({ log: [], head: 0, total: 0 }, policy)).toBe(0);
  });
});
