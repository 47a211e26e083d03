/**
 * The heart of "identical behaviour on every engine": random sequences of decide, peek, release,
 * renew and reset on two keys (the shared budget and a key), with random costs and random waits,
 * each answer compared with core's pure algorithms run on a reference state at the `now` the
 * store reported (see {@link Subject}). An engine that reimplements the algorithms (Lua, SQL) and
 * drifts from them in any field, at any boundary, fails here with the sequence that shows it.
 *
 * On a fake clock the waits include jumps to exactly the boundaries the engine announced (a retry
 * time, a reset time, a lease expiry) and to just before them, where off-by-one comparisons hide.
 * In real time the calls run back to back with short sleeps, so windows and leases move.
 */
import * as fc from "fast-check";
import type { Engine } from "../../engines/engine.js";
import { type Policy, type RatePolicy, rateCapacity } from "../../policy.js";
import {
  conformanceCase,
  fixedWindow,
  policyOf,
  type Run,
  realSleep,
  type Suite,
  slidingWindow,
  slots,
  tokenBucket,
} from "./harness.js";

/** One step of a random sequence. `key` indexes {@link KEYS}; `via` uses the second engine when shared. */
type Step =
  | { readonly kind: "decide"; readonly key: number; readonly cost: number; readonly via: boolean }
  | { readonly kind: "peek"; readonly key: number; readonly cost: number; readonly via: boolean }
  | { readonly kind: "release"; readonly key: number; readonly lease: number; readonly via: boolean }
  | {
      readonly kind: "renew";
      readonly key: number;
      readonly lease: number;
      readonly stretch: number;
      readonly via: boolean;
    }
  | { readonly kind: "reset"; readonly key: number }
  | { readonly kind: "wait"; readonly fraction: number }
  | { readonly kind: "boundary"; readonly pick: number; readonly justBefore: boolean };

/** The shared budget and one key, so every sequence also checks that they stay apart. */
const KEYS = ["", "k"] as const;

/** Fake time is moved to a multiple of this before each sequence (a multiple of every window drawn), plus an offset. */
const ALIGN_MS = 60_000;

/** Waits are drawn as `fraction / WAIT_STEPS` of the policy's period. */
const WAIT_STEPS = 64;

const key = fc.integer({ min: 0, max: KEYS.length - 1 });
/** Mostly unit costs, sometimes anything up to 8 (clamped to the policy's capacity). */
const cost = fc.oneof(
  { weight: 3, arbitrary: fc.constant(1) },
  { weight: 2, arbitrary: fc.integer({ min: 0, max: 8 }) },
);

function steps(fake: boolean): fc.Arbitrary<Step[]> {
  const step: fc.Arbitrary<Step> = fc.oneof(
    { weight: 8, arbitrary: fc.record({ kind: fc.constant("decide" as const), key, cost, via: fc.boolean() }) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant("peek" as const), key, cost, via: fc.boolean() }) },
    {
      weight: 3,
      arbitrary: fc.record({ kind: fc.constant("release" as const), key, lease: fc.nat(64), via: fc.boolean() }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        kind: fc.constant("renew" as const),
        key,
        lease: fc.nat(64),
        stretch: fc.constantFrom(0.5, 1, 2),
        via: fc.boolean(),
      }),
    },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant("reset" as const), key }) },
    {
      weight: fake ? 3 : 4,
      arbitrary: fc.record({
        kind: fc.constant("wait" as const),
        fraction: fc.integer({ min: 0, max: 1.5 * WAIT_STEPS }),
      }),
    },
    {
      weight: fake ? 3 : 0,
      arbitrary: fc.record({ kind: fc.constant("boundary" as const), pick: fc.nat(64), justBefore: fc.boolean() }),
    },
  );
  return fc.array(step, { minLength: 1, maxLength: fake ? 40 : 30 });
}

/** The time scale of a policy: its refill period, window or lease, whichever is longest. */
function periodOf(policy: Policy): number {
  const rate = policy.rate;
  const ratePeriod =
    rate === undefined ? 0 : rate.algorithm === "token_bucket" ? rate.intervalMs * rate.burst : rate.windowMs;
  return Math.max(ratePeriod, policy.concurrency?.leaseMs ?? 0);
}

/** Policy arbitraries per kind: fake clocks get varied, exact scales; real time short windows (100–150 ms). */
function policyKinds(fake: boolean): Array<{ readonly name: string; readonly policy: fc.Arbitrary<Policy> }> {
  const concurrency = fc.option(
    fc
      .record({
        max: fc.integer({ min: 1, max: 3 }),
        leaseMs: fake ? fc.constantFrom(100, 250, 1000) : fc.constantFrom(100, 150),
      })
      .map(({ max, leaseMs }) => slots(max, leaseMs)),
    { nil: undefined },
  );
  const withSlots = (rate: fc.Arbitrary<RatePolicy>): fc.Arbitrary<Policy> =>
    fc.tuple(rate, concurrency).map(([r, c]) => policyOf(r, c));
  const limit = fc.constantFrom(1, 2, 3, 5);
  const windowMs = fake ? fc.constantFrom(100, 250, 300, 1000) : fc.constantFrom(100, 150);
  return [
    {
      name: "token bucket",
      policy: withSlots(
        fc
          .record({
            // 7 per second: an interval of 1000/7 ms, which is not exact in binary.
            rate: fake ? fc.constantFrom(2, 3, 7, 10, 50) : fc.constantFrom(7, 10, 20),
            burst: fc.constantFrom(1, 2, 3, 5),
          })
          .map(({ rate, burst }) => tokenBucket(rate, burst)),
      ),
    },
    {
      name: "sliding window",
      policy: withSlots(fc.tuple(limit, windowMs).map(([l, w]) => slidingWindow(l, w))),
    },
    {
      name: "fixed window",
      policy: withSlots(fc.tuple(limit, windowMs).map(([l, w]) => fixedWindow(l, w))),
    },
    {
      name: "concurrency only",
      policy: fc
        .record({
          max: fc.integer({ min: 1, max: 3 }),
          leaseMs: fake ? fc.constantFrom(100, 250, 1000) : fc.constantFrom(100, 150),
        })
        .map(({ max, leaseMs }) => policyOf(undefined, slots(max, leaseMs))),
    },
  ];
}

