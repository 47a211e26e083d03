// biome-ignore-all lint/suspicious/noTemplateCurlyInString: "${NAME}" in these strings is the syntax under test.
import { afterEach, describe, expect, it, vi } from "vitest";
import { isRateSyncError, type RateSyncError } from "../errors.js";
import type { LimiterConfig } from "../options.js";
import { builtinEngineKeys } from "./engine-keys.js";
import type { ConfigIssue } from "./issues.js";
import { type ParseConfigOptions, type ParsedConfig, parseConfig } from "./parse.js";

const FILE = "rate-sync.toml";

function parse(text: string, options: Partial<ParseConfigOptions> = {}): ParsedConfig {
  return parseConfig(text, { file: FILE, env: {}, engineKeys: builtinEngineKeys, ...options });
}

/** The CONFIG_INVALID error `text` must throw. */
function failure(text: string, options: Partial<ParseConfigOptions> = {}): RateSyncError {
  try {
    parse(text, options);
  } catch (error) {
    if (isRateSyncError(error, "CONFIG_INVALID")) return error;
    throw error;
  }
  throw new Error("expected CONFIG_INVALID");
}

function issuesOf(text: string, options: Partial<ParseConfigOptions> = {}): ConfigIssue[] {
  return failure(text, options).details?.issues as ConfigIssue[];
}

/** Issue lines as the error message lists them. */
function lines(text: string, options: Partial<ParseConfigOptions> = {}): string[] {
  return failure(text, options).message.split("\n").slice(1);
}

function tokenBucket(
  id: string,
  store: string,
  ratePerSecond: number,
  extra: Partial<LimiterConfig> = {},
): LimiterConfig {
  return {
    id,
    store,
    algorithm: "token_bucket",
    ratePerSecond,
    burst: 1,
    limit: undefined,
    windowSeconds: undefined,
    maxConcurrent: undefined,
    leaseSeconds: 60,
    timeout: undefined,
    failClosed: false,
    policy: {
      rate: { algorithm: "token_bucket", ratePerSecond, burst: 1, intervalMs: 1000 / ratePerSecond },
      concurrency:
        extra.maxConcurrent === undefined ? undefined : { maxConcurrent: extra.maxConcurrent, leaseMs: 60_000 },
    },
    ...extra,
  };
}

describe("parseConfig: the seed README's examples, unchanged", () => {
  it("parses the quick start", () => {
    const parsed = parse(`[stores.local]
engine = "memory"

[limiters.api]
store = "local"
rate_per_second = 10.0
timeout = 30.0
`);
    expect([...parsed.stores]).toEqual([["local", { engine: "memory" }]]);
    expect([...parsed.limiters]).toEqual([["api", tokenBucket("api", "local", 10, { timeout: 30 })]]);
  });

  it("parses the limiter reference, token bucket, sliding window and combined examples", () => {
    const parsed = parse(`[stores.redis]
engine = "redis"
url = "redis://localhost:6379/0"

[limiters.api]
store = "redis"              # Which store to use
algorithm = "token_bucket"   # Algorithm (default)
rate_per_second = 100.0      # Max throughput
max_concurrent = 50          # Max parallelism (optional)
timeout = 30.0               # Wait timeout in seconds

[limiters.external_api]
store = "redis"
rate_per_second = 10.0    # Max 10 requests per second
max_concurrent = 5        # Max 5 simultaneous requests

[limiters.login]
store = "redis"
algorithm = "sliding_window"
limit = 5                 # Max 5 attempts
window_seconds = 300      # Per 5 minutes

[limiters.production_api]
store = "redis"
rate_per_second = 100.0   # Max 100 req/sec
max_concurrent = 50       # Max 50 in-flight
timeout = 30.0
`);
    expect([...parsed.stores]).toEqual([["redis", { engine: "redis", url: "redis://localhost:6379/0" }]]);
    expect([...parsed.limiters.keys()]).toEqual(["api", "external_api", "login", "production_api"]);
    expect(parsed.limiters.get("api")).toEqual(tokenBucket("api", "redis", 100, { maxConcurrent: 50, timeout: 30 }));
    expect(parsed.limiters.get("external_api")).toEqual(tokenBucket("external_api", "redis", 10, { maxConcurrent: 5 }));
    expect(parsed.limiters.get("production_api")).toEqual(
      tokenBucket("production_api", "redis", 100, { maxConcurrent: 50, timeout: 30 }),
    );
    expect(parsed.limiters.get("login")).toEqual({
      id: "login",
      store: "redis",
      algorithm: "sliding_window",
      ratePerSecond: undefined,
      burst: undefined,
      limit: 5,
      windowSeconds: 300,
      maxConcurrent: undefined,
      leaseSeconds: 60,
      timeout: undefined,
      failClosed: false,
      policy: { rate: { algorithm: "sliding_window", limit: 5, windowMs: 300_000 }, concurrency: undefined },
    });
  });

  it("parses the engine examples", () => {
    const parsed = parse(`[stores.local]
engine = "memory"

[stores.redis]
engine = "redis"
url = "redis://localhost:6379/0"

[stores.nats]
engine = "nats"
url = "nats://localhost:4222"

[stores.db]
engine = "postgres"
url = "postgresql://user:pass@localhost/db"
`);
    expect([...parsed.stores]).toEqual([
      ["local", { engine: "memory" }],
      ["redis", { engine: "redis", url: "redis://localhost:6379/0" }],
      ["nats", { engine: "nats", url: "nats://localhost:4222" }],
      ["db", { engine: "postgres", url: "postgresql://user:pass@localhost/db" }],
    ]);
    expect(parsed.limiters.size).toBe(0);
  });
});

