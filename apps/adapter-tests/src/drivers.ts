/**
 * One application, three frameworks: each driver builds the same routes behind the same limit with
 * its adapter, and sends requests the framework's own way (fastify.inject, a real Express server on
 * loopback with fetch, Hono's app.request). Scenarios then compare what comes back.
 */
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { RateSync } from "@ratesync/core";
import type { HttpLimitOptions, LimitSpec, RateLimitHeaderMode } from "@ratesync/core/http";
import { rateLimit as expressRateLimit } from "@ratesync/express";
import { ratesync as fastifyRatesync } from "@ratesync/fastify";
import { rateLimit as honoRateLimit } from "@ratesync/hono";
import express5 from "express";
import express4 from "express4";
import Fastify, { type FastifyRequest } from "fastify";
import { type Context, Hono } from "hono";

/** The limit of a scenario, independent of the framework: keys come from request headers. */
export interface LimitSetup {
  /** Limiter ids; an entry with `keyHeader` keys that limiter by that header. */
  readonly limiters: readonly (string | { readonly limiter: string; readonly keyHeader: string })[];
  /** The route's key: this header's value (falls back to the client IP when absent). */
  readonly keyHeader?: string | undefined;
  readonly excludePaths?: readonly RegExp[] | undefined;
  readonly headers?: RateLimitHeaderMode | undefined;
  /** Trusted proxies; every driver's socket peer is 127.0.0.1. */
  readonly trustedProxies?: number | readonly string[] | undefined;
  readonly noAddress?: "refuse" | "allow" | undefined;
}

/** What the handlers do. */
export type HandlerKind = "ok" | "throw" | "stream";

/** A response, reduced to what the scenarios compare. */
export interface Answer {
  readonly status: number;
  /** The rate limit related headers, lower-case names. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

/** A running application of one driver. */
export interface Client {
  request(path: string, headers?: Record<string, string>): Promise<Answer>;
  close(): Promise<void>;
}

/** Builds the application of one framework. */
export interface Driver {
  readonly name: string;
  start(rs: RateSync, limit: LimitSetup): Promise<Client>;
}

const COMPARED = ["ratelimit", "ratelimit-policy", "retry-after", "content-type", "x-ratelimit-limit"];

function reduce(status: number, headers: (name: string) => string | undefined | null, body: string): Answer {
  const kept: Record<string, string> = {};
  for (const name of COMPARED) {
    const value = headers(name);
    if (value === undefined || value === null) continue;
    // Handlers' own content types differ by framework (text/html, text/plain); refusals' must not.
    if (name === "content-type" && !value.startsWith("application/problem+json")) continue;
    kept[name] = value;
  }
  return { status, headers: kept, body };
}

/** The shared options, for a framework whose requests are read through `header`. */
function optionsFor<R>(
  rs: RateSync,
  limit: LimitSetup,
  header: (request: R, name: string) => string | undefined,
): HttpLimitOptions<R> {
  const byHeader = (name: string | undefined) =>
    name === undefined ? undefined : (request: R) => header(request, name) || undefined;
  const limiter = limit.limiters.map((entry): string | LimitSpec<R> =>
    typeof entry === "string" ? entry : { limiter: entry.limiter, key: byHeader(entry.keyHeader) },
  );
  return {
    rateSync: rs,
    limiter,
    key: byHeader(limit.keyHeader),
    excludePaths: limit.excludePaths,
    headers: limit.headers,
    noAddress: limit.noAddress,
    clientAddress: { trustedProxies: limit.trustedProxies, warn: false },
  };
}

function streamOf(): ReadableStream<Uint8Array> {
  let n = 0;
  return new ReadableStream({
    pull(controller) {
      if (n++ < 3) controller.enqueue(new TextEncoder().encode(`part${n};`));
      else controller.close();
    },
  });
}

export const fastifyDriver: Driver = {
  name: "fastify",
  async start(rs, limit) {
    const app = Fastify();
    await app.register(
      fastifyRatesync,
      optionsFor<FastifyRequest>(rs, limit, (request, name) => request.headers[name] as string | undefined),
    );
    app.get("/api", async () => "ok");
    app.get("/health", async () => "ok");
    app.get("/throw", async () => {
      throw new Error("boom");
    });
    app.get("/stream", async (_request, reply) => reply.send(streamOf()));
    app.setErrorHandler((_error, _request, reply) => reply.code(500).send("failed"));
    await app.ready();
    return {
      async request(path, headers = {}) {
        const response = await app.inject({ method: "GET", url: path, headers, remoteAddress: "127.0.0.1" });
        return reduce(response.statusCode, (name) => response.headers[name] as string | undefined, response.body);
      },
      close: () => app.close(),
    };
  },
};

function expressDriver(name: string, create: () => express5.Express): Driver {
  return {
    name,
    async start(rs, limit) {
      const app = create();
      app.use(expressRateLimit(optionsFor<express5.Request>(rs, limit, (request, header) => request.get(header))));
      app.get("/api", (_req, res) => {
        res.send("ok");
      });
      app.get("/health", (_req, res) => {
        res.send("ok");
      });
      app.get("/throw", () => {
        throw new Error("boom");
      });
      app.get("/stream", async (_req, res) => {
        for await (const chunk of streamOf()) res.write(chunk);
        res.end();
      });
      app.use((_error: unknown, _req: express5.Request, res: express5.Response, _next: express5.NextFunction) => {
        res.status(500).send("failed");
      });
      const server = await new Promise<Server>((resolve) => {
        const started = app.listen(0, "127.0.0.1", () => resolve(started));
      });
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      return {
        async request(path, headers = {}) {
          const response = await fetch(`${base}${path}`, { headers });
          return reduce(response.status, (header) => response.headers.get(header), await response.text());
        },
        async close() {
          server.closeAllConnections();
          await new Promise<void>((resolve) => server.close(() => resolve()));
        },
      };
    },
  };
}

export const express5Driver: Driver = expressDriver("express 5", () => express5());
export const express4Driver: Driver = expressDriver("express 4", () => express4() as unknown as express5.Express);

/** What @hono/node-server passes as `c.env`: the Node.js request and its socket. */
export const honoNodeEnv = { incoming: { socket: { remoteAddress: "127.0.0.1" } } };

export const honoDriver: Driver = {
  name: "hono",
  async start(rs, limit) {
    const app = new Hono();
    app.use("*", honoRateLimit(optionsFor<Context>(rs, limit, (c, name) => c.req.header(name))));
    app.get("/api", (c) => c.text("ok"));
    app.get("/health", (c) => c.text("ok"));
    app.get("/throw", () => {
      throw new Error("boom");
    });
    app.get("/stream", (c) => c.body(streamOf()));
    app.onError((_error, c) => c.text("failed", 500));
    return {
      async request(path, headers = {}) {
        const response = await app.request(path, { headers }, honoNodeEnv);
        return reduce(response.status, (name) => response.headers.get(name), await response.text());
      },
      close: async () => {},
    };
  },
};

/** Every driver: the three frameworks, Express in both supported majors. */
export const DRIVERS: readonly Driver[] = [fastifyDriver, express5Driver, express4Driver, honoDriver];
