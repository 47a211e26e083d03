/**
 * The typed error adapters throw (or pass to `next`) for a request the layer answers itself, so
 * the framework's error handling can turn it into the response: a 429, a 503 or a 400.
 */

import type { Decision } from "../decision.js";
import type { RefusalKind } from "./http-limit.js";
import type { HttpResponseSpec } from "./problem.js";

const BRAND = Symbol.for("@ratesync/core/RateLimitError");

/**
 * A request refused by the HTTP layer, carrying the response to send (status, headers and the
 * RFC 9457 body). Being limited is not a failure of the application: error handlers answer it
 * with {@link RateLimitError.response} and log nothing. Recognise it with {@link isRateLimitError},
 * which works across two copies of the package.
 *
 * @example
 * ```ts
 * const error = new RateLimitError("limited", { status: 429, headers: [["retry-after", "1"]], body: "{}" }, []);
 * console.log(isRateLimitError(error), error.statusCode); // true 429
 * ```
 */
export class RateLimitError extends Error {
  /** Why the request was refused. */
  readonly kind: RefusalKind;
  /** The response to send. */
  readonly response: HttpResponseSpec;
  /** The HTTP status (read by Fastify and Express when no handler answers the error). */
  readonly statusCode: number;
  /** Same as `statusCode`, for frameworks that read `status`. */
  readonly status: number;
  /** The decisions behind a `limited` refusal. */
  readonly decisions: readonly Decision[];

  constructor(kind: RefusalKind, response: HttpResponseSpec, decisions: readonly Decision[]) {
    super(
      kind === "limited"
        ? "Too many requests: the rate limit is reached."
        : kind === "unavailable"
          ? "The rate limiter's store is unavailable and the limiter is fail-closed."
          : "The client address of the request cannot be determined.",
    );
    this.name = "RateLimitError";
    this.kind = kind;
    this.response = response;
    this.statusCode = response.status;
    this.status = response.status;
    this.decisions = decisions;
    Object.defineProperty(this, BRAND, { value: true });
  }
}

/** Whether `value` is a {@link RateLimitError} from any copy of `@ratesync/core`. */
export function isRateLimitError(value: unknown): value is RateLimitError {
  return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
}
