import { createMemoryEngine, createRateSync, type RateSync } from "@ratesync/core";
import { FakeClock, FlakyEngine } from "@ratesync/core/testing";
import { describe, expect, it } from "vitest";
import { type Answer, type Client, DRIVERS, type Driver, type LimitSetup } from "./drivers.js";

/** A scenario: limiters on a fresh registry, a limit, and requests; returns what it observed. */
interface Scenario<T> {
  configure(rs: RateSync, engine: FlakyEngine): void;
  readonly limit: LimitSetup;
  run(client: Client, clock: FakeClock, engine: FlakyEngine, rs: RateSync): Promise<T>;
}

/** Runs a scenario on every driver, each with its own registry, store and clock. */
async function onEveryDriver<T>(scenario: Scenario<T>): Promise<Map<string, T>> {
  const results = new Map<string, T>();
  for (const driver of DRIVERS) results.set(driver.name, await runOn(driver, scenario));
  return results;
}

async function runOn<T>(driver: Driver, scenario: Scenario<T>): Promise<T> {
  const clock = new FakeClock(1_700_000_040_000); // aligned on a minute
  const rs = createRateSync({ clock, autoload: false, random: () => 0 });
  const engine = new FlakyEngine(createMemoryEngine({}, clock));
  rs.configureStore("mem", { engine: "memory" });
  rs.configureStore("flaky", { engine, requestTimeoutMs: 50 });
  scenario.configure(rs, engine);
  const client = await driver.start(rs, scenario.limit);
  try {
    return await scenario.run(client, clock, engine, rs);
  } finally {
    await client.close();
    await rs.close();
  }
}

/** Every driver observed the same thing; returns it. */
function same<T>(results: Map<string, T>): T {
  const [first, ...rest] = [...results.entries()];
  if (first === undefined) throw new Error("no driver ran");
  for (const [name, value] of rest) expect(value, `${name} differs from ${first[0]}`).toEqual(first[1]);
  return first[1];
}

const client = (ip: string, extra: Record<string, string> = {}) => ({ "x-forwarded-for": ip, ...extra });
const behindProxy = { trustedProxies: ["127.0.0.1"] } as const;

