import {
  type HttpLimitOptions,
  HttpRateLimit,
  type HttpRequestView,
  type HttpResponseSpec,
  type RateLimitInfo,
} from "@ratesync/core/http";
import type { Context, Env, MiddlewareHandler } from "hono";
import { createMiddleware } from "hono/factory";

declare module "hono" {
  interface ContextVariableMap {
    /** The decisions of the rate limit applied to this request (set by `rateLimit()`). */
    rateLimit: RateLimitInfo;
  }
}

/** Options of {@link rateLimit}: the shared HTTP options, with the Hono context as the request. */
export interface HonoRateLimitOptions<E extends Env = Env> extends HttpLimitOptions<Context<E>> {
  /**
   * Reads the socket peer's address. The default knows `@hono/node-server` (the Node.js socket),
   * Cloudflare Workers (`CF-Connecting-IP`, which the edge sets and clients cannot forge there),
   * Bun (`server.requestIP`) and Deno (`info.remoteAddr`); elsewhere pass your runtime's way,
   * for example Hono's `getConnInfo(c).remote.address`.
   */
  readonly getAddress?: ((c: Context<E>) => string | undefined) | undefined;
}

interface RuntimeEnv {
  incoming?: { socket?: { remoteAddress?: string } };
  requestIP?: (request: Request) => { address?: string } | null;
  remoteAddr?: { hostname?: string };
}

/** The socket peer on the runtimes Hono runs on, without importing any runtime's module. */
export function defaultAddress(c: Context): string | undefined {
  const env = c.env as RuntimeEnv | undefined;
  const node = env?.incoming?.socket?.remoteAddress;
  if (node !== undefined) return node;
  if ((globalThis as { navigator?: { userAgent?: string } }).navigator?.userAgent === "Cloudflare-Workers") {
    return c.req.header("cf-connecting-ip");
  }
  if (typeof env?.requestIP === "function") return env.requestIP(c.req.raw)?.address;
  return env?.remoteAddr?.hostname;
}

/** What the shared layer reads of a Hono request (a class: no closure per request). */
class HonoRequestView<E extends Env> implements HttpRequestView<Context<E>> {
  readonly native: Context<E>;
  readonly path: string;
  readonly remoteAddress: string | undefined;

  constructor(c: Context<E>, remoteAddress: string | undefined) {
    this.native = c;
    this.path = c.req.path;
    this.remoteAddress = remoteAddress;
  }

  header(name: string): string | undefined {
    return this.native.req.header(name);
  }
}

/** The response of a refusal, as a Web `Response`. */
export function toResponse(spec: HttpResponseSpec): Response {
  // A plain record: runtimes (and @hono/node-server's fast path) take it without building a Headers.
  const headers: Record<string, string> = {};
  for (const [name, value] of spec.headers) headers[name] = value;
  return new Response(spec.body, { status: spec.status, headers });
}

/**
 * Makes sure the response the handler produced carries the rate limit headers. They were
 * prepared before the handler ran (`c.header`), which Hono applies to the responses it builds
 * (`c.json`, `c.text`, `c.body`...); a `Response` the handler built itself does not have them, and
 * gets them now: on its headers directly, or, when they are immutable (a redirect, a `fetch()`
 * response), through `c.header`, which copies the response once.
 */
function ensureHeaders(c: Context, headers: readonly (readonly [string, string])[]): void {
  const first = headers[0];
  if (first === undefined) return;
  const target = c.res.headers;
  if (target.get(first[0]) === first[1]) return;
  try {
    for (const [name, value] of headers) target.set(name, value);
  } catch {
    for (const [name, value] of headers) c.header(name, value);
  }
}

/**
 * The body of `response` wrapped so that `release` runs once the body is fully sent, fails, or is
 * cancelled (the client went away); at once when there is no body.
 */
function releasingWhenSent(response: Response, release: () => Promise<void>): Response {
  const body = response.body;
  if (body === null) {
    void release();
    return response;
  }
  const reader = body.getReader();
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        if (done) {
          controller.close();
          void release();
        } else {
          controller.enqueue(value);
        }
      } catch (error) {
        void release();
        controller.error(error);
      }
    },
    cancel(reason) {
      void release();
      return reader.cancel(reason);
    },
  });
  return new Response(stream, response);
}

/**
 * Hono middleware that applies ratesync limiters to requests: 429 with `Retry-After` and an
 * RFC 9457 body once a limit is reached, `RateLimit-Policy`/`RateLimit` headers on every response,
 * 503 when a fail-closed store is down. Web-standard only: it runs unchanged on Node.js, Bun, Deno
 * and Cloudflare Workers. Handlers read the decisions with `c.get("rateLimit")`.
 *
 * With `maxConcurrent`, the slot is taken before the handler and released once the response
 * body is fully sent, the handler throws, or the client goes away (the body is cancelled).
 *
 * @example
 * ```ts
 * import { configureLimiter, configureStore } from "@ratesync/core";
 * import { rateLimit } from "@ratesync/hono";
 * import { Hono } from "hono";
 *
 * configureStore("local", { engine: "memory" });
 * configureLimiter("api", { store: "local", ratePerSecond: 10, burst: 20 });
 *
 * const app = new Hono();
 * app.use("/api/*", rateLimit({ limiter: "api", getAddress: () => "192.0.2.1" }));
 * app.get("/api/hello", (c) => c.json({ remaining: c.get("rateLimit").decisions[0]?.remaining }));
 * const response = await app.request("/api/hello");
 * console.log(response.status, response.headers.get("ratelimit")); // 200 "api";r=19;t=1
 * ```
 */
export function rateLimit<E extends Env = Env>(options: HonoRateLimitOptions<E>): MiddlewareHandler<E> {
  const limit = new HttpRateLimit<Context<E>>(options);
  const getAddress = options.getAddress ?? (defaultAddress as (c: Context<E>) => string | undefined);
  return createMiddleware<E>(async function rateLimit(c, next) {
    const checked = limit.checkNow(new HonoRequestView(c, getAddress(c)));
    // Awaited only when the store did not decide in process: a job less per request otherwise.
    const outcome = checked instanceof Promise ? await checked : checked;
    if (outcome.action === "skip") return next();
    if (outcome.action === "refuse") return toResponse(outcome.response);
    c.set("rateLimit", outcome.info);
    for (const [name, value] of outcome.headers) c.header(name, value);
    if (!outcome.holdsSlots) {
      await next();
      ensureHeaders(c, outcome.headers);
      return;
    }
    try {
      await next();
    } catch (error) {
      // Hono catches handler errors itself (onError); this is for errors it lets through.
      await outcome.release();
      throw error;
    }
    ensureHeaders(c, outcome.headers);
    c.res = releasingWhenSent(c.res, outcome.release);
  });
}
