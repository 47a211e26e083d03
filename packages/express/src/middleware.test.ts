import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createRateSync, type RateSync } from "@ratesync/core";
import { FakeClock } from "@ratesync/core/testing";
import express5 from "express";
import express4 from "express4";
import { afterEach, describe, expect, it } from "vitest";
import { isRateLimitError, rateLimit, rateLimitErrorHandler } from "./index.js";

type AppFactory = () => express5.Express;

function setup(): { clock: FakeClock; rs: RateSync } {
  const clock = new FakeClock();
  const rs = createRateSync({ clock, autoload: false });
  rs.configureStore("mem", { engine: "memory" });
  return { clock, rs };
}

let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

async function listen(app: express5.Express): Promise<string> {
  server = await new Promise<Server>((resolve) => {
    const started = app.listen(0, "127.0.0.1", () => resolve(started));
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const majors: [string, AppFactory][] = [
  ["Express 5", () => express5()],
  ["Express 4", () => express4() as unknown as express5.Express],
];

describe.each(majors)("rateLimit (%s)", (_name, createApp) => {
  it("limits an app, exposes the decision and answers refusals with a problem body", async () => {
    const { rs } = setup();
    rs.configureLimiter("api", { store: "mem", algorithm: "fixed_window", limit: 2, windowSeconds: 60 });
    const app = createApp();
    app.use(rateLimit({ limiter: "api", rateSync: rs, excludePaths: [/^\/health$/] }));
    app.get("/", (req, res) => {
      res.json({ remaining: req.rateLimit?.decisions[0]?.remaining });
    });
    app.get("/health", (_req, res) => {
      res.send("ok");
    });
    const base = await listen(app);
    const first = await fetch(`${base}/?q=1`);
    expect(first.status).toBe(200);
    expect(await first.json()).toEqual({ remaining: 1 });
    expect(first.headers.get("ratelimit-policy")).toBe('"api";q=2;w=60');
    await (await fetch(base)).text();
    const refused = await fetch(base);
    expect(refused.status).toBe(429);
    expect(refused.headers.get("content-type")).toBe("application/problem+json");
    expect(await refused.json()).toMatchObject({ status: 429, title: "Too Many Requests" });
    for (let i = 0; i < 3; i++) expect((await fetch(`${base}/health`)).status).toBe(200);
  });

  it("guards one route, and passes refusals to the error handler when told to", async () => {
    const { rs } = setup();
    rs.configureLimiter("login", { store: "mem", algorithm: "fixed_window", limit: 1, windowSeconds: 60 });
    const app = createApp();
    let seen: unknown;
    app.post("/login", rateLimit({ limiter: "login", rateSync: rs, onRefused: "next" }), (_req, res) => {
      res.send("ok");
    });
    app.get("/other", (_req, res) => {
      res.send("free");
    });
    app.use((error: unknown, _req: express5.Request, _res: express5.Response, next: express5.NextFunction) => {
      seen = error;
      next(error);
    });
    app.use(rateLimitErrorHandler());
    const base = await listen(app);
    expect((await fetch(`${base}/login`, { method: "POST" })).status).toBe(200);
    const refused = await fetch(`${base}/login`, { method: "POST" });
    expect(refused.status).toBe(429);
    expect(refused.headers.get("retry-after")).not.toBeNull();
    expect(isRateLimitError(seen)).toBe(true);
    for (let i = 0; i < 3; i++) expect((await fetch(`${base}/other`)).status).toBe(200);
  });

  it("answers STORE_UNAVAILABLE errors from handlers with a 503 and no backend detail", async () => {
    const { rs } = setup();
    rs.configureLimiter("api", { store: "mem", ratePerSecond: 1, burst: 1 });
    const app = createApp();
    app.get("/", async (_req, _res, next) => {
      const { RateSyncError } = await import("@ratesync/core");
      next(new RateSyncError("STORE_UNAVAILABLE", "redis at 10.0.0.5 refused"));
    });
    app.use(rateLimitErrorHandler({ unavailableRetryAfterSeconds: 7 }));
    const base = await listen(app);
    const response = await fetch(base);
    expect(response.status).toBe(503);
    expect(response.headers.get("retry-after")).toBe("7");
    expect(await response.text()).not.toContain("10.0.0.5");
  });

  it("releases a concurrency slot when the response finishes or the handler fails", async () => {
    const { rs } = setup();
    rs.configureLimiter("slots", { store: "mem", maxConcurrent: 1 });
    const limiter = rs.getLimiter("slots");
    const app = createApp();
    app.use(rateLimit({ limiter: "slots", rateSync: rs }));
    app.get("/ok", (_req, res) => {
      res.send(String(limiter.metrics().currentConcurrent));
    });
    app.get("/fail", (_req, _res, next) => {
      next(new Error("boom"));
    });
    app.use((_error: unknown, _req: express5.Request, res: express5.Response, _next: express5.NextFunction) => {
      res.status(500).send("failed");
    });
    const base = await listen(app);
    expect(await (await fetch(`${base}/ok`)).text()).toBe("1");
    expect((await fetch(`${base}/fail`)).status).toBe(500);
    await expect.poll(() => limiter.metrics().totalReleases).toBe(2);
    expect(limiter.metrics().currentConcurrent).toBe(0);
  });

  it("matches excluded paths against the full path under a mounted router", async () => {
    const { rs } = setup();
    rs.configureLimiter("api", { store: "mem", ratePerSecond: 1, burst: 1 });
    const app = createApp();
    const router = express5.Router();
    router.use(rateLimit({ limiter: "api", rateSync: rs, excludePaths: [/^\/api\/health$/] }));
    router.get("/health", (_req, res) => {
      res.send("ok");
    });
    app.use("/api", router);
    const base = await listen(app);
    for (let i = 0; i < 3; i++) expect((await fetch(`${base}/api/health?x=1`)).status).toBe(200);
  });

  it("checks its options", () => {
    expect(() => rateLimit({ limiter: "api", onRefused: "drop" as "next" })).toThrow(/onRefused must be/);
    expect(() => rateLimit({ limiter: "api", onRefused: "drop" as "next" })).toThrow(
      expect.objectContaining({ code: "INVALID_ARGUMENT" }),
    );
    expect(() => rateLimit({ limiter: "api", cost: -1 })).toThrow(/cost/);
  });
});
