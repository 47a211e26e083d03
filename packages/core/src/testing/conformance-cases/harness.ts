/**
 * The machinery of the engine conformance suite: one `Run` per test (fresh engines, unique ids,
 * cleanup), and `Subject`, which drives one (limiter, key) of an engine and checks every answer
 * against core's pure algorithms at the store's own `now`. Internal: only `conformance.ts` is public.
 */
import { expect, it } from "vitest";
import { decide, type EngineDecision, type KeyState, peek, releaseSlot, renewSlot } from "../../algorithms/decide.js";
import { type Clock, systemClock } from "../../clock.js";
import type { Engine, EngineTarget } from "../../engines/engine.js";
import type {
  ConcurrencyPolicy,
  FixedWindowPolicy,
  Policy,
  RatePolicy,
  SlidingWindowPolicy,
  TokenBucketPolicy,
} from "../../policy.js";
import { createRateSync, type RateSync } from "../../rate-sync.js";
import type { EngineConformanceOptions } from "../conformance.js";
import { FakeClock, flushMicrotasks } from "../fake-clock.js";

/** How far `retryAfterMs`, `resetAt` and `leaseExpiresAt` may differ from the reference, in ms. */
export const TIME_TOLERANCE_MS = 1e-3;

/**
 * How far a store's reported `now` may stray outside what the round trips allow. Covers clock
 * granularity and the drift of a wall clock against our monotonic one over a test (ppm), and is
 * still far below the error of a unit mistake (seconds for ms) or a stale cached time.
 */
const CLOCK_SLACK_MS = 5;

/**
 * Extra store time that {@link Subject.until} waits past its target in real time: Node.js timers
 * may fire up to a millisecond early against `performance.now()`.
 */
const UNTIL_MARGIN_MS = 3;

/** Attempts of a real-time case whose timing was missed (an event loop stall) before it fails. */
const TIMING_ATTEMPTS = 3;

/** A year in ms: a store `now` further than this from the wall clock is not epoch milliseconds. */
const YEAR_MS = 366 * 24 * 3600 * 1000;

/** How long a run's cleanup waits for the resets, and then for close(), of one engine. */
const DISPOSE_DEADLINE_MS = 5000;

/** The store id every registry of the suite configures. */
export const STORE_ID = "conformance";

/**
 * Thrown when a real-time case could not place a call where it meant to (a call meant to land
 * before a boundary landed after it, because the event loop or the store stalled). The case is
 * then run again from scratch; it is never a verdict on the engine.
 */
export class TimingMissed extends Error {
  override readonly name = "TimingMissed";
}

/** One registration of the suite: its options and the id prefix that keeps its keys apart. */
export class Suite {
  readonly options: EngineConformanceOptions;
  /** Whether time is a {@link FakeClock} the suite moves (exact), or the store's real clock. */
  readonly fake: boolean;
  /** Prefix of every limiter and lease id: engines sharing a server never see another run's keys. */
  readonly prefix: string;
  #counter = 0;

  constructor(options: EngineConformanceOptions) {
    this.options = options;
    this.fake = options.clock === "fake";
    this.prefix = `rsc-${crypto.randomUUID().slice(0, 8)}.`;
  }

  /** A number never handed out before in this suite run. */
  next(): number {
    return ++this.#counter;
  }

  /** `fake` when time is a fake clock, else `real`: picks between two scales of a constant. */
  pick<T>(fake: T, real: T): T {
    return this.fake ? fake : real;
  }
}

/** Options of {@link conformanceCase}. */
export interface CaseOptions {
  /** Registered as skipped when false, with the reason appended to its name. */
  readonly when?: boolean;
  /** Why it is skipped, when `when` is false. */
  readonly unless?: string;
  /** The vitest timeout, in ms. */
  readonly timeoutMs?: number;
}

/**
 * Registers one case: a vitest `it` with a fresh {@link Run}, disposed (targets reset, engines
 * closed) whatever happens. In real time a case that missed its timing is run again.
 */
