import type { EngineDecision } from "./algorithms/decide.js";
import { type Clock, sleep } from "./clock.js";
import type {
  ConcurrencyUsage,
  Decision,
  DecisionPolicy,
  DegradedDecision,
  PolicyKind,
  StoreDecision,
} from "./decision.js";
import type { Engine, EngineTarget } from "./engines/engine.js";
import { describeValue, isRateSyncError, RateSyncError } from "./errors.js";
import { type LimiterMetrics, MetricsRecorder } from "./metrics.js";
import type { LimiterConfig } from "./options.js";
import { rateCapacity } from "./policy.js";
import { FreeSlot, LeasedSlot, type LeaseOwner, type Slot } from "./slot.js";
import type { Store } from "./store.js";
import { StoreOutcome, slotOf } from "./store-decision.js";
import { WaitLine } from "./wait-line.js";

/** Options of `tryAcquire`. */
export interface TryAcquireOptions {
  /** Whose budget: a user id, tenant, IP... Absent: the limiter's shared budget. */
  key?: string | undefined;
  /**
   * How much of the rate budget this call spends (a safe integer >= 0). Concurrency limits count
   * one slot per call whatever the cost.
   * @default 1
   */
  cost?: number | undefined;
}

/** Options of `acquire`. */
export interface AcquireOptions extends TryAcquireOptions {
  /**
   * Seconds to wait at most; `Infinity` waits without limit, `0` never waits.
   * @default the limiter's `timeout` (without one: no limit)
   */
  timeout?: number | undefined;
  /** Ends the wait at once with an `ABORTED` error when aborted. */
  signal?: AbortSignal | undefined;
}

/** Tuning of how waiting acquires behave; tests set them for determinism. */
export interface WaitTuning {
  /** Random numbers in [0, 1) for jitter. */
  readonly random: () => number;
  /** Longest a concurrency waiter sleeps between store calls when no release is heard, in ms. */
  readonly pollMs: number;
}

/** Default {@link WaitTuning}. */
export const DEFAULT_WAIT_TUNING: WaitTuning = { random: Math.random, pollMs: 1000 };

/** Longest key accepted, in UTF-16 code units. Engines hash long keys, so this only bounds memory. */
export const MAX_KEY_LENGTH = 4096;

/** Extra sleep for rate waits, so processes woken by the same opening do not all ask at once. */
function jitterMs(waitMs: number, random: () => number): number {
  return random() * Math.min(waitMs * 0.02, 50);
}

/**
 * Whole milliseconds, rounded up, for a time computed in fractional ms (so a caller that waits
 * that long never comes back early); the rounding error of the computation is forgiven.
 */
function wholeMs(ms: number): number {
  return Math.max(0, Math.ceil(ms - 1e-6));
}

function abortedError(limiter: string, signal: AbortSignal): RateSyncError {
  return new RateSyncError("ABORTED", `acquire("${limiter}") was aborted by its signal before a slot was free.`, {
    cause: signal.reason,
  });
}

/**
 * A limiter: a policy bound to a store. Get one with `getLimiter(id)`; the top-level `acquire`
 * and `tryAcquire` functions call the same methods.
 */
export class Limiter implements LeaseOwner {
  /** The limiter id. */
  readonly id: string;
  /** The validated configuration. */
  readonly config: LimiterConfig;
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #tuning: WaitTuning;
  readonly #metrics = new MetricsRecorder();
  readonly #lines = new Map<string, WaitLine>();
  /** Leased slots held now, so close() can stop their renewal timers. */
  readonly #held = new Set<LeasedSlot>();
  readonly #ratePolicy: DecisionPolicy | undefined;
  readonly #slotPolicy: DecisionPolicy | undefined;
  readonly #capacity: number;

