import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { registerEngine } from "./engines/registry.js";
import { RateSyncError } from "./errors.js";
import { createRateSync } from "./rate-sync.js";
import { rejectionOf, thrownBy } from "./testing/errors.js";
import { FakeClock } from "./testing/fake-clock.js";

function registry(env: Record<string, string | undefined> = {}, autoload = false) {
  const clock = new FakeClock();
  return { clock, rs: createRateSync({ clock, random: () => 0, autoload, env }) };
}

function tempConfig(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), "ratesync-"));
  const file = join(dir, "rate-sync.toml");
  writeFileSync(file, text);
  return file;
}

describe("configuration", () => {
  it("configureStore rejects an unknown engine and bad options with CONFIG_INVALID", () => {
    const { rs } = registry();
    expect(thrownBy(() => rs.configureStore("s", { engine: "memroy" })).message).toContain('"memory"');
    expect(thrownBy(() => rs.configureStore("s", { engine: "memory", maxKeys: 0 })).code).toBe("CONFIG_INVALID");
    expect(thrownBy(() => rs.configureStore("", { engine: "memory" })).code).toBe("INVALID_ARGUMENT");
  });

  it("configureStore is idempotent for the same options and refuses different ones", () => {
    const { rs } = registry();
    rs.configureStore("s", { engine: "memory" });
    rs.configureStore("s", { engine: "memory" });
    expect(thrownBy(() => rs.configureStore("s", { engine: "memory", maxKeys: 5 })).message).toContain(
      "already configured",
    );
  });

  it("configureLimiter needs an existing store and names the closest", () => {
    const { rs } = registry();
    rs.configureStore("local", { engine: "memory" });
    const error = thrownBy(() => rs.configureLimiter("api", { store: "locl", ratePerSecond: 1 }));
    expect(error.code).toBe("STORE_NOT_FOUND");
    expect(error.message).toContain('Did you mean "local"');
  });

  it.each([
    [{ ratePerSecond: 0 }, "ratePerSecond"],
    [{ ratePerSecond: -1 }, "ratePerSecond"],
    [{ ratePerSecond: Number.NaN }, "ratePerSecond"],
    [{ ratePerSecond: "10" }, "ratePerSecond"],
    [{ ratePerSecond: 1, burst: 0 }, "burst"],
    [{ ratePerSecond: 1, burst: 1.5 }, "burst"],
    [{ algorithm: "leaky_bucket", ratePerSecond: 1 }, "algorithm"],
    [{ algorithm: "sliding_window", limit: 5 }, "windowSeconds"],
    [{ maxConcurrent: 0 }, "maxConcurrent"],
    [{}, "ratePerSecond"],
    [{ ratePerSecond: 1, timeout: -1 }, "timeout"],
    [{ ratePerSecond: 1, failClosed: "yes" }, "failClosed"],
    [{ ratePerSecond: 1, ratePerSecnd: 2 }, "ratePerSecond"],
  ])("configureLimiter(%j) fails naming %s", (options, key) => {
    const { rs } = registry();
    rs.configureStore("local", { engine: "memory" });
    const error = thrownBy(() => rs.configureLimiter("api", { store: "local", ...(options as object) } as never));
    expect(error.code).toBe("CONFIG_INVALID");
    expect(error.message).toContain(key);
  });

  it("loadConfigFromString reads the seed's quick start unchanged", async () => {
    const { rs } = registry();
    const loaded = rs.loadConfigFromString(`
[stores.local]
engine = "memory"

[limiters.api]
store = "local"
rate_per_second = 10.0
timeout = 30.0
`);
    expect(loaded).toEqual({ file: undefined, stores: ["local"], limiters: ["api"] });
    expect(rs.listLimiters().api?.ratePerSecond).toBe(10);
    expect(rs.listLimiters().api?.timeout).toBe(30);
    expect(rs.listStores()).toEqual({ local: { id: "local", engine: "memory", open: false } });
    expect((await rs.tryAcquire("api")).allowed).toBe(true);
    expect(rs.listStores().local?.open).toBe(true);
  });

  it("loadConfig reads a file and reports CONFIG_NOT_FOUND for a missing one", async () => {
    const { rs } = registry();
    const file = tempConfig('[stores.m]\nengine = "memory"\n[limiters.x]\nstore = "m"\nmax_concurrent = 2\n');
    expect((await rs.loadConfig(file)).limiters).toEqual(["x"]);
    expect(rs.getLimiter("x").config.maxConcurrent).toBe(2);
    const missing = await rejectionOf(rs.loadConfig(join(tmpdir(), "nope", "rate-sync.toml")));
    expect(missing.code).toBe("CONFIG_NOT_FOUND");
  });

  it("loads rate-sync.toml lazily from RATESYNC_CONFIG on the first call that needs a limiter", async () => {
    const file = tempConfig('[stores.m]\nengine = "memory"\n[limiters.api]\nstore = "m"\nrate_per_second = 1\n');
    const { rs } = registry({ RATESYNC_CONFIG: file }, true);
    expect((await rs.tryAcquire("api")).allowed).toBe(true);
    expect((await rs.tryAcquire("api")).allowed).toBe(false);
  });

  it("an invalid file fails the first call that needs it, with every problem listed", async () => {
    const file = tempConfig(
      '[stores.m]\nengine = "memory"\n[limiters.api]\nstore = "m"\nrate_per_second = -1\nbrust = 2\n',
    );
    const { rs } = registry({ RATESYNC_CONFIG: file }, true);
    const error = await rejectionOf(rs.tryAcquire("api"));
    expect(error.code).toBe("CONFIG_INVALID");
    expect(error.message).toContain("rate_per_second");
    expect(error.message).toContain('"burst"');
    // The same error again on the next call, not a confusing "limiter not found".
    expect((await rejectionOf(rs.acquire("api"))).code).toBe("CONFIG_INVALID");
  });

  it("a RATESYNC_CONFIG that points nowhere is CONFIG_NOT_FOUND", async () => {
    const { rs } = registry({ RATESYNC_CONFIG: join(tmpdir(), "missing-dir", "x.toml") }, true);
    expect((await rejectionOf(rs.tryAcquire("api"))).code).toBe("CONFIG_NOT_FOUND");
  });

  it("getLimiter names the closest configured limiter", () => {
    const { rs } = registry();
    rs.configureStore("m", { engine: "memory" });
    rs.configureLimiter("payments", { store: "m", ratePerSecond: 1 });
    const error = thrownBy(() => rs.getLimiter("payment"));
    expect(error.code).toBe("LIMITER_NOT_FOUND");
    expect(error.message).toContain('Did you mean "payments"');
  });

  it("an engine that cannot be loaded fails the call with its error, not a degraded decision", async () => {
    const { rs } = registry();
    registerEngine({
      name: "test-broken-package",
      create: () => {
        throw new RateSyncError("ENGINE_NOT_INSTALLED", "install @ratesync/broken");
      },
    });
    rs.configureStore("b", { engine: "test-broken-package" });
    rs.configureLimiter("api", { store: "b", ratePerSecond: 1 });
    const error = await rejectionOf(rs.tryAcquire("api"));
    expect(error.code).toBe("ENGINE_NOT_INSTALLED");
    expect(error.message).toContain("install @ratesync/broken");
  });
});

