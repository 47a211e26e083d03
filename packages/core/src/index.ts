/**
 * `@ratesync/core`: rate limiting (token bucket, sliding window, fixed window) and concurrency
 * limiting (leased slots) for Node.js and edge runtimes, with an in-memory engine built in and
 * Redis, NATS and PostgreSQL engines as separate packages.
 *
 * @packageDocumentation
 */

export type { LeaseState } from "./algorithms/concurrency.js";
export type { DecideResult, EngineDecision, KeyState, RateState } from "./algorithms/decide.js";
export { decide, peek, releaseSlot, renewSlot, stateExpiresAt } from "./algorithms/decide.js";
export type { FixedWindowState } from "./algorithms/fixed-window.js";
export type { RateCheck } from "./algorithms/rate-check.js";
export { TIME_EPSILON_MS } from "./algorithms/rate-check.js";
export type { SlidingWindowState } from "./algorithms/sliding-window.js";
export type { TokenBucketState } from "./algorithms/token-bucket.js";
export type { Clock } from "./clock.js";
export { systemClock } from "./clock.js";
export { BUILTIN_ENGINE_KEYS, type BuiltinEngine } from "./config/engine-keys.js";
export { type Deadline, DeadlineQueue } from "./deadline-queue.js";
export type {
  ConcurrencyUsage,
  Decision,
  DecisionPolicy,
  DegradedDecision,
  PolicyKind,
  StoreDecision,
} from "./decision.js";
export {
  acquire,
  cloneLimiter,
  close,
  configureLimiter,
  configureStore,
  defaultRateSync,
  getLimiter,
  initializeAllLimiters,
  initializeLimiter,
  listLimiters,
  listStores,
  loadConfig,
  loadConfigFromString,
  rateLimited,
  tryAcquire,
} from "./default-registry.js";
export type {
  DecideRequest,
  Engine,
  EngineContext,
  EngineDefinition,
  EngineFactory,
  EngineTarget,
  LeaseRequest,
  MaybePromise,
  PeekRequest,
  RenewRequest,
} from "./engines/engine.js";
export { createMemoryEngine, DEFAULT_MEMORY_MAX_KEYS, MemoryEngine, memoryEngine } from "./engines/memory.js";
export { ENGINE_PACKAGES, registerEngine } from "./engines/registry.js";
export type { RateSyncErrorCode, RateSyncErrorOptions } from "./errors.js";
export { isRateSyncError, RateSyncError } from "./errors.js";
export type { AcquireOptions, TryAcquireOptions } from "./limiter.js";
export { Limiter, MAX_KEY_LENGTH } from "./limiter.js";
export type { LimiterMetrics } from "./metrics.js";
export type {
  CommonStoreOptions,
  CustomStoreOptions,
  EngineOptionsMap,
  KnownStoreOptions,
  LimiterConfig,
  LimiterOptions,
  MemoryEngineOptions,
  StoreOptions,
} from "./options.js";
export type {
  Algorithm,
  ConcurrencyPolicy,
  FixedWindowPolicy,
  Policy,
  RatePolicy,
  SlidingWindowPolicy,
  TokenBucketPolicy,
} from "./policy.js";
export { ALGORITHMS, rateCapacity } from "./policy.js";
export type {
  LimiterTarget,
  LoadedConfig,
  RateLimitedOptions,
  RateLimitedWrapper,
  RateSyncOptions,
  StoreInfo,
  WrappedArgs,
} from "./rate-sync.js";
export { createRateSync, RateSync } from "./rate-sync.js";
export type { Slot } from "./slot.js";
export { DEFAULT_REQUEST_TIMEOUT_MS, Store } from "./store.js";
export { TargetCache } from "./target-cache.js";
