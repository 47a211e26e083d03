/**
 * The store options of the built-in engines, with the value each accepts. Core validates them
 * before an engine package is even loaded, so a typo in `[stores.redis]` fails at load, not at
 * the first call.
 */
import {
  booleanValue,
  clientObject,
  integerRule,
  positiveNumber,
  stringOrStrings,
  stringValue,
  type ValueRule,
} from "./values.js";

/** The engines that ship with ratesync (memory in core, the others as packages). */
export type BuiltinEngine = "memory" | "redis" | "nats" | "postgres";

/** Answers which option keys (TOML spelling) an engine accepts; `undefined` for an unknown engine. */
export type EngineKeysLookup = (engine: string) => readonly string[] | undefined;

/** Options every store accepts, whatever its engine, with their rules. */
export const COMMON_STORE_RULES: Readonly<Record<string, ValueRule<unknown>>> = {
  request_timeout_ms: positiveNumber,
};

const BUILTIN_ENGINE_RULES: Readonly<Record<BuiltinEngine, Readonly<Record<string, ValueRule<unknown>>>>> = {
  memory: {
    max_keys: integerRule(1),
  },
  redis: {
    url: stringValue,
    host: stringValue,
    port: integerRule(1, 65_535),
    db: integerRule(0),
    username: stringValue,
    password: stringValue,
    key_prefix: stringValue,
    tls: booleanValue,
    connect_timeout_ms: positiveNumber,
    // Redis Cluster: the seed nodes, as URLs ("redis://host:port"); present means cluster mode.
    nodes: stringOrStrings,
    // SPEC section 6: "url or client"; a client can only come from TypeScript options.
    client: clientObject,
  },
  nats: {
    url: stringValue,
    servers: stringOrStrings,
    bucket: stringValue,
    auto_create: booleanValue,
    token: stringValue,
    user: stringValue,
    password: stringValue,
    creds_file: stringValue,
    connect_timeout_ms: positiveNumber,
    // How long entries live after their last write, when the engine creates the bucket.
    ttl_seconds: positiveNumber,
    max_conflict_retries: integerRule(0),
    // SPEC section 6: "url or connection".
    connection: clientObject,
  },
  postgres: {
    url: stringValue,
    schema: stringValue,
    table: stringValue,
    auto_create: booleanValue,
    pool_size: integerRule(1),
    unlogged: booleanValue,
    connect_timeout_ms: positiveNumber,
    // How long a call may wait for a row another call holds; defaults to request_timeout_ms.
    lock_timeout_ms: positiveNumber,
    // Whether each write waits for the WAL flush (synchronous_commit); off by default.
    durable_commit: booleanValue,
    client: clientObject,
  },
};

/** The option keys (TOML spelling) of each built-in engine. `request_timeout_ms` is common to all. */
export const BUILTIN_ENGINE_KEYS: Readonly<Record<BuiltinEngine, readonly string[]>> = {
  memory: Object.keys(BUILTIN_ENGINE_RULES.memory),
  redis: Object.keys(BUILTIN_ENGINE_RULES.redis),
  nats: Object.keys(BUILTIN_ENGINE_RULES.nats),
  postgres: Object.keys(BUILTIN_ENGINE_RULES.postgres),
};

/** The names of the built-in engines, in the order the docs list them. */
export const BUILTIN_ENGINES: readonly BuiltinEngine[] = ["memory", "redis", "nats", "postgres"];

/** Whether `name` is a built-in engine (an own key, so `"toString"` is not). */
export function isBuiltinEngine(name: string): name is BuiltinEngine {
  return Object.hasOwn(BUILTIN_ENGINE_RULES, name);
}

/** An {@link EngineKeysLookup} that knows the built-in engines only. */
export function builtinEngineKeys(engine: string): readonly string[] | undefined {
  return isBuiltinEngine(engine) ? BUILTIN_ENGINE_KEYS[engine] : undefined;
}

/**
 * The rule of a store option (TOML spelling), when it is a common key or a key of a built-in
 * engine; `undefined` for options of custom engines, which pass unchecked.
 */
export function storeOptionRule(engine: string, key: string): ValueRule<unknown> | undefined {
  if (Object.hasOwn(COMMON_STORE_RULES, key)) return COMMON_STORE_RULES[key];
  if (!isBuiltinEngine(engine)) return undefined;
  const rules = BUILTIN_ENGINE_RULES[engine];
  return Object.hasOwn(rules, key) ? rules[key] : undefined;
}