  constructor(config: LimiterConfig, store: Store, clock: Clock, tuning: WaitTuning = DEFAULT_WAIT_TUNING) {
    this.id = config.id;
    this.config = config;
    this.#store = store;
    this.#clock = clock;
    this.#tuning = tuning;
    const { rate, concurrency } = config.policy;
    this.#ratePolicy =
      rate === undefined
        ? undefined
        : Object.freeze({
            kind: rate.algorithm as PolicyKind,
            limit: rateCapacity(rate),
            windowMs: rate.algorithm === "token_bucket" ? rate.burst * rate.intervalMs : rate.windowMs,
          });
    this.#slotPolicy =
      concurrency === undefined
        ? undefined
        : Object.freeze({ kind: "concurrency" as PolicyKind, limit: concurrency.maxConcurrent, windowMs: undefined });
    this.#capacity = rate === undefined ? Number.POSITIVE_INFINITY : rateCapacity(rate);
  }

  /** The store this limiter uses. */
  get store(): Store {
    return this.#store;
  }

  /**
   * Asks once and never waits: a {@link Decision}, admitted (with a `slot` to release when done)
   * or refused (with `retryAfterMs`). Throws only for bad arguments, a fail-closed store outage
   * (`STORE_UNAVAILABLE`) or a cost that can never fit (`COST_EXCEEDS_CAPACITY`).
   */
  tryAcquire(options?: TryAcquireOptions): Promise<Decision> {
    try {
      return Promise.resolve(this.#attempt(this.#checkKey(options?.key), this.#checkCost(options?.cost)));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Waits until admitted and returns the held {@link Slot}. Rate waits sleep exactly until the
   * store says the call fits; when that is past the timeout, it fails at once with
   * `ACQUIRE_TIMEOUT` instead of sleeping until the deadline. Concurrency waits wake when a slot is
   * released anywhere (the store's notification), with a bounded fallback poll.
   */
  async acquire(options?: AcquireOptions): Promise<Slot> {
    try {
      return await this.#acquire(options);
    } catch (error) {
      if (isRateSyncError(error, "ACQUIRE_TIMEOUT")) this.#metrics.timeouts++;
      throw error;
    }
  }

  async #acquire(options: AcquireOptions | undefined): Promise<Slot> {
    const key = this.#checkKey(options?.key);
    const cost = this.#checkCost(options?.cost);
    const signal = options?.signal;
    const start = this.#clock.now();
    const deadline = start + this.#checkTimeout(options?.timeout) * 1000;
    if (signal?.aborted) throw abortedError(this.id, signal);

    // Nobody from this process is waiting on this key: ask straight away.
    let first: Decision | undefined;
    if (!this.#lines.has(key)) {
      first = await this.#attempt(key, cost);
      if (first.allowed) {
        this.#metrics.recordWait(0);
        return first.slot as Slot;
      }
      this.#failFast(first, start, deadline);
    }

    let line = this.#lines.get(key);
    if (line === undefined) {
      line = new WaitLine();
      this.#lines.set(key, line);
    }
    // The first refusal is still fresh only if nobody joined the line in the meantime.
    const reuseFirst = line.size === 0 ? first : undefined;
    const place = line.enter();
    try {
      await this.#waitTurn(place.turn, start, deadline, signal);
      return await this.#waitAsHead(key, cost, start, deadline, signal, reuseFirst);
    } finally {
      place.leave();
      if (line.size === 0 && this.#lines.get(key) === line) this.#lines.delete(key);
    }
  }

  /**
   * What a call of `cost` (default 1) for `key` would get now, from the store, consuming nothing.
   * Throws `STORE_UNAVAILABLE` when the store cannot answer.
   */
  async state(key?: string, cost?: number): Promise<StoreDecision> {
    const storeKey = this.#checkKey(key);
    const checkedCost = this.#checkCost(cost);
    const engine = this.#store.engine ?? (await this.#store.open());
    let raw: EngineDecision;
    try {
      raw = await this.#store.deadline(
        engine.peek({ limiter: this.id, key: storeKey, policy: this.config.policy, cost: checkedCost }),
        engine,
      );
    } catch (error) {
      this.#metrics.storeErrors++;
      throw this.#unavailable(error);
    }
    return this.#toDecision(raw, storeKey, false);
  }

  /** Forgets the key's state in the store: a full budget and no slots held. */
  async reset(key?: string): Promise<void> {
    const storeKey = this.#checkKey(key);
    const engine = this.#store.engine ?? (await this.#store.open());
    try {
      await this.#store.deadline(engine.reset({ limiter: this.id, key: storeKey }), engine);
    } catch (error) {
      this.#metrics.storeErrors++;
      throw this.#unavailable(error);
    }
  }

  /** This process's counters for the limiter. Never touches the store. */
  metrics(): LimiterMetrics {
    return this.#metrics.snapshot();
  }

  // --- LeaseOwner: what held slots ask of their limiter ---

  /** @internal */
  async renew(slot: LeasedSlot): Promise<number | undefined> {
    const engine = this.#store.engine ?? (await this.#store.open());
    try {
      return await this.#store.deadline(
        engine.renew({ limiter: this.id, key: slot.key ?? "", leaseId: slot.leaseId, leaseMs: slot.leaseMs }),
        engine,
      );
    } catch (error) {
      this.#metrics.storeErrors++;
      throw error;
    }
  }

  /** @internal */
  async release(slot: LeasedSlot): Promise<void> {
    const engine = this.#store.engine;
    if (engine === undefined) return;
    try {
      await this.#store.deadline(
        engine.release({ limiter: this.id, key: slot.key ?? "", leaseId: slot.leaseId }),
        engine,
      );
    } catch {
      // The store could not be told; the lease expires on its own after lease_seconds.
      this.#metrics.storeErrors++;
    }
  }

  /** @internal */
  schedule(callback: () => void, delayMs: number): () => void {
    return this.#clock.schedule(callback, delayMs, false);
  }

  /**
   * {@link tryAcquire} without a promise when the engine answers synchronously (the memory
   * engine): the decision itself, or the promise of a remote engine's. Throws what `tryAcquire`
   * rejects with. The HTTP layer's hot path, where a promise and a job per request show.
   * @internal
   */
  tryAcquireNow(options?: TryAcquireOptions): Decision | Promise<Decision> {
    return this.#attempt(this.#checkKey(options?.key), this.#checkCost(options?.cost));
  }

  /** @internal */
  now(): number {
    return this.#clock.now();
  }

  /** @internal */
  settled(slot: LeasedSlot, _lost: boolean): void {
    this.#held.delete(slot);
    this.#metrics.concurrent--;
    this.#metrics.releases++;
  }

  /** Stops renewing every held slot without telling the store (used by `close()`). */
  abandonSlots(): void {
    for (const slot of [...this.#held]) slot.abandon();
  }

  // --- internals ---

  /**
   * One decision from the store, with the failure policy applied. A local engine (memory) answers
   * synchronously: the decision itself, with nothing awaited (and what the failure policy throws,
   * thrown). A remote one: a plain promise chain rather than an async function, since this is the
   * hot path of every remote decision.
   */
  #attempt(key: string, cost: number): Decision | Promise<Decision> {
    const engine = this.#store.engine;
    if (engine === undefined) return this.#store.open().then(() => this.#attempt(key, cost));
    if (engine.remote === false) return this.#decideNow(engine, key, cost);
    const leaseId = this.#slotPolicy === undefined ? undefined : crypto.randomUUID();
    let pending: EngineDecision | Promise<EngineDecision>;
    try {
      // Inside the try: an engine may also fail synchronously.
      pending = engine.decide({ limiter: this.id, key, policy: this.config.policy, cost, leaseId });
    } catch (error) {
      return this.#degradeAsync(error, key);
    }
    return Promise.resolve(this.#store.deadline(pending, engine)).then(
      (raw) => this.#admit(raw, key, leaseId),
      (error: unknown) => {
        if (leaseId !== undefined) this.#releaseIfLate(pending, engine, key, leaseId);
        return this.#degrade(error, key);
      },
    );
  }

  /** {@link #degrade} as a promise: a fail-closed limiter rejects instead of throwing. */
  #degradeAsync(error: unknown, key: string): Promise<Decision> {
    try {
      return Promise.resolve(this.#degrade(error, key));
    } catch (unavailable) {
      return Promise.reject(unavailable);
    }
  }

  /** {@link #attempt} for a local engine, whose `decide` answers synchronously. */
  #decideNow(engine: Engine, key: string, cost: number): Decision {
    const leaseId = this.#slotPolicy === undefined ? undefined : crypto.randomUUID();
    let raw: EngineDecision;
    try {
      raw = engine.decide({ limiter: this.id, key, policy: this.config.policy, cost, leaseId }) as EngineDecision;
    } catch (error) {
      // The memory store refuses new keys when full: a store failure like any other.
      return this.#degrade(error, key);
    }
    return this.#admit(raw, key, leaseId);
  }

  /** A decision that arrives after its deadline may still hold a lease: give it back. */
  #releaseIfLate(pending: EngineDecision | Promise<EngineDecision>, engine: Engine, key: string, leaseId: string) {
    if (!(pending instanceof Promise)) return;
    pending.then(
      (raw) => {
        if (raw.allowed) void Promise.resolve(engine.release({ limiter: this.id, key, leaseId })).catch(() => {});
      },
      () => {},
    );
  }

