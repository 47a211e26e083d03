/**
 * RFC 9457 problem details: the bodies of the responses the HTTP layer answers itself.
 */

import type { HeaderList } from "./headers.js";

/** The media type of RFC 9457 problem details in JSON. */
export const PROBLEM_CONTENT_TYPE = "application/problem+json";

/** An RFC 9457 problem details object, as the HTTP layer writes it. */
export interface ProblemDetails {
  /** `about:blank`: the status code says it all, `title` is its reason phrase. */
  readonly type: string;
  /** The reason phrase of `status`. */
  readonly title: string;
  /** The HTTP status. */
  readonly status: number;
  /** What happened and what to do, for a human. Never names a key or a backend. */
  readonly detail: string;
  /** Seconds to wait before retrying, as in `Retry-After` (an extension member). */
  readonly retryAfter?: number;
}

/** A response the HTTP layer answers on its own: a refusal, an outage, a request with no client address. */
export interface HttpResponseSpec {
  /** The status code. */
  readonly status: number;
  /** Headers, names in lower case (rate limit headers, `retry-after`, `content-type`). */
  readonly headers: HeaderList;
  /** The body, already serialised. */
  readonly body: string;
}

/** A problem response: the JSON body, its content type and the given headers. */
export function problemResponse(problem: ProblemDetails, headers: HeaderList): HttpResponseSpec {
  headers.push(["content-type", PROBLEM_CONTENT_TYPE]);
  let body = bodies.get(problem);
  if (body === undefined) {
    body = JSON.stringify(problem);
    if (Object.isFrozen(problem)) bodies.set(problem, body);
  }
  return { status: problem.status, headers, body };
}

/** The serialised form of the shared (frozen) problems. */
const bodies = new WeakMap<ProblemDetails, string>();

/** 429 problems by `Retry-After`: a refused client retries at a handful of distinct waits. */
const tooManyCache = new Map<number, ProblemDetails>();

/** The problem of a request refused by a limit (429). Frozen: shared between responses. */
export function tooManyRequests(retryAfterSeconds: number): ProblemDetails {
  let problem = tooManyCache.get(retryAfterSeconds);
  if (problem === undefined) {
    if (tooManyCache.size >= 1024) tooManyCache.clear();
    problem = Object.freeze(tooManyProblem(retryAfterSeconds));
    tooManyCache.set(retryAfterSeconds, problem);
  }
  return problem;
}

function tooManyProblem(retryAfterSeconds: number): ProblemDetails {
  return {
    type: "about:blank",
    title: "Too Many Requests",
    status: 429,
    detail: `Too many requests: the rate limit is reached. Retry in ${retryAfterSeconds} second${retryAfterSeconds === 1 ? "" : "s"}.`,
    retryAfter: retryAfterSeconds,
  };
}

/** The problem of a request the limiter could not decide (fail-closed store outage, 503). */
export function serviceUnavailable(retryAfterSeconds: number): ProblemDetails {
  return {
    type: "about:blank",
    title: "Service Unavailable",
    status: 503,
    detail: `The service cannot take requests right now. Retry in ${retryAfterSeconds} second${retryAfterSeconds === 1 ? "" : "s"}.`,
    retryAfter: retryAfterSeconds,
  };
}

/** The problem of a request whose client address cannot be determined (400). */
export function clientUnknown(): ProblemDetails {
  return {
    type: "about:blank",
    title: "Bad Request",
    status: 400,
    detail: "The client address of this request cannot be determined, so its rate limit cannot be applied.",
  };
}
