import { describe, expect, it } from "vitest";
import {
  type BenchCase,
  type Contender,
  expectCount,
  type Round,
  runCase,
  VerificationError,
  verdictOf,
} from "./harness.js";

const quick = { rounds: 3, seconds: 0.02, warmupSeconds: 0.01, progress: () => {} };

/** A contender whose call takes `delayMs` (0: a resolved promise) and answers `allowed`. */
function fake(name: string, role: Contender["role"], options: { delayMs?: number; allowed?: boolean } = {}) {
  const stats = { started: 0, disposed: 0, maxInFlight: 0 };
  const contender: Contender = {
    name,
    role,
    async start(): Promise<Round> {
      stats.started++;
      let admitted = 0;
      let inFlight = 0;
      return {
        async call() {
          inFlight++;
          stats.maxInFlight = Math.max(stats.maxInFlight, inFlight);
          if (options.delayMs !== undefined) await new Promise((resolve) => setTimeout(resolve, options.delayMs));
          inFlight--;
          if (options.allowed ?? true) admitted++;
        },
        verify(calls) {
          expectCount(`${name}: admitted calls`, admitted, calls);
        },
        dispose() {
          stats.disposed++;
        },
      };
    },
  };
  return { contender, stats };
}

function benchCase(contenders: Contender[], extra: Partial<BenchCase> = {}): BenchCase {
  return { suite: "test", name: "case", description: "", inFlight: 1, latency: false, contenders, ...extra };
}

describe("runCase", () => {
  it("runs a fresh round per warm-up and timed round, disposes each, and reports the median and the ratio", async () => {
    const ours = fake("ours", "ours");
    const peer = fake("peer", "peer", { delayMs: 1 });
    const result = await runCase(
      benchCase([ours.contender, peer.contender], { targets: [{ against: "peer", minRatio: 2 }] }),
      quick,
    );
    expect(ours.stats.started).toBe(1 + quick.rounds);
    expect(ours.stats.disposed).toBe(ours.stats.started);
    expect(peer.stats.disposed).toBe(peer.stats.started);
    const [a, b] = result.contenders;
    expect(a?.roundOpsPerSec).toHaveLength(quick.rounds);
    expect(a?.opsPerSec).toBeGreaterThan(b?.opsPerSec as number);
    const ratio = result.ratios[0];
    expect(ratio).toMatchObject({ against: "peer", role: "peer", minRatio: 2 });
    // The median of the rounds' ratios, pair by pair, inside its interval.
    const oursRounds = a?.roundOpsPerSec ?? [];
    const peerRounds = b?.roundOpsPerSec ?? [];
    const pairs = oursRounds.map((ops, r) => ops / (peerRounds[r] as number));
    expect(ratio?.roundRatios).toEqual(pairs);
    expect(pairs).toHaveLength(quick.rounds);
    expect(ratio?.ratio).toBe([...pairs].sort((x, y) => x - y)[1]);
    expect(ratio?.interval.low).toBeLessThanOrEqual(ratio?.ratio as number);
    expect(ratio?.interval.high).toBeGreaterThanOrEqual(ratio?.ratio as number);
    // A resolved promise against a 1 ms timer: every round is far more than twice as fast.
    expect(ratio?.verdict).toBe("met");
    expect(a?.p50Ms).toBeUndefined();
  });

  it("keeps the requested number of calls in flight and records latencies when asked", async () => {
    const slow = fake("slow", "ours", { delayMs: 1 });
    const result = await runCase(benchCase([slow.contender], { inFlight: 8, latency: true }), quick);
    expect(slow.stats.maxInFlight).toBe(8);
    const p50 = result.contenders[0]?.p50Ms as number;
    expect(p50).toBeGreaterThanOrEqual(0.9);
    expect(result.contenders[0]?.p99Ms).toBeGreaterThanOrEqual(p50);
  });

  it("stops with a VerificationError when a contender gives the wrong answers", async () => {
    const broken = fake("broken", "ours", { allowed: false });
    await expect(runCase(benchCase([broken.contender]), quick)).rejects.toThrow(VerificationError);
    expect(broken.stats.disposed).toBe(broken.stats.started);
  });

  it("divides by ceilings too, marked as ceilings, and checks a target against one", async () => {
    const result = await runCase(
      // Both as slow: one fast contender would size batches that keep the slow one far past a round's end.
      benchCase(
        [fake("ours", "ours", { delayMs: 1 }).contender, fake("raw client", "ceiling", { delayMs: 1 }).contender],
        {
          // Far below 1: two equal contenders over 20 ms rounds differ by tens of percent on a busy
          // machine, and the verdict needs every round's ratio above the target.
          targets: [{ against: "raw client", minRatio: 0.1 }],
        },
      ),
      quick,
    );
    expect(result.ratios).toHaveLength(1);
    expect(result.ratios[0]).toMatchObject({ against: "raw client", role: "ceiling", minRatio: 0.1, verdict: "met" });
  });

  it("refuses a target that names no peer or ceiling of the case", async () => {
    const ours = fake("ours", "ours");
    await expect(
      runCase(benchCase([ours.contender], { targets: [{ against: "ours", minRatio: 1 }] }), quick),
    ).rejects.toThrow(/names no peer or ceiling/);
    expect(ours.stats.started).toBe(0);
  });
});

describe("verdictOf", () => {
  const interval = (low: number, high: number) => ({ low, high, confidence: 0.9 });

  it("is met only when the whole interval is at or above the target", () => {
    expect(verdictOf(interval(1.0, 1.2), 1.0)).toBe("met");
    expect(verdictOf(interval(1.01, 1.2), 1.0)).toBe("met");
  });

  it("is missed only when the whole interval is below the target", () => {
    expect(verdictOf(interval(0.7, 0.79), 0.8)).toBe("missed");
  });

  it("is unresolved when the interval holds the target, whichever side the median is on", () => {
    expect(verdictOf(interval(0.95, 1.1), 1.0)).toBe("unresolved");
    expect(verdictOf(interval(0.9, 1.0), 1.0)).toBe("unresolved");
  });
});
