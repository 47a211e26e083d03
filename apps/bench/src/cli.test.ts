import { describe, expect, it } from "vitest";
import { parseOptions, UsageError } from "./cli.js";

describe("parseOptions", () => {
  it("defaults to every suite, 5 rounds of 1 s and the token bucket", () => {
    expect(parseOptions([], {})).toEqual({
      suites: undefined,
      cases: undefined,
      rounds: 5,
      seconds: 1,
      warmupSeconds: 0.5,
      algorithm: "token_bucket",
      json: undefined,
      quick: false,
      help: false,
    });
  });

  it("shortens the defaults with --quick but keeps values given explicitly", () => {
    const options = parseOptions(["--quick", "--rounds", "7"], {});
    expect(options).toMatchObject({ quick: true, rounds: 7, seconds: 0.25, warmupSeconds: 0.2 });
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

  it("refuses unknown flags, stray arguments and out-of-range numbers with a UsageError", () => {
    expect(() => parseOptions(["--round", "3"], {})).toThrow(UsageError);
    expect(() => parseOptions(["memory"], {})).toThrow(UsageError);
    expect(() => parseOptions(["--rounds", "0"], {})).toThrow(/--rounds must be a whole number > 0/);
    expect(() => parseOptions(["--rounds", "2.5"], {})).toThrow(UsageError);
    expect(() => parseOptions(["--seconds", "abc"], {})).toThrow(UsageError);
    expect(() => parseOptions(["--algorithm", "leaky_bucket"], {})).toThrow(/token_bucket, fixed_window/);
  });
});
