import { createRateSync, type RateSync } from "@ratesync/core";
import { FakeClock } from "@ratesync/core/testing";
import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import { defaultAddress, rateLimit } from "./index.js";

function setup(): { clock: FakeClock; rs: RateSync } {
  const clock = new FakeClock();
  const rs = createRateSync({ clock, autoload: false });
  rs.configureStore("mem", { engine: "memory" });
  return { clock, rs };
}

/** What `@hono/node-server` passes as `c.env`: the Node.js request, with its socket. */
const nodeEnv = (remoteAddress: string) => ({ incoming: { socket: { remoteAddress } } });

describe("rateLimit (Hono)", () => {
  it("limits by client IP, sets the headers and exposes the decision to handlers", async () => {
    const { rs } = setup();
    rs.configureLimiter("api", { store: "mem", algorithm: "fixed_window", limit: 2, windowSeconds: 10 });
    const app = new Hono();
    app.use("*", rateLimit({ limiter: "api", rateSync: rs }));
    app.get("/", (c) => c.json({ remaining: c.get("rateLimit").decisions[0]?.remaining }));
    const first = await app.request("/", {}, nodeEnv("192.0.2.1"));
    expect(first.status).toBe(200);
    expect(await first.json()).toEqual({ remaining: 1 });
    expect(first.headers.get("ratelimit-policy")).toBe('"api";q=2;w=10');
    expect(first.headers.get("ratelimit")).toMatch(/^"api";r=1;t=\d+$/);
    await app.request("/", {}, nodeEnv("192.0.2.1"));
    const refused = await app.request("/", {}, nodeEnv("::ffff:192.0.2.1"));
    expect(refused.status).toBe(429);
    expect(refused.headers.get("content-type")).toBe("application/problem+json");
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(await refused.json()).toMatchObject({ status: 429, title: "Too Many Requests" });
    expect((await app.request("/", {}, nodeEnv("192.0.2.2"))).status).toBe(200);
  });

  it("answers 400 when no address can be found, unless noAddress is allow", async () => {
    const { rs } = setup();
    rs.configureLimiter("api", { store: "mem", ratePerSecond: 1, burst: 1 });
    const app = new Hono();
    app.use("/strict", rateLimit({ limiter: "api", rateSync: rs }));
    app.use("/open", rateLimit({ limiter: "api", rateSync: rs, noAddress: "allow" }));
    app.get("*", (c) => c.text("ok"));
    expect((await app.request("/strict")).status).toBe(400);
    expect((await app.request("/open")).status).toBe(200);
    expect((await app.request("/open")).status).toBe(200);
  });

  it("finds the peer on Bun and Deno, and takes getAddress when given", async () => {
    const request = new Request("http://x/");
    const context = (env: unknown) => ({ env, req: { raw: request, header: () => undefined } }) as never;
    expect(defaultAddress(context({ requestIP: () => ({ address: "192.0.2.3" }) }))).toBe("192.0.2.3");
    expect(defaultAddress(context({ remoteAddr: { hostname: "192.0.2.4" } }))).toBe("192.0.2.4");
    expect(defaultAddress(context(undefined))).toBeUndefined();
  });

  it("releases a concurrency slot after a streamed body ends, a throw, and a cancelled body", async () => {
    const { rs } = setup();
    rs.configureLimiter("slots", { store: "mem", maxConcurrent: 1 });
    const limiter = rs.getLimiter("slots");
    const app = new Hono();
    app.use("*", rateLimit({ limiter: "slots", rateSync: rs, getAddress: () => "192.0.2.1" }));
    app.get("/stream", (c) => {
      let n = 0;
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (n++ < 3) controller.enqueue(new TextEncoder().encode(`chunk${n}`));
          else controller.close();
        },
      });
      return c.body(body);
    });
    app.onError((_error, c) => c.text("failed", 500));
    app.get("/throw", () => {
      throw new Error("boom");
    });
    app.get("/empty", (c) => c.body(null, 204));

    const streamed = await app.request("/stream");
    expect(limiter.metrics().currentConcurrent).toBe(1);
    expect((await app.request("/stream")).status).toBe(429);
    expect(await streamed.text()).toBe("chunk1chunk2chunk3");
    expect(limiter.metrics().currentConcurrent).toBe(0);

    const thrown = await app.request("/throw");
    expect(thrown.status).toBe(500);
    await thrown.text(); // the error page is sent like any body
    expect(limiter.metrics().currentConcurrent).toBe(0);

    const cancelled = await app.request("/stream");
    const reader = cancelled.body?.getReader();
    await reader?.read();
    await reader?.cancel();
    expect(limiter.metrics().currentConcurrent).toBe(0);

    expect((await app.request("/empty")).status).toBe(204);
    expect(limiter.metrics().currentConcurrent).toBe(0);
    expect(limiter.metrics().totalReleases).toBe(4);
  });

  it("sets the headers on a response whose headers are immutable (a redirect)", async () => {
    const { rs } = setup();
    rs.configureLimiter("api", { store: "mem", ratePerSecond: 1, burst: 1 });
    const app = new Hono();
    app.use("*", rateLimit({ limiter: "api", rateSync: rs, getAddress: () => "192.0.2.1" }));
    app.get("/", () => Response.redirect("http://example.com/elsewhere", 302));
    const response = await app.request("/");
    expect(response.status).toBe(302);
    expect(response.headers.get("ratelimit-policy")).toBe('"api";q=1;w=1');
  });

  it("skips excluded paths", async () => {
    const { rs } = setup();
    rs.configureLimiter("api", { store: "mem", ratePerSecond: 1, burst: 1 });
    const app = new Hono();
    app.use(
      "*",
      rateLimit({ limiter: "api", rateSync: rs, excludePaths: [/^\/health$/], getAddress: () => "192.0.2.1" }),
    );
    app.get("*", (c) => c.text("ok"));
    for (let i = 0; i < 3; i++) {
      const response = await app.request("/health");
      expect(response.status).toBe(200);
      expect(response.headers.get("ratelimit")).toBeNull();
    }
  });
});