/** Runs one random sequence against `engines` (the second one only used when shared). */
async function runSequence(
  run: Run,
  engines: readonly Engine[],
  name: string,
  policy: Policy,
  offset: number,
  sequence: readonly Step[],
): Promise<void> {
  const clock = run.clock;
  // Align fake time so the sequence sees the same window phases however long the earlier ones ran
  // (fast-check replays a failing sequence while shrinking: it must behave the same each time).
  if (clock !== undefined) await clock.advanceTo(Math.ceil((clock.now() + 1) / ALIGN_MS) * ALIGN_MS + offset);
  const primary = engines[0] as Engine;
  const secondary = engines[1];
  const limiter = run.id(`diff-${name.replaceAll(" ", "-")}`);
  const subjects = KEYS.map((k) => run.subject(primary, { limiter, key: k }, policy));
  if (secondary !== undefined) for (const s of subjects) run.touch(secondary, s.target);
  const capacity = policy.rate === undefined ? Number.POSITIVE_INFINITY : rateCapacity(policy.rate);
  const period = periodOf(policy);
  const leaseMs = policy.concurrency?.leaseMs ?? 1000;
  const leases: string[] = [];
  /** Moments the engine announced: retry times, reset times, lease expiries. */
  const boundaries: number[] = [];
  const note = (d: {
    now: number;
    allowed: boolean;
    retryAfterMs: number;
    resetAt: number;
    leaseExpiresAt: number;
  }) => {
    if (!d.allowed && Number.isFinite(d.retryAfterMs)) boundaries.push(d.now + d.retryAfterMs);
    boundaries.push(d.resetAt);
    if (d.leaseExpiresAt > 0) boundaries.push(d.leaseExpiresAt);
  };
  const leaseAt = (index: number): string =>
    leases.length === 0 ? run.leaseId() : (leases[index % leases.length] as string);
  for (const step of sequence) {
    const s = "key" in step ? subjects[step.key] : undefined;
    const via = "via" in step && step.via && secondary !== undefined ? { via: secondary } : {};
    switch (step.kind) {
      case "decide": {
        const d = await s?.decide(Math.min(step.cost, capacity), via);
        if (d === undefined) break;
        if (d.leaseId !== undefined) leases.push(d.leaseId);
        note(d);
        break;
      }
      case "peek": {
        const d = await s?.peek(Math.min(step.cost, capacity), via);
        if (d !== undefined) note(d);
        break;
      }
      case "release":
        await s?.release(leaseAt(step.lease), via);
        break;
      case "renew": {
        const expiresAt = await s?.renew(leaseAt(step.lease), Math.round(leaseMs * step.stretch), via);
        if (expiresAt !== undefined) boundaries.push(expiresAt);
        break;
      }
      case "reset":
        await s?.reset();
        break;
      case "wait": {
        const ms = (step.fraction / WAIT_STEPS) * period;
        if (clock !== undefined) await clock.advance(Math.round(ms * 8) / 8);
        else await realSleep(Math.min(ms / 2, 60));
        break;
      }
      case "boundary": {
        if (clock === undefined) break;
        const ahead = boundaries.filter((t) => t > clock.now());
        const at = ahead[step.pick % Math.max(1, ahead.length)];
        if (at === undefined) break;
        // Exactly at the boundary, or an eighth of a millisecond before it.
        await clock.advanceTo(step.justBefore ? Math.max(clock.now(), at - 0.125) : at);
        break;
      }
    }
  }
}

/** Registers the differential cases, one per policy kind. */
export function registerDifferentialCases(suite: Suite): void {
  const fake = suite.fake;
  for (const kind of policyKinds(fake)) {
    conformanceCase(
      suite,
      `differential: ${kind.name}${kind.name === "concurrency only" ? "" : " (with and without slots)"}: random sequences match core's algorithms at the store's now`,
      async (run) => {
        const engines = [await run.engine()];
        if (suite.options.shared) engines.push(await run.engine());
        await fc.assert(
          fc.asyncProperty(
            kind.policy,
            fc.integer({ min: 0, max: 3000 * 8 - 1 }).map((x) => x / 8),
            steps(fake),
            (policy, offset, sequence) => runSequence(run, engines, kind.name, policy, offset, sequence),
          ),
          // In real time a replay is not the same sequence in time, so shrinking would only blur
          // the first counterexample: report it as found.
          { numRuns: fake ? 40 : 16, endOnFailure: !fake },
        );
      },
      { timeoutMs: fake ? 60_000 : 45_000 },
    );
  }
}
