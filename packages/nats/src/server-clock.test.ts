import { FakeClock } from "@ratesync/core/testing";
import { describe, expect, it } from "vitest";
import { ServerClock } from "./server-clock.js";

describe("ServerClock", () => {
  it("estimates the server's time from the middle of a round trip", () => {
    const local = new FakeClock(1_000_000);
    const clock = new ServerClock(local);
    expect(clock.synced).toBe(false);
    // Sent at 1_000_000, answered at 1_000_010; the server (30 s ahead) stamped the middle.
    clock.sample(1_000_000, 1_000_010, 1_030_005);
    expect(clock.offsetMs).toBe(30_000);
    expect(clock.uncertaintyMs).toBe(5);
    expect(clock.now()).toBe(1_030_000);
  });

  it("narrows the estimate with every round trip: all of them must hold at once", () => {
    const local = new FakeClock(0);
    const clock = new ServerClock(local);
    // The true offset is -30_000. A slow round trip (100 ms) stamped at its very end...
    clock.sample(0, 100, -29_900);
    expect(clock.offsetMs).toBe(-29_950);
    expect(clock.uncertaintyMs).toBe(50);
    // ...and another stamped 2 ms after it was sent: together they allow only [-30_000, -29_998].
    clock.sample(200, 300, -29_798);
    expect(clock.offsetMs).toBe(-29_999);
    expect(clock.uncertaintyMs).toBe(1);
  });

  it("takes the whole-millisecond stamps NATS reports as the millisecond they stand for", () => {
    const clock = new ServerClock(new FakeClock(0));
    clock.sample(10, 11, 1010, 1011);
    expect(clock.offsetMs).toBe(1000);
    expect(clock.uncertaintyMs).toBe(1);
  });

  it("falls back to the tightest recent sample when the samples contradict each other", () => {
    const clock = new ServerClock(new FakeClock(0));
    clock.sample(0, 10, 105);
    // The server's clock was stepped by a second: the two intervals no longer meet.
    clock.sample(20, 22, 1021);
    expect(clock.offsetMs).toBe(1000);
    expect(clock.uncertaintyMs).toBe(1);
  });

  it("lets old samples go, so a drifting clock is followed", async () => {
    const local = new FakeClock(0);
    const clock = new ServerClock(local, 1000);
    clock.sample(0, 1, 100.5);
    await local.advance(5000);
    clock.sample(5000, 5010, 5125);
    expect(clock.offsetMs).toBe(120);
  });

  it("never goes backwards, and never below a time the server is known to have passed", () => {
    const local = new FakeClock(0);
    const clock = new ServerClock(local);
    clock.sample(0, 10, 105);
    expect(clock.now()).toBe(100);
    // A tighter sample says the server is 2 ms behind the previous estimate: now() holds still.
    clock.sample(0, 2, 99);
    expect(clock.offsetMs).toBe(98);
    expect(clock.now()).toBe(100);
    expect(clock.now(150)).toBe(150);
    expect(clock.now()).toBe(150);
  });

  it("ignores impossible samples and refuses to answer before the first one", () => {
    const clock = new ServerClock(new FakeClock(0));
    clock.sample(10, 5, 100);
    clock.sample(0, 1, Number.NaN);
    clock.sample(0, 1, 10, 9);
    expect(clock.synced).toBe(false);
    expect(() => clock.now()).toThrow(/before any sample/);
  });
});
