/**
 * The HTTP layer every adapter shares: from a request to "let it through, with these headers,
 * and release this when the response is done" or "answer this response". Runtime-agnostic
 * (no Node.js import), so the Hono adapter runs it on edge runtimes; the adapters are glue.
 */

import type { Decision, StoreDecision } from "../decision.js";
import { defaultRateSync } from "../default-registry.js";
import { describeValue, isRateSyncError, RateSyncError } from "../errors.js";
import type { Limiter } from "../limiter.js";
import type { RateSync } from "../rate-sync.js";
import type { Slot } from "../slot.js";
import { decisionTime } from "../store-decision.js";
import {
  type AddressSource,
  type ClientAddressOptions,
  type ClientAddressResolver,
  createClientAddressResolver,
} from "./client-address.js";
import {
  checkHeaderMode,
  type HeaderList,
  type PolicyReport,
  type RateLimitHeaderMode,
  rateLimitHeaders,
  secondsUntil,
} from "./headers.js";
import {
  clientUnknown,
  type HttpResponseSpec,
  problemResponse,
  serviceUnavailable,
  tooManyRequests,
} from "./problem.js";

/** Something computed from the request, synchronously or not. */
export type FromRequest<R, T> = (request: R) => T | Promise<T>;

/**
 * One limiter applied to a route, with its own key and cost when they differ from the route's
 * (per IP and per user on one route, for example).
 */
export interface LimitSpec<R> {
  /** The limiter id (configured with `configureLimiter` or `rate-sync.toml`). */
  readonly limiter: string;
  /** This limiter's key; `undefined` from the function means the client IP. @default the route's `key` */
  readonly key?: FromRequest<R, string | undefined> | undefined;
  /** This limiter's cost. @default the route's `cost` */
  readonly cost?: number | FromRequest<R, number> | undefined;
}

/** What a route limits with: one limiter id, one {@link LimitSpec}, or several (all must admit). */
export type LimitTarget<R> = string | LimitSpec<R> | readonly (string | LimitSpec<R>)[];

/** Why the layer answered a request itself. */
export type RefusalKind = "limited" | "unavailable" | "no-address";

/** What a custom refusal receives besides the default response. */
export interface RefusalContext<R> {
  /** `limited` (429), `unavailable` (503, fail-closed store outage), `no-address` (400). */
  readonly kind: RefusalKind;
  /** The framework's request (Fastify request, Express request, Hono context). */
  readonly request: R;
  /** The decisions taken, for `limited`; empty otherwise. */
  readonly decisions: readonly Decision[];
  /** Seconds the client should wait (the `Retry-After` value); `undefined` for `no-address`. */
  readonly retryAfterSeconds: number | undefined;
}

/** Options every adapter accepts, for the app, a route or a guard. */
export interface HttpLimitOptions<R> {
  /** Which limiter(s): an id, a {@link LimitSpec}, or a list (checked so a refusal by one charges none). */
  readonly limiter: LimitTarget<R>;
  /** The registry the limiters live in. @default the default registry (top-level `configureLimiter`) */
  readonly rateSync?: RateSync | undefined;
  /**
   * The key: a function of the request (user id, API key, tenant). Returning `undefined` falls
   * back to the client IP.
   * @default the client IP, see `clientAddress`
   */
  readonly key?: FromRequest<R, string | undefined> | undefined;
  /** Cost of one request (a whole number >= 0), or a function of the request. @default 1 */
  readonly cost?: number | FromRequest<R, number> | undefined;
  /** Requests for which this returns true are not limited (and get no headers). */
  readonly skip?: FromRequest<R, boolean> | undefined;
  /** Paths (without the query string) matching any of these are not limited, as the seed's `exclude_paths`. */
  readonly excludePaths?: readonly RegExp[] | undefined;
  /** Which rate limit headers to send. @default "ietf" */
  readonly headers?: RateLimitHeaderMode | undefined;
  /** How the client IP is found: trusted proxies, forwarded header, IPv6 grouping. */
  readonly clientAddress?: ClientAddressOptions | undefined;
  /**
   * A request whose client address cannot be determined (and whose key is the IP): `"refuse"`
   * answers 400; `"allow"` lets it through unlimited. Never a shared "unknown" budget.
   * @default "refuse"
   */
  readonly noAddress?: "refuse" | "allow" | undefined;
  /** `Retry-After` of the 503 answered when a fail-closed store is unavailable, in seconds. @default 5 */
  readonly unavailableRetryAfterSeconds?: number | undefined;
  /**
   * Changes the responses the layer answers itself (429, 503, 400): receives the default one
   * (an RFC 9457 problem) and returns the one to send.
   */
  readonly refusal?:
    | ((response: HttpResponseSpec, context: RefusalContext<R>) => HttpResponseSpec | Promise<HttpResponseSpec>)
    | undefined;
}

