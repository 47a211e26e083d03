import { RateSyncError } from "@ratesync/core";
import {
  type HttpCheck,
  type HttpLimitOptions,
  HttpRateLimit,
  type HttpRequestView,
  type HttpResponseSpec,
  type LimitTarget,
  RateLimitError,
  type RateLimitInfo,
} from "@ratesync/core/http";
import type {
  FastifyInstance,
  FastifyPluginCallback,
  FastifyReply,
  FastifyRequest,
  HookHandlerDoneFunction,
  onRequestHookHandler,
} from "fastify";
import fp from "fastify-plugin";

/** What the plugin does with a refused request. */
export type RefusalMode = "reply" | "throw";

/** Options of one limit: a route's config, a guard, or the plugin's global limit. */
export interface FastifyRateLimitOptions extends HttpLimitOptions<FastifyRequest> {
  /**
   * `"reply"` answers the refusal (429, 503 or 400, RFC 9457 body) from the hook; `"throw"` throws
   * a {@link RateLimitError} instead, for an error handler of yours to format (its `statusCode`
   * and `response` say what the default answer would have been; `sendRateLimitError` sends it).
   * @default "reply"
   */
  readonly onRefused?: RefusalMode | undefined;
}

/** A route's `config.rateLimit`: its limit (any option overrides the plugin's), or `false` for none. */
export type FastifyRouteRateLimit = Partial<FastifyRateLimitOptions>;

/** Options of the plugin: defaults for every limit, and optionally a limit for every route. */
export interface RatesyncFastifyOptions extends Partial<Omit<FastifyRateLimitOptions, "limiter">> {
  /** When set, every route is limited by it, unless its config says `rateLimit: false` or sets its own. */
  readonly limiter?: LimitTarget<FastifyRequest> | undefined;
  /**
   * The hook route limits run in: `onRequest` (before the body is read: refusals cost least) or
   * `preHandler` (after authentication hooks, so key functions can read `request.user`).
   * @default "onRequest"
   */
  readonly hook?: "onRequest" | "preHandler" | undefined;
}

declare module "fastify" {
  interface FastifyContextConfig {
    /** This route's rate limit, or `false` to exempt it from the plugin's global limit. */
    rateLimit?: FastifyRouteRateLimit | false;
  }
  interface FastifyRequest {
    /** The decisions of the rate limit applied to this request; `undefined` when none applied. */
    rateLimit: RateLimitInfo | undefined;
  }
  interface FastifyInstance {
    /**
     * A preHandler guard applying a limit (the plugin's options as defaults).
     * @example
     * ```ts
     * app.post("/login", { preHandler: app.rateLimit({ limiter: "login" }) }, handler);
     * ```
     */
    rateLimit(options: FastifyRouteRateLimit): onRequestHookHandler;
  }
}

/** What the shared layer reads of a Fastify request (a class: no closure per request). */
class FastifyRequestView implements HttpRequestView<FastifyRequest> {
  readonly native: FastifyRequest;
  readonly path: string;
  readonly remoteAddress: string | undefined;

  constructor(request: FastifyRequest) {
    this.native = request;
    const url = request.url;
    const query = url.indexOf("?");
    this.path = query < 0 ? url : url.slice(0, query);
    // The socket peer, not request.ip: proxies are trusted by ratesync's own options only.
    this.remoteAddress = request.raw.socket?.remoteAddress;
  }

  /** A request header as one string (several values joined the way HTTP joins them). */
  header(name: string): string | undefined {
    const value = this.native.headers[name];
    return Array.isArray(value) ? value.join(", ") : value;
  }
}

/** Sends the response a {@link RateLimitError} carries. For error handlers of your own. */
export function sendRateLimitError(reply: FastifyReply, error: RateLimitError): FastifyReply {
  return send(reply, error.response);
}

function send(reply: FastifyReply, response: HttpResponseSpec): FastifyReply {
  reply.code(response.status);
  for (const [name, value] of response.headers) reply.header(name, value);
  // A Buffer, so Fastify sends the content type as given (it appends a charset to strings).
  return reply.send(Buffer.from(response.body));
}

