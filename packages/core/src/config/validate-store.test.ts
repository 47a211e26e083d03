import { describe, expect, it, vi } from "vitest";
import type { Engine } from "../engines/engine.js";
import type { StoreOptions } from "../options.js";
import { BUILTIN_ENGINE_KEYS, builtinEngineKeys, storeOptionRule } from "./engine-keys.js";
import { validateStoreOptions } from "./validate-store.js";

const KNOWN = "Known engines: memory, redis, nats, postgres, or one registered with registerEngine().";
const KEEP = "Fix the value or remove the key.";

/** A lookup with the built-in engines plus a custom "dynamo" engine. */
function engineKeys(engine: string): readonly string[] | undefined {
  return engine === "dynamo" ? ["table_name", "region"] : builtinEngineKeys(engine);
}

function valid(raw: unknown, spelling: "toml" | "ts" = "toml"): StoreOptions {
  const { options, issues } = validateStoreOptions("main", raw, spelling, engineKeys);
  expect(issues).toEqual([]);
  if (options === undefined) throw new Error("expected options");
  return options;
}

function problems(raw: unknown, spelling: "toml" | "ts" = "toml"): [string | undefined, string][] {
  const { options, issues } = validateStoreOptions("main", raw, spelling, engineKeys, "rate-sync.toml");
  expect(options).toBeUndefined();
  expect(issues.length).toBeGreaterThan(0);
  return issues.map((issue) => [issue.key, issue.message]);
}

function fakeEngine(): Engine {
  return {
    name: "fake",
    decide: () => ({}) as never,
    release: () => true,
    renew: () => undefined,
    peek: () => ({}) as never,
    reset: () => undefined,
    close: async () => undefined,
  };
}

describe("BUILTIN_ENGINE_KEYS", () => {
  it("lists each built-in engine's option keys in TOML spelling", () => {
    expect(BUILTIN_ENGINE_KEYS).toEqual({
      memory: ["max_keys"],
      redis: [
        "url",
        "host",
        "port",
        "db",
        "username",
        "password",
        "key_prefix",
        "tls",
        "connect_timeout_ms",
        "nodes",
        "client",
      ],
      nats: [
        "url",
        "servers",
        "bucket",
        "auto_create",
        "token",
        "user",
        "password",
        "creds_file",
        "connect_timeout_ms",
        "ttl_seconds",
        "max_conflict_retries",
        "connection",
      ],
      postgres: [
        "url",
        "schema",
        "table",
        "auto_create",
        "pool_size",
        "unlogged",
        "connect_timeout_ms",
        "lock_timeout_ms",
        "durable_commit",
        "client",
      ],
    });
  });

  it("builtinEngineKeys knows built-in engines only, not inherited names", () => {
    expect(builtinEngineKeys("memory")).toEqual(["max_keys"]);
    expect(builtinEngineKeys("dynamo")).toBeUndefined();
    expect(builtinEngineKeys("toString")).toBeUndefined();
    expect(builtinEngineKeys("__proto__")).toBeUndefined();
  });

  it("storeOptionRule checks common keys for every engine and built-in keys for built-in engines", () => {
    expect(storeOptionRule("dynamo", "request_timeout_ms")?.expected).toBe("a number > 0");
    expect(storeOptionRule("redis", "port")?.expected).toBe("an integer from 1 to 65535");
    expect(storeOptionRule("dynamo", "table_name")).toBeUndefined();
    expect(storeOptionRule("redis", "constructor")).toBeUndefined();
  });
});