/** What an adapter knows of a request: the framework's object, the path, headers and the peer. */
export interface HttpRequestView<R> extends AddressSource {
  /** The framework's request object, passed to key, cost and skip functions. */
  readonly native: R;
  /** The path, without the query string. */
  readonly path: string;
}

/** What handlers can read about the limit applied to their request (`request.rateLimit`). */
export interface RateLimitInfo {
  /** One decision per limiter, in the order the limiters were given. */
  readonly decisions: readonly Decision[];
  /** Whether any decision was taken without the store (fail-open outage). */
  readonly degraded: boolean;
}

/** Let the request through: set these headers, and call `release` once when the response is done. */
export interface HttpAllow {
  readonly action: "allow";
  /** Rate limit headers to set on the response. */
  readonly headers: HeaderList;
  /** The decisions, for handlers. */
  readonly info: RateLimitInfo;
  /** Whether any decision holds a concurrency slot (`release` then matters). */
  readonly holdsSlots: boolean;
  /** Gives back the concurrency slots held for the request. Idempotent. */
  release(): Promise<void>;
}

/** Answer the request with `response`; the handler does not run. */
export interface HttpRefuse {
  readonly action: "refuse";
  /** Why. */
  readonly kind: RefusalKind;
  /** The response to send. */
  readonly response: HttpResponseSpec;
  /** The decisions taken (for `limited`); empty otherwise. */
  readonly decisions: readonly Decision[];
}

/** The request is excluded (path or `skip`): let it through untouched. */
export interface HttpSkip {
  readonly action: "skip";
}

/** The outcome of {@link HttpRateLimit.check}. */
export type HttpCheck = HttpAllow | HttpRefuse | HttpSkip;

const SKIP: HttpSkip = Object.freeze({ action: "skip" });
const NOTHING_TO_RELEASE = (): Promise<void> => Promise.resolve();

interface NormalisedSpec<R> {
  readonly limiter: string;
  readonly key: FromRequest<R, string | undefined> | undefined;
  readonly cost: number | FromRequest<R, number> | undefined;
}

function invalid(message: string): RateSyncError {
  return new RateSyncError("INVALID_ARGUMENT", message);
}

function normaliseTargets<R>(options: HttpLimitOptions<R>): NormalisedSpec<R>[] {
  const raw = options.limiter;
  const list = Array.isArray(raw) ? (raw as readonly (string | LimitSpec<R>)[]) : [raw as string | LimitSpec<R>];
  if (list.length === 0) throw invalid("limiter must name at least one limiter id.");
  return list.map((entry) => {
    const spec: LimitSpec<R> = typeof entry === "string" ? { limiter: entry } : entry;
    if (typeof spec !== "object" || spec === null || typeof spec.limiter !== "string" || spec.limiter === "") {
      throw invalid(
        `limiter must be a limiter id, { limiter, key?, cost? }, or a list of them; got ${describeValue(entry)}.`,
      );
    }
    checkCostOption(spec.cost, `the cost of limiter "${spec.limiter}"`);
    if (spec.key !== undefined && typeof spec.key !== "function") {
      throw invalid(
        `the key of limiter "${spec.limiter}" must be a function of the request, got ${describeValue(spec.key)}.`,
      );
    }
    return { limiter: spec.limiter, key: spec.key ?? options.key, cost: spec.cost ?? options.cost };
  });
}