export function conformanceCase(
  suite: Suite,
  name: string,
  body: (run: Run) => Promise<void>,
  options: CaseOptions = {},
): void {
  // Timeouts are set here rather than left to the caller's vitest config, whose default (5 s) is
  // too short for the real-time cases of a remote engine.
  const timeoutMs = options.timeoutMs ?? (suite.fake ? 20_000 : 30_000);
  if (options.when === false) {
    it.skip(`${name} (${options.unless ?? "not applicable"})`, () => {}, timeoutMs);
    return;
  }
  it(
    name,
    async (context) => {
      for (let attempt = 1; ; attempt++) {
        const run = new Run(suite, (note) => context.skip(note));
        let failed = false;
        let failure: unknown;
        try {
          await body(run);
        } catch (error) {
          failed = true;
          failure = error;
        }
        try {
          await run.dispose();
        } catch (error) {
          if (!failed) {
            failed = true;
            failure = error;
          }
        }
        if (!failed) return;
        if (failure instanceof TimingMissed && !suite.fake && attempt < TIMING_ATTEMPTS) {
          // Visible in the output, so a machine that stalls often is noticed before it fails.
          console.warn(`[conformance] ${name}: ${failure.message} (attempt ${attempt} of ${TIMING_ATTEMPTS})`);
          continue;
        }
        throw failure;
      }
    },
    timeoutMs,
  );
}

interface EngineRecord {
  readonly engine: Engine;
  readonly targets: EngineTarget[];
  closed: boolean;
}

/** Sleeps in real time. */
export function realSleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

/** Waits for `promise` at most `ms` (real time); whether it settled in time. Leaves no timer behind. */
export async function withDeadline(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true), expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `check` in real time until it holds or `timeoutMs` passes; whether it held. */
export async function waitFor(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = performance.now() + timeoutMs;
  for (;;) {
    if (check()) return true;
    if (performance.now() >= end) return false;
    await realSleep(5);
  }
}

/** A promise with a synchronous view of whether it settled, and how. */
export interface Watched<T> {
  readonly settled: boolean;
  readonly promise: Promise<T>;
}

/** Watches `promise` settle without ever leaving it unhandled. */
export function watch<T>(promise: Promise<T>): Watched<T> {
  const watched = { settled: false, promise };
  promise.then(
    () => {
      watched.settled = true;
    },
    () => {
      watched.settled = true;
    },
  );
  return watched;
}

/** Whether a value is a promise (or any thenable). */
export function isThenable(value: unknown): boolean {
  return (
    (typeof value === "object" || typeof value === "function") &&
    value !== null &&
    typeof (value as { then?: unknown }).then === "function"
  );
}

/** A target's limiter and key, readable in a failure message even when they hold NUL or 4096 characters. */
export function describeTarget(target: EngineTarget): string {
  return `limiter ${shorten(target.limiter)} key ${shorten(target.key)}`;
}

function shorten(text: string): string {
  return text.length <= 48 ? JSON.stringify(text) : `${JSON.stringify(text.slice(0, 40))}…(${text.length} chars)`;
}

/** A token bucket policy as `policy.ts` builds it from `rate_per_second` and `burst`. */
export function tokenBucket(ratePerSecond: number, burst: number): TokenBucketPolicy {
  return { algorithm: "token_bucket", ratePerSecond, burst, intervalMs: 1000 / ratePerSecond };
}

/** A sliding window policy: `limit` per `windowMs`. */
export function slidingWindow(limit: number, windowMs: number): SlidingWindowPolicy {
  return { algorithm: "sliding_window", limit, windowMs };
}

/** A fixed window policy: `limit` per aligned `windowMs`. */
export function fixedWindow(limit: number, windowMs: number): FixedWindowPolicy {
  return { algorithm: "fixed_window", limit, windowMs };
}

/** A concurrency policy: `maxConcurrent` leases of `leaseMs`. */
export function slots(maxConcurrent: number, leaseMs: number): ConcurrencyPolicy {
  return { maxConcurrent, leaseMs };
}

/** A policy of a rate part, a concurrency part, or both. */
export function policyOf(rate: RatePolicy | undefined, concurrency?: ConcurrencyPolicy): Policy {
  return { rate, concurrency };
}

/**
 * One test's world: the engines it created (closed at the end, after resetting every target it
 * touched), its registries, and its time: a {@link FakeClock} in fake mode, real time otherwise.
 */