describe("validateStoreOptions: valid stores", () => {
  it("takes the seed's memory store", () => {
    expect(valid({ engine: "memory" })).toEqual({ engine: "memory" });
  });

  it("camelCases every built-in redis option and keeps the values", () => {
    expect(
      valid({
        engine: "redis",
        url: "redis://localhost:6379/0",
        host: "localhost",
        port: 6379,
        db: 0,
        username: "app",
        password: "0123",
        key_prefix: "rl:",
        tls: true,
        connect_timeout_ms: 500,
        request_timeout_ms: 250,
      }),
    ).toEqual({
      engine: "redis",
      url: "redis://localhost:6379/0",
      host: "localhost",
      port: 6379,
      db: 0,
      username: "app",
      password: "0123",
      keyPrefix: "rl:",
      tls: true,
      connectTimeoutMs: 500,
      requestTimeoutMs: 250,
    });
  });

  it("takes memory, nats and postgres options", () => {
    expect(valid({ engine: "memory", max_keys: 1000 })).toEqual({ engine: "memory", maxKeys: 1000 });
    expect(
      valid({
        engine: "nats",
        servers: ["nats://a:4222", "nats://b:4222"],
        bucket: "limits",
        auto_create: false,
        token: "t",
        user: "u",
        password: "p",
        creds_file: "/etc/nats.creds",
      }),
    ).toEqual({
      engine: "nats",
      servers: ["nats://a:4222", "nats://b:4222"],
      bucket: "limits",
      autoCreate: false,
      token: "t",
      user: "u",
      password: "p",
      credsFile: "/etc/nats.creds",
    });
    expect(valid({ engine: "nats", servers: "nats://a:4222" })).toEqual({ engine: "nats", servers: "nats://a:4222" });
    expect(
      valid({
        engine: "postgres",
        url: "postgresql://u:p@h/db",
        schema: "rl",
        table: "t",
        auto_create: true,
        pool_size: 4,
        unlogged: true,
      }),
    ).toEqual({
      engine: "postgres",
      url: "postgresql://u:p@h/db",
      schema: "rl",
      table: "t",
      autoCreate: true,
      poolSize: 4,
      unlogged: true,
    });
  });

  it("takes a registered custom engine's declared keys, unchecked", () => {
    expect(valid({ engine: "dynamo", table_name: 42, region: ["eu"] })).toEqual({
      engine: "dynamo",
      tableName: 42,
      region: ["eu"],
    });
  });

  it("asks the lookup about the engine named", () => {
    const lookup = vi.fn((engine: string) => (engine === "x" ? [] : undefined));
    expect(validateStoreOptions("main", { engine: "x" }, "toml", lookup).options).toEqual({ engine: "x" });
    expect(lookup).toHaveBeenCalledWith("x");
  });

  it("reads camelCase TypeScript options and keeps client instances by identity", () => {
    const client = { status: "ready" };
    const options = valid({ engine: "redis", client, keyPrefix: "rl:", requestTimeoutMs: 500 }, "ts") as Record<
      string,
      unknown
    >;
    expect(options).toEqual({ engine: "redis", client, keyPrefix: "rl:", requestTimeoutMs: 500 });
    expect(options.client).toBe(client);
  });

  it("accepts an Engine instance as is, with any other options", () => {
    const engine = fakeEngine();
    const options = valid({ engine, anything: 1, requestTimeoutMs: 100 }, "ts");
    expect(options).toEqual({ engine, anything: 1, requestTimeoutMs: 100 });
    expect(options.engine).toBe(engine);
  });

  it("treats undefined TypeScript options as absent for value checks", () => {
    expect(valid({ engine: "redis", url: undefined, requestTimeoutMs: undefined }, "ts")).toEqual({
      engine: "redis",
      url: undefined,
      requestTimeoutMs: undefined,
    });
  });
});

describe("validateStoreOptions: where issues point", () => {
  it("names the file, the table and the key", () => {
    const { issues } = validateStoreOptions(
      "redis",
      { engine: "redis", port: "6379" },
      "toml",
      engineKeys,
      "rate-sync.toml",
    );
    expect(issues).toEqual([
      {
        file: "rate-sync.toml",
        table: "stores.redis",
        key: "port",
        message: `expected an integer from 1 to 65535, got "6379" (a string). ${KEEP}`,
      },
    ]);
  });

  it("rejects an empty id", () => {
    const { options, issues } = validateStoreOptions("", { engine: "memory" }, "ts", engineKeys);
    expect(options).toBeUndefined();
    expect(issues).toEqual([
      {
        file: undefined,
        table: 'stores.""',
        key: undefined,
        message: 'the store id must be a non-empty string, got "" (a string). Name the store.',
      },
    ]);
  });
});

describe("validateStoreOptions: the engine", () => {
  it.each([
    [42, "42"],
    ["memory", '"memory" (a string)'],
    [null, "null"],
    [["memory"], "an array"],
  ])("rejects %j instead of a table", (raw, got) => {
    expect(problems(raw)).toEqual([[undefined, `expected a table of store options, got ${got}. Write one.`]]);
  });

  it("requires an engine", () => {
    expect(problems({ url: "redis://" })).toEqual([["engine", `missing; name the engine. ${KNOWN}`]]);
  });

  it.each([
    ["rediss", `unknown engine "rediss"; did you mean "redis"? ${KNOWN}`],
    ["Redis", `unknown engine "Redis"; did you mean "redis"? ${KNOWN}`],
    ["postgresql", `unknown engine "postgresql"; did you mean "postgres"? ${KNOWN}`],
    ["memroy", `unknown engine "memroy"; did you mean "memory"? ${KNOWN}`],
    ["foo", `unknown engine "foo". ${KNOWN}`],
    ["toString", `unknown engine "toString". ${KNOWN}`],
  ])("rejects engine = %j", (engine, message) => {
    expect(problems({ engine })).toEqual([
      ["engine", `${message} Fix the name, or register the engine before configuring the store.`],
    ]);
  });

  it.each([
    ["", '"" (a string)'],
    [1, "1"],
    [true, "true (a boolean)"],
    [{ name: "redis" }, "a table"],
    [["redis"], "an array"],
  ])("rejects engine = %j in TOML", (engine, got) => {
    expect(problems({ engine })).toEqual([["engine", `expected an engine name, got ${got}. ${KNOWN} Fix the value.`]]);
  });

  it("names the missing members of an incomplete engine object", () => {
    const { peek: _peek, close: _close, ...partial } = fakeEngine();
    expect(problems({ engine: partial }, "ts")).toEqual([
      [
        "engine",
        'expected an engine name or an Engine instance, got an object without "peek" and "close". Pass a complete engine (see the Engine interface) or an engine name.',
      ],
    ]);
    expect(problems({ engine: { decide: () => 1 } }, "ts")).toEqual([
      [
        "engine",
        'expected an engine name or an Engine instance, got an object without "release", "renew", "peek", "reset", "close" and "name". Pass a complete engine (see the Engine interface) or an engine name.',
      ],
    ]);
  });

  it("rejects other values in TypeScript options", () => {
    expect(problems({ engine: 3 }, "ts")).toEqual([
      ["engine", `expected an engine name or an Engine instance, got 3. ${KNOWN} Fix the value.`],
    ]);
  });

  it("checks no option names of an unknown engine, but still checks the common ones", () => {
    expect(problems({ engine: "foo", whatever: 1, request_timeout_ms: -1 })).toEqual([
      ["engine", `unknown engine "foo". ${KNOWN} Fix the name, or register the engine before configuring the store.`],
      ["request_timeout_ms", `expected a number > 0, got -1. ${KEEP}`],
    ]);
  });
});