function checkCostOption(cost: unknown, what: string): void {
  if (cost === undefined || typeof cost === "function") return;
  if (typeof cost !== "number" || !Number.isSafeInteger(cost) || cost < 0) {
    throw invalid(`${what} must be a whole number >= 0 or a function of the request, got ${describeValue(cost)}.`);
  }
}

function checkOptions<R>(options: HttpLimitOptions<R>): void {
  if (typeof options !== "object" || options === null) {
    throw invalid(
      `The rate limit options must be an object with at least a limiter id, got ${describeValue(options)}.`,
    );
  }
  checkCostOption(options.cost, "cost");
  if (options.key !== undefined && typeof options.key !== "function") {
    throw invalid(`key must be a function of the request, got ${describeValue(options.key)}.`);
  }
  if (options.skip !== undefined && typeof options.skip !== "function") {
    throw invalid(`skip must be a function of the request, got ${describeValue(options.skip)}.`);
  }
  if (options.refusal !== undefined && typeof options.refusal !== "function") {
    throw invalid(`refusal must be a function (response, context) => response, got ${describeValue(options.refusal)}.`);
  }
  if (options.noAddress !== undefined && options.noAddress !== "refuse" && options.noAddress !== "allow") {
    throw invalid(`noAddress must be "refuse" or "allow", got ${describeValue(options.noAddress)}.`);
  }
  const excluded = options.excludePaths;
  if (excluded !== undefined && (!Array.isArray(excluded) || !excluded.every((entry) => entry instanceof RegExp))) {
    throw invalid(
      `excludePaths must be a list of regular expressions (for example [/^\\/health$/]), got ${describeValue(excluded)}.`,
    );
  }
  const retry = options.unavailableRetryAfterSeconds;
  if (retry !== undefined && (typeof retry !== "number" || !Number.isSafeInteger(retry) || retry < 0)) {
    throw invalid(`unavailableRetryAfterSeconds must be a whole number of seconds >= 0, got ${describeValue(retry)}.`);
  }
}

/** A limiter and what one request asks of it. */
interface Ask {
  readonly limiter: Limiter;
  readonly key: string;
  readonly cost: number;
}

/**
 * The shared HTTP rate limit: built once per middleware, guard or route, with its options
 * checked at once (a bad option throws `INVALID_ARGUMENT` naming it); then {@link check} per request.
 *
 * @example
 * ```ts
 * const limit = new HttpRateLimit<Request>({ limiter: "api" });
 * const request = new Request("http://localhost/");
 * const outcome = await limit.check({ native: request, path: "/", remoteAddress: "192.0.2.1", header: (name) => request.headers.get(name) ?? undefined });
 * if (outcome.action === "refuse") console.log(outcome.response.status); // 429 once the budget is spent
 * ```
 */
export class HttpRateLimit<R> {
  readonly #specs: readonly NormalisedSpec<R>[];
  readonly #rateSync: RateSync | undefined;
  readonly #skip: FromRequest<R, boolean> | undefined;
  readonly #excluded: readonly RegExp[];
  readonly #mode: RateLimitHeaderMode;
  readonly #resolve: ClientAddressResolver;
  readonly #noAddress: "refuse" | "allow";
  readonly #unavailableRetry: number;
  readonly #refusal: HttpLimitOptions<R>["refusal"];
  /** Set when the fast path applies: one limiter, the client IP as key, a fixed cost, no skip. */
  readonly #simple: { readonly limiter: string; readonly cost: number } | undefined;

