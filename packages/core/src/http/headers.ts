/**
 * Rate limit response headers, in the format of the latest IETF draft
 * (draft-ietf-httpapi-ratelimit-headers: `RateLimit-Policy` and `RateLimit`, one named item per
 * policy) or, on request, an older draft's or the legacy `X-RateLimit-*` set.
 *
 * Every number comes from a store decision: nothing is estimated. A policy the store did not
 * speak for in this request (a degraded decision, or a refusal by another policy) is still listed
 * in `RateLimit-Policy` but gets no `RateLimit` item. No key (IP, user id) ever appears in a header:
 * policies are named after their limiter.
 */

import type { Decision, StoreDecision } from "../decision.js";
import { describeValue, RateSyncError } from "../errors.js";
import type { LimiterConfig } from "../options.js";
import { rateCapacity } from "../policy.js";

/**
 * Which rate limit headers responses carry:
 * - `"ietf"`: the latest IETF draft: `RateLimit-Policy: "api";q=100;w=60` and
 *   `RateLimit: "api";r=42;t=17`, one item per policy (a limiter with `maxConcurrent` adds an item
 *   with `qu="concurrent-requests"`);
 * - `"draft-7"`: `RateLimit: limit=100, remaining=42, reset=17` and `RateLimit-Policy: 100;w=60`;
 * - `"draft-6"`: `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset`, `RateLimit-Policy`;
 * - `"legacy"`: `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` (epoch seconds);
 * - `false`: none (a 429 still carries `Retry-After`).
 *
 * The single-policy formats (draft-7, draft-6, legacy) report the policy closest to refusing.
 */
export type RateLimitHeaderMode = "ietf" | "draft-7" | "draft-6" | "legacy" | false;

/** Every accepted {@link RateLimitHeaderMode}. */
export const RATE_LIMIT_HEADER_MODES: readonly RateLimitHeaderMode[] = ["ietf", "draft-7", "draft-6", "legacy", false];

/** Response headers as name/value pairs, names in lower case. */
export type HeaderList = Array<readonly [string, string]>;

/** Checks a header mode option; throws an `INVALID_ARGUMENT` error naming a bad one. */
export function checkHeaderMode(mode: unknown): RateLimitHeaderMode {
  if (mode === undefined) return "ietf";
  if (!RATE_LIMIT_HEADER_MODES.includes(mode as RateLimitHeaderMode)) {
    throw new RateSyncError(
      "INVALID_ARGUMENT",
      `headers must be one of "ietf", "draft-7", "draft-6", "legacy" or false, got ${describeValue(mode)}.`,
    );
  }
  return mode as RateLimitHeaderMode;
}

/** One limiter's part in a response: its configuration and the decision taken for this request. */
export interface PolicyReport {
  /** The limiter's configuration (its id names the policy). */
  readonly config: LimiterConfig;
  /** The decision for this request; `undefined` when the limiter was not asked. */
  readonly decision: Decision | undefined;
  /** The store's time of the decision, epoch ms (to turn `resetAt` into seconds from now). */
  readonly now: number;
}

/** Whole seconds, rounded up, so a client that waits that long is never early. */
export function secondsUntil(ms: number): number {
  return Math.max(0, Math.ceil(ms / 1000 - 1e-9));
}

/** An sf-string: the limiter id in double quotes, `\` and `"` escaped, non-ASCII dropped. */
function sfString(text: string): string {
  return `"${text.replace(/[^\x20-\x7e]/g, "").replace(/["\\]/g, "\\$&")}"`;
}

interface PolicyParts {
  /** The rate policy's name as an sf-string. */
  readonly rateName: string;
  /** The concurrency policy's name as an sf-string. */
  readonly slotName: string;
  readonly rateItem: string | undefined;
  readonly slotItem: string | undefined;
  readonly rateQuota: number | undefined;
  readonly rateWindow: number | undefined;
}

/** Built once per limiter configuration: the policy text never changes between requests. */
const policyCache = new WeakMap<LimiterConfig, PolicyParts>();

function policyParts(config: LimiterConfig): PolicyParts {
  let parts = policyCache.get(config);
  if (parts !== undefined) return parts;
  const { rate, concurrency } = config.policy;
  const rateQuota = rate === undefined ? undefined : rateCapacity(rate);
  const rateWindow =
    rate === undefined
      ? undefined
      : Math.max(
          1,
          Math.ceil((rate.algorithm === "token_bucket" ? rate.burst * rate.intervalMs : rate.windowMs) / 1000),
        );
  const rateName = sfString(config.id);
  const slotName = sfString(rate === undefined ? config.id : `${config.id}-concurrency`);
  parts = {
    rateName,
    slotName,
    rateItem: rate === undefined ? undefined : `${rateName};q=${rateQuota};w=${rateWindow}`,
    slotItem:
      concurrency === undefined ? undefined : `${slotName};q=${concurrency.maxConcurrent};qu="concurrent-requests"`,
    rateQuota,
    rateWindow,
  };
  policyCache.set(config, parts);
  return parts;
}

/** The numbers one policy reports for this request. */
interface Numbers {
  readonly limit: number;
  readonly remaining: number;
  /** Seconds until the quota is full again (or, for a refusal, until a retry can pass). */
  readonly reset: number;
  readonly resetAt: number;
  readonly window: number | undefined;
}

