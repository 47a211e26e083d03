import { describe, expect, it } from "vitest";
import type { LimiterConfig } from "../options.js";
import type { ConfigIssue } from "./issues.js";
import { validateLimiterOptions } from "./validate-limiter.js";

/** The config of options that must be valid; fails the test with the issues otherwise. */
function valid(raw: unknown, spelling: "toml" | "ts" = "toml", id = "api"): LimiterConfig {
  const { config, issues } = validateLimiterOptions(id, raw, spelling);
  expect(issues).toEqual([]);
  if (config === undefined) throw new Error("expected a config");
  return config;
}

/** The issues of options that must be invalid, as [key, message] pairs. */
function problems(raw: unknown, spelling: "toml" | "ts" = "toml"): [string | undefined, string][] {
  const { config, issues } = validateLimiterOptions("api", raw, spelling, "rate-sync.toml");
  expect(config).toBeUndefined();
  expect(issues.length).toBeGreaterThan(0);
  return issues.map((issue: ConfigIssue) => [issue.key, issue.message]);
}

const KEEP = "Fix the value or remove the key.";

describe("validateLimiterOptions: valid limiters", () => {
  it("resolves the seed's token bucket with its defaults", () => {
    expect(valid({ store: "local", rate_per_second: 10.0, timeout: 30.0 })).toEqual({
      id: "api",
      store: "local",
      algorithm: "token_bucket",
      ratePerSecond: 10,
      burst: 1,
      limit: undefined,
      windowSeconds: undefined,
      maxConcurrent: undefined,
      leaseSeconds: 60,
      timeout: 30,
      failClosed: false,
      policy: {
        rate: { algorithm: "token_bucket", ratePerSecond: 10, burst: 1, intervalMs: 100 },
        concurrency: undefined,
      },
    });
  });

  it("keeps burst and computes the interval of a fractional rate", () => {
    const config = valid({ store: "s", algorithm: "token_bucket", rate_per_second: 3, burst: 5 });
    expect(config.policy.rate).toEqual({ algorithm: "token_bucket", ratePerSecond: 3, burst: 5, intervalMs: 1000 / 3 });
    expect(config.burst).toBe(5);
  });

  it.each(["sliding_window", "fixed_window"] as const)("resolves a %s in milliseconds", (algorithm) => {
    expect(valid({ store: "redis", algorithm, limit: 5, window_seconds: 300 })).toEqual({
      id: "api",
      store: "redis",
      algorithm,
      ratePerSecond: undefined,
      burst: undefined,
      limit: 5,
      windowSeconds: 300,
      maxConcurrent: undefined,
      leaseSeconds: 60,
      timeout: undefined,
      failClosed: false,
      policy: { rate: { algorithm, limit: 5, windowMs: 300_000 }, concurrency: undefined },
    });
  });

  it("accepts fractional windows", () => {
    expect(valid({ store: "s", algorithm: "fixed_window", limit: 1, window_seconds: 0.25 }).policy.rate).toEqual({
      algorithm: "fixed_window",
      limit: 1,
      windowMs: 250,
    });
  });

  it("combines a rate with max_concurrent, with the default lease", () => {
    const config = valid({ store: "redis", rate_per_second: 100.0, max_concurrent: 50, timeout: 30.0 });
    expect(config.maxConcurrent).toBe(50);
    expect(config.leaseSeconds).toBe(60);
    expect(config.policy.concurrency).toEqual({ maxConcurrent: 50, leaseMs: 60_000 });
  });

  it("resolves a concurrency-only limiter", () => {
    expect(valid({ store: "s", max_concurrent: 3, lease_seconds: 10, fail_closed: true, timeout: 0 })).toEqual({
      id: "api",
      store: "s",
      algorithm: undefined,
      ratePerSecond: undefined,
      burst: undefined,
      limit: undefined,
      windowSeconds: undefined,
      maxConcurrent: 3,
      leaseSeconds: 10,
      timeout: 0,
      failClosed: true,
      policy: { rate: undefined, concurrency: { maxConcurrent: 3, leaseMs: 10_000 } },
    });
  });

  it("combines a window with max_concurrent", () => {
    const config = valid({ store: "s", algorithm: "sliding_window", limit: 2, window_seconds: 1, max_concurrent: 1 });
    expect(config.policy).toEqual({
      rate: { algorithm: "sliding_window", limit: 2, windowMs: 1000 },
      concurrency: { maxConcurrent: 1, leaseMs: 60_000 },
    });
  });

  it("reads camelCase TypeScript options", () => {
    const config = valid(
      {
        store: "local",
        ratePerSecond: 10,
        burst: 5,
        maxConcurrent: 2,
        leaseSeconds: 5,
        timeout: 1.5,
        failClosed: true,
      },
      "ts",
    );
    expect(config).toMatchObject({ ratePerSecond: 10, burst: 5, maxConcurrent: 2, leaseSeconds: 5, timeout: 1.5 });
    expect(config.failClosed).toBe(true);
    expect(config.policy.concurrency).toEqual({ maxConcurrent: 2, leaseMs: 5000 });
  });

  it("treats undefined TypeScript options as absent", () => {
    const config = valid(
      {
        store: "local",
        ratePerSecond: 10,
        burst: undefined,
        limit: undefined,
        timeout: undefined,
        failClosed: undefined,
      },
      "ts",
    );
    expect(config.burst).toBe(1);
    expect(config.failClosed).toBe(false);
  });

  it("reads window options in camelCase", () => {
    const config = valid({ store: "s", algorithm: "sliding_window", limit: 5, windowSeconds: 60 }, "ts");
    expect(config.policy.rate).toEqual({ algorithm: "sliding_window", limit: 5, windowMs: 60_000 });
  });

  it("accepts free-form ids and options without a prototype", () => {
    const raw = Object.assign(Object.create(null) as Record<string, unknown>, { store: "s", rate_per_second: 1 });
    expect(valid(raw, "toml", "tenant:42/api.v1").id).toBe("tenant:42/api.v1");
  });

  it("freezes the config and its policy", () => {
    const config = valid({ store: "s", rate_per_second: 1, max_concurrent: 1 });
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.policy)).toBe(true);
    expect(Object.isFrozen(config.policy.rate)).toBe(true);
    expect(Object.isFrozen(config.policy.concurrency)).toBe(true);
  });
});

