/**
 * `@ratesync/fastify`: the Fastify plugin for ratesync rate and concurrency limits: route config,
 * a global limit, preHandler guards, the latest IETF RateLimit headers and RFC 9457 refusals.
 *
 * @packageDocumentation
 */

import { ratesync } from "./plugin.js";

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
  type FastifyRateLimitOptions,
  type FastifyRouteRateLimit,
  type RatesyncFastifyOptions,
  type RefusalMode,
  ratesync,
  sendRateLimitError,
} from "./plugin.js";

/** The plugin, as the default export too (Fastify's convention). */
export default ratesync;