describe("parseConfig: valid files", () => {
  it("gives empty maps for an empty file or one with comments only", () => {
    for (const text of ["", "# nothing yet\n", "\n\n"]) {
      const parsed = parse(text);
      expect(parsed.stores.size).toBe(0);
      expect(parsed.limiters.size).toBe(0);
    }
  });

  it("takes integers where floats are usual, and the other options", () => {
    const parsed = parse(`[stores.s]
engine = "memory"
max_keys = 1000
request_timeout_ms = 50

[limiters.a]
store = "s"
rate_per_second = 10
burst = 20
fail_closed = true
max_concurrent = 2
lease_seconds = 5
timeout = 0
`);
    expect(parsed.stores.get("s")).toEqual({ engine: "memory", maxKeys: 1000, requestTimeoutMs: 50 });
    expect(parsed.limiters.get("a")?.policy).toEqual({
      rate: { algorithm: "token_bucket", ratePerSecond: 10, burst: 20, intervalMs: 100 },
      concurrency: { maxConcurrent: 2, leaseMs: 5000 },
    });
    expect(parsed.limiters.get("a")?.failClosed).toBe(true);
    expect(parsed.limiters.get("a")?.timeout).toBe(0);
  });

  it("takes quoted ids with any characters, in dotted or inline form", () => {
    const parsed = parse(`stores = { "cache:eu" = { engine = "memory" } }
[limiters."tenant:42/api.v1"]
store = "cache:eu"
max_concurrent = 1
`);
    expect([...parsed.stores.keys()]).toEqual(["cache:eu"]);
    expect(parsed.limiters.get("tenant:42/api.v1")?.store).toBe("cache:eu");
  });

  it("accepts a byte order mark and Windows line endings", () => {
    const parsed = parse(
      '\uFEFF[stores.s]\r\nengine = "memory"\r\n[limiters.a]\r\nstore = "s"\r\nmax_concurrent = 1\r\n',
    );
    expect(parsed.limiters.get("a")?.maxConcurrent).toBe(1);
  });

  it("lets a limiter use a store configured outside the file when told so", () => {
    const storeExists = vi.fn((id: string) => id === "shared");
    const parsed = parse('[limiters.a]\nstore = "shared"\nrate_per_second = 1\n', { storeExists });
    expect(parsed.limiters.get("a")?.store).toBe("shared");
    expect(storeExists).toHaveBeenCalledWith("shared");
  });

  it("validates store options against the lookup it is given", () => {
    const engineKeys = (engine: string) => (engine === "dynamo" ? ["table_name"] : undefined);
    const parsed = parse('[stores.d]\nengine = "dynamo"\ntable_name = "limits"\n', { engineKeys });
    expect(parsed.stores.get("d")).toEqual({ engine: "dynamo", tableName: "limits" });
  });
});