describe("the same answers from Fastify, Express 4, Express 5 and Hono", () => {
  it("admits exactly the limit, then refuses with 429, Retry-After, headers and a problem body", async () => {
    const answers = same(
      await onEveryDriver({
        configure: (rs) =>
          rs.configureLimiter("api", { store: "mem", algorithm: "fixed_window", limit: 3, windowSeconds: 60 }),
        limit: { limiters: ["api"], ...behindProxy },
        async run(app) {
          const out: Answer[] = [];
          for (let i = 0; i < 4; i++) out.push(await app.request("/api", client("198.51.100.1")));
          return out;
        },
      }),
    );
    expect(answers.map((answer) => answer.status)).toEqual([200, 200, 200, 429]);
    expect(answers[0]).toEqual({
      status: 200,
      headers: { "ratelimit-policy": '"api";q=3;w=60', ratelimit: '"api";r=2;t=60' },
      body: "ok",
    });
    expect(answers[3]?.headers).toEqual({
      "ratelimit-policy": '"api";q=3;w=60',
      ratelimit: '"api";r=0;t=60',
      "retry-after": "60",
      "content-type": "application/problem+json",
    });
    expect(JSON.parse(answers[3]?.body ?? "")).toMatchObject({ type: "about:blank", status: 429, retryAfter: 60 });
  });

  it("honours Retry-After: a retry exactly that much later succeeds, one earlier does not", async () => {
    const statuses = same(
      await onEveryDriver({
        configure: (rs) => rs.configureLimiter("api", { store: "mem", ratePerSecond: 0.5, burst: 2 }),
        limit: { limiters: ["api"], ...behindProxy },
        async run(app, clock) {
          const seen: (number | string)[] = [];
          for (let i = 0; i < 3; i++) seen.push((await app.request("/api", client("198.51.100.2"))).status);
          const refused = await app.request("/api", client("198.51.100.2"));
          const wait = Number(refused.headers["retry-after"]);
          seen.push(refused.status, `retry-after ${wait}`);
          await clock.advance(wait * 1000 - 1);
          seen.push((await app.request("/api", client("198.51.100.2"))).status);
          await clock.advance(1);
          seen.push((await app.request("/api", client("198.51.100.2"))).status);
          return seen;
        },
      }),
    );
    expect(statuses).toEqual([200, 200, 429, 429, "retry-after 2", 429, 200]);
  });

  it("leaves excluded paths alone: no limit, no headers", async () => {
    const answers = same(
      await onEveryDriver({
        configure: (rs) => rs.configureLimiter("api", { store: "mem", ratePerSecond: 1, burst: 1 }),
        limit: { limiters: ["api"], excludePaths: [/^\/health$/], ...behindProxy },
        async run(app) {
          const out: Answer[] = [];
          for (let i = 0; i < 5; i++) out.push(await app.request("/health", client("198.51.100.3")));
          out.push(await app.request("/api", client("198.51.100.3")));
          return out;
        },
      }),
    );
    expect(answers.slice(0, 5)).toEqual(new Array(5).fill({ status: 200, headers: {}, body: "ok" }));
    expect(answers[5]?.status).toBe(200);
  });

  it("keys by user when the key function gives one, by client IP otherwise", async () => {
    const statuses = same(
      await onEveryDriver({
        configure: (rs) => rs.configureLimiter("api", { store: "mem", ratePerSecond: 1, burst: 1 }),
        limit: { limiters: ["api"], keyHeader: "x-user", ...behindProxy },
        async run(app) {
          const ask = async (ip: string, user?: string) =>
            (await app.request("/api", client(ip, user === undefined ? {} : { "x-user": user }))).status;
          return [
            await ask("198.51.100.4", "ann"),
            await ask("198.51.100.5", "ann"), // same user, other IP: refused
            await ask("198.51.100.4", "bob"),
            await ask("198.51.100.4"), // no user: the IP's own budget
            await ask("198.51.100.4"),
          ];
        },
      }),
    );
    expect(statuses).toEqual([200, 429, 200, 200, 429]);
  });

  it("with two limiters on one route, a refusal by one charges neither", async () => {
    const result = same(
      await onEveryDriver({
        configure: (rs) => {
          rs.configureLimiter("per-ip", { store: "mem", algorithm: "fixed_window", limit: 5, windowSeconds: 60 });
          rs.configureLimiter("per-user", { store: "mem", algorithm: "fixed_window", limit: 2, windowSeconds: 60 });
        },
        limit: { limiters: ["per-ip", { limiter: "per-user", keyHeader: "x-user" }], ...behindProxy },
        async run(app, _clock, _engine, rs) {
          const answers: Answer[] = [];
          for (let i = 0; i < 4; i++)
            answers.push(await app.request("/api", client("198.51.100.6", { "x-user": "ann" })));
          const ipLeft = (await rs.getLimiter("per-ip").state("198.51.100.6")).remaining;
          // Another user from the same IP still has the IP's remaining budget.
          for (let i = 0; i < 4; i++)
            answers.push(await app.request("/api", client("198.51.100.6", { "x-user": "bob" })));
          return { statuses: answers.map((answer) => answer.status), ipLeft, last: answers[7] };
        },
      }),
    );
    expect(result.statuses).toEqual([200, 200, 429, 429, 200, 200, 429, 429]);
    expect(result.ipLeft).toBe(3);
    expect(result.last?.headers.ratelimit).toBe('"per-ip";r=1;t=60, "per-user";r=0;t=60');
  });

  it("fails open (admitted, no made-up numbers) and closed (503 without backend detail)", async () => {
    const result = same(
      await onEveryDriver({
        configure: (rs) => {
          rs.configureLimiter("open", { store: "flaky", ratePerSecond: 1, burst: 1 });
          rs.configureLimiter("closed", { store: "flaky", ratePerSecond: 1, burst: 1, failClosed: true });
        },
        limit: { limiters: ["open"], ...behindProxy },
        async run(app, _clock, engine) {
          engine.fail("error");
          const open = [
            await app.request("/api", client("198.51.100.7")),
            await app.request("/api", client("198.51.100.7")),
          ];
          engine.recover();
          const recovered = [
            await app.request("/api", client("198.51.100.7")),
            await app.request("/api", client("198.51.100.7")),
          ];
          return { open, recovered: recovered.map((answer) => answer.status) };
        },
      }),
    );
    expect(result.open).toEqual(
      new Array(2).fill({ status: 200, headers: { "ratelimit-policy": '"open";q=1;w=1' }, body: "ok" }),
    );
    expect(result.recovered).toEqual([200, 429]);

    const closed = same(
      await onEveryDriver({
        configure: (rs) =>
          rs.configureLimiter("closed", { store: "flaky", ratePerSecond: 1, burst: 1, failClosed: true }),
        limit: { limiters: ["closed"], ...behindProxy },
        async run(app, _clock, engine) {
          engine.fail("error");
          return app.request("/api", client("198.51.100.8"));
        },
      }),
    );
    expect(closed.status).toBe(503);
    expect(closed.headers).toEqual({ "retry-after": "5", "content-type": "application/problem+json" });
    expect(closed.body).not.toMatch(/flaky|memory|simulated|deadline|store/i);
  });

  it("counts 1,000 requests with spoofed left-most forwarded-for entries against the real client", async () => {
    const result = same(
      await onEveryDriver({
        configure: (rs) =>
          rs.configureLimiter("api", { store: "mem", algorithm: "fixed_window", limit: 100, windowSeconds: 60 }),
        limit: { limiters: ["api"], trustedProxies: 1 },
        async run(app, _clock, _engine, rs) {
          let random = 12345;
          const spoof = () => {
            random = (random * 1103515245 + 12345) % 2 ** 31;
            return `${random % 223}.${(random >> 8) % 256}.${(random >> 16) % 256}.${random % 250}`;
          };
          let admitted = 0;
          for (let i = 0; i < 1000; i++) {
            const chain = `${spoof()}, ${spoof()}, 203.0.113.50`;
            if ((await app.request("/api", { "x-forwarded-for": chain })).status === 200) admitted++;
          }
          return { admitted, left: (await rs.getLimiter("api").state("203.0.113.50")).remaining };
        },
      }),
    );
    expect(result).toEqual({ admitted: 100, left: 0 });
  });

  it("answers 400 to a request with no usable client address, and never pools such requests", async () => {
    const answers = same(
      await onEveryDriver({
        configure: (rs) => rs.configureLimiter("api", { store: "mem", ratePerSecond: 1, burst: 1 }),
        limit: { limiters: ["api"], ...behindProxy },
        async run(app) {
          return [
            await app.request("/api", { "x-forwarded-for": "unknown" }),
            await app.request("/api", { "x-forwarded-for": "unknown" }),
          ];
        },
      }),
    );
    expect(answers.map((answer) => answer.status)).toEqual([400, 400]);
  });

  it("writes the legacy header set the same way on request", async () => {
    const answer = same(
      await onEveryDriver({
        configure: (rs) =>
          rs.configureLimiter("api", { store: "mem", algorithm: "fixed_window", limit: 3, windowSeconds: 60 }),
        limit: { limiters: ["api"], headers: "legacy", ...behindProxy },
        run: (app) => app.request("/api", client("198.51.100.9")),
      }),
    );
    expect(answer.headers).toEqual({ "x-ratelimit-limit": "3" });
  });
});
