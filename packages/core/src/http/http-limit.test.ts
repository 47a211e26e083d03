import { describe, expect, it, vi } from "vitest";
import { createMemoryEngine } from "../engines/memory.js";
import { isRateSyncError } from "../errors.js";
import { createRateSync, type RateSync } from "../rate-sync.js";
import { FakeClock } from "../testing/fake-clock.js";
import { FlakyEngine } from "../testing/flaky-engine.js";
import { type HttpCheck, type HttpLimitOptions, HttpRateLimit, type HttpRequestView } from "./http-limit.js";

interface Req {
  user?: string;
  ip?: string | undefined;
  path?: string;
  headers?: Record<string, string>;
}

function view(request: Req = {}): HttpRequestView<Req> {
  return {
    native: request,
    path: request.path ?? "/",
    remoteAddress: "ip" in request ? request.ip : "192.0.2.1",
    header: (name) => request.headers?.[name],
  };
}

function setup(): { clock: FakeClock; rs: RateSync } {
  const clock = new FakeClock();
  const rs = createRateSync({ clock, autoload: false, random: () => 0 });
  rs.configureStore("mem", { engine: "memory" });
  return { clock, rs };
}

function limit(rs: RateSync, options: Omit<HttpLimitOptions<Req>, "rateSync">): HttpRateLimit<Req> {
  return new HttpRateLimit<Req>({ ...options, rateSync: rs, clientAddress: { warn: false, ...options.clientAddress } });
}

function headersOf(outcome: HttpCheck): Record<string, string> {
  if (outcome.action === "skip") return {};
  return Object.fromEntries(outcome.action === "allow" ? outcome.headers : outcome.response.headers);
}

