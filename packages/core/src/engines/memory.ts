import {
  decide,
  type EngineDecision,
  type KeyState,
  peek,
  releaseSlot,
  renewSlot,
  stateExpiresAt,
} from "../algorithms/decide.js";
import type { Clock } from "../clock.js";
import { systemClock } from "../clock.js";
import { RateSyncError } from "../errors.js";
import type { MemoryEngineOptions } from "../options.js";
import type {
  DecideRequest,
  Engine,
  EngineDefinition,
  EngineTarget,
  LeaseRequest,
  PeekRequest,
  RenewRequest,
} from "./engine.js";

/** A key's state plus the moment it becomes the same as no state. */
interface Entry extends KeyState {
  expiresAt: number;
}

/** Entries examined per new key: keeps idle keys from piling up without any timer. */
const SWEEP_STEP = 4;

/** Default of {@link MemoryEngineOptions.maxKeys}. */
export const DEFAULT_MEMORY_MAX_KEYS = 1_000_000;

/**
 * The in-process engine: zero dependencies, synchronous, runs anywhere (Node.js, Deno, Bun,
 * Cloudflare Workers). Coordinates only the callers inside one process.
 *
 * Memory stays bounded without timers: a key is dropped once its state is the same as no state
 * (its bucket full again, its window empty, its leases expired). Each new key sweeps a few old
 * ones; when `maxKeys` is reached a full sweep runs, and if every key is still live the new key
 * is refused as a store failure rather than evicting (and so resetting) a live one.
 */
export class MemoryEngine implements Engine {
  readonly name = "memory";
  readonly remote = false;
  readonly #clock: Clock;
  readonly #maxKeys: number;
  /** limiter id → user key → entry. Nested maps: no separator, so no key can collide. */
  readonly #limiters = new Map<string, Map<string, Entry>>();
  readonly #listeners = new Map<string, Map<string, Set<() => void>>>();
  #size = 0;
  /** A resumable walk over the keys, advanced a few steps per new key. */
  #sweep: Iterator<[string, Map<string, Entry>]> | undefined;
  #sweepKeys: Iterator<[string, Entry]> | undefined;
  #sweepMap: Map<string, Entry> | undefined;
  /** When full of live keys: nothing can expire before this, so no full sweep is worth it. */
  #fullUntil = 0;

  constructor(options: MemoryEngineOptions = {}, clock: Clock = systemClock) {
    this.#clock = clock;
    this.#maxKeys = options.maxKeys ?? DEFAULT_MEMORY_MAX_KEYS;
  }

  /** Keys held now (live or not yet swept). */
  get size(): number {
    return this.#size;
  }

  decide(request: DecideRequest): EngineDecision {
    const now = this.#clock.now();
    const keys = this.#keys(request.limiter);
    let entry = keys.get(request.key);
    if (entry !== undefined && entry.expiresAt <= now) {
      keys.delete(request.key);
      this.#size--;
      entry = undefined;
    }
    const result = decide(entry, request.policy, request.cost, request.leaseId, now);
    if (!result.changed) return result.decision;
    const state = result.state as Entry;
    state.expiresAt = stateExpiresAt(state, request.policy);
    if (entry === undefined) this.#insert(keys, request.key, state, now);
    return result.decision;
  }

