import { createRateSync, type RateSync } from "@ratesync/core";
import { FakeClock } from "@ratesync/core/testing";
import Fastify, { type FastifyInstance } from "fastify";
import { afterEach, describe, expect, it } from "vitest";
import { isRateLimitError, ratesync, sendRateLimitError } from "./index.js";

function setup(): { clock: FakeClock; rs: RateSync } {
  const clock = new FakeClock();
  const rs = createRateSync({ clock, autoload: false });
  rs.configureStore("mem", { engine: "memory" });
  return { clock, rs };
}

let app: FastifyInstance | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

describe("ratesync (Fastify plugin)", () => {
  it("applies a global limit, route config overrides and exemptions, and exposes the decision", async () => {
    const { rs } = setup();
    rs.configureLimiter("api", { store: "mem", algorithm: "fixed_window", limit: 2, windowSeconds: 60 });
    rs.configureLimiter("strict", { store: "mem", algorithm: "fixed_window", limit: 1, windowSeconds: 60 });
    app = Fastify();
    await app.register(ratesync, { rateSync: rs, limiter: "api" });
    app.get("/", async (request) => ({ remaining: request.rateLimit?.decisions[0]?.remaining }));
    app.get("/strict", { config: { rateLimit: { limiter: "strict" } } }, async () => "strict");
    app.get("/free", { config: { rateLimit: false } }, async (request) => ({
      limited: request.rateLimit !== undefined,
    }));

    const first = await app.inject("/");
    expect(first.statusCode).toBe(200);
    expect(first.json()).toEqual({ remaining: 1 });
    expect(first.headers["ratelimit-policy"]).toBe('"api";q=2;w=60');
    expect((await app.inject("/")).statusCode).toBe(200);
    const refused = await app.inject("/");
    expect(refused.statusCode).toBe(429);
    expect(refused.headers["content-type"]).toBe("application/problem+json");
    expect(Number(refused.headers["retry-after"])).toBeGreaterThan(0);
    expect(refused.json()).toMatchObject({ status: 429, title: "Too Many Requests" });

    expect((await app.inject("/strict")).statusCode).toBe(200);
    expect((await app.inject("/strict")).statusCode).toBe(429);
    for (let i = 0; i < 3; i++) expect((await app.inject("/free")).json()).toEqual({ limited: false });
  });

  it("guards a route with fastify.rateLimit() as a preHandler, after the key is known", async () => {
    const { rs } = setup();
    rs.configureLimiter("login", { store: "mem", algorithm: "fixed_window", limit: 1, windowSeconds: 60 });
    app = Fastify();
    await app.register(ratesync, { rateSync: rs });
    app.post<{ Body: { user: string } }>(
      "/login",
      { preHandler: app.rateLimit({ limiter: "login", key: (request) => (request.body as { user: string }).user }) },
      async () => "ok",
    );
    const login = (user: string) =>
      (app as FastifyInstance).inject({ method: "POST", url: "/login", payload: { user } });
    expect((await login("ann")).statusCode).toBe(200);
    expect((await login("ann")).statusCode).toBe(429);
    expect((await login("bob")).statusCode).toBe(200);
  });

  it("throws the typed error for the application's error handler when told to", async () => {
    const { rs } = setup();
    rs.configureLimiter("api", { store: "mem", ratePerSecond: 1, burst: 1 });
    app = Fastify();
    app.setErrorHandler((error, _request, reply) => {
      if (isRateLimitError(error)) return sendRateLimitError(reply.header("x-handled", "yes"), error);
      return reply.code(500).send("other");
    });
    await app.register(ratesync, { rateSync: rs, limiter: "api", onRefused: "throw" });
    app.get("/", async () => "ok");
    expect((await app.inject("/")).statusCode).toBe(200);
    const refused = await app.inject("/");
    expect(refused.statusCode).toBe(429);
    expect(refused.headers["x-handled"]).toBe("yes");
    expect(refused.headers["content-type"]).toBe("application/problem+json");
  });

  it("releases a concurrency slot once the response is sent, after a throw, and on a stream", async () => {
    const { rs } = setup();
    rs.configureLimiter("slots", { store: "mem", maxConcurrent: 1 });
    const limiter = rs.getLimiter("slots");
    app = Fastify({ logger: false });
    await app.register(ratesync, { rateSync: rs, limiter: "slots" });
    let inside = -1;
    app.get("/ok", async () => {
      inside = limiter.metrics().currentConcurrent;
      return "ok";
    });
    app.get("/throw", async () => {
      throw new Error("boom");
    });
    for (const url of ["/ok", "/throw", "/ok"]) await app.inject(url);
    expect(inside).toBe(1);
    expect(limiter.metrics().currentConcurrent).toBe(0);
    expect(limiter.metrics().totalReleases).toBe(3);
  });

  it("runs route limits in preHandler when told to, after authentication hooks", async () => {
    const { rs } = setup();
    rs.configureLimiter("api", { store: "mem", ratePerSecond: 1, burst: 1 });
    app = Fastify();
    app.decorateRequest("user", "");
    app.addHook("preHandler", async (request) => {
      (request as unknown as { user: string }).user = String(request.headers["x-user"]);
    });
    await app.register(ratesync, {
      rateSync: rs,
      limiter: "api",
      hook: "preHandler",
      key: (request) => (request as unknown as { user: string }).user,
    });
    app.get("/", async () => "ok");
    const as = (user: string) => (app as FastifyInstance).inject({ url: "/", headers: { "x-user": user } });
    expect((await as("ann")).statusCode).toBe(200);
    expect((await as("ann")).statusCode).toBe(429);
    expect((await as("bob")).statusCode).toBe(200);
  });

  it("refuses a plugin or route limit without a limiter id", async () => {
    app = Fastify();
    await app.register(ratesync, {});
    expect(() => (app as FastifyInstance).get("/", { config: { rateLimit: { cost: 2 } } }, async () => "")).toThrow(
      /needs a limiter id/,
    );
    await expect(
      Fastify()
        .register(ratesync, { hook: "onSend" as "onRequest" })
        .ready(),
    ).rejects.toThrow(/hook must be/);
    await expect(
      Fastify()
        .register(ratesync, { hook: "onSend" as "onRequest" })
        .ready(),
    ).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
  });
});
