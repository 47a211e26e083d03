import { isRateSyncError } from "@ratesync/core";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { QueryDeadlines } from "./deadline.js";

/** A query that settles when the test says so. */
function pending<T>() {
  let resolve: (value: T) => void = () => {};
  let reject: (error: unknown) => void = () => {};
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "performance"] });
});
afterEach(() => {
  vi.useRealTimers();
});

describe("QueryDeadlines", () => {
  it("passes answers and errors through before the deadline, and leaves no timer behind", async () => {
    const deadlines = new QueryDeadlines(100, "PostgreSQL");
    const ok = pending<number>();
    const failed = pending<number>();
    const a = deadlines.bound(ok.promise);
    const b = deadlines.bound(failed.promise);
    expect(vi.getTimerCount()).toBe(1);
    ok.resolve(7);
    failed.reject(new Error("boom"));
    await expect(a).resolves.toBe(7);
    await expect(b).rejects.toThrow("boom");
    expect(vi.getTimerCount()).toBe(0);
  });

  it("fails each call at its own deadline with STORE_ERROR, with one timer for all", async () => {
    const deadlines = new QueryDeadlines(100, "PostgreSQL");
    const first = deadlines.bound(pending<number>().promise);
    const firstError = first.catch((error: unknown) => error);
    await vi.advanceTimersByTimeAsync(40);
    const second = deadlines.bound(pending<number>().promise);
    const secondError = second.catch((error: unknown) => error);
    let secondSettled = false;
    void second.catch(() => {
      secondSettled = true;
    });
    expect(vi.getTimerCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(60);
    const error = await firstError;
    expect(isRateSyncError(error, "STORE_ERROR")).toBe(true);
    expect((error as Error).message).toBe("PostgreSQL did not answer within 100 ms.");
    expect(secondSettled).toBe(false);
    await vi.advanceTimersByTimeAsync(39);
    expect(secondSettled).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(isRateSyncError(await secondError, "STORE_ERROR")).toBe(true);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("ignores an answer that arrives after the deadline", async () => {
    const deadlines = new QueryDeadlines(10, "PostgreSQL");
    const late = pending<number>();
    const call = deadlines.bound(late.promise).catch((error: unknown) => error);
    await vi.advanceTimersByTimeAsync(10);
    late.resolve(1);
    expect(isRateSyncError(await call, "STORE_ERROR")).toBe(true);
  });

  it("clear() fails every pending call at once and stops the timer", async () => {
    const deadlines = new QueryDeadlines(1000, "PostgreSQL");
    const calls = [1, 2, 3].map(() => deadlines.bound(pending<number>().promise).catch((error: unknown) => error));
    deadlines.clear();
    for (const error of await Promise.all(calls)) expect(isRateSyncError(error, "STORE_ERROR")).toBe(true);
    expect(vi.getTimerCount()).toBe(0);
  });
});
