import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { describe, expect, it } from "vitest";
import { DeadlineQueue } from "./deadline-queue.js";
import { FakeClock } from "./testing/fake-clock.js";

function deferred<T>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((done) => {
    resolve = done;
  });
  return { promise, resolve };
}

describe("DeadlineQueue", () => {
  it("expires each call exactly at its own deadline, in the order they started, with one timer", async () => {
    const clock = new FakeClock();
    const queue = new DeadlineQueue(clock, 100);
    const outcomes: string[] = [];
    const track = (name: string, promise: Promise<unknown>) =>
      promise.then(
        () => outcomes.push(`${name} ok @${clock.now() - 1_700_000_000_000}`),
        () => outcomes.push(`${name} expired @${clock.now() - 1_700_000_000_000}`),
      );
    const a = deferred<number>();
    const b = deferred<number>();
    const c = deferred<number>();
    const done = [
      track(
        "a",
        queue.bound(a.promise, () => new Error("late")),
      ),
    ];
    await clock.advance(30);
    done.push(
      track(
        "b",
        queue.bound(b.promise, () => new Error("late")),
      ),
    );
    await clock.advance(30);
    done.push(
      track(
        "c",
        queue.bound(c.promise, () => new Error("late")),
      ),
    );
    expect(clock.pendingTimers).toBe(1);
    b.resolve(1);
    await clock.advance(39);
    expect(outcomes).toEqual(["b ok @60"]);
    await clock.advance(1);
    expect(outcomes).toEqual(["b ok @60", "a expired @100"]);
    await clock.advance(60);
    await Promise.all(done);
    expect(outcomes).toEqual(["b ok @60", "a expired @100", "c expired @160"]);
    expect(clock.pendingTimers).toBe(0);
    a.resolve(2); // a late answer changes nothing
  });

  it("shares one timer between calls that follow one another, lets it lapse when idle, and clear() cancels it", async () => {
    const clock = new FakeClock();
    const queue = new DeadlineQueue(clock, 1000);
    for (let i = 0; i < 3; i++) {
      const call = deferred<string>();
      const bounded = queue.bound(call.promise, () => new Error("late"));
      expect(clock.pendingTimers).toBe(1);
      call.resolve(`x${i}`);
      expect(await bounded).toBe(`x${i}`);
      await clock.advance(10);
    }
    // Still the first call's timer: it lapses at its time with nothing to do.
    expect(clock.pendingTimers).toBe(1);
    await clock.advance(970);
    expect(clock.pendingTimers).toBe(0);

    const late = deferred<string>();
    const pending = queue.bound(late.promise, () => new Error("late"));
    expect(clock.pendingTimers).toBe(1);
    queue.clear();
    expect(clock.pendingTimers).toBe(0);
    late.resolve("after clear");
    expect(await pending).toBe("after clear");
  });

  it("a call after one that expired alone still gets its own deadline", async () => {
    const clock = new FakeClock();
    const queue = new DeadlineQueue(clock, 100);
    const first = queue.bound(new Promise<never>(() => {}), () => new Error("first late"));
    const firstOutcome = first.catch((error: Error) => error.message);
    await clock.advance(100);
    expect(await firstOutcome).toBe("first late");

    const second = queue.bound(new Promise<never>(() => {}), () => new Error("second late"));
    const secondOutcome = second.catch((error: Error) => error.message);
    await clock.advance(99);
    expect(clock.pendingTimers).toBe(1);
    await clock.advance(1);
    expect(await secondOutcome).toBe("second late");
    expect(clock.pendingTimers).toBe(0);
  });

  it("expireAll() rejects every pending call at once with its timeout error and stops the timer", async () => {
    const clock = new FakeClock();
    const queue = new DeadlineQueue(clock, 1000);
    const answered = deferred<string>();
    const settled = queue.bound(answered.promise, () => new Error("late"));
    answered.resolve("in time");
    expect(await settled).toBe("in time");
    const calls = [1, 2, 3].map(() =>
      queue.bound(new Promise<never>(() => {}), () => new Error("late")).catch((error: Error) => error.message),
    );
    queue.expireAll();
    expect(await Promise.all(calls)).toEqual(["late", "late", "late"]);
    expect(clock.pendingTimers).toBe(0);
  });

  it("start() and settle(): a call settled in time never expires, one settled late is told so, and done tells both", async () => {
    const clock = new FakeClock();
    const queue = new DeadlineQueue(clock, 100);
    const expired: string[] = [];
    const inTime = queue.start(() => expired.push("in time"));
    const late = queue.start(() => expired.push("late"));
    expect(late.at).toBe(clock.now() + 100);
    expect([inTime.done, late.done]).toEqual([false, false]);
    await clock.advance(99);
    expect(queue.settle(inTime)).toBe(true);
    expect(inTime.done).toBe(true);
    // Settling twice is a no-op that says so.
    expect(queue.settle(inTime)).toBe(false);
    await clock.advance(1);
    expect(expired).toEqual(["late"]);
    expect(late.done).toBe(true);
    expect(queue.settle(late)).toBe(false);
    expect(clock.pendingTimers).toBe(0);
  });

  it("passes a rejection through untouched", async () => {
    const queue = new DeadlineQueue(new FakeClock(), 1000);
    await expect(queue.bound(Promise.reject(new Error("refused")), () => new Error("late"))).rejects.toThrow("refused");
  });

  it("keeps nothing of a settled call while others are pending, so a steady load holds no answers", async () => {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const queue = new DeadlineQueue(new FakeClock(), 60_000);
    // A call that never answers: the queue is never empty, as under a steady load.
    const hung = queue.bound(new Promise<never>(() => {}), () => new Error("late"));
    hung.catch(() => {});
    const answers: WeakRef<object>[] = [];
    for (let i = 0; i < 3000; i++) {
      const answer = { payload: new Array(16).fill(i) };
      answers.push(new WeakRef(answer));
      await queue.bound(Promise.resolve(answer), () => new Error("late"));
    }
    await new Promise((resolve) => setImmediate(resolve));
    gc();
    // The queue holds none of them (it held every one). The engine itself may keep a stray
    // object alive for a while (the test's suspended frame, a pending job), so a handful is allowed.
    expect(answers.filter((answer) => answer.deref() !== undefined).length).toBeLessThan(10);
    queue.expireAll();
    await expect(hung).rejects.toThrow("late");
  });
});
