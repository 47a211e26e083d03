import { type Clock, systemClock } from "./clock.js";
import { configInvalid } from "./config/issues.js";
import { readConfigFile, resolveConfigPath } from "./config/load.js";
import { type ParsedConfig, parseConfig } from "./config/parse.js";
import { closestName } from "./config/suggest.js";
import { builtinEngineKeys, validateLimiterOptions, validateStoreOptions } from "./config/validate.js";
import type { Decision } from "./decision.js";
import { registeredEngineKeys } from "./engines/registry.js";
import { isRateSyncError, RateSyncError } from "./errors.js";
import {
  type AcquireOptions,
  DEFAULT_WAIT_TUNING,
  Limiter,
  type TryAcquireOptions,
  type WaitTuning,
} from "./limiter.js";
import type { LimiterConfig, LimiterOptions, StoreOptions } from "./options.js";
import type { Slot } from "./slot.js";
import { Store } from "./store.js";

/** Options of {@link createRateSync}. */
export interface RateSyncOptions {
  /** The clock for the memory engine and for waits. Tests pass a fake one. @default the system clock */
  clock?: Clock | undefined;
  /** Random numbers in [0, 1) for wait jitter. Tests pass `() => 0`. @default Math.random */
  random?: (() => number) | undefined;
  /** Longest a concurrency waiter sleeps between store calls when no release is heard, in ms. @default 1000 */
  pollMs?: number | undefined;
  /**
   * Whether the first call that needs a limiter loads `rate-sync.toml` (from `RATESYNC_CONFIG`, else
   * the working directory). @default true
   */
  autoload?: boolean | undefined;
  /** Environment for `${VAR}` expansion and `RATESYNC_CONFIG`. @default process.env */
  env?: Readonly<Record<string, string | undefined>> | undefined;
}

/** What `listStores()` reports for a store. */
export interface StoreInfo {
  /** The store id. */
  readonly id: string;
  /** The engine name. */
  readonly engine: string;
  /** Whether the engine has been created (it is created on first use). */
  readonly open: boolean;
}

/** What `loadConfig` and `loadConfigFromString` loaded. */
export interface LoadedConfig {
  /** The file it came from, when it came from a file. */
  readonly file: string | undefined;
  /** Ids of the stores it defined. */
  readonly stores: readonly string[];
  /** Ids of the limiters it defined. */
  readonly limiters: readonly string[];
}

/**
 * What `rateLimited` accepts as its target: a limiter id, or a function of (the first of) the
 * call's arguments that returns the id, or the id and the key.
 */
export type LimiterTarget<T extends unknown[]> = string | ((...args: T) => string | { limiter: string; key?: string });

/** Options of `rateLimited`. */
export interface RateLimitedOptions<T extends unknown[]> extends Omit<AcquireOptions, "key" | "signal"> {
  /** The key, or a function computing it from (the first of) the call's arguments. */
  key?: string | ((...args: T) => string | undefined) | undefined;
}

/** The arguments a wrapped function may take: any, or at least those the target/key functions read. */
export type WrappedArgs<T extends unknown[]> = [T] extends [never] ? unknown[] : [...T, ...unknown[]];

/**
 * What `rateLimited(...)` returns: applied to a function (or used as a method decorator) it
 * gives the rate-limited twin, which always returns a promise.
 */
export type RateLimitedWrapper<T extends unknown[]> = <A extends WrappedArgs<T>, R>(
  fn: (...args: A) => R,
  context?: ClassMethodDecoratorContext,
) => (...args: A) => Promise<Awaited<R>>;

function processEnv(): Readonly<Record<string, string | undefined>> {
  return typeof process !== "undefined" && typeof process.env === "object" ? process.env : {};
}

function engineKeys(engine: string): readonly string[] | undefined {
  return registeredEngineKeys(engine) ?? builtinEngineKeys(engine);
}