describe("validateLimiterOptions: where issues point", () => {
  it("names the file, the table and the key", () => {
    const { issues } = validateLimiterOptions("api", { store: "s", rate_per_second: -1 }, "toml", "rate-sync.toml");
    expect(issues).toEqual([
      {
        file: "rate-sync.toml",
        table: "limiters.api",
        key: "rate_per_second",
        message: `expected a number > 0, got -1. ${KEEP}`,
      },
    ]);
  });

  it("quotes ids that are not bare TOML keys and has no file for programmatic options", () => {
    const { issues } = validateLimiterOptions("v1.api", { store: "s" }, "ts");
    expect(issues.map((issue) => [issue.file, issue.table])).toEqual([[undefined, 'limiters."v1.api"']]);
  });
});

describe("validateLimiterOptions: the options themselves", () => {
  it.each([
    [42, "42"],
    ["fast", '"fast" (a string)'],
    [null, "null"],
    [undefined, "undefined"],
    [[{ store: "s" }], "an array"],
    [new Map([["store", "s"]]), "an object"],
  ])("rejects %s instead of a table", (raw, got) => {
    expect(problems(raw)).toEqual([[undefined, `expected a table of limiter options, got ${got}. Write one.`]]);
  });

  it("rejects an empty id", () => {
    const { config, issues } = validateLimiterOptions("", { store: "s", ratePerSecond: 1 }, "ts");
    expect(config).toBeUndefined();
    expect(issues).toEqual([
      {
        file: undefined,
        table: 'limiters.""',
        key: undefined,
        message: 'the limiter id must be a non-empty string, got "" (a string). Name the limiter.',
      },
    ]);
  });

  it("rejects an id that is not a string (from JavaScript callers)", () => {
    const { issues } = validateLimiterOptions(7 as unknown as string, { store: "s", ratePerSecond: 1 }, "ts");
    expect(issues.map((issue) => issue.message)).toEqual([
      "the limiter id must be a non-empty string, got 7. Name the limiter.",
    ]);
  });
});

