import { afterAll, describe, expect, it } from "vitest";
import { harnessNow, killAllWorkers, runWorkers, spawnWorker, WorkerCommandError } from "./multiprocess.js";
import { checkTokenBucketLog, maxConcurrentFromIntervals } from "./multiprocess-checks.js";

// The memory engine keeps its state per process, so these tests check the harness itself (forking,
// the common start, the reports, the fault controls), not coordination: engine packages check that
// against their real server with the same harness.
const config = `
[stores.m]
engine = "memory"

[limiters.tb]
store = "m"
rate_per_second = 50
burst = 5

[limiters.cc]
store = "m"
max_concurrent = 2
lease_seconds = 1
`;

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

afterAll(killAllWorkers);

describe("multi-process harness (memory engine)", () => {
  it("starts the workload in every process at once and reports each admission", async () => {
    const result = await runWorkers({
      config,
      processes: 2,
      callers: 3,
      durationMs: 1000,
      mode: "rate",
      limiter: "tb",
      key: "k",
    });
    const finishedAt = harnessNow();
    expect(result.workers).toHaveLength(2);
    const pids = result.workers.map((worker) => worker.pid);
    expect(new Set(pids).size).toBe(2);
    expect(pids).not.toContain(process.pid);
    for (const worker of result.workers) {
      expect(worker.errors).toEqual({});
      expect(worker.degraded).toBe(0);
      expect(worker.storeAdmissions).toHaveLength(worker.admissions.length);
      // Each process has its own memory budget: 5 + 50/s over 1 s, and nearly all of it.
      expect(
        checkTokenBucketLog(worker.storeAdmissions, {
          ratePerSecond: 50,
          burst: 5,
          durationMs: 1000,
          minFraction: 0.8,
        }),
      ).toEqual([]);
      // Nothing before the common start, nothing long after the end (a loaded machine may lag a little).
      expect(Math.min(...worker.admissions)).toBeGreaterThanOrEqual(result.startAt);
      // The workers' clock is the parent's: a worker's last time precedes the parent's reading
      // once the report is in (per-process clocks, such as performance.timeOrigin's, do not).
      expect(worker.endedAt).toBeLessThanOrEqual(finishedAt);
      expect(Math.max(...worker.admissions)).toBeLessThan(result.startAt + result.durationMs + 1000);
      expect(worker.calls.decide).toBeGreaterThanOrEqual(worker.admissions.length);
    }
    expect(result.admissions).toHaveLength(result.workers.reduce((sum, w) => sum + w.admissions.length, 0));
    // runWorkers ends its workers before it resolves.
    expect(pids.filter(isRunning)).toEqual([]);
  }, 60_000);

  it("runs rate callers on tryAcquire, sleeping as long as each refusal says", async () => {
    const result = await runWorkers({
      config,
      processes: 1,
      callers: 4,
      durationMs: 500,
      mode: "rate",
      rateCall: "tryAcquire",
      limiter: "tb",
      key: "k",
    });
    expect(result.errors).toEqual({});
    expect(
      checkTokenBucketLog(result.storeAdmissions, { ratePerSecond: 50, burst: 5, durationMs: 500, minFraction: 0.8 }),
    ).toEqual([]);
    // Sleeping retryAfterMs, the callers do not spin: a few calls per admission, not thousands.
    expect(result.calls.decide).toBeLessThan(10 * result.admissions.length);
  }, 60_000);

  it("records hold intervals that never overlap more than the slots allow", async () => {
    const result = await runWorkers({
      config,
      processes: 1,
      callers: 6,
      durationMs: 500,
      mode: "hold",
      holdMs: [5, 10],
      limiter: "cc",
      key: "k",
    });
    expect(result.holds.length).toBeGreaterThan(20);
    expect(maxConcurrentFromIntervals(result.holds)).toBeLessThanOrEqual(2);
    expect(result.maxInUse).toBe(2);
  }, 60_000);

  it("holds slots on command, freezes, thaws, releases and dies on command", async () => {
    const worker = await spawnWorker({ config, name: "holder" });
    const slots = await worker.acquire("cc", { key: "k", count: 2 });
    expect(slots.map((slot) => typeof slot.leaseId)).toEqual(["string", "string"]);
    expect(await worker.state("cc", "k")).toEqual({ allowed: false, remaining: 0, inUse: 2 });

    worker.pause();
    expect(worker.paused).toBe(true);
    let answered = false;
    const calls = worker.calls().then((counts) => {
      answered = true;
      return counts;
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(answered).toBe(false);
    worker.resume();
    expect((await calls).decide).toBe(2);

    const reports = await worker.release({ direct: true });
    // Released normally first, so the second, direct release finds nothing live to free.
    expect(reports.map((report) => [report.held, report.lost, report.storeReleased])).toEqual([
      [true, false, false],
      [true, false, false],
    ]);
    expect((await worker.state("cc", "k")).inUse).toBe(0);

    worker.kill();
    expect(await worker.exited).toEqual({ code: null, signal: "SIGKILL" });
    expect(worker.alive).toBe(false);
    await expect(worker.calls()).rejects.toThrow(/has exited \(signal SIGKILL\)/);
  }, 60_000);

  it("reports a command's failure with its error code", async () => {
    const worker = await spawnWorker({ config });
    const error = await worker.acquire("nope").catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(WorkerCommandError);
    expect((error as WorkerCommandError).code).toBe("LIMITER_NOT_FOUND");
    // All or nothing: 3 slots of 2 times out, and the 2 it got are given back.
    const partial = await worker.acquire("cc", { key: "k", count: 3, timeoutSeconds: 0.2 }).catch((caught) => caught);
    expect((partial as WorkerCommandError).code).toBe("ACQUIRE_TIMEOUT");
    expect(await worker.slots()).toEqual([]);
    expect((await worker.state("cc", "k")).inUse).toBe(0);
    expect(await worker.close()).toEqual({ code: 0, signal: null });
  }, 60_000);

  it("fails to start with the worker's own error, and leaves no process behind", async () => {
    const error = await spawnWorker({ config: "[limiters.x]\nstore = 'missing'\nrate_per_second = 1\n" }).catch(
      (caught: unknown) => caught as Error,
    );
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(/failed to start: CONFIG_INVALID/);
  }, 60_000);
});