describe("validateStoreOptions: option keys", () => {
  it("suggests the closest key", () => {
    expect(problems({ engine: "redis", key_prefx: "rl:" })).toEqual([
      ["key_prefx", 'unknown key "key_prefx"; did you mean "key_prefix"? Fix the name or remove the key.'],
    ]);
  });

  it("points each spelling at the other", () => {
    expect(problems({ engine: "redis", keyPrefix: "rl:" })).toEqual([
      ["keyPrefix", 'unknown key "keyPrefix"; did you mean "key_prefix"? Fix the name or remove the key.'],
    ]);
    expect(problems({ engine: "redis", key_prefix: "rl:" }, "ts")).toEqual([
      ["key_prefix", 'unknown key "key_prefix"; did you mean "keyPrefix"? Fix the name or remove the key.'],
    ]);
  });

  it("rejects another engine's keys and lists the valid ones", () => {
    expect(problems({ engine: "memory", url: "redis://localhost" })).toEqual([
      ["url", 'unknown key "url"; valid keys: engine, request_timeout_ms, max_keys. Fix the name or remove the key.'],
    ]);
  });

  it("rejects keys a custom engine does not declare", () => {
    expect(problems({ engine: "dynamo", regoin: "eu" })).toEqual([
      ["regoin", 'unknown key "regoin"; did you mean "region"? Fix the name or remove the key.'],
    ]);
  });
});

describe("validateStoreOptions: option values", () => {
  it.each([
    ["memory", "max_keys", 0, `expected an integer >= 1, got 0`],
    ["memory", "max_keys", 1.5, `expected an integer >= 1, got 1.5`],
    ["redis", "url", 6379, `expected a string, got 6379`],
    ["redis", "port", "6379", `expected an integer from 1 to 65535, got "6379" (a string)`],
    ["redis", "port", 0, `expected an integer from 1 to 65535, got 0`],
    ["redis", "port", 70_000, `expected an integer from 1 to 65535, got 70000`],
    ["redis", "db", -1, `expected an integer >= 0, got -1`],
    ["redis", "tls", "true", `expected true or false, got "true" (a string)`],
    ["redis", "connect_timeout_ms", "5", `expected a number > 0, got "5" (a string)`],
    ["redis", "password", 123, `expected a string, got 123`],
    [
      "redis",
      "client",
      "redis://",
      `expected a client instance (passed in TypeScript options, not in the file), got "redis://" (a string)`,
    ],
    ["redis", "request_timeout_ms", 0, `expected a number > 0, got 0`],
    ["redis", "request_timeout_ms", Number.NaN, `expected a number > 0, got NaN`],
    ["nats", "servers", ["nats://a", 1], `expected a string or an array of strings, got an array`],
    ["nats", "auto_create", "yes", `expected true or false, got "yes" (a string)`],
    ["postgres", "pool_size", 1.5, `expected an integer >= 1, got 1.5`],
    ["postgres", "unlogged", 1, `expected true or false, got 1`],
    ["postgres", "schema", { name: "rl" }, `expected a string, got a table`],
  ])("rejects %s %s = %j", (engine, key, value, message) => {
    expect(problems({ engine, [key]: value })).toEqual([[key, `${message}. ${KEEP}`]]);
  });

  it("reports every problem of a store at once", () => {
    expect(problems({ engine: "redis", port: 0, db: "0", tls: 1, colour: "red" }).map(([key]) => key)).toEqual([
      "colour",
      "port",
      "db",
      "tls",
    ]);
  });
});
