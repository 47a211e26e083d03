/**
 * The HTTP scene: a small API server (Hono on Node.js) limits each API key with
 * `@ratesync/hono`. Two clients call it at once: "alice" pushes hard and gets 429s with
 * `Retry-After` and the standard RateLimit headers; "bob" calls gently and is never refused, since
 * every key has its own budget. The limit is `[limiters.http_api]` of `rate-sync.toml`.
 */
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { getLimiter } from "@ratesync/core";
import { rateLimit } from "@ratesync/hono";
import { Hono } from "hono";

/** What one client saw. */
interface ClientTally {
  ok: number;
  limited: number;
  other: number;
}

/** A 429 as the client got it, to print once. */
interface Sample {
  readonly status: number;
  readonly headers: readonly [string, string][];
  readonly body: string;
}

/** The headers worth showing from a refusal. */
const SHOWN = ["content-type", "ratelimit-policy", "ratelimit", "retry-after"];

/** Runs the scene and prints its report; resolves whether it behaved as the limits say. */
export async function runHttpScene(seconds: number): Promise<boolean> {
  const { ratePerSecond = 0, burst = 1 } = getLimiter("http_api").config;
  const app = new Hono();
  app.use("/api/*", rateLimit({ limiter: "http_api", key: (c) => c.req.header("x-api-key") }));
  app.get("/api/quote", (c) => c.json({ quote: "Limits are a kindness to everyone downstream." }));

  const server = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" });
  await new Promise<void>((resolve) => server.once("listening", () => resolve()));
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}/api/quote`;

  console.log(
    `\nratesync demo, HTTP: an API limited to ${ratePerSecond} requests/s per API key (burst ${burst}) with @ratesync/hono.`,
  );
  console.log('"alice" sends as fast as 8 connections allow; "bob" sends 4 requests a second.\n');

  const stopAt = Date.now() + seconds * 1000;
  const tallies: Record<string, ClientTally> = {
    alice: { ok: 0, limited: 0, other: 0 },
    bob: { ok: 0, limited: 0, other: 0 },
  };
  let sample: Sample | undefined;
  const call = async (apiKey: string): Promise<void> => {
    const response = await fetch(url, { headers: { "x-api-key": apiKey } });
    const body = await response.text();
    const tally = tallies[apiKey] as ClientTally;
    if (response.status === 200) tally.ok++;
    else if (response.status === 429) {
      tally.limited++;
      sample ??= {
        status: response.status,
        headers: SHOWN.flatMap((name) => {
          const value = response.headers.get(name);
          return value === null ? [] : [[name, value] as [string, string]];
        }),
        body,
      };
    } else tally.other++;
  };
  const alice = async (): Promise<void> => {
    while (Date.now() < stopAt) await call("alice");
  };
  const bob = async (): Promise<void> => {
    while (Date.now() < stopAt) {
      await call("bob");
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  };
  await Promise.all([...Array.from({ length: 8 }, alice), bob()]);
  await new Promise<void>((resolve) => server.close(() => resolve()));

  for (const [name, tally] of Object.entries(tallies)) {
    console.log(
      `${name.padEnd(6)} ${String(tally.ok).padStart(5)} answered 200, ${String(tally.limited).padStart(5)} answered 429`,
    );
  }
  const allowed = burst + ratePerSecond * seconds;
  console.log(`(per key, the limit allows at most ${burst} + ${ratePerSecond} x ${seconds} = ${allowed} requests)`);
  if (sample !== undefined) {
    console.log(`\nOne of alice's refusals, as her client received it:\n  HTTP ${sample.status}`);
    for (const [name, value] of sample.headers) console.log(`  ${name}: ${value}`);
    console.log(`  ${sample.body}`);
  }
  const { alice: a, bob: b } = tallies as { alice: ClientTally; bob: ClientTally };
  return a.ok <= allowed && a.limited > 0 && b.limited === 0 && a.other === 0 && b.other === 0;
}