  /** The decision of an attempt: counted in the metrics, holding its lease when admitted. */
  #admit(raw: EngineDecision, key: string, leaseId: string | undefined): StoreOutcome {
    const decision = this.#toDecision(raw, key, true);
    if (raw.allowed) {
      this.#metrics.acquisitions++;
      if (leaseId !== undefined) {
        this.#metrics.concurrent++;
        const slot = new LeasedSlot(
          this,
          this.id,
          decision.key,
          leaseId,
          raw.leaseExpiresAt,
          (this.config.policy.concurrency as { leaseMs: number }).leaseMs,
        );
        this.#held.add(slot);
        decision.attach(slot);
      }
    } else {
      this.#metrics.denied++;
      if (raw.refusedBy === "concurrency") this.#metrics.concurrencyRefusals++;
    }
    return decision;
  }

  /** The public form of an engine's answer, in whole milliseconds. */
  #toDecision(raw: EngineDecision, key: string, holdsSlot: boolean): StoreOutcome {
    const slotPolicy = this.#slotPolicy;
    const bySlots = raw.refusedBy === "concurrency" || this.#ratePolicy === undefined;
    const policy = (bySlots ? slotPolicy : this.#ratePolicy) as DecisionPolicy;
    const concurrency: ConcurrencyUsage | undefined =
      slotPolicy === undefined
        ? undefined
        : { limit: slotPolicy.limit, inUse: raw.inUse, remaining: Math.max(0, slotPolicy.limit - raw.inUse) };
    return new StoreOutcome(
      this.id,
      key === "" ? undefined : key,
      raw.allowed,
      policy,
      bySlots ? (concurrency as ConcurrencyUsage).remaining : raw.remaining,
      wholeMs(bySlots ? raw.now + raw.retryAfterMs : raw.resetAt),
      wholeMs(raw.retryAfterMs),
      concurrency,
      holdsSlot,
      raw.now,
    );
  }

  /** The failure policy: fail-open admits with a degraded decision; fail-closed throws. */
  #degrade(error: unknown, key: string): DegradedDecision {
    this.#metrics.storeErrors++;
    const failure = this.#storeError(error);
    if (this.config.failClosed) throw this.#unavailable(failure);
    this.#metrics.degraded++;
    this.#metrics.acquisitions++;
    const policy = (this.#ratePolicy ?? this.#slotPolicy) as DecisionPolicy;
    const decision = {
      limiter: this.id,
      key: key === "" ? undefined : key,
      allowed: true,
      degraded: true,
      reason: failure.message,
      error: failure,
      policy,
      limit: policy.limit,
      remaining: undefined,
      resetAt: undefined,
      retryAfterMs: 0,
      concurrency: undefined,
    } as const;
    // Nothing is held in the store: the slot is a free one, and releasing it is harmless.
    const degraded: DegradedDecision = Object.assign(decision, { slot: new FreeSlot(decision as DegradedDecision) });
    return degraded;
  }

  #storeError(error: unknown): RateSyncError {
    if (isRateSyncError(error)) return error;
    const message = error instanceof Error ? error.message : String(error);
    return new RateSyncError(
      "STORE_ERROR",
      `Store "${this.#store.id}" (${this.#store.engineName}) failed: ${message}`,
      {
        cause: error,
      },
    );
  }

  #unavailable(error: unknown): RateSyncError {
    const failure = this.#storeError(error);
    return new RateSyncError(
      "STORE_UNAVAILABLE",
      `Limiter "${this.id}" could not reach its store "${this.#store.id}": ${failure.message}`,
      { cause: failure, details: { limiter: this.id, store: this.#store.id } },
    );
  }

  /** Throws `ACQUIRE_TIMEOUT` now when the store already says the wait passes the deadline. */
  #failFast(decision: Decision, start: number, deadline: number): void {
    if (decision.policy.kind === "concurrency") return;
    const now = this.#clock.now();
    if (now + decision.retryAfterMs > deadline + 1e-6) {
      throw new RateSyncError(
        "ACQUIRE_TIMEOUT",
        `acquire("${this.id}") would have to wait ${Math.ceil(decision.retryAfterMs)} ms, past its timeout of ${(deadline - start) / 1000} s: failing now instead of sleeping until the deadline. Raise the timeout or lower the request rate.`,
        { details: { limiter: this.id, retryAfterMs: decision.retryAfterMs } },
      );
    }
  }

  #timeoutError(start: number, deadline: number): RateSyncError {
    return new RateSyncError(
      "ACQUIRE_TIMEOUT",
      `acquire("${this.id}") timed out after ${(deadline - start) / 1000} s without a free slot.`,
      { details: { limiter: this.id } },
    );
  }

  /** Waits for the turn in line, bounded by the deadline and the signal. */
  async #waitTurn(
    turn: Promise<void>,
    start: number,
    deadline: number,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    let cancelTimer: (() => void) | undefined;
    let onAbort: (() => void) | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        turn.then(resolve);
        if (deadline !== Number.POSITIVE_INFINITY) {
          cancelTimer = this.#clock.schedule(
            () => reject(this.#timeoutError(start, deadline)),
            deadline - this.#clock.now(),
            true,
          );
        }
        if (signal !== undefined) {
          onAbort = () => reject(abortedError(this.id, signal));
          if (signal.aborted) onAbort();
          else signal.addEventListener("abort", onAbort, { once: true });
        }
      });
    } finally {
      cancelTimer?.();
      if (onAbort !== undefined) signal?.removeEventListener("abort", onAbort);
    }
  }

  /** At the head of the line: ask, sleep as long as the store says (or until a release), repeat. */
  async #waitAsHead(
    key: string,
    cost: number,
    start: number,
    deadline: number,
    signal: AbortSignal | undefined,
    first: Decision | undefined,
  ): Promise<Slot> {
    let releases: ReleaseListener | undefined;
    let pending = first;
    try {
      for (;;) {
        if (signal?.aborted) throw abortedError(this.id, signal);
        const decision = pending ?? (await this.#attempt(key, cost));
        pending = undefined;
        if (decision.allowed) {
          const slot = slotOf(decision);
          slot.waitedMs = this.#clock.now() - start;
          this.#metrics.recordWait(slot.waitedMs);
          return slot;
        }
        this.#failFast(decision, start, deadline);
        const now = this.#clock.now();
        if (decision.policy.kind !== "concurrency") {
          const wait = wholeMs(decision.retryAfterMs + jitterMs(decision.retryAfterMs, this.#tuning.random));
          await this.#sleep(Math.min(wait, Math.max(0, deadline - now)), signal);
          continue;
        }
        if (now >= deadline) throw this.#timeoutError(start, deadline);
        if (releases === undefined) {
          // Listen first, then ask again: a release between the refusal and now is not missed.
          releases = new ReleaseListener(this.#store.engine, { limiter: this.id, key });
          continue;
        }
        // Wake on a release; else poll, or when the earliest lease would expire (a crashed holder).
        const poll = releases.supported ? this.#tuning.pollMs : Math.min(this.#tuning.pollMs, 100);
        const wait = Math.min(deadline - now, poll, wholeMs(decision.retryAfterMs) + 1);
        await releases.wait(this.#clock, wait, signal, () => abortedError(this.id, signal as AbortSignal));
      }
    } finally {
      releases?.close();
    }
  }

  async #sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
    try {
      await sleep(this.#clock, ms, signal);
    } catch {
      throw abortedError(this.id, signal as AbortSignal);
    }
  }

  #checkKey(key: unknown): string {
    if (key === undefined) return "";
    if (typeof key !== "string") {
      throw new RateSyncError(
        "INVALID_KEY",
        `The key for limiter "${this.id}" must be a string, got ${describeValue(key)}. Convert it (String(id)) or omit it for the shared budget.`,
      );
    }
    if (key.length === 0) {
      throw new RateSyncError(
        "INVALID_KEY",
        `The key for limiter "${this.id}" is an empty string. Pass a non-empty key, or omit it for the limiter's shared budget.`,
      );
    }
    if (key.length > MAX_KEY_LENGTH) {
      throw new RateSyncError(
        "INVALID_KEY",
        `The key for limiter "${this.id}" is ${key.length} characters long; the maximum is ${MAX_KEY_LENGTH}. Hash long keys before passing them.`,
      );
    }
    return key;
  }

  #checkCost(cost: unknown): number {
    if (cost === undefined) return 1;
    if (typeof cost !== "number" || !Number.isSafeInteger(cost) || cost < 0) {
      throw new RateSyncError(
        "INVALID_ARGUMENT",
        `The cost for limiter "${this.id}" must be a whole number >= 0, got ${describeValue(cost)}.`,
      );
    }
    if (cost > this.#capacity) {
      throw new RateSyncError(
        "COST_EXCEEDS_CAPACITY",
        `A cost of ${cost} can never be admitted by limiter "${this.id}": its capacity is ${this.#capacity} (${this.config.algorithm === "token_bucket" ? "burst" : "limit"}). Split the work or raise the ${this.config.algorithm === "token_bucket" ? "burst" : "limit"}.`,
        { details: { limiter: this.id, cost, capacity: this.#capacity } },
      );
    }
    return cost;
  }

  #checkTimeout(timeout: unknown): number {
    if (timeout === undefined) return this.config.timeout ?? Number.POSITIVE_INFINITY;
    if (typeof timeout !== "number" || Number.isNaN(timeout) || timeout < 0) {
      throw new RateSyncError(
        "INVALID_ARGUMENT",
        `The timeout for acquire("${this.id}") must be a number of seconds >= 0 (or Infinity), got ${describeValue(timeout)}.`,
      );
    }
    return timeout;
  }
}

/**
 * Hears slot releases for one key while the head of a line waits: through the engine's
 * notifications (Redis pub/sub, PostgreSQL NOTIFY, NATS KV watch, in-process for memory).
 */
class ReleaseListener {
  readonly supported: boolean;
  #heard = false;
  #wake: (() => void) | undefined;
  readonly #unsubscribe: (() => void) | undefined;

  constructor(engine: Engine | undefined, target: EngineTarget) {
    this.#unsubscribe = engine?.onRelease?.(target, () => {
      this.#heard = true;
      this.#wake?.();
    });
    this.supported = this.#unsubscribe !== undefined;
  }

  /** Resolves on a release (heard now or since the last wait), after `ms`, or rejects on abort. */
  async wait(clock: Clock, ms: number, signal: AbortSignal | undefined, aborted: () => Error): Promise<void> {
    if (this.#heard) {
      this.#heard = false;
      return;
    }
    let cancel: (() => void) | undefined;
    let onAbort: (() => void) | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        this.#wake = resolve;
        cancel = clock.schedule(resolve, ms, true);
        if (signal !== undefined) {
          onAbort = () => reject(aborted());
          if (signal.aborted) onAbort();
          else signal.addEventListener("abort", onAbort, { once: true });
        }
      });
    } finally {
      this.#wake = undefined;
      this.#heard = false;
      cancel?.();
      if (onAbort !== undefined) signal?.removeEventListener("abort", onAbort);
    }
  }

  close(): void {
    this.#unsubscribe?.();
  }
}
