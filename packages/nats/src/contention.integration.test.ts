import { isRateSyncError, type Policy } from "@ratesync/core";
import { afterAll, describe, expect, it } from "vitest";
import { NatsEngine } from "./engine.js";
import { deleteBucket, NATS_URL, uniqueBucket } from "./test-support/buckets.js";

// Hot-key contention: 64 updaters on one key, every decision a compare-and-set on one entry.

const bucket = uniqueBucket("contention");
afterAll(() => deleteBucket(bucket), 10_000);

const OPERATIONS = 10_000;
const UPDATERS = 64;
/** A budget below the operations, refilling at one per 10 minutes: exactly this many can be admitted. */
const BUDGET = 7_000;
const policy: Policy = {
  rate: { algorithm: "token_bucket", ratePerSecond: 1 / 600, burst: BUDGET, intervalMs: 600_000 },
  concurrency: undefined,
};
/** The bucket's max age must cover the bucket's refill from empty: 7,000 x 10 minutes, 49 days. */
const TTL_SECONDS = 60 * 86_400;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

/**
 * Runs {@link OPERATIONS} decisions through {@link UPDATERS} callers spread over `engines` (each
 * engine its own connection, as separate processes would be) and checks the count exactly.
 */
async function hammer(engines: NatsEngine[], name: string): Promise<void> {
  const target = { limiter: `${name}-${Date.now()}`, key: "hot" };
  let next = 0;
  let admitted = 0;
  let refused = 0;
  const latencies: number[] = [];
  const started = performance.now();
  await Promise.all(
    Array.from({ length: UPDATERS }, async (_, updater) => {
      const engine = engines[updater % engines.length] as NatsEngine;
      while (next < OPERATIONS) {
        next++;
        const sent = performance.now();
        const decision = await engine.decide({ ...target, policy, cost: 1, leaseId: undefined });
        latencies.push(performance.now() - sent);
        if (decision.allowed) admitted++;
        else refused++;
      }
    }),
  );
  const elapsed = performance.now() - started;
  latencies.sort((a, b) => a - b);
  const after = await (engines[0] as NatsEngine).peek({ ...target, policy, cost: 1 });
  console.log(
    `[contention] ${name}: ${OPERATIONS} decisions by ${UPDATERS} updaters on ${engines.length} connection(s) in ${(elapsed / 1000).toFixed(1)} s ` +
      `(${Math.round(OPERATIONS / (elapsed / 1000))}/s): admitted ${admitted} of budget ${BUDGET}, refused ${refused}; ` +
      `latency p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms, max ${(latencies.at(-1) ?? 0).toFixed(1)} ms`,
  );
  // No over-admission and no lost update: a lost write would hand out its token twice.
  expect(admitted).toBe(BUDGET);
  expect(refused).toBe(OPERATIONS - BUDGET);
  expect(after.remaining).toBe(0);
  await (engines[0] as NatsEngine).reset(target);
}

describe("NATS hot key", () => {
  it(`${UPDATERS} updaters on their own connections, ${OPERATIONS} operations: exact`, async () => {
    const engines = Array.from(
      { length: UPDATERS },
      () => new NatsEngine({ url: NATS_URL, bucket, ttlSeconds: TTL_SECONDS, maxConflictRetries: 1000 }),
    );
    try {
      await hammer(engines, "separate");
    } finally {
      await Promise.all(engines.map((engine) => engine.close()));
    }
  }, 120_000);

  it(`${UPDATERS} updaters on 4 connections (coalesced per process), ${OPERATIONS} operations: exact`, async () => {
    const engines = Array.from({ length: 4 }, () => new NatsEngine({ url: NATS_URL, bucket, ttlSeconds: TTL_SECONDS }));
    try {
      await hammer(engines, "coalesced");
    } finally {
      await Promise.all(engines.map((engine) => engine.close()));
    }
  }, 60_000);

  it("fails a decision that keeps losing with a typed error, after max_conflict_retries", async () => {
    const engines = Array.from(
      { length: 8 },
      () => new NatsEngine({ url: NATS_URL, bucket, ttlSeconds: TTL_SECONDS, maxConflictRetries: 0 }),
    );
    const target = { limiter: `losing-${Date.now()}`, key: "hot" };
    try {
      const results = await Promise.allSettled(
        Array.from({ length: 400 }, (_, i) =>
          (engines[i % engines.length] as NatsEngine).decide({ ...target, policy, cost: 1, leaseId: undefined }),
        ),
      );
      const lost = results.flatMap((result) => (result.status === "rejected" ? [result.reason as unknown] : []));
      const admitted = results.filter((result) => result.status === "fulfilled" && result.value.allowed).length;
      console.log(`[contention] max_conflict_retries 0, 8 connections: ${admitted} admitted, ${lost.length} lost`);
      expect(lost.length).toBeGreaterThan(0);
      for (const error of lost) {
        expect(isRateSyncError(error, "STORE_ERROR")).toBe(true);
        expect((error as Error).message).toMatch(/compare-and-set attempts on one key all lost/);
      }
      // What was admitted was counted exactly, lost calls included (they spent nothing).
      expect((await (engines[0] as NatsEngine).peek({ ...target, policy, cost: 1 })).remaining).toBe(BUDGET - admitted);
      await (engines[0] as NatsEngine).reset(target);
    } finally {
      await Promise.all(engines.map((engine) => engine.close()));
    }
  }, 30_000);
});