  release(request: LeaseRequest): boolean {
    const entry = this.#limiters.get(request.limiter)?.get(request.key);
    const released = releaseSlot(entry, request.leaseId, this.#clock.now());
    if (released) this.#notify(request);
    return released;
  }

  renew(request: RenewRequest): number | undefined {
    const entry = this.#limiters.get(request.limiter)?.get(request.key);
    if (entry === undefined) return undefined;
    const expiresAt = renewSlot(entry, request.leaseId, request.leaseMs, this.#clock.now());
    if (expiresAt !== undefined && expiresAt > entry.expiresAt) entry.expiresAt = expiresAt;
    return expiresAt;
  }

  peek(request: PeekRequest): EngineDecision {
    const now = this.#clock.now();
    const entry = this.#limiters.get(request.limiter)?.get(request.key);
    return peek(entry !== undefined && entry.expiresAt > now ? entry : undefined, request.policy, request.cost, now);
  }

  reset(target: EngineTarget): void {
    const keys = this.#limiters.get(target.limiter);
    if (keys?.delete(target.key)) {
      this.#size--;
      // Slots were freed: waiters may proceed.
      this.#notify(target);
    }
  }

  onRelease(target: EngineTarget, listener: () => void): () => void {
    let byKey = this.#listeners.get(target.limiter);
    if (byKey === undefined) {
      byKey = new Map();
      this.#listeners.set(target.limiter, byKey);
    }
    let set = byKey.get(target.key);
    if (set === undefined) {
      set = new Set();
      byKey.set(target.key, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && byKey.get(target.key) === set) {
        byKey.delete(target.key);
        if (byKey.size === 0) this.#listeners.delete(target.limiter);
      }
    };
  }

  async close(): Promise<void> {
    this.#limiters.clear();
    this.#listeners.clear();
    this.#size = 0;
    this.#sweep = undefined;
    this.#sweepKeys = undefined;
    this.#sweepMap = undefined;
  }

  #keys(limiter: string): Map<string, Entry> {
    let keys = this.#limiters.get(limiter);
    if (keys === undefined) {
      keys = new Map();
      this.#limiters.set(limiter, keys);
    }
    return keys;
  }

  #notify(target: EngineTarget): void {
    const set = this.#listeners.get(target.limiter)?.get(target.key);
    if (set === undefined) return;
    for (const listener of [...set]) listener();
  }

  #insert(keys: Map<string, Entry>, key: string, entry: Entry, now: number): void {
    this.#sweepSome(now, SWEEP_STEP);
    if (this.#size >= this.#maxKeys) {
      if (now >= this.#fullUntil) this.#sweepAll(now);
      if (this.#size >= this.#maxKeys) {
        throw new RateSyncError(
          "STORE_ERROR",
          `The memory store is full: ${this.#maxKeys} keys are live, so a new key cannot be tracked without resetting another. Raise max_keys (maxKeys) on the store, or use fewer distinct keys.`,
          { details: { maxKeys: this.#maxKeys } },
        );
      }
    }
    keys.set(key, entry);
    this.#size++;
  }

  /** Examines up to `steps` keys from where the last sweep stopped, dropping idle ones. */
  #sweepSome(now: number, steps: number): void {
    for (let examined = 0; examined < steps; ) {
      if (this.#sweepKeys === undefined || this.#sweepMap === undefined) {
        this.#sweep ??= this.#limiters.entries();
        const next = this.#sweep.next();
        if (next.done) {
          this.#sweep = undefined;
          return;
        }
        this.#sweepMap = next.value[1];
        this.#sweepKeys = this.#sweepMap.entries();
      }
      const item = this.#sweepKeys.next();
      if (item.done) {
        this.#sweepKeys = undefined;
        this.#sweepMap = undefined;
        continue;
      }
      examined++;
      if (item.value[1].expiresAt <= now) {
        this.#sweepMap.delete(item.value[0]);
        this.#size--;
      }
    }
  }

  /** Drops every idle key; remembers when the earliest live one expires. */
  #sweepAll(now: number): void {
    let earliest = Number.POSITIVE_INFINITY;
    for (const keys of this.#limiters.values()) {
      for (const [key, entry] of keys) {
        if (entry.expiresAt <= now) {
          keys.delete(key);
          this.#size--;
        } else if (entry.expiresAt < earliest) {
          earliest = entry.expiresAt;
        }
      }
    }
    this.#fullUntil = earliest;
  }
}

/**
 * Creates an in-memory engine.
 *
 * @example
 * ```ts
 * configureStore("local", { engine: createMemoryEngine({ maxKeys: 100_000 }) });
 * ```
 */
export function createMemoryEngine(options: MemoryEngineOptions = {}, clock: Clock = systemClock): MemoryEngine {
  return new MemoryEngine(options, clock);
}

/** The memory engine's definition, registered under the name `memory`. */
export const memoryEngine: EngineDefinition<MemoryEngineOptions> = {
  name: "memory",
  optionKeys: ["max_keys"],
  create: (options, context) => new MemoryEngine(options, context.clock),
};
