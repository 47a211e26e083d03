/**
 * `@ratesync/core/http`: the HTTP layer the Fastify, Express and Hono adapters share. Client
 * identity (trusted proxies, forwarded-for chains, IPv6 grouping), rate limit headers (latest IETF
 * draft by default), RFC 9457 problem bodies, and the decision of a request against one or
 * several limiters. Runtime-agnostic: no Node.js import.
 *
 * @packageDocumentation
 */

export {
  type AddressSource,
  type ClientAddress,
  type ClientAddressOptions,
  type ClientAddressResolver,
  createClientAddressResolver,
  DEFAULT_IPV6_PREFIX,
  type ForwardedHeader,
  parseForwardedFor,
  parseXForwardedFor,
} from "./client-address.js";
export {
  checkHeaderMode,
  type HeaderList,
  type PolicyReport,
  RATE_LIMIT_HEADER_MODES,
  type RateLimitHeaderMode,
  rateLimitHeaders,
  secondsUntil,
} from "./headers.js";
export {
  createHttpRateLimit,
  type FromRequest,
  type HttpAllow,
  type HttpCheck,
  type HttpLimitOptions,
  HttpRateLimit,
  type HttpRefuse,
  type HttpRequestView,
  type HttpSkip,
  type LimitSpec,
  type LimitTarget,
  type RateLimitInfo,
  type RefusalContext,
  type RefusalKind,
} from "./http-limit.js";
export {
  clientKeyOf,
  formatIp,
  type IpAddress,
  type IpRange,
  inIpRange,
  NAMED_IP_RANGES,
  parseIp,
  parseIpRanges,
} from "./ip.js";
export {
  clientUnknown,
  type HttpResponseSpec,
  PROBLEM_CONTENT_TYPE,
  type ProblemDetails,
  problemResponse,
  serviceUnavailable,
  tooManyRequests,
} from "./problem.js";
export { isRateLimitError, RateLimitError } from "./rate-limit-error.js";