export class Run {
  readonly suite: Suite;
  /** The fake clock every engine and registry of this run shares; `undefined` in real time. */
  readonly clock: FakeClock | undefined;
  readonly #skip: (note: string) => never;
  readonly #engines: EngineRecord[] = [];
  readonly #registries: RateSync[] = [];

  constructor(suite: Suite, skip: (note: string) => never) {
    this.suite = suite;
    this.clock = suite.fake ? new FakeClock() : undefined;
    this.#skip = skip;
  }

  /** The clock given to engines and registries: the fake one, or the system clock. */
  get timeSource(): Clock {
    return this.clock ?? systemClock;
  }

  /** Creates an engine through the suite's options; the run closes it. */
  async engine(): Promise<Engine> {
    const engine = await this.suite.options.create({ clock: this.timeSource });
    this.#engines.push({ engine, targets: [], closed: false });
    return engine;
  }

  /** Closes `engine` now (the run will not touch it again). */
  async close(engine: Engine): Promise<void> {
    const record = this.#engines.find((candidate) => candidate.engine === engine);
    if (record !== undefined) record.closed = true;
    await engine.close();
  }

  /** A limiter id unique to this suite run, with `name` in it for failure messages. */
  id(name: string): string {
    return `${this.suite.prefix}${this.suite.next()}.${name}`;
  }

  /** A lease id never used before. */
  leaseId(): string {
    return `${this.suite.prefix}lease-${this.suite.next()}`;
  }

  /** Remembers a target written through `engine`, to reset it at the end. */
  touch(engine: Engine, target: EngineTarget): EngineTarget {
    const record = this.#engines.find((candidate) => candidate.engine === engine);
    record?.targets.push(target);
    return target;
  }

  /** A {@link Subject} for `target` on `engine` under `policy`. */
  subject(engine: Engine, target: EngineTarget, policy: Policy): Subject {
    this.touch(engine, target);
    return new Subject(this, engine, target, policy);
  }

  /**
   * A registry (`createRateSync`) on this run's clock whose store `STORE_ID` is `engine`. Waits
   * have no jitter, so fake-clock waits are exact.
   */
  registry(engine: Engine, options: { requestTimeoutMs?: number } = {}): RateSync {
    const rs = createRateSync({ clock: this.timeSource, random: () => 0, autoload: false });
    rs.configureStore(
      STORE_ID,
      options.requestTimeoutMs === undefined ? { engine } : { engine, requestTimeoutMs: options.requestTimeoutMs },
    );
    this.#registries.push(rs);
    return rs;
  }

  /** A limiter id for a registry case, whose targets (`keys`, default the shared budget) are reset at the end. */
  limiterId(engine: Engine, name: string, keys: readonly string[] = [""]): string {
    const id = this.id(name);
    for (const key of keys) this.touch(engine, { limiter: id, key });
    return id;
  }

  /** Lets `ms` pass: on the fake clock (running its timers), or in real time. */
  async advance(ms: number): Promise<void> {
    if (this.clock !== undefined) await this.clock.advance(ms);
    else await realSleep(ms);
  }

  /**
   * Gives asynchronous work a chance to finish without moving fake time: a remote engine's
   * subscription reaching its server, a waiter parking itself.
   */
  async settle(realMs = 150): Promise<void> {
    if (this.clock !== undefined) {
      for (let turn = 0; turn < 5; turn++) await flushMicrotasks();
    } else {
      await realSleep(realMs);
    }
  }

  /** Marks the test skipped (an optional capability the engine does not have). */
  skip(note: string): never {
    return this.#skip(note);
  }

  /** Closes registries, resets every touched target, closes every engine still open. */
  async dispose(): Promise<void> {
    let failure: unknown;
    for (const rs of this.#registries) {
      try {
        await rs.close();
      } catch (error) {
        failure ??= error;
      }
    }
    for (const record of this.#engines) {
      if (record.closed) continue;
      record.closed = true;
      // Best effort, all at once and bounded: after a failure the store may be unreachable (its
      // keys expire on their own), and a slow cleanup must not hide the failure behind a timeout.
      const resets = record.targets.map((target) => Promise.resolve().then(() => record.engine.reset(target)));
      await withDeadline(Promise.allSettled(resets), DISPOSE_DEADLINE_MS);
      try {
        const closed = await withDeadline(record.engine.close(), DISPOSE_DEADLINE_MS);
        if (!closed)
          throw new Error(`close() of ${this.suite.options.name} did not resolve within ${DISPOSE_DEADLINE_MS} ms`);
      } catch (error) {
        failure ??= error;
      }
    }
    if (failure !== undefined) throw failure;
  }
}