describe("validateLimiterOptions: store", () => {
  it("requires a store", () => {
    expect(problems({ rate_per_second: 1 })).toEqual([
      ["store", "missing; name the store that coordinates this limiter. Add it."],
    ]);
  });

  it.each([
    ["", '"" (a string)'],
    [1, "1"],
    [true, "true (a boolean)"],
    [["local"], "an array"],
    [{ id: "local" }, "a table"],
  ])("rejects store = %j", (store, got) => {
    expect(problems({ store, rate_per_second: 1 })).toEqual([
      ["store", `expected a non-empty string, got ${got}. Fix the value.`],
    ]);
  });
});

describe("validateLimiterOptions: numbers", () => {
  const date = new Date("2024-01-01T00:00:00Z");
  const notPositive: [unknown, string][] = [
    [0, "0"],
    [-1, "-1"],
    [-0.5, "-0.5"],
    [Number.NaN, "NaN"],
    [Number.POSITIVE_INFINITY, "Infinity"],
    [Number.NEGATIVE_INFINITY, "-Infinity"],
    ["10", '"10" (a string)'],
    [true, "true (a boolean)"],
    [[10], "an array"],
    [{ value: 10 }, "a table"],
    [null, "null"],
    [date, "a date-time (2024-01-01T00:00:00.000Z)"],
  ];

  it.each(notPositive)("rejects rate_per_second = %s", (value, got) => {
    expect(problems({ store: "s", rate_per_second: value })).toEqual([
      ["rate_per_second", `expected a number > 0, got ${got}. ${KEEP}`],
    ]);
  });

  it.each(notPositive)("rejects window_seconds = %s", (value, got) => {
    expect(problems({ store: "s", algorithm: "sliding_window", limit: 5, window_seconds: value })).toEqual([
      ["window_seconds", `expected a number > 0, got ${got}. ${KEEP}`],
    ]);
  });

  it.each(notPositive)("rejects lease_seconds = %s", (value, got) => {
    expect(problems({ store: "s", max_concurrent: 1, lease_seconds: value })).toEqual([
      ["lease_seconds", `expected a number > 0, got ${got}. ${KEEP}`],
    ]);
  });

  it("rejects a rate so small, or a window or lease so long, that its time in ms is not finite", () => {
    expect(problems({ store: "s", rate_per_second: 1e-320 })).toEqual([
      [
        "rate_per_second",
        "too small: got 1e-320, so one token's interval in milliseconds is not a finite number. Use a rate of at least 1e-300.",
      ],
    ]);
    expect(problems({ store: "s", algorithm: "fixed_window", limit: 5, window_seconds: 1e306 })).toEqual([
      [
        "window_seconds",
        "too large: got 1e+306, so the time in milliseconds is not a finite number. Use at most 1e300 seconds.",
      ],
    ]);
    expect(problems({ store: "s", maxConcurrent: 1, leaseSeconds: 1e306 }, "ts")).toEqual([
      [
        "leaseSeconds",
        "too large: got 1e+306, so the time in milliseconds is not a finite number. Use at most 1e300 seconds.",
      ],
    ]);
    // The limits named in the messages are accepted.
    expect(valid({ store: "s", rate_per_second: 1e-300 }).policy.rate).toMatchObject({ intervalMs: 1e303 });
    expect(valid({ store: "s", max_concurrent: 1, lease_seconds: 1e300 }).policy.concurrency?.leaseMs).toBe(1e303);
  });

  const notCount: [unknown, string][] = [
    [0, "0"],
    [-3, "-3"],
    [1.5, "1.5"],
    [2 ** 53, "9007199254740992"],
    [Number.NaN, "NaN"],
    [Number.POSITIVE_INFINITY, "Infinity"],
    ["5", '"5" (a string)'],
    [false, "false (a boolean)"],
    [[5], "an array"],
  ];

  it.each(notCount)("rejects burst = %s", (value, got) => {
    expect(problems({ store: "s", rate_per_second: 1, burst: value })).toEqual([
      ["burst", `expected an integer >= 1, got ${got}. ${KEEP}`],
    ]);
  });

  it.each(notCount)("rejects limit = %s", (value, got) => {
    expect(problems({ store: "s", algorithm: "fixed_window", limit: value, window_seconds: 1 })).toEqual([
      ["limit", `expected an integer >= 1, got ${got}. ${KEEP}`],
    ]);
  });

  it.each(notCount)("rejects max_concurrent = %s", (value, got) => {
    expect(problems({ store: "s", max_concurrent: value })).toEqual([
      ["max_concurrent", `expected an integer >= 1, got ${got}. ${KEEP}`],
    ]);
  });

  it.each([
    [-1, "-1"],
    [-0.001, "-0.001"],
    [Number.NaN, "NaN"],
    [Number.POSITIVE_INFINITY, "Infinity"],
    ["30", '"30" (a string)'],
    [true, "true (a boolean)"],
  ])("rejects timeout = %s", (value, got) => {
    expect(problems({ store: "s", rate_per_second: 1, timeout: value })).toEqual([
      ["timeout", `expected a number >= 0, got ${got}. ${KEEP}`],
    ]);
  });

  it.each([
    ["true", '"true" (a string)'],
    [1, "1"],
    [0, "0"],
    [null, "null"],
  ])("rejects fail_closed = %s", (value, got) => {
    expect(problems({ store: "s", rate_per_second: 1, fail_closed: value })).toEqual([
      ["fail_closed", `expected true or false, got ${got}. ${KEEP}`],
    ]);
  });

  it("rejects NaN and Infinity given programmatically, in camelCase", () => {
    expect(problems({ store: "s", ratePerSecond: Number.NaN, maxConcurrent: Number.POSITIVE_INFINITY }, "ts")).toEqual([
      ["ratePerSecond", `expected a number > 0, got NaN. ${KEEP}`],
      ["maxConcurrent", `expected an integer >= 1, got Infinity. ${KEEP}`],
    ]);
  });
});

