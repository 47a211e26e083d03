import type { Decision } from "./decision.js";
import type { AcquireOptions, Limiter, TryAcquireOptions } from "./limiter.js";
import type { LimiterConfig, LimiterOptions, StoreOptions } from "./options.js";
import {
  type LimiterTarget,
  type LoadedConfig,
  type RateLimitedOptions,
  type RateLimitedWrapper,
  RateSync,
  type StoreInfo,
} from "./rate-sync.js";
import type { Slot } from "./slot.js";

/**
 * The registry behind the top-level functions. Kept on `globalThis` so that an ESM and a CJS copy
 * of `@ratesync/core` in one process share their stores and limiters instead of each seeing half.
 */
const registry: RateSync = (() => {
  const key = Symbol.for("@ratesync/core/default-registry@1");
  const holder = globalThis as unknown as Record<symbol, RateSync | undefined>;
  holder[key] ??= new RateSync();
  return holder[key];
})();

/** The shared default registry behind the top-level functions. */
export function defaultRateSync(): RateSync {
  return registry;
}

/** Configures a store on the default registry. See {@link RateSync.configureStore}. */
export function configureStore(id: string, options: StoreOptions): void {
  registry.configureStore(id, options);
}

/** Configures a limiter on the default registry. See {@link RateSync.configureLimiter}. */
export function configureLimiter(id: string, options: LimiterOptions): void {
  registry.configureLimiter(id, options);
}

/** Loads a `rate-sync.toml` into the default registry. See {@link RateSync.loadConfig}. */
export function loadConfig(path?: string): Promise<LoadedConfig> {
  return registry.loadConfig(path);
}

/** Loads TOML text into the default registry. See {@link RateSync.loadConfigFromString}. */
export function loadConfigFromString(toml: string, options?: { file?: string }): LoadedConfig {
  return registry.loadConfigFromString(toml, options);
}

/** Copies a limiter under a new id, on the same store. See {@link RateSync.cloneLimiter}. */
export function cloneLimiter(sourceId: string, newId: string, overrides?: Partial<LimiterOptions>): void {
  registry.cloneLimiter(sourceId, newId, overrides);
}

/**
 * Waits for the limiter `id` to admit a call and returns the held slot.
 *
 * @example
 * ```ts
 * import { acquire } from "@ratesync/core";
 *
 * await acquire("api"); // rate limit: nothing to release
 *
 * await using slot = await acquire("db_pool"); // concurrency: released at the end of the block
 * ```
 */
export function acquire(id: string, options?: AcquireOptions): Promise<Slot> {
  return registry.acquire(id, options);
}

/** Asks the limiter `id` once, never waiting. See {@link RateSync.tryAcquire}. */
export function tryAcquire(id: string, options?: TryAcquireOptions): Promise<Decision> {
  return registry.tryAcquire(id, options);
}

/**
 * Wraps a function (or decorates a method) so each call acquires first and releases after.
 *
 * @example
 * ```ts
 * const processPayment = rateLimited("payments")(async (paymentId: string) => service.process(paymentId));
 *
 * class Client {
 *   @rateLimited("api")
 *   async fetchData() {}
 * }
 * ```
 */
export function rateLimited<T extends unknown[] = never>(
  target: LimiterTarget<T>,
  options?: RateLimitedOptions<T>,
): RateLimitedWrapper<T> {
  return registry.rateLimited(target, options);
}

/** The limiter `id` of the default registry. See {@link RateSync.getLimiter}. */
export function getLimiter(id: string): Limiter {
  return registry.getLimiter(id);
}

/** Every store of the default registry. */
export function listStores(): Record<string, StoreInfo> {
  return registry.listStores();
}

/** Every limiter of the default registry. */
export function listLimiters(): Record<string, LimiterConfig> {
  return registry.listLimiters();
}

/** Connects the limiter's store now and verifies it. See {@link RateSync.initializeLimiter}. */
export function initializeLimiter(id: string): Promise<void> {
  return registry.initializeLimiter(id);
}

/** Connects every limiter's store now. See {@link RateSync.initializeAllLimiters}. */
export function initializeAllLimiters(): Promise<void> {
  return registry.initializeAllLimiters();
}

/** Closes every store of the default registry. See {@link RateSync.close}. */
export function close(): Promise<void> {
  return registry.close();
}