/** The decision of `report` when it speaks for the rate policy (not degraded, not a concurrency refusal). */
function rateDecision(report: PolicyReport, parts: PolicyParts): StoreDecision | undefined {
  const decision = report.decision;
  if (decision === undefined || decision.degraded || parts.rateQuota === undefined) return undefined;
  return decision.policy.kind === "concurrency" ? undefined : decision;
}

/** Seconds until the rate quota is full again, or for a refusal until a retry can pass. */
function rateReset(decision: StoreDecision, now: number): number {
  return decision.allowed ? secondsUntil(decision.resetAt - now) : secondsUntil(decision.retryAfterMs);
}

/** The rate policy's numbers, when the decision speaks for it. */
function rateNumbers(report: PolicyReport, parts: PolicyParts): Numbers | undefined {
  const decision = rateDecision(report, parts);
  if (decision === undefined) return undefined;
  return {
    limit: parts.rateQuota as number,
    remaining: decision.remaining,
    reset: rateReset(decision, report.now),
    resetAt: decision.allowed ? decision.resetAt : report.now + decision.retryAfterMs,
    window: parts.rateWindow,
  };
}

/** The concurrency policy's numbers, when the limiter has one and the decision reports it. */
function slotNumbers(report: PolicyReport): Numbers | undefined {
  const decision = report.decision;
  if (decision === undefined || decision.degraded || decision.concurrency === undefined) return undefined;
  const refused = !decision.allowed && decision.policy.kind === "concurrency";
  return {
    limit: decision.concurrency.limit,
    remaining: decision.concurrency.remaining,
    reset: refused ? secondsUntil(decision.retryAfterMs) : 0,
    resetAt: refused ? report.now + decision.retryAfterMs : report.now,
    window: undefined,
  };
}

/** The policy closest to refusing: the lowest share of its quota left, a refusal first. */
function tightest(reports: readonly PolicyReport[]): Numbers | undefined {
  let best: Numbers | undefined;
  for (const report of reports) {
    const parts = policyParts(report.config);
    for (const numbers of [rateNumbers(report, parts), slotNumbers(report)]) {
      if (numbers === undefined) continue;
      if (best === undefined || numbers.remaining / numbers.limit < best.remaining / best.limit) best = numbers;
    }
  }
  return best;
}

/**
 * The rate limit headers for the policies applied to one request, in the chosen format.
 * Appends to `out` and returns it.
 */
export function rateLimitHeaders(
  mode: RateLimitHeaderMode,
  reports: readonly PolicyReport[],
  out: HeaderList = [],
): HeaderList {
  if (mode === false || reports.length === 0) return out;
  if (mode === "ietf") {
    const only = reports.length === 1 ? (reports[0] as PolicyReport) : undefined;
    if (only !== undefined && only.config.policy.concurrency === undefined) {
      // One rate limiter, the common case: no lists to build.
      const parts = policyParts(only.config);
      out.push(["ratelimit-policy", parts.rateItem as string]);
      const decision = rateDecision(only, parts);
      if (decision !== undefined) {
        out.push(["ratelimit", `${parts.rateName};r=${decision.remaining};t=${rateReset(decision, only.now)}`]);
      }
      return out;
    }
    const policies: string[] = [];
    const current: string[] = [];
    for (const report of reports) {
      const parts = policyParts(report.config);
      if (parts.rateItem !== undefined) {
        policies.push(parts.rateItem);
        const numbers = rateNumbers(report, parts);
        if (numbers !== undefined) current.push(`${parts.rateName};r=${numbers.remaining};t=${numbers.reset}`);
      }
      if (parts.slotItem !== undefined) {
        policies.push(parts.slotItem);
        const numbers = slotNumbers(report);
        if (numbers !== undefined) {
          current.push(`${parts.slotName};r=${numbers.remaining}${numbers.reset > 0 ? `;t=${numbers.reset}` : ""}`);
        }
      }
    }
    out.push(["ratelimit-policy", policies.join(", ")]);
    if (current.length > 0) out.push(["ratelimit", current.join(", ")]);
    return out;
  }
  const numbers = tightest(reports);
  if (mode === "legacy") {
    if (numbers === undefined) return out;
    out.push(["x-ratelimit-limit", String(numbers.limit)]);
    out.push(["x-ratelimit-remaining", String(numbers.remaining)]);
    out.push(["x-ratelimit-reset", String(Math.ceil(numbers.resetAt / 1000))]);
    return out;
  }
  const policy = reports
    .flatMap((report) => {
      const parts = policyParts(report.config);
      const { concurrency } = report.config.policy;
      return [
        parts.rateQuota === undefined ? undefined : `${parts.rateQuota};w=${parts.rateWindow}`,
        concurrency === undefined ? undefined : `${concurrency.maxConcurrent}`,
      ];
    })
    .filter((item) => item !== undefined)
    .join(", ");
  if (mode === "draft-7") {
    if (numbers !== undefined) {
      out.push(["ratelimit", `limit=${numbers.limit}, remaining=${numbers.remaining}, reset=${numbers.reset}`]);
    }
    out.push(["ratelimit-policy", policy]);
    return out;
  }
  if (numbers !== undefined) {
    out.push(["ratelimit-limit", String(numbers.limit)]);
    out.push(["ratelimit-remaining", String(numbers.remaining)]);
    out.push(["ratelimit-reset", String(numbers.reset)]);
  }
  out.push(["ratelimit-policy", policy]);
  return out;
}
