import { createRateSync, type Decision, type RateSync } from "@ratesync/core";
import { rejectionOf } from "@ratesync/core/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNatsEngine, NatsEngine } from "./engine.js";
import { NatsServer } from "./test-support/nats-server.js";

// A NATS server of this file's own (port 4301), which the test stops and restarts mid-run.
const server = new NatsServer(4301);
// One that wants a token (port 4302).
const TOKEN = "s3cret-token-value";
const secured = new NatsServer(4302, ["--auth", TOKEN]);
const DEADLINE_MS = 300;
/** What a call may take beyond its deadline on a loaded machine (timers, event loop). */
const SLACK_MS = 200;

beforeAll(() => Promise.all([server.start(), secured.start()]), 20_000);
afterAll(() => Promise.all([server.dispose(), secured.dispose()]), 20_000);

function registry(): RateSync {
  const rs = createRateSync({ autoload: false });
  rs.configureStore("n", {
    engine: createNatsEngine({ url: server.url, bucket: "restart" }),
    requestTimeoutMs: DEADLINE_MS,
  });
  rs.configureLimiter("open", { store: "n", ratePerSecond: 1000, burst: 1000 });
  rs.configureLimiter("closed", { store: "n", ratePerSecond: 1000, burst: 1000, failClosed: true });
  rs.configureLimiter("slots", { store: "n", maxConcurrent: 2, failClosed: true });
  // Refills one per 100 s: its count shows whether the state survived the restart.
  rs.configureLimiter("exact", { store: "n", ratePerSecond: 0.01, burst: 10, failClosed: true });
  return rs;
}

async function timed<T>(run: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const start = performance.now();
  const value = await run();
  return { value, ms: performance.now() - start };
}