/** Applies the outcome of a check to the request and reply: the work of a hook once decided. */
function apply(
  outcome: HttpCheck,
  request: FastifyRequest,
  reply: FastifyReply,
  done: HookHandlerDoneFunction,
  throwing: boolean,
): void {
  if (outcome.action === "skip") {
    done();
    return;
  }
  if (outcome.action === "refuse") {
    if (throwing) {
      done(new RateLimitError(outcome.kind, outcome.response, outcome.decisions));
      return;
    }
    // Sent straight away: an Error (and its stack trace) per refusal would cost more than the check.
    send(reply, outcome.response);
    return;
  }
  request.rateLimit = outcome.info;
  for (const [name, value] of outcome.headers) reply.header(name, value);
  // "close" comes once the response is sent, or when the client goes away first; release is idempotent.
  if (outcome.holdsSlots) reply.raw.once("close", () => void outcome.release());
  done();
}

/** The hook function of one limit. */
function createHook(options: FastifyRateLimitOptions): onRequestHookHandler {
  const limit = new HttpRateLimit<FastifyRequest>(options);
  const throwing = options.onRefused === "throw";
  // Callback style rather than async, and no promise at all when the store decides in process.
  return function ratesyncRateLimit(request, reply, done) {
    limit.checkThen(
      new FastifyRequestView(request),
      (outcome) => apply(outcome, request, reply, done, throwing),
      (error) => done(error as Error),
    );
  };
}

function checkHook(hook: unknown): "onRequest" | "preHandler" {
  if (hook === undefined) return "onRequest";
  if (hook !== "onRequest" && hook !== "preHandler") {
    throw new RateSyncError(
      "INVALID_ARGUMENT",
      `@ratesync/fastify: hook must be "onRequest" or "preHandler", got ${JSON.stringify(hook)}.`,
    );
  }
  return hook;
}

const plugin: FastifyPluginCallback<RatesyncFastifyOptions> = (fastify: FastifyInstance, options, done) => {
  const { hook: hookOption, ...defaults } = options;
  let hookName: "onRequest" | "preHandler";
  try {
    hookName = checkHook(hookOption);
  } catch (error) {
    done(error as Error);
    return;
  }
  const merge = (route: FastifyRouteRateLimit): FastifyRateLimitOptions => {
    const limiter = route.limiter ?? defaults.limiter;
    if (limiter === undefined) {
      throw new RateSyncError(
        "INVALID_ARGUMENT",
        "@ratesync/fastify: a rate limit needs a limiter id: set `limiter` in the route's config.rateLimit, the guard, or the plugin options.",
      );
    }
    return { ...defaults, ...route, limiter };
  };
  // One hook for every route the global limit applies to: one set of options, built once.
  const globalHook = defaults.limiter === undefined ? undefined : createHook(merge({}));

  fastify.decorateRequest("rateLimit", undefined);
  const guard = (route: FastifyRouteRateLimit) => createHook(merge(route));
  // Cast: when @fastify/rate-limit's types are in the same program, its `rateLimit` signature
  // merges with ours into overloads (the two plugins cannot be registered on one instance anyway).
  fastify.decorate("rateLimit", guard as never);
  fastify.addHook("onRoute", (routeOptions) => {
    const config = routeOptions.config?.rateLimit;
    if (config === false) return;
    const hook = config === undefined ? globalHook : createHook(merge(config));
    if (hook === undefined) return;
    const existing = routeOptions[hookName];
    const list = existing === undefined ? [] : Array.isArray(existing) ? existing : [existing];
    // Ahead of the route's own hooks: a refused request does no other work.
    (routeOptions as unknown as Record<string, unknown>)[hookName] = [hook, ...list];
  });
  done();
};

/**
 * The Fastify plugin: limits declared in route config (`config: { rateLimit: { limiter: "api" } }`),
 * a global limit for every route (`limiter` in the plugin options), and `fastify.rateLimit(...)`
 * guards for preHandler. Refusals are 429 with `Retry-After` and an RFC 9457 body; every limited
 * response carries `RateLimit-Policy`/`RateLimit` headers; handlers read `request.rateLimit`.
 *
 * @example
 * ```ts
 * import { configureLimiter, configureStore } from "@ratesync/core";
 * import { ratesync } from "@ratesync/fastify";
 * import Fastify from "fastify";
 *
 * configureStore("local", { engine: "memory" });
 * configureLimiter("api", { store: "local", ratePerSecond: 10, burst: 20 });
 *
 * const app = Fastify();
 * await app.register(ratesync, { limiter: "api" });
 * app.get("/hello", async (request) => ({ remaining: request.rateLimit?.decisions[0]?.remaining }));
 * const response = await app.inject("/hello");
 * console.log(response.statusCode, response.headers.ratelimit); // 200 "api";r=19;t=1
 * ```
 */
export const ratesync = fp(plugin, { fastify: "5.x", name: "@ratesync/fastify" });