  constructor(options: HttpLimitOptions<R>) {
    checkOptions(options);
    this.#specs = normaliseTargets(options);
    this.#rateSync = options.rateSync;
    this.#skip = options.skip;
    // Without the global or sticky flag: `test` must not carry state from one request to the next.
    this.#excluded = (options.excludePaths ?? []).map((pattern) =>
      pattern.global || pattern.sticky ? new RegExp(pattern.source, pattern.flags.replace(/[gy]/g, "")) : pattern,
    );
    this.#mode = checkHeaderMode(options.headers);
    this.#resolve = createClientAddressResolver(options.clientAddress);
    this.#noAddress = options.noAddress ?? "refuse";
    this.#unavailableRetry = options.unavailableRetryAfterSeconds ?? 5;
    this.#refusal = options.refusal;
    const only = this.#specs.length === 1 ? this.#specs[0] : undefined;
    this.#simple =
      only !== undefined && only.key === undefined && typeof only.cost !== "function" && this.#skip === undefined
        ? { limiter: only.limiter, cost: only.cost ?? 1 }
        : undefined;
  }

  /** The limiter ids this rate limit applies, in order. */
  get limiters(): readonly string[] {
    return this.#specs.map((spec) => spec.limiter);
  }

  /**
   * Decides one request. Rejects only for what no response can fix: a limiter that does not
   * exist, a key or cost the limiter refuses as invalid, or an exception of a user function;
   * adapters pass those to the framework's error handling.
   */
  check(view: HttpRequestView<R>): Promise<HttpCheck> {
    try {
      return Promise.resolve(this.checkNow(view));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * {@link check}, answering synchronously when nothing has to wait: an excluded path, or the
   * common case (one limiter keyed by client IP, a fixed cost, no skip function) on a store that
   * decides in process (the memory engine). A promise otherwise. Throws, or rejects, for what
   * `check` rejects for. Adapters call it so that a request costs no promise it does not need.
   */
  checkNow(view: HttpRequestView<R>): HttpCheck | Promise<HttpCheck> {
    for (const pattern of this.#excluded) if (pattern.test(view.path)) return SKIP;
    const simple = this.#simple;
    if (simple === undefined) return this.#checkAny(view);
    // The common case, without a single await before the store.
    const client = this.#resolve(view);
    if (client === undefined) return this.#noClient(view.native);
    const limiter = (this.#rateSync ?? defaultRateSync()).getLimiter(simple.limiter);
    let decision: Decision | Promise<Decision>;
    try {
      decision = limiter.tryAcquireNow({ key: client.key, cost: simple.cost });
    } catch (error) {
      return this.#failed(error, view.native);
    }
    if (decision instanceof Promise) {
      return decision.then(
        (decided) => this.#decided(limiter, decided, view.native),
        (error: unknown) => this.#failed(error, view.native),
      );
    }
    return this.#decided(limiter, decision, view.native);
  }

  /**
   * {@link checkNow} for callback-style middleware (Express, Fastify hooks): calls `onOutcome`
   * with the outcome, at once when it was decided synchronously and when its promise settles
   * otherwise; what `checkNow` throws or rejects with goes to `onError`. A request then costs no
   * promise when the store decides in process.
   */
  checkThen(
    view: HttpRequestView<R>,
    onOutcome: (outcome: HttpCheck) => void,
    onError: (error: unknown) => void,
  ): void {
    let outcome: HttpCheck | Promise<HttpCheck>;
    try {
      outcome = this.checkNow(view);
    } catch (error) {
      onError(error);
      return;
    }
    if (outcome instanceof Promise) outcome.then(onOutcome, onError);
    else onOutcome(outcome);
  }

  async #checkAny(view: HttpRequestView<R>): Promise<HttpCheck> {
    if (this.#skip !== undefined && (await this.#skip(view.native))) return SKIP;
    const asks: Ask[] = [];
    let clientKey: string | null | undefined = null;
    const registry = this.#rateSync ?? defaultRateSync();
    for (const spec of this.#specs) {
      let key = spec.key === undefined ? undefined : await spec.key(view.native);
      if (key === undefined) {
        if (clientKey === null) clientKey = this.#resolve(view)?.key;
        if (clientKey === undefined) return this.#noClient(view.native);
        key = clientKey;
      }
      const cost =
        spec.cost === undefined ? 1 : typeof spec.cost === "number" ? spec.cost : await spec.cost(view.native);
      asks.push({ limiter: registry.getLimiter(spec.limiter), key, cost });
    }
    try {
      if (asks.length === 1) {
        const ask = asks[0] as Ask;
        const decision = await ask.limiter.tryAcquire({ key: ask.key, cost: ask.cost });
        return await this.#decided(ask.limiter, decision, view.native);
      }
      return await this.#many(asks, view.native);
    } catch (error) {
      return this.#failed(error, view.native);
    }
  }

  /** No client address for a request keyed by it: refused (400) or let through, never pooled. */
  #noClient(request: R): HttpCheck | Promise<HttpCheck> {
    if (this.#noAddress === "allow") return SKIP;
    return this.#refuse("no-address", problemResponse(clientUnknown(), []), request, [], undefined);
  }

  /** A fail-closed store outage answers 503; anything else is thrown on, the framework's to handle. */
  #failed(error: unknown, request: R): HttpRefuse | Promise<HttpRefuse> {
    if (isRateSyncError(error, "STORE_UNAVAILABLE")) return this.#unavailable(request);
    throw error;
  }

  /** The outcome of one limiter's decision. */
  #decided(limiter: Limiter, decision: Decision, request: R): HttpCheck | Promise<HttpCheck> {
    const reports: PolicyReport[] = [{ config: limiter.config, decision, now: timeOf(limiter, decision) }];
    if (!decision.allowed) return this.#limited(reports, [decision], request);
    // Read `slot` only when a lease is held: on a rate-only decision it would be created for nothing.
    const holdsSlots = !decision.degraded && decision.concurrency !== undefined;
    return {
      action: "allow",
      headers: rateLimitHeaders(this.#mode, reports),
      info: { decisions: [decision], degraded: decision.degraded },
      holdsSlots,
      release: holdsSlots ? once(() => (decision.slot as Slot).release()) : NOTHING_TO_RELEASE,
    };
  }

  /**
   * Several limiters: a refusal by one must charge none of the others. Core can give back a
   * concurrency slot but not rate budget, so every limiter is first asked what it would decide
   * (a peek, which consumes nothing); only when all would admit are they charged, in order, slot
   * limiters (whose charge can be undone) before rate limiters. Should a limiter refuse in that
   * second step anyway (another request spent the budget in between), the slots taken before it
   * are released.
   */
  async #many(asks: readonly Ask[], request: R): Promise<HttpCheck> {
    const peeks = await Promise.all(asks.map((ask) => this.#peek(ask)));
    const refused = peeks.filter((peek): peek is StoreDecision => peek !== undefined && !peek.allowed);
    if (refused.length > 0) {
      const reports = asks.map((ask, index) => ({
        config: ask.limiter.config,
        decision: peeks[index],
        now: timeOf(ask.limiter, peeks[index]),
      }));
      return this.#limited(reports, refused, request);
    }
    const order = asks
      .map((_, index) => index)
      .sort((a, b) => Number(hasRate(asks[a] as Ask)) - Number(hasRate(asks[b] as Ask)));
    const decisions: Decision[] = new Array(asks.length);
    const taken: Decision[] = [];
    try {
      for (const index of order) {
        const ask = asks[index] as Ask;
        const decision = await ask.limiter.tryAcquire({ key: ask.key, cost: ask.cost });
        decisions[index] = decision;
        if (!decision.allowed) {
          await Promise.all(taken.map((admitted) => admitted.slot?.release()));
          const reports = asks.map((other, i) => ({
            config: other.limiter.config,
            decision: decisions[i] ?? peeks[i],
            now: timeOf(other.limiter, decisions[i] ?? peeks[i]),
          }));
          return this.#limited(reports, [decision], request);
        }
        taken.push(decision);
      }
    } catch (error) {
      await Promise.all(taken.map((admitted) => admitted.slot?.release()));
      throw error;
    }
    const reports = asks.map((ask, index) => ({
      config: ask.limiter.config,
      decision: decisions[index],
      now: timeOf(ask.limiter, decisions[index]),
    }));
    const held = decisions.filter((decision) => !decision.degraded && decision.concurrency !== undefined);
    return {
      action: "allow",
      headers: rateLimitHeaders(this.#mode, reports),
      info: { decisions, degraded: decisions.some((decision) => decision.degraded) },
      holdsSlots: held.length > 0,
      release:
        held.length === 0
          ? NOTHING_TO_RELEASE
          : once(async () => {
              await Promise.all(held.map((decision) => decision.slot?.release()));
            }),
    };
  }

  /** What `ask` would get now; `undefined` when the store cannot say (the acquire then applies the failure policy). */
  async #peek(ask: Ask): Promise<StoreDecision | undefined> {
    try {
      return await ask.limiter.state(ask.key, ask.cost);
    } catch (error) {
      if (!isRateSyncError(error, "STORE_UNAVAILABLE")) throw error;
      if (ask.limiter.config.failClosed) throw error;
      return undefined;
    }
  }

  #limited(
    reports: readonly PolicyReport[],
    refused: readonly Decision[],
    request: R,
  ): HttpRefuse | Promise<HttpRefuse> {
    // The longest wait of every refusal: a retry before it would be refused again.
    let retryAfter = 1;
    for (const decision of refused) retryAfter = Math.max(retryAfter, secondsUntil(decision.retryAfterMs));
    const headers = rateLimitHeaders(this.#mode, reports);
    headers.push(["retry-after", String(retryAfter)]);
    const decisions =
      reports.length === 1
        ? refused
        : reports.map((report) => report.decision).filter((decision) => decision !== undefined);
    return this.#refuse(
      "limited",
      problemResponse(tooManyRequests(retryAfter), headers),
      request,
      decisions,
      retryAfter,
    );
  }

  #unavailable(request: R): HttpRefuse | Promise<HttpRefuse> {
    const retryAfter = this.#unavailableRetry;
    const response = problemResponse(serviceUnavailable(retryAfter), [["retry-after", String(retryAfter)]]);
    return this.#refuse("unavailable", response, request, [], retryAfter);
  }

  /** The refusal, through the custom `refusal` when there is one (synchronous otherwise). */
  #refuse(
    kind: RefusalKind,
    response: HttpResponseSpec,
    request: R,
    decisions: readonly Decision[],
    retryAfterSeconds: number | undefined,
  ): HttpRefuse | Promise<HttpRefuse> {
    if (this.#refusal === undefined) return { action: "refuse", kind, response, decisions };
    return Promise.resolve(this.#refusal(response, { kind, request, decisions, retryAfterSeconds })).then(
      (custom): HttpRefuse => ({ action: "refuse", kind, response: custom, decisions }),
    );
  }
}

/**
 * The instant a decision's `resetAt` is counted from: the store's time of the decision (right
 * even when this host's clock differs from the store's), or the limiter's clock for a decision
 * taken without the store.
 */
function timeOf(limiter: Limiter, decision: Decision | undefined): number {
  return (decision === undefined ? undefined : decisionTime(decision)) ?? limiter.now();
}

function hasRate(ask: Ask): boolean {
  return ask.limiter.config.policy.rate !== undefined;
}

/** `fn` run at most once; later calls get the first call's promise. */
function once(fn: () => Promise<void>): () => Promise<void> {
  let result: Promise<void> | undefined;
  return () => {
    result ??= fn().catch(() => {});
    return result;
  };
}

/**
 * Builds the shared HTTP rate limit the adapters use. See {@link HttpLimitOptions}.
 *
 * @example
 * ```ts
 * const limit = createHttpRateLimit<{ userId?: string }>({
 *   limiter: ["per-ip", { limiter: "per-user", key: (request) => request.userId }],
 *   excludePaths: [/^\/health$/],
 *   clientAddress: { trustedProxies: 1 },
 * });
 * console.log(limit.limiters); // ["per-ip", "per-user"]
 * ```
 */
export function createHttpRateLimit<R>(options: HttpLimitOptions<R>): HttpRateLimit<R> {
  return new HttpRateLimit(options);
}