describe("validateLimiterOptions: algorithm", () => {
  const ALGORITHMS_HINT = 'Use "token_bucket", "sliding_window" or "fixed_window", or remove the key for token_bucket.';

  it.each([
    ["tokenbucket", `unknown algorithm "tokenbucket"; did you mean "token_bucket"? ${ALGORITHMS_HINT}`],
    ["Sliding_Window", `unknown algorithm "Sliding_Window"; did you mean "sliding_window"? ${ALGORITHMS_HINT}`],
    ["slidingWindow", `unknown algorithm "slidingWindow"; did you mean "sliding_window"? ${ALGORITHMS_HINT}`],
    ["fixed_windw", `unknown algorithm "fixed_windw"; did you mean "fixed_window"? ${ALGORITHMS_HINT}`],
    ["leaky_bucket", `unknown algorithm "leaky_bucket". ${ALGORITHMS_HINT}`],
    ["", `unknown algorithm "". ${ALGORITHMS_HINT}`],
  ])("rejects algorithm = %j", (algorithm, message) => {
    expect(problems({ store: "s", algorithm, rate_per_second: 1 })).toEqual([["algorithm", message]]);
  });

  it.each([
    [1, "1"],
    [true, "true (a boolean)"],
    [["token_bucket"], "an array"],
  ])("rejects an algorithm that is not a string: %j", (algorithm, got) => {
    expect(problems({ store: "s", algorithm, rate_per_second: 1 })).toEqual([
      ["algorithm", `expected an algorithm name, got ${got}. ${ALGORITHMS_HINT}`],
    ]);
  });

  it("does not guess which keys apply when the algorithm is unknown", () => {
    expect(problems({ store: "s", algorithm: "gcra", burst: 3, limit: 2 }).map(([key]) => key)).toEqual(["algorithm"]);
  });

  it("requires rate_per_second for an explicit token_bucket", () => {
    expect(problems({ store: "s", algorithm: "token_bucket", max_concurrent: 5 })).toEqual([
      ["rate_per_second", "missing; token_bucket needs it (a number > 0). Add it."],
    ]);
  });

  it("requires rate_per_second when only burst is given", () => {
    expect(problems({ store: "s", burst: 5 })).toEqual([
      ["rate_per_second", "missing; token_bucket needs it (a number > 0). Add it."],
    ]);
  });

  it.each(["sliding_window", "fixed_window"])("requires limit and window_seconds for %s", (algorithm) => {
    expect(problems({ store: "s", algorithm })).toEqual([
      ["limit", `missing; ${algorithm} needs it (an integer >= 1). Add it.`],
      ["window_seconds", `missing; ${algorithm} needs it (a number > 0). Add it.`],
    ]);
    expect(problems({ store: "s", algorithm, limit: 5 })).toEqual([
      ["window_seconds", `missing; ${algorithm} needs it (a number > 0). Add it.`],
    ]);
  });

  it("asks for an algorithm when window keys come without one", () => {
    expect(problems({ store: "s", limit: 5, window_seconds: 300 })).toEqual([
      ["algorithm", 'missing; limit and window_seconds need algorithm = "sliding_window" or "fixed_window". Add one.'],
    ]);
    expect(problems({ store: "s", windowSeconds: 300 }, "ts")).toEqual([
      ["algorithm", 'missing; windowSeconds needs algorithm = "sliding_window" or "fixed_window". Add one.'],
    ]);
  });

  it("rejects token bucket keys on a window", () => {
    expect(
      problems({ store: "s", algorithm: "sliding_window", limit: 5, window_seconds: 1, burst: 2, rate_per_second: 3 }),
    ).toEqual([
      [
        "rate_per_second",
        'applies to "token_bucket" only, but this limiter uses sliding_window; remove it or set algorithm = "token_bucket".',
      ],
      [
        "burst",
        'applies to "token_bucket" only, but this limiter uses sliding_window; remove it or set algorithm = "token_bucket".',
      ],
    ]);
  });

  it("rejects window keys on a token bucket, named or implied", () => {
    const message =
      'applies to "sliding_window" and "fixed_window" only, but this limiter uses token_bucket; remove it or set algorithm = "sliding_window" or "fixed_window".';
    expect(problems({ store: "s", rate_per_second: 1, limit: 5 })).toEqual([["limit", message]]);
    expect(problems({ store: "s", algorithm: "token_bucket", rate_per_second: 1, window_seconds: 5 })).toEqual([
      ["window_seconds", message],
    ]);
  });

  it("names keys of the wrong algorithm in camelCase for TypeScript options", () => {
    expect(
      problems({ store: "s", algorithm: "fixed_window", limit: 1, windowSeconds: 1, ratePerSecond: 2 }, "ts"),
    ).toEqual([
      [
        "ratePerSecond",
        'applies to "token_bucket" only, but this limiter uses fixed_window; remove it or set algorithm = "token_bucket".',
      ],
    ]);
  });
});