describe("cloneLimiter", () => {
  it("gives the clone its own budget on the same store", async () => {
    const { rs } = registry();
    rs.configureStore("m", { engine: "memory" });
    rs.configureLimiter("api", { store: "m", ratePerSecond: 1, timeout: 5 });
    rs.cloneLimiter("api", "api:alice");
    rs.cloneLimiter("api", "api:bob", { burst: 2 });
    expect((await rs.tryAcquire("api")).allowed).toBe(true);
    expect((await rs.tryAcquire("api:alice")).allowed).toBe(true);
    expect((await rs.tryAcquire("api:alice")).allowed).toBe(false);
    expect((await rs.tryAcquire("api:bob")).allowed).toBe(true);
    expect((await rs.tryAcquire("api:bob")).allowed).toBe(true);
    expect(rs.getLimiter("api:bob").config.timeout).toBe(5);
    expect(rs.getLimiter("api:bob").store).toBe(rs.getLimiter("api").store);
  });

  it("can switch the algorithm of the clone", () => {
    const { rs } = registry();
    rs.configureStore("m", { engine: "memory" });
    rs.configureLimiter("api", { store: "m", ratePerSecond: 1 });
    rs.cloneLimiter("api", "api-window", { algorithm: "fixed_window", limit: 10, windowSeconds: 60 });
    expect(rs.getLimiter("api-window").config.algorithm).toBe("fixed_window");
    expect(thrownBy(() => rs.cloneLimiter("nope", "x")).code).toBe("LIMITER_NOT_FOUND");
  });
});

