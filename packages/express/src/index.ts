/**
 * `@ratesync/express`: Express middleware (Express 4.21+ and 5) for ratesync rate and concurrency
 * limits, with the latest IETF RateLimit headers and RFC 9457 refusals, and an error handler.
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
export { isRateLimitError, RateLimitError } from "@ratesync/core/http";
export {
  type ExpressRateLimitOptions,
  type RateLimitErrorHandlerOptions,
  rateLimit,
  rateLimitErrorHandler,
  sendResponse,
} from "./middleware.js";
