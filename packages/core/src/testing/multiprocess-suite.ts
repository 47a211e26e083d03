/**
 * The multi-process checks every engine must pass, the same for each: several worker processes
 * (each with its own connection, as separate application instances) share one key of one limiter
 * through a real store. SPEC section 5 across processes: token bucket and sliding window accuracy
 * under 4 x 50 callers for 10 s, `max_concurrent` never exceeded, a SIGKILLed holder's slots back
 * within lease + 1 s, a frozen holder unable to release someone else's slot, and concurrency
 * waiters that do not poll the store.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EngineDefinition } from "../engines/engine.js";
import { registerEngine } from "../engines/registry.js";
import { createRateSync, type RateSync } from "../rate-sync.js";
import {
  harnessNow,
  killAllWorkers,
  type RunResult,
  runWorkload,
  spawnWorker,
  spawnWorkers,
  type WorkerProcess,
} from "./multiprocess.js";
import {
  checkSlidingWindowLog,
  checkTokenBucketLog,
  maxConcurrentFromIntervals,
  maxInAnyInterval,
} from "./multiprocess-checks.js";

/** Options of {@link describeMultiprocessSuite}. */
export interface MultiprocessSuiteOptions {
  /**
   * The body of the shared store's TOML table, without its `[stores...]` header: `engine = "redis"`
   * and its options. Make names unique per run (`uniqueRunId()`), so parallel runs never share state.
   */
  readonly store: string;
  /** The engine's definition, registered in the test process (which peeks at the store). */
  readonly engine: EngineDefinition;
  /**
   * A module every worker imports before loading the configuration, typically the engine package's
   * entry, which registers its engine (under pnpm, `@ratesync/core` cannot resolve the package from
   * its own directory).
   */
  readonly setup: string | URL;
  /** Runs last, after every worker stopped and every key was reset: drop a schema, delete a bucket. */
  readonly cleanup?: (() => Promise<void>) | undefined;
}

/**
 * Describes the multi-process checks against one store: call it from a test file of the engine's
 * package (run it on its own: the counts need the machine to themselves).
 *
 * @example
 * ```ts
 * describeMultiprocessSuite("Redis", {
 *   store: `engine = "redis"\nkey_prefix = "mp-${uniqueRunId()}:"`,
 *   engine,
 *   setup: new URL("./index.ts", import.meta.url),
 * });
 * ```
 */