describe("rateLimited", () => {
  it("acquires before and releases after the call, even when it throws", async () => {
    const { rs } = registry();
    rs.configureStore("m", { engine: "memory" });
    rs.configureLimiter("payments", { store: "m", maxConcurrent: 1 });
    const process = rs.rateLimited("payments")(async (id: string) => {
      expect(rs.getLimiter("payments").metrics().currentConcurrent).toBe(1);
      if (id === "bad") throw new Error("declined");
      return `done ${id}`;
    });
    expect(await process("p1")).toBe("done p1");
    await expect(process("bad")).rejects.toThrow("declined");
    expect(rs.getLimiter("payments").metrics().currentConcurrent).toBe(0);
    expect(rs.getLimiter("payments").metrics().totalReleases).toBe(2);
  });

  it("computes the limiter id or the key from the call's arguments", async () => {
    const { rs } = registry();
    rs.configureStore("m", { engine: "memory" });
    rs.configureLimiter("tenant-a", { store: "m", ratePerSecond: 1 });
    rs.configureLimiter("per-user", { store: "m", ratePerSecond: 1 });
    const perTenant = rs.rateLimited((tenantId: string) => `tenant-${tenantId}`, { timeout: 0 })(
      async (_tenantId: string, data: number) => data * 2,
    );
    expect(await perTenant("a", 21)).toBe(42);
    expect((await rejectionOf(perTenant("a", 1))).code).toBe("ACQUIRE_TIMEOUT");
    const perUser = rs.rateLimited("per-user", { key: (user: string) => user, timeout: 0 })(
      async (user: string) => user,
    );
    expect(await perUser("u1")).toBe("u1");
    expect(await perUser("u2")).toBe("u2");
    expect((await rejectionOf(perUser("u1"))).code).toBe("ACQUIRE_TIMEOUT");
  });

  it("works as a standard method decorator and keeps `this`", async () => {
    const { rs } = registry();
    rs.configureStore("m", { engine: "memory" });
    rs.configureLimiter("api", { store: "m", ratePerSecond: 100 });
    class Client {
      prefix = "got";
      async fetch(id: number): Promise<string> {
        return `${this.prefix} ${id}`;
      }
    }
    // Applied as TypeScript applies `@rs.rateLimited("api")` to the method (vitest's transform
    // does not lower decorator syntax, so the call is written out).
    const context = { kind: "method", name: "fetch" } as unknown as ClassMethodDecoratorContext;
    Client.prototype.fetch = rs.rateLimited("api")(Client.prototype.fetch, context);
    expect(await new Client().fetch(7)).toBe("got 7");
    expect(rs.getLimiter("api").metrics().totalAcquisitions).toBe(1);
  });
});

describe("lifecycle", () => {
  it("initializeLimiter opens the store eagerly; close stops renewals and keeps the configuration", async () => {
    const { clock, rs } = registry();
    rs.configureStore("m", { engine: "memory" });
    rs.configureLimiter("db", { store: "m", maxConcurrent: 1, leaseSeconds: 3 });
    rs.configureLimiter("api", { store: "m", ratePerSecond: 1 });
    await rs.initializeAllLimiters();
    expect(rs.listStores().m?.open).toBe(true);
    const slot = await rs.acquire("db");
    expect(clock.pendingTimers).toBe(1);
    await rs.close();
    expect(clock.pendingTimers).toBe(0);
    expect(slot.held).toBe(false);
    expect(rs.listStores().m?.open).toBe(false);
    // The store reopens on the next call.
    expect((await rs.tryAcquire("db")).allowed).toBe(true);
    await expect(rs.initializeLimiter("missing")).rejects.toThrow(/No limiter "missing"/);
  });

  it("state() peeks without consuming and reset() restores the budget", async () => {
    const { rs } = registry();
    rs.configureStore("m", { engine: "memory" });
    rs.configureLimiter("api", { store: "m", ratePerSecond: 1, burst: 3 });
    const limiter = rs.getLimiter("api");
    await limiter.tryAcquire({ key: "k" });
    const state = await limiter.state("k");
    expect(state.remaining).toBe(2);
    expect((await limiter.state("k")).remaining).toBe(2);
    await limiter.reset("k");
    expect((await limiter.state("k")).remaining).toBe(3);
  });
});