describe("HttpRateLimit", () => {
  it("admits exactly the limit, then answers 429 with Retry-After and a problem body; the retry then passes", async () => {
    const { clock, rs } = setup();
    rs.configureLimiter("api", { store: "mem", algorithm: "fixed_window", limit: 3, windowSeconds: 10 });
    clock.set(1_700_000_000_000); // aligned on a 10 s window
    const http = limit(rs, { limiter: "api" });
    const outcomes: HttpCheck[] = [];
    for (let i = 0; i < 4; i++) outcomes.push(await http.check(view()));
    expect(outcomes.map((outcome) => outcome.action)).toEqual(["allow", "allow", "allow", "refuse"]);
    expect(headersOf(outcomes[0] as HttpCheck)).toEqual({
      "ratelimit-policy": '"api";q=3;w=10',
      ratelimit: '"api";r=2;t=10',
    });
    const refused = outcomes[3] as Extract<HttpCheck, { action: "refuse" }>;
    expect(refused.kind).toBe("limited");
    expect(refused.response.status).toBe(429);
    expect(headersOf(refused)).toEqual({
      "ratelimit-policy": '"api";q=3;w=10',
      ratelimit: '"api";r=0;t=10',
      "retry-after": "10",
      "content-type": "application/problem+json",
    });
    expect(JSON.parse(refused.response.body)).toEqual({
      type: "about:blank",
      title: "Too Many Requests",
      status: 429,
      detail: "Too many requests: the rate limit is reached. Retry in 10 seconds.",
      retryAfter: 10,
    });
    await clock.advance(9_999);
    expect((await http.check(view())).action).toBe("refuse");
    await clock.advance(1);
    expect((await http.check(view())).action).toBe("allow");
  });

  it("keys by client IP by default (IPv6 by /56) and by the key function when given", async () => {
    const { rs } = setup();
    rs.configureLimiter("api", { store: "mem", ratePerSecond: 1, burst: 1 });
    const byIp = limit(rs, { limiter: "api" });
    expect((await byIp.check(view({ ip: "2001:db8:0:100::1" }))).action).toBe("allow");
    expect((await byIp.check(view({ ip: "2001:db8:0:1ff::2" }))).action).toBe("refuse");
    expect((await byIp.check(view({ ip: "2001:db8:0:200::1" }))).action).toBe("allow");
    expect((await byIp.check(view({ ip: "::ffff:192.0.2.9" }))).action).toBe("allow");
    expect((await byIp.check(view({ ip: "192.0.2.9" }))).action).toBe("refuse");
    const byUser = limit(rs, { limiter: "api", key: (request) => request.user });
    expect((await byUser.check(view({ user: "u1" }))).action).toBe("allow");
    expect((await byUser.check(view({ user: "u1" }))).action).toBe("refuse");
    expect((await byUser.check(view({ user: "u2" }))).action).toBe("allow");
    // No user: the client IP (192.0.2.1, fresh).
    expect((await byUser.check(view({}))).action).toBe("allow");
  });

  it("never puts the key (IP or user id) in a header", async () => {
    const { rs } = setup();
    rs.configureLimiter("api", { store: "mem", ratePerSecond: 1, burst: 1, maxConcurrent: 2 });
    for (const headers of ["ietf", "draft-7", "draft-6", "legacy"] as const) {
      const http = limit(rs, { limiter: "api", headers, key: (request) => request.user });
      for (let i = 0; i < 2; i++) {
        const text = JSON.stringify(headersOf(await http.check(view({ user: `secret-user-${headers}` }))));
        expect(text).not.toContain("secret-user");
        expect(text).not.toContain("192.0.2.1");
      }
    }
  });

  it("writes the older drafts and the legacy set on request", async () => {
    const { clock, rs } = setup();
    rs.configureLimiter("api", { store: "mem", algorithm: "sliding_window", limit: 5, windowSeconds: 60 });
    const at = (headers: HttpLimitOptions<Req>["headers"], user: string) =>
      limit(rs, { limiter: "api", headers, key: () => user }).check(view());
    expect(headersOf(await at("draft-7", "a"))).toEqual({
      ratelimit: "limit=5, remaining=4, reset=60",
      "ratelimit-policy": "5;w=60",
    });
    expect(headersOf(await at("draft-6", "b"))).toEqual({
      "ratelimit-limit": "5",
      "ratelimit-remaining": "4",
      "ratelimit-reset": "60",
      "ratelimit-policy": "5;w=60",
    });
    expect(headersOf(await at("legacy", "c"))).toEqual({
      "x-ratelimit-limit": "5",
      "x-ratelimit-remaining": "4",
      "x-ratelimit-reset": String(Math.ceil((clock.now() + 60_000) / 1000)),
    });
    expect(headersOf(await at(false, "d"))).toEqual({});
  });

  it("reports the limiter closest to refusing in the single-policy formats", async () => {
    const { rs } = setup();
    rs.configureLimiter("wide", { store: "mem", algorithm: "fixed_window", limit: 100, windowSeconds: 60 });
    rs.configureLimiter("narrow", { store: "mem", algorithm: "fixed_window", limit: 4, windowSeconds: 10 });
    const http = limit(rs, { limiter: ["wide", "narrow"], headers: "draft-7" });
    const headers = headersOf(await http.check(view()));
    expect(headers["ratelimit-policy"]).toBe("100;w=60, 4;w=10");
    expect(headers.ratelimit).toMatch(/^limit=4, remaining=3, reset=\d+$/);
  });

  it("lists a concurrency limit as its own policy item and releases the slot exactly once", async () => {
    const { rs } = setup();
    rs.configureLimiter("api", { store: "mem", ratePerSecond: 10, burst: 10, maxConcurrent: 1 });
    const http = limit(rs, { limiter: "api" });
    const first = await http.check(view());
    expect(headersOf(first)).toEqual({
      "ratelimit-policy": '"api";q=10;w=1, "api-concurrency";q=1;qu="concurrent-requests"',
      ratelimit: '"api";r=9;t=1, "api-concurrency";r=0',
    });
    const second = await http.check(view());
    expect(second.action).toBe("refuse");
    expect(headersOf(second).ratelimit).toMatch(/^"api-concurrency";r=0;t=60$/);
    if (first.action !== "allow") throw new Error("expected allow");
    expect(first.holdsSlots).toBe(true);
    await Promise.all([first.release(), first.release()]);
    await first.release();
    expect(rs.getLimiter("api").metrics().totalReleases).toBe(1);
    expect(rs.getLimiter("api").metrics().currentConcurrent).toBe(0);
    expect((await http.check(view())).action).toBe("allow");
  });

  it("with two limiters, a refusal by one charges neither", async () => {
    const { rs } = setup();
    rs.configureLimiter("per-ip", { store: "mem", algorithm: "fixed_window", limit: 10, windowSeconds: 60 });
    rs.configureLimiter("per-user", { store: "mem", algorithm: "fixed_window", limit: 2, windowSeconds: 60 });
    const http = limit(rs, { limiter: ["per-ip", { limiter: "per-user", key: (request) => request.user }] });
    const actions: string[] = [];
    for (let i = 0; i < 5; i++) actions.push((await http.check(view({ user: "u" }))).action);
    expect(actions).toEqual(["allow", "allow", "refuse", "refuse", "refuse"]);
    // The three refusals by per-user did not spend per-ip's budget.
    expect((await rs.getLimiter("per-ip").state("192.0.2.1")).remaining).toBe(8);
    const refused = await http.check(view({ user: "u" }));
    expect(headersOf(refused)["ratelimit-policy"]).toBe('"per-ip";q=10;w=60, "per-user";q=2;w=60');
    // The fake clock starts 20 s into a minute.
    expect(headersOf(refused).ratelimit).toBe('"per-ip";r=8;t=40, "per-user";r=0;t=40');
  });

  it("with two limiters, gives back the slot taken when the other refuses after the check", async () => {
    const { rs } = setup();
    rs.configureLimiter("slots", { store: "mem", maxConcurrent: 1 });
    rs.configureLimiter("rate", { store: "mem", algorithm: "fixed_window", limit: 1, windowSeconds: 60 });
    const rate = rs.getLimiter("rate");
    // Another request spends the rate budget between the check and the charge.
    const original = rate.tryAcquire.bind(rate);
    const spy = vi.spyOn(rate, "tryAcquire").mockImplementationOnce(async (options) => {
      await original(options);
      return original(options);
    });
    const http = limit(rs, { limiter: ["rate", "slots"] });
    const outcome = await http.check(view());
    expect(outcome.action).toBe("refuse");
    expect(rs.getLimiter("slots").metrics().currentConcurrent).toBe(0);
    expect((await rs.getLimiter("slots").state("192.0.2.1")).concurrency?.inUse).toBe(0);
    spy.mockRestore();
  });

  it("admits degraded when a fail-open store fails, with no made-up numbers", async () => {
    const clock = new FakeClock();
    const rs = createRateSync({ clock, autoload: false });
    const engine = new FlakyEngine(createMemoryEngine({}, clock));
    rs.configureStore("flaky", { engine });
    rs.configureLimiter("open", { store: "flaky", ratePerSecond: 1, burst: 1 });
    rs.configureLimiter("closed", { store: "flaky", ratePerSecond: 1, burst: 1, failClosed: true });
    engine.fail("error");
    const open = await limit(rs, { limiter: "open" }).check(view());
    expect(open.action).toBe("allow");
    if (open.action === "allow") expect(open.info.degraded).toBe(true);
    expect(headersOf(open)).toEqual({ "ratelimit-policy": '"open";q=1;w=1' });
    const closed = await limit(rs, { limiter: "closed" }).check(view());
    if (closed.action !== "refuse") throw new Error("expected refuse");
    expect(closed.kind).toBe("unavailable");
    expect(closed.response.status).toBe(503);
    expect(headersOf(closed)).toEqual({ "retry-after": "5", "content-type": "application/problem+json" });
    expect(closed.response.body).not.toMatch(/flaky|memory|connection|refused/i);
    // Two limiters: the fail-closed one decides.
    const both = await limit(rs, { limiter: ["open", "closed"], unavailableRetryAfterSeconds: 2 }).check(view());
    expect(both.action === "refuse" && both.response.status).toBe(503);
    expect(headersOf(both)["retry-after"]).toBe("2");
  });

  it("answers 503 when a fail-closed store hangs past its deadline (real clock)", async () => {
    const rs = createRateSync({ autoload: false });
    const engine = new FlakyEngine(createMemoryEngine());
    rs.configureStore("slow", { engine, requestTimeoutMs: 20 });
    rs.configureLimiter("closed", { store: "slow", ratePerSecond: 1, burst: 1, failClosed: true });
    engine.fail("hang");
    const outcome = await limit(rs, { limiter: "closed" }).check(view());
    expect(outcome.action === "refuse" && outcome.kind).toBe("unavailable");
    await rs.close();
  });

  it("awaits an asynchronous custom refusal", async () => {
    const { rs } = setup();
    rs.configureLimiter("api", { store: "mem", ratePerSecond: 1, burst: 1 });
    const http = limit(rs, {
      limiter: "api",
      refusal: async (response) => ({ ...response, status: 503 }),
    });
    await http.check(view());
    const refused = await http.check(view());
    expect(refused.action === "refuse" && refused.response.status).toBe(503);
  });

  it("skips excluded paths and skipped requests without headers or charge", async () => {
    const { rs } = setup();
    rs.configureLimiter("api", { store: "mem", ratePerSecond: 1, burst: 1 });
    const skip = vi.fn((request: Req) => request.user === "admin");
    const http = limit(rs, { limiter: "api", excludePaths: [/^\/health$/g, /^\/static\//], skip });
    for (let i = 0; i < 3; i++) {
      expect((await http.check(view({ path: "/health" }))).action).toBe("skip");
      expect((await http.check(view({ path: "/static/a.css" }))).action).toBe("skip");
      expect((await http.check(view({ user: "admin" }))).action).toBe("skip");
    }
    expect((await http.check(view())).action).toBe("allow");
    expect((await http.check(view({ path: "/healthz" }))).action).toBe("refuse");
  });

  it("answers 400 for a request with no client address, or lets it through when told to", async () => {
    const { rs } = setup();
    rs.configureLimiter("api", { store: "mem", ratePerSecond: 1, burst: 1 });
    const refused = await limit(rs, { limiter: "api" }).check(view({ ip: undefined }));
    expect(refused.action === "refuse" && refused.kind).toBe("no-address");
    expect(refused.action === "refuse" && refused.response.status).toBe(400);
    for (let i = 0; i < 3; i++) {
      expect((await limit(rs, { limiter: "api", noAddress: "allow" }).check(view({ ip: undefined }))).action).toBe(
        "skip",
      );
    }
  });

  it("lets the refusal be customised", async () => {
    const { rs } = setup();
    rs.configureLimiter("api", { store: "mem", ratePerSecond: 1, burst: 1 });
    const http = limit(rs, {
      limiter: "api",
      refusal: (response, context) => ({
        status: 418,
        headers: [...response.headers.filter(([name]) => name !== "content-type"), ["content-type", "text/plain"]],
        body: `${context.kind} ${context.retryAfterSeconds}`,
      }),
    });
    await http.check(view());
    const refused = await http.check(view());
    expect(refused.action === "refuse" && refused.response).toMatchObject({ status: 418, body: "limited 1" });
  });

  it("charges the cost per request", async () => {
    const { rs } = setup();
    rs.configureLimiter("api", { store: "mem", algorithm: "fixed_window", limit: 10, windowSeconds: 60 });
    const http = limit(rs, { limiter: "api", cost: (request) => (request.user === "big" ? 6 : 1) });
    expect((await http.check(view({ user: "big" }))).action).toBe("allow");
    expect((await http.check(view({ user: "big" }))).action).toBe("refuse");
    expect((await http.check(view())).action).toBe("allow");
  });

  it("checks its options at once, naming the bad one", () => {
    const { rs } = setup();
    const bad: unknown[] = [
      { limiter: [] },
      { limiter: 5 },
      { limiter: "api", cost: -1 },
      { limiter: "api", cost: 1.5 },
      { limiter: "api", key: "user" },
      { limiter: "api", skip: true },
      { limiter: "api", excludePaths: ["/health"] },
      { limiter: "api", headers: "draft-99" },
      { limiter: "api", noAddress: "shared" },
      { limiter: "api", unavailableRetryAfterSeconds: -1 },
      { limiter: "api", clientAddress: { trustedProxies: -2 } },
    ];
    for (const options of bad) {
      let error: unknown;
      try {
        new HttpRateLimit({ rateSync: rs, ...(options as HttpLimitOptions<Req>) });
      } catch (caught) {
        error = caught;
      }
      expect(isRateSyncError(error, "INVALID_ARGUMENT"), JSON.stringify(options)).toBe(true);
    }
  });

  it("rejects for a limiter that does not exist", async () => {
    const { rs } = setup();
    await expect(limit(rs, { limiter: "nope" }).check(view())).rejects.toMatchObject({ code: "LIMITER_NOT_FOUND" });
    expect(() => limit(rs, { limiter: "nope" }).checkNow(view())).toThrow(
      expect.objectContaining({ code: "LIMITER_NOT_FOUND" }),
    );
  });

  it("counts the reset in headers from the store's time of the decision, not this host's clock", async () => {
    const local = new FakeClock();
    const store = new FakeClock();
    local.set(1_700_000_003_000); // this host runs 3 s ahead of the store
    store.set(1_700_000_000_000); // the start of a 10 s window on the store's clock
    const rs = createRateSync({ clock: local, autoload: false });
    rs.configureStore("remote", { engine: new FlakyEngine(createMemoryEngine({}, store)) });
    rs.configureLimiter("api", { store: "remote", algorithm: "fixed_window", limit: 1, windowSeconds: 10 });
    const http = limit(rs, { limiter: "api" });
    expect(headersOf(await http.check(view()))).toMatchObject({ ratelimit: '"api";r=0;t=10' });
    const refused = await http.check(view());
    expect(headersOf(refused)).toMatchObject({ ratelimit: '"api";r=0;t=10', "retry-after": "10" });
  });

  it("checkNow answers without a promise when the store decides in process, with the same outcomes as check", async () => {
    const { rs } = setup();
    rs.configureLimiter("api", { store: "mem", algorithm: "fixed_window", limit: 1, windowSeconds: 60 });
    const http = limit(rs, { limiter: "api", excludePaths: [/^\/health$/] });
    // The memory store opens on first use; from then on every answer is synchronous.
    expect((await http.check(view({ ip: "192.0.2.9" }))).action).toBe("allow");
    const admitted = http.checkNow(view());
    const refused = http.checkNow(view());
    const excluded = http.checkNow(view({ path: "/health" }));
    const noAddress = http.checkNow(view({ ip: undefined }));
    for (const outcome of [admitted, refused, excluded, noAddress]) expect(outcome).not.toBeInstanceOf(Promise);
    expect([admitted, refused, excluded, noAddress].map((outcome) => (outcome as HttpCheck).action)).toEqual([
      "allow",
      "refuse",
      "skip",
      "refuse",
    ]);
    expect(headersOf(refused as HttpCheck)).toEqual(headersOf(await http.check(view())));
  });

  it("checkThen hands the outcome over at once when decided in process, once settled otherwise, and errors apart", async () => {
    const { rs } = setup();
    rs.configureLimiter("api", { store: "mem", algorithm: "fixed_window", limit: 1, windowSeconds: 60 });
    const http = limit(rs, { limiter: "api" });
    const seen: string[] = [];
    const errors: unknown[] = [];
    const record = (outcome: HttpCheck) => seen.push(outcome.action);
    // The first check opens the memory store: asynchronous.
    http.checkThen(view(), record, (error) => errors.push(error));
    expect(seen).toEqual([]);
    await vi.waitFor(() => expect(seen).toEqual(["allow"]));
    // From then on, synchronous: the outcome is there when checkThen returns.
    http.checkThen(view(), record, (error) => errors.push(error));
    expect(seen).toEqual(["allow", "refuse"]);
    // What checkNow throws goes to onError, not to onOutcome.
    limit(rs, { limiter: "nope" }).checkThen(view(), record, (error) => errors.push(error));
    expect(errors).toEqual([expect.objectContaining({ code: "LIMITER_NOT_FOUND" })]);
    expect(seen).toHaveLength(2);
  });

  it("checkNow returns a promise for a remote store, and a fail-closed outage there answers 503", async () => {
    const clock = new FakeClock();
    const rs = createRateSync({ clock, autoload: false });
    const engine = new FlakyEngine(createMemoryEngine({}, clock));
    rs.configureStore("remote", { engine });
    rs.configureLimiter("closed", { store: "remote", ratePerSecond: 1, burst: 1, failClosed: true });
    const http = limit(rs, { limiter: "closed" });
    expect((await http.check(view())).action).toBe("allow");
    const pending = http.checkNow(view());
    expect(pending).toBeInstanceOf(Promise);
    expect((await pending).action).toBe("refuse");
    engine.fail("error");
    const unavailable = await http.checkNow(view());
    expect(unavailable.action === "refuse" && unavailable.response.status).toBe(503);
  });
});