describe("NATS restart", () => {
  it("settles every call within its deadline while NATS is down, then resumes exact decisions within 5 s", async () => {
    const rs = registry();
    // Callers that keep going through the outage: none may take longer than its deadline.
    let running = true;
    let slowest = 0;
    let calls = 0;
    const background = (async () => {
      while (running) {
        const { ms } = await timed(() => rs.tryAcquire("open"));
        slowest = Math.max(slowest, ms);
        calls++;
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    try {
      expect((await rs.tryAcquire("open")).degraded).toBe(false);
      for (let i = 0; i < 3; i++) expect((await rs.tryAcquire("exact")).allowed).toBe(true);
      // Settle the background caller's first call (it opened the connection).
      await new Promise((resolve) => setTimeout(resolve, 100));
      slowest = 0;

      await server.stop();
      for (let i = 0; i < 3; i++) {
        const open = await timed(() => rs.tryAcquire("open"));
        expect(open.value).toMatchObject({ allowed: true, degraded: true });
        expect(open.ms).toBeLessThan(DEADLINE_MS + SLACK_MS);
        const closed = await timed(() => rejectionOf(rs.tryAcquire("closed")));
        expect(closed.value.code).toBe("STORE_UNAVAILABLE");
        expect(closed.ms).toBeLessThan(DEADLINE_MS + SLACK_MS);
        const waiting = await timed(() => rejectionOf(rs.acquire("slots", { timeout: 5 })));
        expect(waiting.value.code).toBe("STORE_UNAVAILABLE");
        expect(waiting.ms).toBeLessThan(DEADLINE_MS + SLACK_MS);
      }
      // Down for a while, as in a real restart.
      await new Promise((resolve) => setTimeout(resolve, 1000));

      await server.start();
      const back = performance.now();
      let decision: Decision | undefined;
      while (performance.now() - back < 5000) {
        decision = await rs.tryAcquire("open");
        if (!decision.degraded) break;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const recoveryMs = performance.now() - back;
      running = false;
      await background;
      console.log(
        `[restart] decisions exact again ${recoveryMs.toFixed(0)} ms after the restart; ` +
          `${calls} background calls, slowest ${slowest.toFixed(0)} ms (deadline ${DEADLINE_MS} ms)`,
      );
      expect(decision?.degraded).toBe(false);
      expect(recoveryMs).toBeLessThan(5000);
      expect(slowest).toBeLessThan(DEADLINE_MS + SLACK_MS);
      // Exact, and from the state the server kept on disk: 3 taken before, the fourth now.
      const exact = await rs.tryAcquire("exact");
      expect(exact).toMatchObject({ allowed: true, degraded: false, remaining: 6 });
      expect((await rs.tryAcquire("closed")).degraded).toBe(false);
      const slot = await rs.acquire("slots", { timeout: 1 });
      await slot.release();
    } finally {
      running = false;
      await background;
      await rs.close();
    }
  }, 40_000);

  it("keeps waking waiters on releases after a restart: the KV watch comes back by itself", async () => {
    const watcher = new NatsEngine({ url: server.url, bucket: "restart" }, { requestTimeoutMs: DEADLINE_MS });
    const releaser = new NatsEngine({ url: server.url, bucket: "restart" }, { requestTimeoutMs: DEADLINE_MS });
    const target = { limiter: "watched", key: "k" };
    const policy = { rate: undefined, concurrency: { maxConcurrent: 1, leaseMs: 10_000 } };
    let wakes = 0;
    try {
      await watcher.init();
      const unsubscribe = watcher.onRelease(target, () => wakes++);
      // A release before the restart is heard (the watch is up).
      await new Promise((resolve) => setTimeout(resolve, 300));
      await releaser.decide({ ...target, policy, cost: 0, leaseId: "before" });
      await releaser.release({ ...target, leaseId: "before" });
      await until(() => wakes === 1, 2000);
      expect(wakes).toBe(1);

      await server.stop();
      await server.start();
      const back = performance.now();
      // Once the store answers again, a release must reach the same listener.
      let heardMs = Number.POSITIVE_INFINITY;
      while (performance.now() - back < 10_000 && heardMs === Number.POSITIVE_INFINITY) {
        try {
          const lease = `after-${Math.round(performance.now())}`;
          await releaser.decide({ ...target, policy, cost: 0, leaseId: lease });
          await releaser.release({ ...target, leaseId: lease });
          if (await until(() => wakes > 1, 500)) heardMs = performance.now() - back;
        } catch {
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
      console.log(`[restart] a release reached the KV watch again ${heardMs.toFixed(0)} ms after the restart`);
      expect(heardMs).toBeLessThan(10_000);
      unsubscribe();
    } finally {
      await Promise.all([watcher.close(), releaser.close()]);
    }
  }, 40_000);
});

describe("NATS authentication", () => {
  it("connects with a token, and a wrong one fails with an error that never shows it", async () => {
    const good = new NatsEngine({ url: secured.url, bucket: "auth", token: TOKEN });
    const bad = new NatsEngine({ url: secured.url, bucket: "auth", token: "wrong-token-value" });
    const anonymous = new NatsEngine({ url: secured.url, bucket: "auth" });
    try {
      await good.init();
      const policy = {
        rate: { algorithm: "fixed_window" as const, limit: 2, windowMs: 60_000 },
        concurrency: undefined,
      };
      expect((await good.decide({ limiter: "auth", key: "", policy, cost: 1, leaseId: undefined })).allowed).toBe(true);
      for (const engine of [bad, anonymous]) {
        const error = await rejectionOf(engine.init());
        expect(error.code).toBe("STORE_ERROR");
        expect(error.message).toMatch(/Could not connect to NATS at nats:\/\/127\.0\.0\.1:4302/);
        expect(error.message).not.toContain("wrong-token-value");
        expect(error.message).not.toContain(TOKEN);
      }
    } finally {
      await Promise.all([good.close(), bad.close(), anonymous.close()]);
    }
  });
});

/** Polls `check` until it holds or `timeoutMs` passes; whether it held. */
async function until(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = performance.now() + timeoutMs;
  while (!check() && performance.now() < end) await new Promise((resolve) => setTimeout(resolve, 20));
  return check();
}
