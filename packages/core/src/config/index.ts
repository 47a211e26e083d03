/**
 * The configuration module: `rate-sync.toml` parsing, environment expansion, validation of store
 * and limiter options, and locating and reading the file.
 */
export { BUILTIN_ENGINES, type BuiltinEngine, type EngineKeysLookup } from "./engine-keys.js";
export { type EnvExpansion, type EnvSource, expandEnv } from "./env.js";
export { type ConfigIssue, configInvalid, formatIssue } from "./issues.js";
export {
  CONFIG_PATH_ENV,
  type ConfigLocation,
  DEFAULT_CONFIG_FILE,
  type LoadConfigFileOptions,
  loadConfigFile,
  readConfigFile,
  resolveConfigPath,
} from "./load.js";
export { type ParseConfigOptions, type ParsedConfig, parseConfig } from "./parse.js";
export { closestName } from "./suggest.js";
export {
  BUILTIN_ENGINE_KEYS,
  builtinEngineKeys,
  DEFAULT_BURST,
  DEFAULT_LEASE_SECONDS,
  type LimiterValidation,
  type Spelling,
  type StoreValidation,
  snakeToCamel,
  validateLimiterOptions,
  validateStoreOptions,
} from "./validate.js";