export function describeMultiprocessSuite(name: string, options: MultiprocessSuiteOptions): void {
  const setup = options.setup;
  // fail_closed: a store error must show up as an error in the report, not as a silently degraded
  // admission that would inflate the counts.
  const config = `
[stores.shared]
${options.store.trim()}
request_timeout_ms = 2000

[limiters.tb]
store = "shared"
rate_per_second = 100
burst = 20
fail_closed = true

[limiters.sw]
store = "shared"
algorithm = "sliding_window"
limit = 100
window_seconds = 1
fail_closed = true

[limiters.cc]
store = "shared"
max_concurrent = 5
fail_closed = true

[limiters.crash]
store = "shared"
max_concurrent = 2
lease_seconds = 1

[limiters.frozen]
store = "shared"
max_concurrent = 1
lease_seconds = 1

[limiters.idle]
store = "shared"
max_concurrent = 1
lease_seconds = 2
`;

  const PROCESSES = 4;
  const CALLERS = 50;
  const ACCURACY_MS = 10_000;
  const KEY = "shared";

  /** The test process's own view of the store, for peeks: another client, another process. */
  const observer: RateSync = createRateSync({ autoload: false });
  /**
   * Workers shared by the tests: starting one costs about a second of CPU (tsx), so the load tests
   * reuse them. The fault tests start the processes they kill or freeze.
   */
  let pool: WorkerProcess[] = [];
  const used: [limiter: string, key: string][] = [];

  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

  /** Resolves once `check` holds, or after `timeoutMs` (the assertions that follow then fail). */
  async function until(check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
    const deadline = harnessNow() + timeoutMs;
    while (!(await check()) && harnessNow() < deadline) await sleep(50);
  }

  function key(limiter: string, name = KEY): string {
    used.push([limiter, name]);
    return name;
  }

  async function inUse(limiter: string, name: string): Promise<number | undefined> {
    return (await observer.getLimiter(limiter).state(name)).concurrency?.inUse;
  }

  function member(index: number): WorkerProcess {
    const worker = pool[index];
    if (worker === undefined) throw new Error(`no pool worker ${index}`);
    return worker;
  }

  function expectClean(result: RunResult): void {
    expect(result.errors).toEqual({});
    expect(result.degraded).toBe(0);
  }

  beforeAll(async () => {
    registerEngine(options.engine);
    observer.loadConfigFromString(config);
    await observer.initializeAllLimiters();
    pool = await spawnWorkers(2 * PROCESSES, { config, setup, name: "pool" });
  }, 60_000);

  afterAll(async () => {
    // Workers first, then what they stored. killAllWorkers() ends whatever a failed test left
    // running or frozen.
    await Promise.all(pool.map((worker) => worker.close()));
    await killAllWorkers();
    await Promise.all(
      used.map(([limiter, name]) =>
        observer
          .getLimiter(limiter)
          .reset(name)
          .catch(() => {}),
      ),
    );
    await observer.close();
    await options.cleanup?.();
  }, 30_000);

  describe(`${name} across processes`, () => {
    it(`keeps a token bucket and a sliding window exact with ${PROCESSES} processes x ${CALLERS} callers for ${ACCURACY_MS / 1000} s`, async () => {
      const common = { callers: CALLERS, durationMs: ACCURACY_MS, mode: "rate" } as const;
      // Both at once, on separate processes: the store's times stay exact even when the processes
      // compete for two cores (the callers' own times do not, see the log line).
      const [tb, sw] = await Promise.all([
        runWorkload(pool.slice(0, PROCESSES), { ...common, limiter: "tb", key: key("tb") }),
        runWorkload(pool.slice(PROCESSES), { ...common, limiter: "sw", key: key("sw") }),
      ]);

      // Token bucket at 100/s, burst 20: at most 20 + 100 * 10 + 1, at least 95 % of that, and no
      // interval of the store's log above burst + rate * length + 1.
      expectClean(tb);
      const tbOptions = { ratePerSecond: 100, burst: 20, durationMs: ACCURACY_MS };
      const tbBound = 20 + 100 * (ACCURACY_MS / 1000) + 1;
      // Every admission the callers saw is one the store made, and the other way round.
      expect(tb.storeAdmissions).toHaveLength(tb.admissions.length);
      const tbViolations = checkTokenBucketLog(tb.storeAdmissions, { ...tbOptions, minFraction: 0.95 });
      const tbSeen = checkTokenBucketLog(tb.admissions, tbOptions).filter((v) => v.kind === "interval");
      console.log(
        `[multiprocess] token bucket: admitted ${tb.admissions.length} (bound ${tbBound}, at least ${Math.ceil(0.95 * tbBound)}), ` +
          `max in any 1 s ${maxInAnyInterval(tb.storeAdmissions, 1000)} (bound ${20 + 100 + 1}), ` +
          `interval violations ${tbViolations.filter((v) => v.kind === "interval").length} at store times, ` +
          `${tbSeen.length} at caller times${tbSeen[0] === undefined ? "" : ` (${tbSeen[0].message})`}; ` +
          `${(tb.calls.decide / tb.admissions.length).toFixed(2)} store calls per admission`,
      );
      expect(tbViolations).toEqual([]);

      // Sliding window of 100 per second: never more than 100 in any 1-second interval.
      expectClean(sw);
      expect(sw.storeAdmissions).toHaveLength(sw.admissions.length);
      const swMax = maxInAnyInterval(sw.storeAdmissions, 1000);
      console.log(
        `[multiprocess] sliding window: admitted ${sw.admissions.length} in ${ACCURACY_MS / 1000} s, ` +
          `max in any 1 s ${swMax} at store times (bound 100), ${maxInAnyInterval(sw.admissions, 1000)} at caller times; ` +
          `${(sw.calls.decide / sw.admissions.length).toFixed(2)} store calls per admission`,
      );
      expect(checkSlidingWindowLog(sw.storeAdmissions, { limit: 100, windowMs: 1000 })).toEqual([]);
      // And it does admit: close to the full 100 per second.
      expect(sw.admissions.length).toBeGreaterThanOrEqual(0.95 * 100 * (ACCURACY_MS / 1000));
    }, 60_000);

    it(`never has more than max_concurrent = 5 in flight with ${PROCESSES} x ${CALLERS} holders of 5 to 20 ms`, async () => {
      const result = await runWorkload(pool.slice(0, PROCESSES), {
        callers: CALLERS,
        durationMs: 5000,
        mode: "hold",
        holdMs: [5, 20],
        limiter: "cc",
        key: key("cc"),
      });
      expectClean(result);
      const inFlight = maxConcurrentFromIntervals(result.holds);
      console.log(
        `[multiprocess] max_concurrent 5: ${result.holds.length} holds in 5 s, max in flight ${inFlight} (measured by the holders), ` +
          `max inUse reported by the store ${result.maxInUse}`,
      );
      expect(inFlight).toBeLessThanOrEqual(5);
      expect(result.maxInUse).toBeLessThanOrEqual(5);
      // The limit was actually reached, or the check above proves nothing.
      expect(result.maxInUse).toBe(5);
      expect(result.holds.length).toBeGreaterThan(100);
      expect(await inUse("cc", KEY)).toBe(0);
    }, 60_000);

    it("gives the slots of a SIGKILLed holder to others within lease + 1 s", async () => {
      const name = key("crash", "crash");
      const victim = await spawnWorker({ config, setup, name: "victim" });
      const heir = member(0);
      await victim.acquire("crash", { key: name, count: 2 });
      expect(await inUse("crash", name)).toBe(2);
      // The heir waits for both slots; the victim dies holding them, without releasing anything.
      const inherited = heir.acquire("crash", { key: name, count: 2, timeoutSeconds: 10 });
      await sleep(200);
      const killedAt = harnessNow();
      victim.kill("SIGKILL");
      expect(await victim.exited).toEqual({ code: null, signal: "SIGKILL" });
      const slots = await inherited;
      const returnedMs = Math.max(...slots.map((slot) => slot.acquiredAt)) - killedAt;
      console.log(
        `[multiprocess] SIGKILL: both slots (lease 1 s) back for another process ${returnedMs.toFixed(0)} ms after the kill`,
      );
      expect(returnedMs).toBeLessThanOrEqual(1000 + 1000);
      expect(await inUse("crash", name)).toBe(2);
      await heir.release();
      expect(await inUse("crash", name)).toBe(0);
    }, 60_000);

    it("does not let a frozen holder release someone else's slot after it resumes", async () => {
      const name = key("frozen", "frozen");
      const frozen = await spawnWorker({ config, setup, name: "frozen" });
      const other = member(0);
      await frozen.acquire("frozen", { key: name });
      // SIGSTOP for 2 s, past its 1 s lease: no renewal, no release.
      frozen.pause();
      const pausedAt = harnessNow();
      const [taken] = await other.acquire("frozen", { key: name, timeoutSeconds: 5 });
      const takenAfterMs = (taken?.acquiredAt ?? Number.NaN) - pausedAt;
      await sleep(pausedAt + 2000 - harnessNow());
      frozen.resume();
      // Its overdue renewal runs and finds the lease gone (waited for, not slept on: a loaded machine
      // may take a while); then it releases, the normal way and once more straight to the store
      // with its stale lease id.
      await until(async () => (await frozen.slots())[0]?.lost === true, 5000);
      const [report] = await frozen.release({ direct: true });
      const held = await inUse("frozen", name);
      const [otherSlot] = await other.slots();
      console.log(
        `[multiprocess] frozen holder: slot taken by another process ${takenAfterMs.toFixed(0)} ms after SIGSTOP; after SIGCONT ` +
          `the frozen one saw its lease lost=${report?.lost}, its direct release freed=${report?.storeReleased}; inUse=${held}, other still holds=${otherSlot?.held}`,
      );
      expect(takenAfterMs).toBeLessThanOrEqual(1000 + 1000);
      expect(report).toMatchObject({ held: false, lost: true, storeReleased: false });
      expect(held).toBe(1);
      expect(otherSlot).toMatchObject({ held: true, lost: false });
      // The other's lease keeps being renewed past its own length.
      await sleep(1200);
      expect(await inUse("frozen", name)).toBe(1);
      expect((await other.slots())[0]).toMatchObject({ held: true, lost: false });
      await other.release();
      expect(await inUse("frozen", name)).toBe(0);
      await frozen.close();
    }, 60_000);

    it("makes at most 3 store calls per waiter per second while concurrency waiters wait", async () => {
      const name = key("idle", "idle");
      const holder = member(0);
      await holder.acquire("idle", { key: name });
      const durationMs = 4000;
      // A lone waiter (the head of its line asks for itself) and crowds (only their head asks).
      const result = await runWorkload(pool.slice(1, 4), {
        callers: [1, 5, 20],
        durationMs,
        mode: "wait",
        limiter: "idle",
        key: name,
      });
      expectClean(result);
      expect(result.admissions).toEqual([]);
      const perWaiter = result.workers.map((worker) => worker.calls.total / worker.callers / (durationMs / 1000));
      const overall = result.calls.total / (1 + 5 + 20) / (durationMs / 1000);
      console.log(
        `[multiprocess] concurrency waiters: store calls per waiter per second ${perWaiter
          .map((rate, index) => `${rate.toFixed(2)} (${result.workers[index]?.callers} waiting in one process)`)
          .join(", ")}; ${overall.toFixed(2)} overall`,
      );
      for (const rate of perWaiter) expect(rate).toBeLessThanOrEqual(3);
      await holder.release();
    }, 60_000);
  });
}
