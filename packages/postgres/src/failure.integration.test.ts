import { createRateSync, type Decision, isRateSyncError, type RateSync, registerEngine } from "@ratesync/core";
import { rejectionOf } from "@ratesync/core/testing";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { engine } from "./index.js";
import { ThrowawayCluster } from "./test-support/cluster.js";

// A PostgreSQL cluster of this file's own, which the test crashes (immediate shutdown) and
// restarts mid-run.
const cluster = new ThrowawayCluster(5441);
const DEADLINE_MS = 300;
const POOL = 4;

beforeAll(async () => {
  registerEngine(engine);
  await cluster.init();
  await cluster.start();
}, 120_000);

afterAll(() => cluster.destroy(), 60_000);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function registry(url: string): RateSync {
  const rs = createRateSync({ autoload: false });
  rs.configureStore("pg", { engine: "postgres", url, poolSize: POOL, requestTimeoutMs: DEADLINE_MS });
  rs.configureLimiter("open", { store: "pg", ratePerSecond: 1000, burst: 1000 });
  rs.configureLimiter("closed", { store: "pg", ratePerSecond: 1000, burst: 1000, failClosed: true });
  rs.configureLimiter("slots", { store: "pg", maxConcurrent: 2, failClosed: true });
  return rs;
}

interface Outcome {
  readonly at: number;
  readonly ms: number;
  readonly kind: "exact" | "degraded" | "unavailable" | "other";
  readonly detail?: string;
}

async function timedOutcome(run: () => Promise<Decision>): Promise<Outcome> {
  const start = performance.now();
  try {
    const decision = await run();
    return { at: start, ms: performance.now() - start, kind: decision.degraded ? "degraded" : "exact" };
  } catch (error) {
    const ms = performance.now() - start;
    if (isRateSyncError(error, "STORE_UNAVAILABLE")) return { at: start, ms, kind: "unavailable" };
    return { at: start, ms, kind: "other", detail: String(error) };
  }
}

describe("PostgreSQL restarted mid-run", () => {
  it("settles every call within its deadline while down, and decides exactly again within 5 s of the restart", async () => {
    const rs = registry(cluster.url);
    const open: Outcome[] = [];
    const closed: Outcome[] = [];
    let running = true;
    try {
      await rs.initializeAllLimiters();
      // Callers keep going through the whole outage, as a live service would.
      const callers = Array.from({ length: 4 }, async (_, i) => {
        while (running) {
          const target = i % 2 === 0 ? open : closed;
          target.push(await timedOutcome(() => rs.tryAcquire(i % 2 === 0 ? "open" : "closed")));
          await sleep(5);
        }
      });
      await sleep(500);
      const stoppedAt = performance.now();
      await cluster.stop();
      const downAt = performance.now();
      await sleep(1500);
      // A waiting acquire on a fail-closed limiter fails promptly too.
      const waiting = performance.now();
      const waitError = await rejectionOf(rs.acquire("slots", { timeout: 5 }));
      const waitMs = performance.now() - waiting;
      const restartAt = performance.now();
      await cluster.start();
      const upAt = performance.now();
      let recoveredAt: number | undefined;
      while (recoveredAt === undefined && performance.now() - upAt < 6000) {
        const last = [...open, ...closed].filter((o) => o.at > upAt && o.kind === "exact");
        if (last.length > 0) recoveredAt = Math.min(...last.map((o) => o.at + o.ms));
        await sleep(20);
      }
      running = false;
      await Promise.all(callers);

      const all = [...open, ...closed];
      const slowest = Math.max(...all.map((o) => o.ms));
      const during = (list: Outcome[]) => list.filter((o) => o.at > downAt + 50 && o.at + o.ms < restartAt);
      console.log(
        `[restart] ${all.length} calls; slowest ${slowest.toFixed(0)} ms (deadline ${DEADLINE_MS}); stop took ${(downAt - stoppedAt).toFixed(0)} ms; ` +
          `while down: open ${JSON.stringify(count(during(open)))}, closed ${JSON.stringify(count(during(closed)))}; ` +
          `waiting acquire failed with ${waitError.code} after ${waitMs.toFixed(0)} ms; ` +
          `exact again ${recoveredAt === undefined ? "never" : `${(recoveredAt - upAt).toFixed(0)} ms`} after the restart`,
      );
      expect(all.filter((o) => o.kind === "other")).toEqual([]);
      // Every call settled within its deadline (plus scheduling slack on a loaded 2-core machine).
      expect(slowest).toBeLessThan(DEADLINE_MS + 200);
      // While down: fail-open admits (degraded), fail-closed refuses with STORE_UNAVAILABLE.
      expect(during(open).length).toBeGreaterThan(5);
      expect(during(open).every((o) => o.kind === "degraded")).toBe(true);
      expect(during(closed).length).toBeGreaterThan(5);
      expect(during(closed).every((o) => o.kind === "unavailable")).toBe(true);
      expect(waitError.code).toBe("STORE_UNAVAILABLE");
      expect(waitMs).toBeLessThan(DEADLINE_MS + 200);
      expect(recoveredAt).toBeDefined();
      expect((recoveredAt as number) - upAt).toBeLessThan(5000);
      // Exact again on both limiters, and the lease path works.
      expect((await rs.tryAcquire("closed")).degraded).toBe(false);
      const slot = await rs.acquire("slots", { timeout: 1 });
      await slot.release();

      // The pool did not leak: at most pool size + the listening connection.
      const admin = postgres(cluster.url, { max: 1, onnotice: () => {} });
      const [row] = await admin`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'ratesync'`;
      await admin.end();
      console.log(`[restart] connections of the engine after recovery: ${row?.n} (pool ${POOL})`);
      expect(row?.n).toBeLessThanOrEqual(POOL + 1);
    } finally {
      running = false;
      await rs.close();
    }
    // Nor did close(), though connections were reconnecting with calls queued on them.
    expect(await connectionsLeft(cluster.url)).toBe(0);
  }, 60_000);

  it("never puts the password of a URL into an error message", async () => {
    const rs = registry("postgres://someone:wrong-password-123@127.0.0.1:5449/nowhere");
    try {
      const degraded = await rs.tryAcquire("open");
      expect(degraded.degraded).toBe(true);
      const error = await rejectionOf(rs.tryAcquire("closed"));
      for (const text of [degraded.degraded ? degraded.reason : "", error.message, String(error.cause)]) {
        expect(text).not.toContain("wrong-password-123");
      }
    } finally {
      await rs.close();
    }
  });

  it("closes every connection it opened on close()", async () => {
    const rs = registry(cluster.url);
    await Promise.all(Array.from({ length: 20 }, () => rs.tryAcquire("open")));
    await rs.close();
    expect(await connectionsLeft(cluster.url)).toBe(0);
  });
});

/**
 * The engine's connections open on the server after close(): given 2 s to go, then counted again a
 * second later (longer than the engine's longest reconnection delay), which catches a connection
 * that reconnects after close() returned.
 */
async function connectionsLeft(url: string): Promise<number> {
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  const open = async () => {
    const [row] = await admin`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'ratesync'`;
    return row?.n ?? -1;
  };
  try {
    for (let i = 0; i < 40 && (await open()) !== 0; i++) await sleep(50);
    await sleep(1000);
    return await open();
  } finally {
    await admin.end();
  }
}

function count(list: Outcome[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const o of list) counts[o.kind] = (counts[o.kind] ?? 0) + 1;
  return counts;
}