describe("validateLimiterOptions: policy", () => {
  it("requires at least one policy", () => {
    expect(problems({ store: "s" })).toEqual([
      [
        undefined,
        'no policy; a limiter needs at least one of: rate_per_second (token bucket), algorithm = "sliding_window" or "fixed_window" with limit and window_seconds, or max_concurrent (concurrency). Add one.',
      ],
    ]);
  });

  it("says so in camelCase for TypeScript options", () => {
    expect(problems({ store: "s", timeout: 5 }, "ts")).toEqual([
      [
        undefined,
        'no policy; a limiter needs at least one of: ratePerSecond (token bucket), algorithm = "sliding_window" or "fixed_window" with limit and windowSeconds, or maxConcurrent (concurrency). Add one.',
      ],
    ]);
  });

  it("rejects lease_seconds without max_concurrent", () => {
    expect(problems({ store: "s", rate_per_second: 1, lease_seconds: 30 })).toEqual([
      [
        "lease_seconds",
        "applies only with max_concurrent (it is how long a slot lives without renewal); remove it or set max_concurrent.",
      ],
    ]);
  });

  it("still counts an invalid max_concurrent as an attempt at a policy", () => {
    expect(problems({ store: "s", max_concurrent: 0 })).toEqual([
      ["max_concurrent", `expected an integer >= 1, got 0. ${KEEP}`],
    ]);
  });
});

