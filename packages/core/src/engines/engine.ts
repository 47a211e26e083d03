import type { EngineDecision } from "../algorithms/decide.js";
import type { Policy } from "../policy.js";

export type { EngineDecision } from "../algorithms/decide.js";

/** A value or a promise of it: engines that answer synchronously (memory) skip a promise. */
export type MaybePromise<T> = T | Promise<T>;

/**
 * Whose budget a call is about. `key` is the user's key exactly as given (never parsed, never
 * trusted), or `""` for the limiter's shared budget (an empty user key is refused before any
 * engine sees it). Engines must encode both so that no key can collide with another limiter's
 * or inject syntax into the store.
 */
export interface EngineTarget {
  /** The limiter id. */
  readonly limiter: string;
  /** The user key, or `""` for the shared budget. */
  readonly key: string;
}

/** One decision to take atomically. */
export interface DecideRequest extends EngineTarget {
  /** The limiter's policy: engines keep no per-limiter configuration. */
  readonly policy: Policy;
  /** Rate cost of the call, a safe integer >= 0, never above the policy's capacity. */
  readonly cost: number;
  /** Id of the slot to create when `policy.concurrency` is set; `undefined` otherwise. */
  readonly leaseId: string | undefined;
}

/** A lease held by a caller. */
export interface LeaseRequest extends EngineTarget {
  /** The lease id given to `decide`. */
  readonly leaseId: string;
}

/** A lease to extend. */
export interface RenewRequest extends LeaseRequest {
  /** The new lease length from the store's now, in ms. */
  readonly leaseMs: number;
}

/** A peek at a key's budget. */
export interface PeekRequest extends EngineTarget {
  readonly policy: Policy;
  /** The cost the peek asks about. */
  readonly cost: number;
}

/**
 * A storage backend: performs each decision as one atomic step in its store and reports the
 * store's time. Created by an {@link EngineFactory}; holds a lazily created client (or one the
 * user passed in, which it then never closes).
 *
 * The algorithms live in `@ratesync/core` as pure state transitions (see `decide`); an engine
 * either runs them (memory, compare-and-set stores) or reimplements them inside its store (Lua,
 * SQL) and is held to them by the conformance suite in `@ratesync/core/testing`.
 *
 * Engines throw on store failures; the limiter applies the failure policy (degraded allow or
 * `STORE_UNAVAILABLE`) and the per-call deadline, so an engine needs neither.
 */
export interface Engine {
  /** The engine's name, as written in `engine = "..."`. */
  readonly name: string;
  /**
   * Whether calls may hang on I/O. The limiter puts a deadline on every call of a remote engine;
   * a local engine (memory) answers synchronously and skips the timer.
   * @default true
   */
  readonly remote?: boolean;
  /**
   * Whether the engine itself guarantees that every call settles within the store's
   * `requestTimeoutMs` (given in {@link EngineContext}), for example through its client's command
   * timeout. The limiter then sets no timer of its own per call, which matters at tens of
   * thousands of calls per second.
   * @default false
   */
  readonly enforcesDeadline?: boolean;
  /** Decides one call atomically: rate and concurrency together, writing only when admitting. */
  decide(request: DecideRequest): MaybePromise<EngineDecision>;
  /** Frees a live lease. Resolves `false` when it was not live (already released or expired). */
  release(request: LeaseRequest): MaybePromise<boolean>;
  /** Extends a live lease; the new expiry (epoch ms), or `undefined` when the lease is gone. */
  renew(request: RenewRequest): MaybePromise<number | undefined>;
  /** What a call of `cost` would get now; consumes nothing. */
  peek(request: PeekRequest): MaybePromise<EngineDecision>;
  /** Forgets everything stored for the target (rate state and slots). */
  reset(target: EngineTarget): MaybePromise<void>;
  /**
   * Subscribes to releases of slots of the target, from any process. The limiter calls this
   * while a caller waits for a slot, so waiters wake on a release instead of polling. Returns a
   * function that unsubscribes. Optional: without it, waiters poll.
   */
  onRelease?: ((target: EngineTarget, listener: () => void) => () => void) | undefined;
  /** Connects eagerly and verifies the store (used by `initializeLimiter`). Optional. */
  init?(): Promise<void>;
  /** Closes what the engine opened. A client the user passed in is left open. */
  close(): Promise<void>;
}

/** Context given to an {@link EngineFactory} by the store that creates the engine. */
export interface EngineContext {
  /** The store id, for messages. */
  readonly storeId: string;
  /** The clock local engines should use (tests inject a fake one). */
  readonly clock: import("../clock.js").Clock;
  /**
   * The store's deadline for one call, in ms. The limiter enforces it; a remote engine may also
   * hand it to its client (a command timeout) so a timed-out request does not linger.
   */
  readonly requestTimeoutMs: number;
}

/**
 * Creates an engine from its store options (camelCase, as `configureStore` receives them; the
 * TOML file's snake_case keys are converted before they reach the factory).
 */
export type EngineFactory<O = Record<string, unknown>> = (options: O, context: EngineContext) => Engine;

/**
 * An engine as a package provides it: a name, the store option keys it accepts (TOML spelling,
 * for validation and "did you mean" hints), and its factory. Engine packages export one as
 * `engine`; `registerEngine` accepts one for custom engines.
 */
export interface EngineDefinition<O = Record<string, unknown>> {
  /** The name used in `engine = "..."`. */
  readonly name: string;
  /** The option keys the engine accepts, in TOML spelling (snake_case). */
  readonly optionKeys?: readonly string[];
  /** Creates the engine. */
  readonly create: EngineFactory<O>;
}
