/**
 * `@ratesync/hono`: Hono middleware for ratesync rate and concurrency limits, with the latest
 * IETF RateLimit headers and RFC 9457 refusals. Runs on Node.js and edge runtimes alike.
 *
 * @packageDocumentation
 */

export type {
  ClientAddressOptions,
  HttpResponseSpec,
  LimitSpec,
  RateLimitHeaderMode,
  RateLimitInfo,
  RefusalContext,
} from "@ratesync/core/http";
export { defaultAddress, type HonoRateLimitOptions, rateLimit, toResponse } from "./middleware.js";
