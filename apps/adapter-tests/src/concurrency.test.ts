import type { AddressInfo } from "node:net";
import { createRateSync, type RateSync } from "@ratesync/core";
import { rateLimit as expressRateLimit } from "@ratesync/express";
import { ratesync as fastifyRatesync } from "@ratesync/fastify";
import { rateLimit as honoRateLimit } from "@ratesync/hono";
import express5 from "express";
import express4 from "express4";
import Fastify from "fastify";
import { Hono } from "hono";
import { afterEach, describe, expect, it } from "vitest";
import { honoNodeEnv } from "./drivers.js";

/**
 * 1,000 requests to a route with `maxConcurrent`: a third aborted by the client mid-response, a
 * third whose handler throws, a third streamed to the end. Afterwards no slot may be held, and
 * every slot taken was released exactly once.
 */
const REQUESTS = 1000;
const IN_FLIGHT = 12;
const MAX_CONCURRENT = 16;

/** A body that sends one chunk, then waits (until cancelled, or 10 s as a safety net). */
function hangingBody(onCancel: () => void): ReadableStream<Uint8Array> {
  let sent = false;
  return new ReadableStream({
    async pull(controller) {
      if (!sent) {
        sent = true;
        controller.enqueue(new TextEncoder().encode("first;"));
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 10_000).unref());
      controller.close();
    },
    cancel: onCancel,
  });
}

function streamedBody(): ReadableStream<Uint8Array> {
  let n = 0;
  return new ReadableStream({
    async pull(controller) {
      await new Promise((resolve) => setImmediate(resolve));
      if (n++ < 3) controller.enqueue(new TextEncoder().encode(`part${n};`));
      else controller.close();
    },
  });
}

type Kind = "abort" | "throw" | "stream";
const kindOf = (i: number): Kind => (["abort", "throw", "stream"] as const)[i % 3] as Kind;

/** Sends one request of `kind` through fetch; aborts after the first chunk for `abort`. */
async function fetchOne(base: string, kind: Kind): Promise<number> {
  const controller = new AbortController();
  const response = await fetch(`${base}/${kind}`, { signal: controller.signal });
  if (kind === "abort" && response.status === 200) {
    const reader = response.body?.getReader();
    await reader?.read();
    controller.abort();
    await reader?.cancel().catch(() => {});
  } else {
    await response.text();
  }
  return response.status;
}

/** Runs the 1,000 requests, `IN_FLIGHT` at a time; counts the statuses. */
async function drive(send: (kind: Kind) => Promise<number>): Promise<Record<number, number>> {
  const statuses: Record<number, number> = {};
  let next = 0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < REQUESTS) {
        const status = await send(kindOf(next++));
        statuses[status] = (statuses[status] ?? 0) + 1;
      }
    }),
  );
  return statuses;
}

function registry(): RateSync {
  const rs = createRateSync({ autoload: false });
  rs.configureStore("mem", { engine: "memory" });
  rs.configureLimiter("slots", { store: "mem", maxConcurrent: MAX_CONCURRENT });
  return rs;
}

async function expectNothingHeld(rs: RateSync, admitted: number): Promise<void> {
  const limiter = rs.getLimiter("slots");
  await expect.poll(() => limiter.metrics().currentConcurrent, { timeout: 10_000 }).toBe(0);
  expect(limiter.metrics().totalReleases).toBe(limiter.metrics().totalAcquisitions);
  expect(limiter.metrics().totalAcquisitions).toBeGreaterThanOrEqual(admitted);
  expect((await limiter.state("127.0.0.1")).concurrency?.inUse).toBe(0);
}

let cleanup: (() => Promise<void>) | undefined;
afterEach(async () => {
  await cleanup?.();
  cleanup = undefined;
});

describe(`${REQUESTS} requests to a maxConcurrent route (aborted, throwing, streaming) leave no slot held`, () => {
  it("Fastify", async () => {
    const rs = registry();
    // close() would otherwise wait on connections whose hanging bodies have a 10 s safety net.
    const app = Fastify({ forceCloseConnections: true });
    await app.register(fastifyRatesync, { rateSync: rs, limiter: "slots", clientAddress: { warn: false } });
    app.get("/abort", async (_request, reply) => reply.send(hangingBody(() => {})));
    app.get("/throw", async () => {
      throw new Error("boom");
    });
    app.get("/stream", async (_request, reply) => reply.send(streamedBody()));
    app.setErrorHandler((_error, _request, reply) => reply.code(500).send("failed"));
    const base = await app.listen({ port: 0, host: "127.0.0.1" });
    cleanup = async () => {
      await app.close();
      await rs.close();
    };
    const statuses = await drive((kind) => fetchOne(base, kind));
    expect((statuses[200] ?? 0) + (statuses[500] ?? 0) + (statuses[429] ?? 0)).toBe(REQUESTS);
    expect(statuses[500]).toBeGreaterThan(0);
    await expectNothingHeld(rs, (statuses[200] ?? 0) + (statuses[500] ?? 0));
  });

  for (const [name, create] of [
    ["Express 5", () => express5()],
    ["Express 4", () => express4() as unknown as express5.Express],
  ] as const) {
    it(name, async () => {
      const rs = registry();
      const app = create();
      app.use(expressRateLimit({ rateSync: rs, limiter: "slots", clientAddress: { warn: false } }));
      app.get("/abort", (_req, res) => {
        res.write("first;");
        const timer = setTimeout(() => res.end(), 10_000);
        res.once("close", () => clearTimeout(timer));
      });
      app.get("/throw", () => {
        throw new Error("boom");
      });
      app.get("/stream", async (_req, res) => {
        for await (const chunk of streamedBody()) res.write(chunk);
        res.end();
      });
      app.use((_error: unknown, _req: express5.Request, res: express5.Response, _next: express5.NextFunction) => {
        res.status(500).send("failed");
      });
      const server = app.listen(0, "127.0.0.1");
      await new Promise((resolve) => server.once("listening", resolve));
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      cleanup = async () => {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await rs.close();
      };
      const statuses = await drive((kind) => fetchOne(base, kind));
      expect((statuses[200] ?? 0) + (statuses[500] ?? 0) + (statuses[429] ?? 0)).toBe(REQUESTS);
      await expectNothingHeld(rs, (statuses[200] ?? 0) + (statuses[500] ?? 0));
    });
  }

  it("Hono (the client going away cancels the body, as runtimes do)", async () => {
    const rs = registry();
    const app = new Hono();
    app.use("*", honoRateLimit({ rateSync: rs, limiter: "slots", clientAddress: { warn: false } }));
    app.get("/abort", (c) => c.body(hangingBody(() => {})));
    app.get("/throw", () => {
      throw new Error("boom");
    });
    app.get("/stream", (c) => c.body(streamedBody()));
    app.onError((_error, c) => c.text("failed", 500));
    cleanup = () => rs.close();
    const statuses = await drive(async (kind) => {
      const response = await app.request(`/${kind}`, {}, honoNodeEnv);
      if (kind === "abort" && response.status === 200) {
        const reader = response.body?.getReader();
        await reader?.read();
        await reader?.cancel(new Error("client went away"));
      } else {
        await response.text();
      }
      return response.status;
    });
    expect((statuses[200] ?? 0) + (statuses[500] ?? 0) + (statuses[429] ?? 0)).toBe(REQUESTS);
    await expectNothingHeld(rs, (statuses[200] ?? 0) + (statuses[500] ?? 0));
  });
});