/** Reads a file synchronously where the runtime allows it without a static `node:` import. */
function readFileSyncIfPossible(path: string): string | undefined | null {
  const getBuiltin = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process
    ?.getBuiltinModule;
  if (typeof getBuiltin !== "function") return null;
  const fs = getBuiltin("node:fs") as typeof import("node:fs") | undefined;
  if (fs === undefined) return null;
  try {
    return fs.readFileSync(path, "utf8");
  } catch (error) {
    if ((error as { code?: unknown }).code === "ENOENT") return undefined;
    throw new RateSyncError(
      "CONFIG_INVALID",
      `Could not read the configuration file ${path}: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
}

function sameOptions(a: StoreOptions, b: StoreOptions): boolean {
  const left = a as Record<string, unknown>;
  const right = b as Record<string, unknown>;
  for (const key of new Set([...Object.keys(left), ...Object.keys(right)])) {
    const x = left[key];
    const y = right[key];
    if (x === y) continue;
    // Plain data (arrays of servers, nested options) compares by value; engine instances by identity.
    const plain = (v: unknown) =>
      typeof v === "object" && v !== null && typeof (v as { decide?: unknown }).decide !== "function";
    if (plain(x) && plain(y) && JSON.stringify(x) === JSON.stringify(y)) continue;
    return false;
  }
  return true;
}

/**
 * A registry of stores and limiters: the whole public API. The top-level functions
 * (`configureStore`, `acquire`, ...) use one shared default instance; create your own with
 * {@link createRateSync} to keep a part of an application (or a test) separate.
 */
export class RateSync {
  readonly #clock: Clock;
  readonly #tuning: WaitTuning;
  readonly #env: Readonly<Record<string, string | undefined>>;
  readonly #stores = new Map<string, Store>();
  readonly #limiters = new Map<string, Limiter>();
  #autoload: boolean;
  /** The error of an invalid auto-loaded file, thrown by every call that needs a limiter. */
  #autoloadError: RateSyncError | undefined;
  #autoloadedFile: string | undefined;

  constructor(options: RateSyncOptions = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#tuning = {
      random: options.random ?? DEFAULT_WAIT_TUNING.random,
      pollMs: options.pollMs ?? DEFAULT_WAIT_TUNING.pollMs,
    };
    this.#env = options.env ?? processEnv();
    this.#autoload = options.autoload ?? true;
  }

  /**
   * Configures a store: an engine and its connection options. Calling it again with the same
   * options does nothing; with different options it throws (close() first to reconfigure).
   *
   * @example
   * ```ts
   * configureStore("local", { engine: "memory" });
   * configureStore("main", { engine: "redis", url: process.env.REDIS_URL });
   * ```
   */
  configureStore(id: string, options: StoreOptions): void {
    this.#checkId(id, "store");
    const { options: valid, issues } = validateStoreOptions(id, options, "ts", engineKeys);
    if (valid === undefined || issues.length > 0) throw configInvalid(issues);
    this.#addStore(id, valid);
  }

  /**
   * Configures (or replaces) a limiter: a policy bound to a configured store. Replacing a limiter
   * keeps what its store holds: budgets and slots carry on under the new policy.
   *
   * @example
   * ```ts
   * configureLimiter("api", { store: "local", ratePerSecond: 10, burst: 5, timeout: 30 });
   * configureLimiter("login", { store: "local", algorithm: "sliding_window", limit: 5, windowSeconds: 300 });
   * ```
   */
  configureLimiter(id: string, options: LimiterOptions): void {
    this.#checkId(id, "limiter");
    const { config, issues } = validateLimiterOptions(id, options, "ts");
    if (config === undefined || issues.length > 0) throw configInvalid(issues);
    this.#addLimiter(config);
  }

  /**
   * Loads a `rate-sync.toml` file: the path given, else `RATESYNC_CONFIG`, else `./rate-sync.toml`.
   * Its stores and limiters join those already configured. Throws `CONFIG_NOT_FOUND` when the file
   * does not exist and `CONFIG_INVALID` (listing every problem) when it is not valid.
   */
  async loadConfig(path?: string): Promise<LoadedConfig> {
    const resolved = path ?? resolveConfigPath(this.#env)?.path;
    if (resolved === undefined) {
      throw new RateSyncError(
        "CONFIG_NOT_FOUND",
        "No configuration file path: this runtime has no file system. Use loadConfigFromString() or configureStore()/configureLimiter().",
      );
    }
    const text = await readConfigFile(resolved);
    if (text === undefined) {
      throw new RateSyncError(
        "CONFIG_NOT_FOUND",
        `The configuration file ${resolved} does not exist. Create it, or point RATESYNC_CONFIG (or loadConfig(path)) at the right file.`,
        { details: { path: resolved } },
      );
    }
    this.#autoload = false;
    this.#autoloadError = undefined;
    return this.#apply(this.#parse(text, resolved), resolved);
  }

  /** Loads configuration from TOML text, in the `rate-sync.toml` format. */
  loadConfigFromString(toml: string, options: { file?: string } = {}): LoadedConfig {
    // Configuration given explicitly replaces the search for rate-sync.toml, as loadConfig does.
    this.#autoload = false;
    return this.#apply(this.#parse(toml, options.file), options.file);
  }

  /**
   * Configures `newId` as a copy of `sourceId`, with `overrides` applied: a per-user or per-tenant
   * twin with its own budget on the same store (no new connection).
   *
   * @example
   * ```ts
   * cloneLimiter("api", `api:${userId}`);
   * await acquire(`api:${userId}`);
   * ```
   */
  cloneLimiter(sourceId: string, newId: string, overrides: Partial<LimiterOptions> = {}): void {
    const source = this.getLimiter(sourceId).config;
    const options: LimiterOptions = {
      store: source.store,
      algorithm: source.algorithm,
      ratePerSecond: source.ratePerSecond,
      burst: source.burst,
      limit: source.limit,
      windowSeconds: source.windowSeconds,
      maxConcurrent: source.maxConcurrent,
      leaseSeconds: source.leaseSeconds,
      timeout: source.timeout,
      failClosed: source.failClosed,
      ...overrides,
    };
    // Drop keys that do not apply to the resulting algorithm, so an override of the algorithm works.
    const algorithm = options.algorithm ?? (options.ratePerSecond !== undefined ? "token_bucket" : undefined);
    const cleaned = Object.fromEntries(
      Object.entries(options).filter(([key, value]) => {
        if (value === undefined) return false;
        if (key === "leaseSeconds" && options.maxConcurrent === undefined) return false;
        if (algorithm === "token_bucket") return key !== "limit" && key !== "windowSeconds";
        if (algorithm === "sliding_window" || algorithm === "fixed_window")
          return key !== "ratePerSecond" && key !== "burst";
        return true;
      }),
    ) as unknown as LimiterOptions;
    this.configureLimiter(newId, cleaned);
  }

  /** The limiter `id`. Throws `LIMITER_NOT_FOUND` (with the closest id) when it is not configured. */
  getLimiter(id: string): Limiter {
    const limiter = this.#limiters.get(id);
    if (limiter !== undefined) return limiter;
    this.#ensureAutoloaded();
    const loaded = this.#limiters.get(id);
    if (loaded !== undefined) return loaded;
    const known = [...this.#limiters.keys()];
    const suggestion = typeof id === "string" ? closestName(id, known) : undefined;
    const where = this.#autoloadedFile === undefined ? "no rate-sync.toml was found" : `loaded ${this.#autoloadedFile}`;
    throw new RateSyncError(
      "LIMITER_NOT_FOUND",
      `No limiter "${String(id)}" is configured (${where}; known limiters: ${known.length === 0 ? "none" : known.join(", ")}).${suggestion === undefined ? "" : ` Did you mean "${suggestion}"?`} Define it in rate-sync.toml or with configureLimiter().`,
      { details: { limiter: id } },
    );
  }

  /**
   * Waits for the limiter to admit a call and returns the held {@link Slot}; release it (or use
   * `await using`) when done. Throws `ACQUIRE_TIMEOUT` at the timeout (at once when the store
   * predicts the wait passes it) and `ABORTED` when the signal aborts.
   *
   * @example
   * ```ts
   * await using slot = await acquire("db", { key: tenantId, timeout: 5 });
   * await db.query(sql);
   * ```
   */
  acquire(id: string, options?: AcquireOptions): Promise<Slot> {
    try {
      return this.getLimiter(id).acquire(options);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Asks once, never waits: a {@link Decision}. Being limited is `allowed: false`, not an error.
   *
   * @example
   * ```ts
   * const decision = await tryAcquire("api", { key: ip });
   * if (!decision.allowed) return tooManyRequests(decision.retryAfterMs);
   * ```
   */
  tryAcquire(id: string, options?: TryAcquireOptions): Promise<Decision> {
    try {
      return this.getLimiter(id).tryAcquire(options);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Wraps `fn` so that every call acquires first and releases when the call settles. Also a
   * method decorator. The target may be computed from the call's arguments.
   *
   * @example
   * ```ts
   * const fetchData = rateLimited("api")(async (url: string) => (await fetch(url)).json());
   * const perTenant = rateLimited((tenantId: string) => `tenant-${tenantId}`)(processRequest);
   * const perUser = rateLimited("api", { key: (userId: string) => userId })(loadProfile);
   * ```
   */
  rateLimited<T extends unknown[] = never>(
    target: LimiterTarget<T>,
    options: RateLimitedOptions<T> = {},
  ): RateLimitedWrapper<T> {
    if (typeof target !== "string" && typeof target !== "function") {
      throw new RateSyncError(
        "INVALID_ARGUMENT",
        `rateLimited needs a limiter id or a function returning one, got ${typeof target}.`,
      );
    }
    const { key, ...acquireOptions } = options;
    return <A extends WrappedArgs<T>, R>(fn: (...args: A) => R) => {
      if (typeof fn !== "function") {
        throw new RateSyncError("INVALID_ARGUMENT", "rateLimited(...) must be applied to a function or a method.");
      }
      const registry = this;
      return async function rateLimitedCall(this: unknown, ...args: A): Promise<Awaited<R>> {
        // The target and key functions read a prefix of the arguments (WrappedArgs guarantees it).
        const prefix = args as unknown as T;
        let limiterId: string;
        let callKey = typeof key === "function" ? key(...prefix) : key;
        if (typeof target === "string") {
          limiterId = target;
        } else {
          const computed = target(...prefix);
          if (typeof computed === "string") limiterId = computed;
          else {
            limiterId = computed.limiter;
            if (computed.key !== undefined) callKey = computed.key;
          }
        }
        const slot = await registry.acquire(limiterId, { ...acquireOptions, key: callKey });
        try {
          return await fn.apply(this, args);
        } finally {
          await slot.release();
        }
      };
    };
  }

  /** Every configured store, by id. */
  listStores(): Record<string, StoreInfo> {
    this.#ensureAutoloadedQuietly();
    const result: Record<string, StoreInfo> = {};
    for (const [id, store] of this.#stores)
      result[id] = { id, engine: store.engineName, open: store.engine !== undefined };
    return result;
  }

  /** Every configured limiter's configuration, by id. */
  listLimiters(): Record<string, LimiterConfig> {
    this.#ensureAutoloadedQuietly();
    const result: Record<string, LimiterConfig> = {};
    for (const [id, limiter] of this.#limiters) result[id] = limiter.config;
    return result;
  }

  /**
   * Connects the limiter's store now and verifies it, instead of on first use: fail fast at
   * startup. Throws `STORE_UNAVAILABLE` when the store cannot be reached.
   */
  async initializeLimiter(id: string): Promise<void> {
    const store = this.getLimiter(id).store;
    const engine = await store.open();
    try {
      await engine.init?.();
    } catch (error) {
      throw new RateSyncError(
        "STORE_UNAVAILABLE",
        `Store "${store.id}" (${store.engineName}) could not be initialized: ${(error as Error)?.message ?? String(error)}`,
        { cause: error },
      );
    }
  }

  /** {@link initializeLimiter} for every configured limiter. */
  async initializeAllLimiters(): Promise<void> {
    this.#ensureAutoloaded();
    await Promise.all([...this.#limiters.keys()].map((id) => this.initializeLimiter(id)));
  }

  /**
   * Closes every store this registry opened and stops renewing held slots: no timers or sockets
   * are left behind. The configuration stays; stores reopen on next use.
   */
  async close(): Promise<void> {
    for (const limiter of this.#limiters.values()) limiter.abandonSlots();
    await Promise.all([...this.#stores.values()].map((store) => store.close()));
  }

  // --- internals ---

  /** Parses and validates TOML text; a limiter in it may use a store configured in code before. */
  #parse(text: string, file: string | undefined): ParsedConfig {
    return parseConfig(text, {
      ...(file === undefined ? {} : { file }),
      env: this.#env,
      engineKeys,
      storeExists: (id) => this.#stores.has(id),
    });
  }

  #checkId(id: unknown, what: string): void {
    if (typeof id !== "string" || id.length === 0 || id.length > 256) {
      throw new RateSyncError(
        "INVALID_ARGUMENT",
        `A ${what} id must be a non-empty string of at most 256 characters, got ${typeof id === "string" ? JSON.stringify(id.slice(0, 40)) : typeof id}.`,
      );
    }
  }

  #addStore(id: string, options: StoreOptions): void {
    const existing = this.#stores.get(id);
    if (existing !== undefined) {
      if (sameOptions(existing.options, options)) return;
      throw new RateSyncError(
        "CONFIG_INVALID",
        `Store "${id}" is already configured with other options. Use another id, or close() and configure a new registry.`,
        { details: { store: id } },
      );
    }
    this.#stores.set(id, new Store(id, options, this.#clock));
  }

  #addLimiter(config: LimiterConfig): void {
    let store = this.#stores.get(config.store);
    if (store === undefined) {
      this.#ensureAutoloaded();
      store = this.#stores.get(config.store);
    }
    if (store === undefined) {
      const known = [...this.#stores.keys()];
      const suggestion = closestName(config.store, known);
      throw new RateSyncError(
        "STORE_NOT_FOUND",
        `Limiter "${config.id}" uses store "${config.store}", which is not configured (known stores: ${known.length === 0 ? "none" : known.join(", ")}).${suggestion === undefined ? "" : ` Did you mean "${suggestion}"?`} Configure the store first.`,
        { details: { limiter: config.id, store: config.store } },
      );
    }
    this.#limiters.set(config.id, new Limiter(config, store, this.#clock, this.#tuning));
  }

  #apply(parsed: ParsedConfig, file: string | undefined): LoadedConfig {
    // Check every store first so a conflict leaves the registry untouched.
    for (const id of [...parsed.stores.keys(), ...parsed.limiters.keys()]) this.#checkId(id, "store or limiter");
    for (const [id, options] of parsed.stores) {
      const existing = this.#stores.get(id);
      if (existing !== undefined && !sameOptions(existing.options, options)) {
        throw new RateSyncError(
          "CONFIG_INVALID",
          `${file ?? "The configuration"} defines store "${id}", which is already configured with other options.`,
          { details: { store: id } },
        );
      }
    }
    for (const [id, options] of parsed.stores) this.#addStore(id, options);
    for (const config of parsed.limiters.values()) this.#addLimiter(config);
    return { file, stores: [...parsed.stores.keys()], limiters: [...parsed.limiters.keys()] };
  }

  /** Loads `rate-sync.toml` once, on the first call that needs a limiter. */
  #ensureAutoloaded(): void {
    if (this.#autoloadError !== undefined) throw this.#autoloadError;
    if (!this.#autoload) return;
    this.#autoload = false;
    const location = resolveConfigPath(this.#env);
    if (location === undefined) return;
    try {
      const text = readFileSyncIfPossible(location.path);
      if (text === null) return;
      if (text === undefined) {
        if (location.explicit) {
          throw new RateSyncError(
            "CONFIG_NOT_FOUND",
            `RATESYNC_CONFIG points at ${location.path}, which does not exist. Fix the path or unset RATESYNC_CONFIG.`,
            { details: { path: location.path } },
          );
        }
        return;
      }
      this.#apply(this.#parse(text, location.path), location.path);
      this.#autoloadedFile = location.path;
    } catch (error) {
      this.#autoloadError = isRateSyncError(error)
        ? error
        : new RateSyncError("CONFIG_INVALID", String(error), { cause: error });
      throw this.#autoloadError;
    }
  }

  #ensureAutoloadedQuietly(): void {
    try {
      this.#ensureAutoloaded();
    } catch {
      // Listing shows what is configured; the configuration error surfaces on the next real call.
    }
  }
}

/** Creates a separate registry with its own stores and limiters (and, for tests, its own clock). */
export function createRateSync(options: RateSyncOptions = {}): RateSync {
  return new RateSync(options);
}