/** An engine decision, with the lease id the call asked for. */
export type Admission = EngineDecision & { readonly leaseId: string | undefined };

/** Where a store's clock stood at one answer, and when (local monotonic ms) we asked and heard. */
interface Observation {
  readonly now: number;
  readonly sent: number;
  readonly received: number;
}

const EXACT_FIELDS = ["allowed", "refusedBy", "remaining", "inUse"] as const;
const TIME_FIELDS = ["now", "retryAfterMs", "resetAt", "leaseExpiresAt"] as const;

function sameTime(a: unknown, b: number): boolean {
  return typeof a === "number" && (a === b || Math.abs(a - b) <= TIME_TOLERANCE_MS);
}

/** The fields of the Engine contract, without whatever else an engine returns. */
function fieldsOf(decision: EngineDecision): EngineDecision {
  return {
    allowed: decision.allowed,
    refusedBy: decision.refusedBy,
    now: decision.now,
    remaining: decision.remaining,
    resetAt: decision.resetAt,
    retryAfterMs: decision.retryAfterMs,
    inUse: decision.inUse,
    leaseExpiresAt: decision.leaseExpiresAt,
  };
}

/** Options of a {@link Subject} call. */
export interface CallOptions {
  /** Another engine instance on the same store (shared engines). */
  readonly via?: Engine;
}

/**
 * One (limiter, key) of an engine under one policy, with a reference copy of its state. Every
 * call goes to the engine, and the same call is applied to the reference with core's pure
 * algorithms at the `now` the store reported; any difference fails the test with the recent calls.
 *
 * Calls that report no time (`release`, and `renew` when it finds nothing) are checked against the
 * window of store time the round trip allows: exactly the fake clock's now, or in real time
 * between what the last observation and the two local timestamps permit.
 */
export class Subject {
  readonly target: EngineTarget;
  readonly policy: Policy;
  /** What core's algorithms say the store holds for the target. */
  state: KeyState | undefined;
  readonly #run: Run;
  readonly #engine: Engine;
  #lane: Observation | undefined;
  readonly #history: Array<{ op: string; result: unknown }> = [];

  constructor(run: Run, engine: Engine, target: EngineTarget, policy: Policy) {
    this.#run = run;
    this.#engine = engine;
    this.target = target;
    this.policy = policy;
  }

