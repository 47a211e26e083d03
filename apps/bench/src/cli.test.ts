import { describe, expect, it } from "vitest";
import { parseOptions, UsageError } from "./cli.js";

describe("parseOptions", () => {
  it("defaults to every suite, each suite's rounds of 1 s, the token bucket and a local Redis", () => {
    expect(parseOptions([], {})).toEqual({
      suites: undefined,
      cases: undefined,
      rounds: undefined,
      seconds: 1,
      warmupSeconds: 0.5,
      algorithm: "token_bucket",
      redisUrl: "redis://127.0.0.1:6379",
      natsUrl: "nats://127.0.0.1:4222",
      postgresUrl: "postgres://postgres@127.0.0.1:5432/test",
      json: undefined,
      quick: false,
      help: false,
    });
  });

  it("shortens the defaults with --quick but keeps values given explicitly", () => {
    const options = parseOptions(["--quick", "--rounds", "7"], {});
    expect(options).toMatchObject({ quick: true, rounds: 7, seconds: 0.25, warmupSeconds: 0.2 });
    expect(parseOptions(["--quick"], {}).rounds).toBeUndefined();
  });

  it("takes the Redis URL from --redis-url, then BENCH_REDIS_URL, then REDIS_URL", () => {
    const env = { BENCH_REDIS_URL: "redis://bench-a.test:6379", REDIS_URL: "redis://bench-b.test:6379" };
    expect(parseOptions(["--redis-url", "redis://127.0.0.1:6380"], env).redisUrl).toBe("redis://127.0.0.1:6380");
    expect(parseOptions([], env).redisUrl).toBe("redis://bench-a.test:6379");
    expect(parseOptions([], { REDIS_URL: "redis://bench-b.test:6379" }).redisUrl).toBe("redis://bench-b.test:6379");
  });

  it("takes the NATS URL from --nats-url, then BENCH_NATS_URL, then NATS_URL", () => {
    const env = { BENCH_NATS_URL: "nats://bench-a.test:4222", NATS_URL: "nats://bench-b.test:4222" };
    expect(parseOptions(["--nats-url", "nats://127.0.0.1:4223"], env).natsUrl).toBe("nats://127.0.0.1:4223");
    expect(parseOptions([], env).natsUrl).toBe("nats://bench-a.test:4222");
    expect(parseOptions([], { NATS_URL: "nats://bench-b.test:4222" }).natsUrl).toBe("nats://bench-b.test:4222");
  });

  it("ignores the -- that pnpm passes through", () => {
    expect(parseOptions(["--", "--quick"], {}).quick).toBe(true);
  });

  it("reads the environment, and lets flags win over it", () => {
    const env = { BENCH_ROUNDS: "9", BENCH_SECONDS: "2", BENCH_QUICK: "1", BENCH_SUITE: "memory,redis" };
    expect(parseOptions([], env)).toMatchObject({ rounds: 9, seconds: 2, quick: true, suites: ["memory", "redis"] });
    expect(parseOptions(["--rounds", "3"], env).rounds).toBe(3);
  });

  it("accepts suites and cases comma-separated or repeated", () => {
    const options = parseOptions(["--suite", "memory", "--suite", "redis", "--case", "Hot,100"], {});
    expect(options.suites).toEqual(["memory", "redis"]);
    expect(options.cases).toEqual(["hot", "100"]);
  });

  it("keeps a case name whole: commas in numbers and commas followed by a space do not separate", () => {
    expect(parseOptions(["--case", "10,000 keys admitted, 1 in flight"], {}).cases).toEqual([
      "10,000 keys admitted, 1 in flight",
    ]);
    expect(parseOptions([], { BENCH_CASE: "hot key rejected, 64 in flight,10,000 keys admitted" }).cases).toEqual([
      "hot key rejected, 64 in flight",
      "10,000 keys admitted",
    ]);
    expect(parseOptions(["--case", "64,hot"], {}).cases).toEqual(["64", "hot"]);
  });

  it("refuses unknown flags, stray arguments and out-of-range numbers with a UsageError", () => {
    expect(() => parseOptions(["--round", "3"], {})).toThrow(UsageError);
    expect(() => parseOptions(["memory"], {})).toThrow(UsageError);
    expect(() => parseOptions(["--rounds", "0"], {})).toThrow(/--rounds must be a whole number > 0/);
    expect(() => parseOptions(["--rounds", "2.5"], {})).toThrow(UsageError);
    expect(() => parseOptions(["--seconds", "abc"], {})).toThrow(UsageError);
    expect(() => parseOptions(["--algorithm", "leaky_bucket"], {})).toThrow(/token_bucket, fixed_window/);
  });
});