describe("validateLimiterOptions: unknown keys", () => {
  it("suggests the closest key", () => {
    expect(problems({ store: "s", rate_per_second: 1, brust: 2 })).toEqual([
      ["brust", 'unknown key "brust"; did you mean "burst"? Fix the name or remove the key.'],
    ]);
  });

  it("reports a misspelled policy key and the missing policy it leaves", () => {
    expect(problems({ store: "s", rate_per_secnd: 10 })).toEqual([
      [
        "rate_per_secnd",
        'unknown key "rate_per_secnd"; did you mean "rate_per_second"? Fix the name or remove the key.',
      ],
      [
        undefined,
        'no policy; a limiter needs at least one of: rate_per_second (token bucket), algorithm = "sliding_window" or "fixed_window" with limit and window_seconds, or max_concurrent (concurrency). Add one.',
      ],
    ]);
  });

  it("points each spelling at the other", () => {
    expect(problems({ store: "s", rate_per_second: 1, maxConcurrent: 2 })).toEqual([
      ["maxConcurrent", 'unknown key "maxConcurrent"; did you mean "max_concurrent"? Fix the name or remove the key.'],
    ]);
    expect(problems({ store: "s", ratePerSecond: 1, fail_closed: true }, "ts")).toEqual([
      ["fail_closed", 'unknown key "fail_closed"; did you mean "failClosed"? Fix the name or remove the key.'],
    ]);
  });

  it("lists the valid keys when nothing is close", () => {
    expect(problems({ store: "s", rate_per_second: 1, color: "red" })).toEqual([
      [
        "color",
        'unknown key "color"; valid keys: store, algorithm, rate_per_second, burst, limit, window_seconds, max_concurrent, lease_seconds, timeout, fail_closed. Fix the name or remove the key.',
      ],
    ]);
  });

  it("reports an unknown key even when its value is undefined", () => {
    expect(problems({ store: "s", ratePerSecond: 1, ratePerSecnd: undefined }, "ts").map(([key]) => key)).toEqual([
      "ratePerSecnd",
    ]);
  });
});

describe("validateLimiterOptions: every problem at once", () => {
  it("reports all issues, not only the first", () => {
    const raw = {
      store: 1,
      rate_per_second: "10",
      burst: 0,
      limit: 5,
      timeout: -1,
      fail_closed: "yes",
      lease_seconds: 5,
      colour: "red",
    };
    expect(problems(raw)).toEqual([
      [
        "colour",
        'unknown key "colour"; valid keys: store, algorithm, rate_per_second, burst, limit, window_seconds, max_concurrent, lease_seconds, timeout, fail_closed. Fix the name or remove the key.',
      ],
      ["store", "expected a non-empty string, got 1. Fix the value."],
      ["rate_per_second", `expected a number > 0, got "10" (a string). ${KEEP}`],
      ["burst", `expected an integer >= 1, got 0. ${KEEP}`],
      ["timeout", `expected a number >= 0, got -1. ${KEEP}`],
      ["fail_closed", `expected true or false, got "yes" (a string). ${KEEP}`],
      [
        "limit",
        'applies to "sliding_window" and "fixed_window" only, but this limiter uses token_bucket; remove it or set algorithm = "sliding_window" or "fixed_window".',
      ],
      [
        "lease_seconds",
        "applies only with max_concurrent (it is how long a slot lives without renewal); remove it or set max_concurrent.",
      ],
    ]);
  });
});