describe("parseConfig: environment variables", () => {
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it("expands references anywhere in string values, arrays included", () => {
    const parsed = parse(
      `[stores.redis]
engine = "redis"
url = "redis://\${REDIS_HOST}:\${REDIS_PORT:-6379}/0"
key_prefix = "\${PREFIX:-rl}:"

[stores.nats]
engine = "nats"
servers = ["nats://\${NATS_A}:4222", "nats://\${NATS_B:-b}:4222"]

[limiters.api]
store = "\${STORE:-redis}"
rate_per_second = 5
`,
      { env: { REDIS_HOST: "cache", NATS_A: "a" } },
    );
    expect(parsed.stores.get("redis")).toEqual({ engine: "redis", url: "redis://cache:6379/0", keyPrefix: "rl:" });
    expect(parsed.stores.get("nats")).toEqual({ engine: "nats", servers: ["nats://a:4222", "nats://b:4222"] });
    expect(parsed.limiters.get("api")?.store).toBe("redis");
  });

  it("never changes a value's type: a numeric password stays a string", () => {
    const parsed = parse('[stores.r]\nengine = "redis"\npassword = "${PW}"\n', { env: { PW: "123" } });
    expect(parsed.stores.get("r")).toEqual({ engine: "redis", password: "123" });
  });

  it("does not turn a string into a number where a number is needed", () => {
    expect(lines('[stores.r]\nengine = "redis"\nport = "${PORT}"\n', { env: { PORT: "6379" } })).toEqual([
      '  - rate-sync.toml: [stores.r] port: expected an integer from 1 to 65535, got "6379" (a string). Fix the value or remove the key.',
    ]);
  });

  it("keeps an escaped $${ literal", () => {
    const parsed = parse('[stores.r]\nengine = "redis"\npassword = "p$${x}"\n');
    expect(parsed.stores.get("r")).toEqual({ engine: "redis", password: "p${x}" });
  });

  it("reports a missing variable with the key, and nothing else about that key", () => {
    expect(
      lines(`[stores.redis]
engine = "\${ENGINE}"
url = "\${REDIS_URL}"

[limiters.api]
store = "\${STORE}"
rate_per_second = 1
`),
    ).toEqual([
      "  - rate-sync.toml: [stores.redis] engine: environment variable ENGINE is not set; set it, or give a default with ${ENGINE:-value}.",
      "  - rate-sync.toml: [stores.redis] url: environment variable REDIS_URL is not set; set it, or give a default with ${REDIS_URL:-value}.",
      "  - rate-sync.toml: [limiters.api] store: environment variable STORE is not set; set it, or give a default with ${STORE:-value}.",
    ]);
  });

  it("names the element of an array that failed", () => {
    expect(issuesOf('[stores.n]\nengine = "nats"\nservers = ["a", "${B}"]\n')).toEqual([
      {
        file: FILE,
        table: "stores.n",
        key: "servers[1]",
        message: "environment variable B is not set; set it, or give a default with ${B:-value}.",
      },
    ]);
  });

  it("reports a malformed reference", () => {
    expect(lines('[stores.r]\nengine = "redis"\nurl = "${REDIS URL}"\n')).toEqual([
      '  - rate-sync.toml: [stores.r] url: malformed environment reference "${REDIS URL}"; write ${NAME} or ${NAME:-default} (NAME: letters, digits and _, not starting with a digit), or $${ for a literal ${.',
    ]);
  });

  it("reads process.env when no environment is given", () => {
    vi.stubEnv("RATESYNC_TEST_URL", "redis://from-env");
    const parsed = parseConfig('[stores.r]\nengine = "redis"\nurl = "${RATESYNC_TEST_URL}"\n', {
      engineKeys: builtinEngineKeys,
    });
    expect(parsed.stores.get("r")).toEqual({ engine: "redis", url: "redis://from-env" });
  });
});

