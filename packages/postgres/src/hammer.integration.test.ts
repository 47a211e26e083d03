import { createRateSync, isRateSyncError, type RateSync } from "@ratesync/core";
import { afterAll, describe, expect, it } from "vitest";
import { createPostgresEngine } from "./engine.js";
import { dropSchema, TEST_URL, uniqueSchema } from "./test-support/databases.js";

// One hot key, 32 connections, no mercy: no caller may ever see a duplicate-key, deadlock,
// serialization or lock error, and the store's count must match the callers' exactly.

const schema = uniqueSchema("hammer");
const CONNECTIONS = 32;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

afterAll(() => dropSchema(schema), 30_000);

/**
 * `CONNECTIONS` engines, as many processes would have (each its own registry and a pool of one
 * connection), with two callers each, all on one key: the row lock is fought over by 32
 * connections, and each engine's own callers are coalesced into batches as well.
 */
async function hammer(limiter: string, key: string, durationMs: number) {
  const registries = Array.from({ length: CONNECTIONS }, () => {
    const rs = createRateSync({ autoload: false });
    rs.configureStore("pg", {
      engine: createPostgresEngine({ url: TEST_URL, schema, poolSize: 1 }),
      requestTimeoutMs: 5000,
    });
    // fail_closed: a store error is a throw here, never a silently degraded admission.
    rs.configureLimiter("counted", {
      store: "pg",
      algorithm: "fixed_window",
      limit: 1e9,
      windowSeconds: 1e7,
      failClosed: true,
    });
    rs.configureLimiter("scarce", {
      store: "pg",
      algorithm: "fixed_window",
      limit: 2000,
      windowSeconds: 1e7,
      failClosed: true,
    });
    return rs;
  });
  await Promise.all(registries.map((rs) => rs.initializeAllLimiters()));
  const errors: string[] = [];
  let admitted = 0;
  let refused = 0;
  const end = performance.now() + durationMs;
  await Promise.all(
    registries.flatMap((rs) =>
      [0, 1].map(async () => {
        while (performance.now() < end) {
          try {
            const decision = await rs.tryAcquire(limiter, { key });
            if (decision.degraded) errors.push(`degraded: ${decision.reason}`);
            else if (decision.allowed) admitted++;
            else refused++;
          } catch (error) {
            errors.push(isRateSyncError(error) ? `${error.code}: ${error.message}` : String(error));
            await sleep(1);
          }
        }
      }),
    ),
  );
  const state = await (registries[0] as RateSync).getLimiter(limiter).state(key);
  await Promise.all(registries.map((rs) => rs.close()));
  return { errors, admitted, refused, remaining: state.remaining };
}

describe(`${CONNECTIONS} connections on one key`, () => {
  it("surface no error in 10 s and count every admission exactly", async () => {
    const result = await hammer("counted", "hot", 10_000);
    console.log(
      `[hammer] ${CONNECTIONS} connections x 2 callers, one key, 10 s: ${result.admitted} admitted (${(result.admitted / 10).toFixed(0)}/s), ${result.errors.length} errors`,
    );
    expect(result.errors.slice(0, 5)).toEqual([]);
    expect(result.admitted).toBeGreaterThan(1000);
    expect(result.remaining).toBe(1e9 - result.admitted);
  }, 60_000);

  it("admit exactly the limit and not one more", async () => {
    const result = await hammer("scarce", "hot", 3000);
    console.log(
      `[hammer] limit 2000: ${result.admitted} admitted, ${result.refused} refused, ${result.errors.length} errors`,
    );
    expect(result.errors.slice(0, 5)).toEqual([]);
    expect(result.admitted).toBe(2000);
    expect(result.refused).toBeGreaterThan(0);
    expect(result.remaining).toBe(0);
  }, 60_000);
});
