import type { Clock } from "./clock.js";
import { DeadlineQueue } from "./deadline-queue.js";
import type { Engine, MaybePromise } from "./engines/engine.js";
import { resolveEngine } from "./engines/registry.js";
import { RateSyncError } from "./errors.js";
import type { StoreOptions } from "./options.js";

/** Default of `requestTimeoutMs`: a store call that takes longer counts as failed. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 1000;

function isEngine(value: unknown): value is Engine {
  return typeof value === "object" && value !== null && typeof (value as Engine).decide === "function";
}

function isPromiseLike<T>(value: MaybePromise<T>): value is Promise<T> {
  return typeof (value as { then?: unknown } | null)?.then === "function";
}

/**
 * A configured store: an engine plus its options. The engine (and its client) is created on first
 * use and shared by every limiter on the store; cloned limiters share it too.
 */
export class Store {
  /** The store id. */
  readonly id: string;
  /** The options it was configured with. */
  readonly options: StoreOptions;
  /** The engine name. */
  readonly engineName: string;
  /** Deadline of one store call, in ms. */
  readonly requestTimeoutMs: number;
  readonly #clock: Clock;
  #engine: Engine | undefined;
  #opening: Promise<Engine> | undefined;
  readonly #deadlines: DeadlineQueue;
  readonly #timeoutError = (): RateSyncError =>
    new RateSyncError(
      "STORE_ERROR",
      `Store "${this.id}" (${this.engineName}) did not answer within ${this.requestTimeoutMs} ms (request_timeout_ms).`,
      { details: { store: this.id, timeoutMs: this.requestTimeoutMs } },
    );
  /** Whether close() closes the engine: not when the user passed an engine instance in. */
  readonly #ownsEngine: boolean;

  constructor(id: string, options: StoreOptions, clock: Clock) {
    this.id = id;
    this.options = options;
    this.#clock = clock;
    this.requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.#deadlines = new DeadlineQueue(clock, this.requestTimeoutMs);
    if (isEngine(options.engine)) {
      this.#engine = options.engine;
      this.engineName = options.engine.name;
      this.#ownsEngine = false;
    } else {
      this.engineName = options.engine as string;
      this.#ownsEngine = true;
    }
  }

  /** The engine, once created; `undefined` before first use. */
  get engine(): Engine | undefined {
    return this.#engine;
  }

  /** Creates the engine on first call (loading its package if needed); the same one afterwards. */
  open(): Promise<Engine> {
    if (this.#engine !== undefined) return Promise.resolve(this.#engine);
    this.#opening ??= this.#create().then(
      (engine) => {
        this.#engine = engine;
        return engine;
      },
      (error: unknown) => {
        // Let the next call try again (for example once the package is installed).
        this.#opening = undefined;
        throw error;
      },
    );
    return this.#opening;
  }

  async #create(): Promise<Engine> {
    const definition = await resolveEngine(this.engineName, this.id);
    const { engine: _engine, requestTimeoutMs: _timeout, ...engineOptions } = this.options as Record<string, unknown>;
    return definition.create(engineOptions, {
      storeId: this.id,
      clock: this.#clock,
      requestTimeoutMs: this.requestTimeoutMs,
    });
  }

  /**
   * Settles an engine call within the store's deadline. A synchronous answer passes through
   * untouched; a promise that is still pending at the deadline rejects with `STORE_ERROR`.
   */
  deadline<T>(result: MaybePromise<T>, engine: Engine): MaybePromise<T> {
    if (!isPromiseLike(result) || engine.remote === false || engine.enforcesDeadline === true) return result;
    return this.#deadlines.bound(result, this.#timeoutError);
  }

  /** Closes the engine if this store created it (an engine instance passed in stays open). */
  async close(): Promise<void> {
    this.#deadlines.clear();
    if (!this.#ownsEngine) return;
    const engine = this.#engine ?? (await this.#opening?.catch(() => undefined));
    // Forget it: a later call opens a fresh engine, so close() never leaves the store unusable.
    this.#engine = undefined;
    this.#opening = undefined;
    await engine?.close();
  }
}
