import { isRateSyncError, RateSyncError } from "@ratesync/core";
import {
  type HttpCheck,
  type HttpLimitOptions,
  HttpRateLimit,
  type HttpRequestView,
  type HttpResponseSpec,
  isRateLimitError,
  problemResponse,
  RateLimitError,
  type RateLimitInfo,
  serviceUnavailable,
} from "@ratesync/core/http";
import type { ErrorRequestHandler, NextFunction, Request, RequestHandler, Response } from "express";

declare global {
  namespace Express {
    interface Request {
      /** The decisions of the ratesync limit applied to this request; `undefined` when none applied. */
      rateLimit?: RateLimitInfo | undefined;
    }
  }
}

/** Options of {@link rateLimit}: the shared HTTP options, with the Express request as the request. */
export interface ExpressRateLimitOptions extends HttpLimitOptions<Request> {
  /**
   * `"reply"` answers refusals (429, 503, 400, RFC 9457 body) from the middleware; `"next"` passes
   * a {@link RateLimitError} to `next(error)` instead, for your error handlers (put
   * {@link rateLimitErrorHandler} among them to answer it as the default would).
   * @default "reply"
   */
  readonly onRefused?: "reply" | "next" | undefined;
}

/** What the shared layer reads of an Express request (a class: no closure per request). */
class ExpressRequestView implements HttpRequestView<Request> {
  readonly native: Request;
  readonly path: string;
  readonly remoteAddress: string | undefined;

  constructor(req: Request) {
    this.native = req;
    // The full path (not relative to a router's mount point), without the query.
    const url = req.originalUrl ?? req.url;
    const query = url.indexOf("?");
    this.path = query < 0 ? url : url.slice(0, query);
    // The socket peer, not req.ip: proxies are trusted by ratesync's own options only.
    this.remoteAddress = req.socket?.remoteAddress;
  }

  /** A request header as one string (several values joined the way HTTP joins them). */
  header(name: string): string | undefined {
    const value = this.native.headers[name];
    return Array.isArray(value) ? value.join(", ") : value;
  }
}

/** Writes a response the layer answered: status, headers and the serialised body, as given. */
export function sendResponse(res: Response, spec: HttpResponseSpec): void {
  res.statusCode = spec.status;
  for (const [name, value] of spec.headers) res.setHeader(name, value);
  // res.end rather than res.send: Express would append a charset and compute an ETag.
  res.setHeader("content-length", Buffer.byteLength(spec.body));
  res.end(spec.body);
}

/**
 * Express middleware (Express 4.21+ and 5) applying ratesync limiters, for a whole app
 * (`app.use(rateLimit(...))`) or one route (`app.post("/login", rateLimit(...), handler)`).
 * Refusals are 429 with `Retry-After` and an RFC 9457 body; admitted responses carry
 * `RateLimit-Policy`/`RateLimit` headers; a fail-closed store outage answers 503. Handlers read
 * `req.rateLimit`. With `maxConcurrent`, the slot is released once the response is finished, the
 * handler failed, or the client went away.
 *
 * @example
 * ```ts
 * import { configureLimiter, configureStore } from "@ratesync/core";
 * import { rateLimit, rateLimitErrorHandler } from "@ratesync/express";
 * import express from "express";
 *
 * configureStore("local", { engine: "memory" });
 * configureLimiter("api", { store: "local", ratePerSecond: 10, burst: 20 });
 *
 * const app = express();
 * app.use(rateLimit({ limiter: "api", excludePaths: [/^\/health$/] }));
 * app.get("/hello", (req, res) => res.json({ remaining: req.rateLimit?.decisions[0]?.remaining }));
 * app.use(rateLimitErrorHandler());
 * ```
 */
export function rateLimit(options: ExpressRateLimitOptions): RequestHandler {
  const limit = new HttpRateLimit<Request>(options);
  const passOn = options.onRefused === "next";
  if (options.onRefused !== undefined && options.onRefused !== "reply" && !passOn) {
    throw new RateSyncError(
      "INVALID_ARGUMENT",
      `@ratesync/express: onRefused must be "reply" or "next", got ${JSON.stringify(options.onRefused)}.`,
    );
  }
  return function ratesyncRateLimit(req: Request, res: Response, next: NextFunction): void {
    // Errors go to next, thrown or rejected: Express 4 does not catch async errors.
    limit.checkThen(new ExpressRequestView(req), (outcome) => apply(outcome, req, res, next, passOn), next);
  };
}

/** Applies the outcome of a check to the request and response: the middleware's work once decided. */
function apply(outcome: HttpCheck, req: Request, res: Response, next: NextFunction, passOn: boolean): void {
  if (outcome.action === "skip") {
    next();
    return;
  }
  if (outcome.action === "refuse") {
    if (passOn) {
      next(new RateLimitError(outcome.kind, outcome.response, outcome.decisions));
      return;
    }
    sendResponse(res, outcome.response);
    return;
  }
  req.rateLimit = outcome.info;
  for (const [name, value] of outcome.headers) res.setHeader(name, value);
  // "close" comes once the response is finished, or when the client goes away first.
  if (outcome.holdsSlots) res.once("close", () => void outcome.release());
  next();
}

/** Options of {@link rateLimitErrorHandler}. */
export interface RateLimitErrorHandlerOptions {
  /** `Retry-After` of the 503 answered for a `STORE_UNAVAILABLE` error, in seconds. @default 5 */
  readonly unavailableRetryAfterSeconds?: number | undefined;
}

/**
 * An Express error handler for ratesync's errors: a {@link RateLimitError} (from `onRefused:
 * "next"`) gets its response; a `STORE_UNAVAILABLE` error thrown by your own `acquire` calls (a
 * fail-closed limiter whose store is down) gets a 503 problem with `Retry-After` and no backend
 * detail. Every other error goes on to the next error handler.
 */
export function rateLimitErrorHandler(options: RateLimitErrorHandlerOptions = {}): ErrorRequestHandler {
  const retryAfter = options.unavailableRetryAfterSeconds ?? 5;
  return function ratesyncErrorHandler(error: unknown, _req: Request, res: Response, next: NextFunction): void {
    if (res.headersSent) {
      next(error);
    } else if (isRateLimitError(error)) {
      sendResponse(res, error.response);
    } else if (isRateSyncError(error, "STORE_UNAVAILABLE")) {
      sendResponse(res, problemResponse(serviceUnavailable(retryAfter), [["retry-after", String(retryAfter)]]));
    } else {
      next(error);
    }
  };
}