  /** Decides one call of `cost` (taking a fresh lease when the policy has slots). */
  async decide(cost = 1, options: CallOptions & { leaseId?: string } = {}): Promise<Admission> {
    const engine = options.via ?? this.#engine;
    const leaseId = this.policy.concurrency === undefined ? undefined : (options.leaseId ?? this.#run.leaseId());
    const op = `decide(cost ${cost}${leaseId === undefined ? "" : `, lease ${leaseId}`})`;
    const sent = performance.now();
    const actual = await engine.decide({ ...this.target, policy: this.policy, cost, leaseId });
    const received = performance.now();
    this.#observe(actual?.now, sent, received, op);
    const expected = decide(this.state, this.policy, cost, leaseId, actual.now);
    this.state = expected.state;
    this.#compare(op, actual, expected.decision);
    return { ...fieldsOf(actual), leaseId };
  }

  /** Peeks at what a call of `cost` would get. */
  async peek(cost = 1, options: CallOptions = {}): Promise<EngineDecision> {
    const engine = options.via ?? this.#engine;
    const op = `peek(cost ${cost})`;
    const sent = performance.now();
    const actual = await engine.peek({ ...this.target, policy: this.policy, cost });
    const received = performance.now();
    this.#observe(actual?.now, sent, received, op);
    this.#compare(op, actual, peek(this.state, this.policy, cost, actual.now));
    return fieldsOf(actual);
  }

  /** Releases a lease. */
  async release(leaseId: string, options: CallOptions = {}): Promise<boolean> {
    const engine = options.via ?? this.#engine;
    const op = `release(${leaseId})`;
    const sent = performance.now();
    const released = await engine.release({ ...this.target, leaseId });
    const received = performance.now();
    this.#record(op, released);
    expect(typeof released, this.#message(op, "release must answer a boolean")).toBe("boolean");
    const [earliest, latest] = this.#bracket(sent, received);
    const expiresAt = this.state?.leases?.[leaseId];
    const liveAtEarliest = expiresAt !== undefined && expiresAt > earliest;
    const liveAtLatest = expiresAt !== undefined && expiresAt > latest;
    // When the lease expired during the round trip, either answer is right.
    if (liveAtEarliest === liveAtLatest) {
      expect(
        released,
        this.#message(op, `the lease ${liveAtEarliest ? "was live" : "was not live"} (expiry ${expiresAt})`),
      ).toBe(liveAtEarliest);
    }
    releaseSlot(this.state, leaseId, earliest);
    return released;
  }

  /** Renews a lease for `leaseMs` (default the policy's). */
  async renew(leaseId: string, leaseMs?: number, options: CallOptions = {}): Promise<number | undefined> {
    const engine = options.via ?? this.#engine;
    const length = leaseMs ?? this.policy.concurrency?.leaseMs ?? 1000;
    const op = `renew(${leaseId}, ${length} ms)`;
    const sent = performance.now();
    const renewed = await engine.renew({ ...this.target, leaseId, leaseMs: length });
    const received = performance.now();
    this.#record(op, renewed);
    const expiresAt = this.state?.leases?.[leaseId];
    if (renewed === undefined) {
      const [, latest] = this.#bracket(sent, received);
      expect(
        expiresAt !== undefined && expiresAt > latest,
        this.#message(op, `renew found no lease, but it was live until ${expiresAt}, after the call`),
      ).toBe(false);
      return undefined;
    }
    expect(typeof renewed, this.#message(op, "renew must answer epoch ms or undefined")).toBe("number");
    // The engine answers storeNow + leaseMs: that gives the store's now of the renewal (on the fake
    // clock it is known exactly, and the expiry is checked against it below).
    const clock = this.#run.clock;
    const now = clock === undefined ? renewed - length : clock.now();
    if (clock === undefined) this.#observe(now, sent, received, op);
    const expected = renewSlot(this.state, leaseId, length, now);
    expect(
      expected,
      this.#message(op, `renew extended a lease that was not live at the store's now ${now} (expiry ${expiresAt})`),
    ).toBeDefined();
    expect(sameTime(renewed, expected as number), this.#message(op, `expected expiry ${expected}`)).toBe(true);
    return renewed;
  }

  /** Resets the target: the reference forgets everything too. */
  async reset(options: CallOptions = {}): Promise<void> {
    const engine = options.via ?? this.#engine;
    await engine.reset(this.target);
    this.#record("reset()", undefined);
    this.state = undefined;
  }

  /**
   * Waits until the store's clock has reached `at`: exactly, on the fake clock; in real time,
   * until a lower bound of the store's clock (its last answer plus the time since) has passed it.
   */
  async until(at: number): Promise<void> {
    const clock = this.#run.clock;
    if (clock !== undefined) {
      await clock.advanceTo(at);
      return;
    }
    const lane = this.#lane;
    if (lane === undefined) throw new Error("conformance suite bug: until() before the store's time was observed");
    for (;;) {
      const lowerBound = lane.now + (performance.now() - lane.received);
      const left = at + UNTIL_MARGIN_MS - lowerBound;
      if (left <= 0) return;
      await realSleep(Math.ceil(left));
    }
  }

  /**
   * Requires that a call meant to land before the store time `at` did. In real time a miss (the
   * event loop or the store stalled) reruns the case; on the fake clock it is a bug of the suite.
   */
  landedBefore(decision: { readonly now: number }, at: number): void {
    if (decision.now < at) return;
    const what = `a call meant to land before ${at} landed at ${decision.now}`;
    if (this.#run.clock !== undefined) throw new Error(`conformance suite bug: ${what}`);
    throw new TimingMissed(`${what}: the event loop or the store stalled; running the case again`);
  }

  /** Checks a reported `now` and records it as the latest sight of the store's clock. */
  #observe(now: unknown, sent: number, received: number, op: string): void {
    if (typeof now !== "number" || !Number.isFinite(now)) {
      throw new Error(this.#message(op, `the decision must carry the store's now in epoch ms, got ${String(now)}`));
    }
    const clock = this.#run.clock;
    if (clock !== undefined) {
      expect(now, this.#message(op, "an engine on a fake clock must report that clock's now")).toBe(clock.now());
    } else {
      expect(
        Math.abs(now - Date.now()) < YEAR_MS,
        this.#message(op, `now = ${now} is not epoch milliseconds (Date.now() = ${Date.now()})`),
      ).toBe(true);
      const lane = this.#lane;
      if (lane !== undefined) {
        // The store's clock moves as ours does: between two answers it advanced at least the time
        // from the last answer to this request, and at most from the last request to this answer.
        const earliest = lane.now + (sent - lane.received) - CLOCK_SLACK_MS;
        const latest = lane.now + (received - lane.sent) + CLOCK_SLACK_MS;
        expect(
          now >= earliest && now <= latest,
          this.#message(
            op,
            `the store's now ${now} is outside [${earliest}, ${latest}], what its previous now ${lane.now} and the round trips allow`,
          ),
        ).toBe(true);
      }
    }
    this.#lane = { now, sent, received };
  }

  /** The window of store time in which a call sent at `sent` and answered at `received` ran. */
  #bracket(sent: number, received: number): [number, number] {
    const clock = this.#run.clock;
    if (clock !== undefined) return [clock.now(), clock.now()];
    const lane = this.#lane;
    if (lane === undefined) return [Number.NEGATIVE_INFINITY, Number.POSITIVE_INFINITY];
    return [lane.now + (sent - lane.received) - CLOCK_SLACK_MS, lane.now + (received - lane.sent) + CLOCK_SLACK_MS];
  }

  #compare(op: string, actual: EngineDecision, expected: EngineDecision): void {
    const shown = fieldsOf(actual);
    this.#record(op, shown);
    const same =
      EXACT_FIELDS.every((field) => shown[field] === expected[field]) &&
      TIME_FIELDS.every((field) => sameTime(shown[field], expected[field]));
    if (same) return;
    // Show time fields within tolerance as the reference's, so the diff points at what differs.
    const normalised: Record<string, unknown> = { ...shown };
    for (const field of TIME_FIELDS) if (sameTime(shown[field], expected[field])) normalised[field] = expected[field];
    expect(normalised, this.#message(op, "the engine's decision differs from core's reference algorithm")).toEqual(
      expected,
    );
  }

  #record(op: string, result: unknown): void {
    this.#history.push({ op, result });
    if (this.#history.length > 16) this.#history.shift();
  }

  #message(op: string, problem: string): string {
    const recent = this.#history.map(({ op, result }) => `  ${op} → ${JSON.stringify(result)}`).join("\n");
    const policy = JSON.stringify(this.policy);
    return `${this.#run.suite.options.name}: ${describeTarget(this.target)}, policy ${policy}: ${op}: ${problem}.\nRecent calls (oldest first):\n${recent}\n`;
  }
}

/** Expects a time (ms) within {@link TIME_TOLERANCE_MS} of `expected`. */
export function expectTime(actual: number, expected: number, what = "time"): void {
  if (actual === expected) return;
  expect(
    Math.abs(actual - expected) <= TIME_TOLERANCE_MS,
    `${what}: expected ${expected} (±${TIME_TOLERANCE_MS} ms), got ${actual}`,
  ).toBe(true);
}

/**
 * Makes sure the case has at least `needMs` (default: three quarters) of an aligned window of
 * `windowMs` to itself, waiting for the next window when the current one ends sooner. Returns the
 * end of the window the case runs in (store time).
 */
export async function freshWindow(subject: Subject, windowMs: number, needMs = 0.75 * windowMs): Promise<number> {
  const probe = await subject.peek(0);
  let end = Math.floor(probe.now / windowMs) * windowMs + windowMs;
  if (end - probe.now < needMs) {
    await subject.until(end);
    end += windowMs;
  }
  return end;
}
