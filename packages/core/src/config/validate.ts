/**
 * Validation of store and limiter options, from `rate-sync.toml` tables or TypeScript options.
 */
export { BUILTIN_ENGINE_KEYS, type BuiltinEngine, builtinEngineKeys, type EngineKeysLookup } from "./engine-keys.js";
export { type Spelling, snakeToCamel } from "./keys.js";
export {
  DEFAULT_BURST,
  DEFAULT_LEASE_SECONDS,
  type LimiterValidation,
  validateLimiterOptions,
} from "./validate-limiter.js";
export { type StoreValidation, validateStoreOptions } from "./validate-store.js";
