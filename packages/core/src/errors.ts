/**
 * Every error ratesync throws is a {@link RateSyncError} with a stable string {@link RateSyncErrorCode}.
 *
 * Being limited is never an error: it is a {@link Decision} with `allowed: false`. Errors are for
 * misconfiguration, unavailable stores, timeouts and aborts.
 */

/** The stable codes of {@link RateSyncError}. Match on these, never on messages. */
export type RateSyncErrorCode =
  /** The configuration (file or programmatic) has one or more problems; see `issues`. */
  | "CONFIG_INVALID"
  /** The configuration file named by `RATESYNC_CONFIG` or `loadConfig(path)` does not exist. */
  | "CONFIG_NOT_FOUND"
  /** No limiter with that id is configured. */
  | "LIMITER_NOT_FOUND"
  /** No store with that id is configured. */
  | "STORE_NOT_FOUND"
  /** The engine package a store needs (for example `@ratesync/redis`) is not installed. */
  | "ENGINE_NOT_INSTALLED"
  /** The store could not answer and the limiter is fail-closed. */
  | "STORE_UNAVAILABLE"
  /** A waiting acquire reached its timeout, or was predicted to pass it. */
  | "ACQUIRE_TIMEOUT"
  /** A waiting acquire was ended by its `AbortSignal`. */
  | "ABORTED"
  /** The call's cost can never be admitted: it is larger than the burst or the window limit. */
  | "COST_EXCEEDS_CAPACITY"
  /** The key given to a call is not usable (not a string, empty, or too long). */
  | "INVALID_KEY"
  /** A call received an argument that is not usable (a cost, a timeout, an option). */
  | "INVALID_ARGUMENT"
  /** A held slot's lease could not be renewed and may now belong to someone else. */
  | "LEASE_LOST"
  /** An engine-level failure (connection, protocol, capacity); the failure policy decides what callers see. */
  | "STORE_ERROR";

const BRAND = Symbol.for("@ratesync/core/RateSyncError");

/** Options accepted by the {@link RateSyncError} constructor. */
export interface RateSyncErrorOptions {
  /** The underlying error, kept as the standard `cause`. */
  cause?: unknown;
  /** Extra structured details (for example the limiter id or the config issues). */
  details?: Readonly<Record<string, unknown>>;
}

/**
 * The one error class of ratesync.
 *
 * Use {@link isRateSyncError} rather than `instanceof`: the check works across two copies of the
 * package (an ESM and a CJS copy in one process, or two versions in one dependency tree).
 *
 * @example
 * ```ts
 * try {
 *   await acquire("api", { timeout: 1 });
 * } catch (error) {
 *   if (isRateSyncError(error, "ACQUIRE_TIMEOUT")) retryLater();
 *   else throw error;
 * }
 * ```
 */
export class RateSyncError extends Error {
  /** The stable code of this error. */
  readonly code: RateSyncErrorCode;
  /** Structured details about the failure, when there are any. */
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(code: RateSyncErrorCode, message: string, options: RateSyncErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "RateSyncError";
    this.code = code;
    this.details = options.details;
    Object.defineProperty(this, BRAND, { value: true });
  }
}

/**
 * Whether `value` is a {@link RateSyncError} (from any copy of `@ratesync/core`), optionally with
 * the given code.
 */
export function isRateSyncError<C extends RateSyncErrorCode>(
  value: unknown,
  code?: C,
): value is RateSyncError & { code: C } {
  if (typeof value !== "object" || value === null) return false;
  if ((value as Record<symbol, unknown>)[BRAND] !== true) return false;
  return code === undefined || (value as RateSyncError).code === code;
}

/** Describes a value for an error message: strings quoted, everything else by its type and value. */
export function describeValue(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value.length > 80 ? `${value.slice(0, 77)}...` : value);
  if (typeof value === "number") return Number.isNaN(value) ? "NaN" : String(value);
  if (value === null) return "null";
  if (value === undefined) return "undefined";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") return "an object";
  return `${typeof value} ${String(value)}`;
}
