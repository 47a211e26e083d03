/**
 * Validation of a store's options (a `[stores.<id>]` table or `configureStore` options): a known
 * engine, only the keys that engine accepts, and values of the right type for built-in engines.
 */
import type { Engine } from "../engines/engine.js";
import type { CustomStoreOptions, StoreOptions } from "../options.js";
import { BUILTIN_ENGINES, COMMON_STORE_RULES, type EngineKeysLookup, storeOptionRule } from "./engine-keys.js";
import { type ConfigIssue, IssueCollector, quoteList } from "./issues.js";
import { keyName, type Spelling, snakeToCamel, tableName } from "./keys.js";
import { checkId, reportUnknownKeys } from "./shared-checks.js";
import { withSuggestion } from "./suggest.js";
import { describeGot, isTable, wrongValueMessage } from "./values.js";

/** The result of {@link validateStoreOptions}: options when there are no issues, else the issues. */
export interface StoreValidation {
  /** The options with camelCase keys, ready for `configureStore`; `undefined` when there is an issue. */
  readonly options: StoreOptions | undefined;
  /** Every problem found. */
  readonly issues: ConfigIssue[];
}

/** What the `engine` key resolved to: a name with the option keys it accepts, or an instance. */
type ResolvedEngine =
  | { readonly engine: string; readonly optionKeys: readonly string[] }
  | { readonly engine: Engine; readonly optionKeys: undefined };

const ENGINE_KEY = "engine";
const ENGINE_METHODS = ["decide", "release", "renew", "peek", "reset", "close"] as const;

/**
 * Validates one store's options. The engine must be known to `engineKeys` (built in or
 * registered); its option keys are checked against the keys it declares (unknown keys get the
 * closest valid name), and the values of built-in engines' options are type-checked. The result
 * has camelCase keys (`key_prefix` becomes `keyPrefix`) with values unchanged.
 *
 * In TypeScript options (`spelling: "ts"`), `engine` may also be an {@link Engine} instance, taken
 * as is: its other options are not checked, since only its author knows them.
 *
 * @param id - The store id (a non-empty string).
 * @param raw - A `[stores.<id>]` table (after environment expansion) or `configureStore` options.
 * @param spelling - `"toml"` for snake_case keys, `"ts"` for camelCase; messages use the same spelling.
 * @param engineKeys - The option keys (TOML spelling) an engine accepts; `undefined` for an unknown engine.
 * @param file - The file the options came from, for messages.
 */
export function validateStoreOptions(
  id: string,
  raw: unknown,
  spelling: Spelling,
  engineKeys: EngineKeysLookup,
  file?: string,
): StoreValidation {
  const issues = new IssueCollector(file, tableName("stores", String(id)));
  checkId(id, "store", issues);
  if (!isTable(raw)) {
    issues.add(undefined, `expected a table of store options, got ${describeGot(raw, spelling)}. Write one.`);
    return { options: undefined, issues: issues.issues };
  }

  const resolved = resolveEngine(raw[ENGINE_KEY], spelling, engineKeys, issues);
  // Keys are checked only when the engine is known; for an unknown engine that would be noise.
  const tomlKeys = [...Object.keys(COMMON_STORE_RULES), ...(resolved?.optionKeys ?? [])];
  const bySpelledName = new Map(tomlKeys.map((key) => [keyName(key, spelling), key]));
  if (resolved?.optionKeys !== undefined) reportUnknownKeys(raw, [ENGINE_KEY, ...bySpelledName.keys()], issues);

  const engineName = typeof resolved?.engine === "string" ? resolved.engine : "";
  const options: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw)) {
    if (key === ENGINE_KEY) continue;
    const tomlKey = bySpelledName.get(key);
    const rule = tomlKey === undefined ? undefined : storeOptionRule(engineName, tomlKey);
    if (rule !== undefined && value !== undefined && !rule.check(value)) {
      issues.add(key, wrongValueMessage(rule, value, spelling, false));
    }
    options[spelling === "toml" ? snakeToCamel(key) : key] = value;
  }

  if (resolved === undefined || issues.issues.length > 0) return { options: undefined, issues: issues.issues };
  const valid: CustomStoreOptions = { ...options, engine: resolved.engine };
  return { options: valid, issues: issues.issues };
}

/** Resolves the `engine` key, reporting a missing, unknown or malformed engine. */
function resolveEngine(
  value: unknown,
  spelling: Spelling,
  engineKeys: EngineKeysLookup,
  issues: IssueCollector,
): ResolvedEngine | undefined {
  const known = `Known engines: ${BUILTIN_ENGINES.join(", ")}, or one registered with registerEngine().`;
  if (value === undefined) {
    issues.add(ENGINE_KEY, `missing; name the engine. ${known}`);
    return undefined;
  }
  if (typeof value === "string" && value !== "") {
    const optionKeys = engineKeys(value);
    if (optionKeys !== undefined) return { engine: value, optionKeys };
    issues.add(
      ENGINE_KEY,
      `${withSuggestion(`unknown engine ${JSON.stringify(value)}`, value, BUILTIN_ENGINES)} ${known} ` +
        "Fix the name, or register the engine before configuring the store.",
    );
    return undefined;
  }
  if (spelling === "ts" && typeof value === "object" && value !== null && !Array.isArray(value)) {
    const missing = missingEngineMembers(value);
    if (missing.length === 0) return { engine: value as Engine, optionKeys: undefined };
    issues.add(
      ENGINE_KEY,
      `expected an engine name or an Engine instance, got an object without ${quoteList(missing, "and")}. ` +
        "Pass a complete engine (see the Engine interface) or an engine name.",
    );
    return undefined;
  }
  const expected = spelling === "ts" ? "an engine name or an Engine instance" : "an engine name";
  issues.add(ENGINE_KEY, `expected ${expected}, got ${describeGot(value, spelling)}. ${known} Fix the value.`);
  return undefined;
}

/** The members an object lacks to be an {@link Engine}: its methods, and its `name`. */
function missingEngineMembers(value: object): string[] {
  const members = value as Partial<Record<(typeof ENGINE_METHODS)[number] | "name", unknown>>;
  const missing: string[] = ENGINE_METHODS.filter((method) => typeof members[method] !== "function");
  if (typeof members.name !== "string") missing.push("name");
  return missing;
}