describe("parseConfig: syntax errors", () => {
  it("gives the file, the 1-based line and column, and what is wrong", () => {
    const error = failure('[stores.local]\nengine = "memory"\n\n[limiters.api]\nstore = = "local"\n');
    expect(error.message).toBe(
      [
        "Invalid ratesync configuration (1 problem):",
        "  - rate-sync.toml:5:9: invalid TOML: Unexpected character, expecting string, number, datetime, boolean, inline array or inline table. Fix the syntax at that position.",
      ].join("\n"),
    );
    expect(error.details?.issues).toEqual([
      {
        file: FILE,
        table: undefined,
        key: undefined,
        line: 5,
        column: 9,
        message:
          "invalid TOML: Unexpected character, expecting string, number, datetime, boolean, inline array or inline table. Fix the syntax at that position.",
      },
    ]);
    expect((error.cause as { name?: unknown }).name).toBe("TomlError");
  });

  it("reports an unterminated string and a redefined key", () => {
    expect(issuesOf('[stores.s]\nengine = "memory\n')[0]).toMatchObject({
      line: 2,
      column: 17,
      message: "invalid TOML: Unterminated string. Fix the syntax at that position.",
    });
    expect(issuesOf('[stores.s]\nengine = "memory"\nengine = "redis"\n')[0]).toMatchObject({
      line: 3,
      column: 17,
      message: "invalid TOML: Can't redefine existing key. Fix the syntax at that position.",
    });
  });

  it("gives line and column in words without a file", () => {
    expect(failure("a = ", { file: undefined }).message.split("\n")[1]).toBe(
      "  - line 1, column 6: invalid TOML: Key without value. Fix the syntax at that position.",
    );
  });

  it("rejects text that is not a string", () => {
    expect(lines(42 as unknown as string)).toEqual(["  - rate-sync.toml: expected TOML text, got 42."]);
  });
});

describe("parseConfig: structure", () => {
  it("rejects unknown top-level keys with the closest name", () => {
    expect(lines('[limiter.api]\nstore = "s"\n\n[store.s]\nengine = "memory"\nversion = 2\n')).toEqual([
      '  - rate-sync.toml: limiter: unknown top-level key "limiter"; did you mean "limiters"? The file holds [stores.<id>] and [limiters.<id>] tables. Fix the name or remove it.',
      '  - rate-sync.toml: store: unknown top-level key "store"; did you mean "stores"? The file holds [stores.<id>] and [limiters.<id>] tables. Fix the name or remove it.',
    ]);
    expect(lines("title = 1\n")).toEqual([
      '  - rate-sync.toml: title: unknown top-level key "title". The file holds [stores.<id>] and [limiters.<id>] tables. Fix the name or remove it.',
    ]);
  });

  it("rejects sections that are not tables", () => {
    expect(lines('stores = "memory"\nlimiters = [1]\n')).toEqual([
      '  - rate-sync.toml: stores: expected tables such as [stores.<id>], got "memory" (a string). Write [stores.<id>] tables.',
      "  - rate-sync.toml: limiters: expected tables such as [limiters.<id>], got an array. Write [limiters.<id>] tables.",
    ]);
  });

  it("rejects stores and limiters that are not tables", () => {
    expect(lines('[stores]\nlocal = "memory"\n[limiters]\napi = 10\n')).toEqual([
      '  - rate-sync.toml: [stores.local] expected a table of store options, got "memory" (a string). Write one.',
      "  - rate-sync.toml: [limiters.api] expected a table of limiter options, got 10. Write one.",
    ]);
  });

  it("rejects empty ids", () => {
    expect(lines('[stores.""]\nengine = "memory"\n[limiters.""]\nstore = ""\nmax_concurrent = 1\n')).toEqual([
      '  - rate-sync.toml: [stores.""] the store id must be a non-empty string, got "" (a string). Name the store.',
      '  - rate-sync.toml: [limiters.""] the limiter id must be a non-empty string, got "" (a string). Name the limiter.',
      '  - rate-sync.toml: [limiters.""] store: expected a non-empty string, got "" (a string). Fix the value.',
    ]);
  });

  it("rejects a limiter whose store is not defined, with the closest store", () => {
    expect(
      lines(
        '[stores.local]\nengine = "memory"\n[stores.db]\nengine = "memory"\n[limiters.api]\nstore = "locl"\nrate_per_second = 1\n',
      ),
    ).toEqual([
      '  - rate-sync.toml: [limiters.api] store: store "locl" is not defined; did you mean "local"? Defined stores: local, db. Fix the name or add a [stores.locl] table.',
    ]);
    expect(lines('[stores.local]\nengine = "memory"\n[limiters.api]\nstore = "redis"\nrate_per_second = 1\n')).toEqual([
      '  - rate-sync.toml: [limiters.api] store: store "redis" is not defined. Defined stores: local. Fix the name or add a [stores.redis] table.',
    ]);
  });

  it("says so when the file defines no stores at all", () => {
    expect(lines('[limiters."a:b"]\nstore = "cache:eu"\nrate_per_second = 1\n')).toEqual([
      '  - rate-sync.toml: [limiters."a:b"] store: store "cache:eu" is not defined; this file defines no stores. Add a [stores."cache:eu"] table with an engine.',
    ]);
  });

  it("counts a store with problems as defined", () => {
    expect(lines('[stores.r]\nengine = "rediss"\n[limiters.a]\nstore = "r"\nrate_per_second = 1\n')).toEqual([
      '  - rate-sync.toml: [stores.r] engine: unknown engine "rediss"; did you mean "redis"? Known engines: memory, redis, nats, postgres, or one registered with registerEngine(). Fix the name, or register the engine before configuring the store.',
    ]);
  });

  it("rejects TOML values of the wrong kind: NaN, infinity, strings, dates", () => {
    expect(
      lines(`[stores.s]
engine = "memory"
[limiters.a]
store = "s"
rate_per_second = nan
[limiters.b]
store = "s"
rate_per_second = inf
[limiters.c]
store = "s"
rate_per_second = "10"
[limiters.d]
store = "s"
rate_per_second = 1
timeout = 1979-05-27T07:32:00Z
[limiters.e]
store = "s"
max_concurrent = 99999999999999999999
`),
    ).toEqual([
      "  - rate-sync.toml: [limiters.a] rate_per_second: expected a number > 0, got NaN. Fix the value or remove the key.",
      "  - rate-sync.toml: [limiters.b] rate_per_second: expected a number > 0, got Infinity. Fix the value or remove the key.",
      '  - rate-sync.toml: [limiters.c] rate_per_second: expected a number > 0, got "10" (a string). Fix the value or remove the key.',
      "  - rate-sync.toml: [limiters.d] timeout: expected a number >= 0, got a date-time (1979-05-27T07:32:00.000Z). Fix the value or remove the key.",
      expect.stringMatching(
        /^ {2}- rate-sync\.toml: \[limiters\.e\] max_concurrent: expected an integer >= 1, got -?\d+ \(an integer too large to represent exactly\)\. Fix the value or remove the key\.$/,
      ),
    ]);
  });
});

describe("parseConfig: every problem in one error", () => {
  it("collects the issues of every table, each with its file, table and key", () => {
    const error = failure(`[stores.local]
engine = "memory"
max_keys = 0

[stores.cache]
engine = "redis"
url = "\${REDIS_URL}"
prot = 6379

[limiters.api]
store = "local"
rate_per_second = -1
burts = 5

[limiters.login]
store = "redis"
algorithm = "sliding_window"
limit = 5
`);
    expect(error.message).toBe(
      [
        "Invalid ratesync configuration (7 problems):",
        "  - rate-sync.toml: [stores.local] max_keys: expected an integer >= 1, got 0. Fix the value or remove the key.",
        "  - rate-sync.toml: [stores.cache] url: environment variable REDIS_URL is not set; set it, or give a default with ${REDIS_URL:-value}.",
        '  - rate-sync.toml: [stores.cache] prot: unknown key "prot"; did you mean "port"? Fix the name or remove the key.',
        '  - rate-sync.toml: [limiters.api] burts: unknown key "burts"; did you mean "burst"? Fix the name or remove the key.',
        "  - rate-sync.toml: [limiters.api] rate_per_second: expected a number > 0, got -1. Fix the value or remove the key.",
        "  - rate-sync.toml: [limiters.login] window_seconds: missing; sliding_window needs it (a number > 0). Add it.",
        '  - rate-sync.toml: [limiters.login] store: store "redis" is not defined. Defined stores: local, cache. Fix the name or add a [stores.redis] table.',
      ].join("\n"),
    );
    const issues = error.details?.issues as ConfigIssue[];
    expect(issues.map((issue) => [issue.file, issue.table, issue.key])).toEqual([
      [FILE, "stores.local", "max_keys"],
      [FILE, "stores.cache", "url"],
      [FILE, "stores.cache", "prot"],
      [FILE, "limiters.api", "burts"],
      [FILE, "limiters.api", "rate_per_second"],
      [FILE, "limiters.login", "window_seconds"],
      [FILE, "limiters.login", "store"],
    ]);
  });
});
