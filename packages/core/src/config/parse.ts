/// <reference path="./iarna-toml.d.ts" />
/**
 * Parsing of `rate-sync.toml` text into validated stores and limiters. Every problem in every
 * table is collected, then thrown as one `CONFIG_INVALID` error.
 */
import parseToml from "@iarna/toml/parse-string.js";
import type { LimiterConfig, StoreOptions } from "../options.js";
import type { EngineKeysLookup } from "./engine-keys.js";
import { type EnvSource, expandEnvDeep, processEnv } from "./env.js";
import { type ConfigIssue, configInvalid, IssueCollector } from "./issues.js";
import { tableName } from "./keys.js";
import { withSuggestion } from "./suggest.js";
import { validateLimiterOptions } from "./validate-limiter.js";
import { validateStoreOptions } from "./validate-store.js";
import { describeGot, isTable } from "./values.js";

/** The stores and limiters a configuration file defines, validated, in file order. */
export interface ParsedConfig {
  /** Store options by store id, with camelCase keys as `configureStore` takes them. */
  readonly stores: Map<string, StoreOptions>;
  /** Resolved limiter configurations by limiter id. */
  readonly limiters: Map<string, LimiterConfig>;
}

/** Options of {@link parseConfig}. */
export interface ParseConfigOptions {
  /** The file the text came from, named in every message. */
  file?: string | undefined;
  /**
   * The environment for `${NAME}` references.
   * @default process.env (an empty environment where there is no `process`)
   */
  env?: EnvSource | undefined;
  /** The option keys (TOML spelling) an engine accepts; `undefined` for an unknown engine. */
  engineKeys: EngineKeysLookup;
  /**
   * Whether a store defined outside this text (with `configureStore`) exists, so limiters in the
   * file may use it. Without it, a limiter's store must be defined in the same file.
   */
  storeExists?: ((id: string) => boolean) | undefined;
}

const SECTIONS = ["stores", "limiters"] as const;
type Section = (typeof SECTIONS)[number];

/**
 * Parses and validates `rate-sync.toml` text. Throws one `CONFIG_INVALID` error listing every
 * problem (each naming the file, the table and the key), or the line and column of a syntax error.
 *
 * @example
 * ```ts
 * const { stores, limiters } = parseConfig('[stores.local]\nengine = "memory"\n', { engineKeys: builtinEngineKeys });
 * ```
 */
export function parseConfig(text: string, options: ParseConfigOptions): ParsedConfig {
  const { file, engineKeys } = options;
  const env = options.env ?? processEnv();
  const document = parseDocument(text, file);
  const fileIssues = new IssueCollector(file, undefined);
  const issues: ConfigIssue[] = fileIssues.issues;

  for (const key of Object.keys(document)) {
    if ((SECTIONS as readonly string[]).includes(key)) continue;
    fileIssues.add(
      key,
      `${withSuggestion(`unknown top-level key ${JSON.stringify(key)}`, key, SECTIONS)} ` +
        "The file holds [stores.<id>] and [limiters.<id>] tables. Fix the name or remove it.",
    );
  }

  const storeEntries = sectionEntries(document, "stores", fileIssues);
  const stores = new Map<string, StoreOptions>();
  for (const [id, raw] of storeEntries) {
    const table = expandTable(raw, env, "stores", id, file, issues);
    const { options: store, issues: found } = validateStoreOptions(id, table.value, "toml", engineKeys, file);
    issues.push(...found.filter((issue) => !table.failedKeys.has(issue.key)));
    if (store !== undefined) stores.set(id, store);
  }

  // Stores defined with problems still count as defined: their own issues say what is wrong.
  const storeIds = new Set(storeEntries.map(([id]) => id));
  const limiters = new Map<string, LimiterConfig>();
  for (const [id, raw] of sectionEntries(document, "limiters", fileIssues)) {
    const table = expandTable(raw, env, "limiters", id, file, issues);
    const { config, issues: found } = validateLimiterOptions(id, table.value, "toml", file);
    issues.push(...found.filter((issue) => !table.failedKeys.has(issue.key)));
    if (config !== undefined) limiters.set(id, config);

    const store = isTable(table.value) ? table.value.store : undefined;
    // A store that is missing, malformed or failed to expand already has its own issue.
    const checkable = typeof store === "string" && store !== "" && !table.failedKeys.has("store");
    if (checkable && !storeIds.has(store) && options.storeExists?.(store) !== true) {
      issues.push({
        file,
        table: tableName("limiters", id),
        key: "store",
        message: unknownStoreMessage(store, storeIds),
      });
    }
  }

  if (issues.length > 0) throw configInvalid(issues);
  return { stores, limiters };
}

/** Parses the TOML syntax; a syntax error becomes `CONFIG_INVALID` with its 1-based line and column. */
function parseDocument(text: string, file: string | undefined): Record<string, unknown> {
  if (typeof text !== "string") {
    const issue = {
      file,
      table: undefined,
      key: undefined,
      message: `expected TOML text, got ${describeGot(text, "ts")}.`,
    };
    throw configInvalid([issue]);
  }
  try {
    // A byte order mark is not TOML, but editors on Windows write one.
    return parseToml(text.replace(/^\uFEFF/, ""));
  } catch (error) {
    const { line, col, message } = (error ?? {}) as { line?: unknown; col?: unknown; message?: unknown };
    // The parser appends " at row R, col C, pos P:" and a code excerpt; the position is reported our way.
    const reason = String(message ?? error)
      .split(" at row ")[0]
      ?.replace(/\.$/, "");
    const position =
      typeof line === "number" && typeof col === "number" ? { line: line + 1, column: col + 1 } : undefined;
    const issue: ConfigIssue = {
      file,
      table: undefined,
      key: undefined,
      message: `invalid TOML: ${reason}. Fix the syntax${position === undefined ? "" : " at that position"}.`,
      ...position,
    };
    throw configInvalid([issue], { cause: error });
  }
}

/**
 * The `[<section>.<id>]` entries of the document, in file order. Reports a section that is not a
 * table, such as `stores = 1`.
 */
function sectionEntries(
  document: Readonly<Record<string, unknown>>,
  section: Section,
  issues: IssueCollector,
): [string, unknown][] {
  const value = document[section];
  if (value === undefined) return [];
  if (isTable(value)) return Object.entries(value);
  issues.add(
    section,
    `expected tables such as [${section}.<id>], got ${describeGot(value, "toml")}. Write [${section}.<id>] tables.`,
  );
  return [];
}

/**
 * Expands `${NAME}` references in every string of one table, reporting each failure under the
 * table and key. Returns the expanded table and the keys that failed, whose other issues would
 * only repeat the root cause.
 */
function expandTable(
  raw: unknown,
  env: EnvSource,
  section: Section,
  id: string,
  file: string | undefined,
  issues: ConfigIssue[],
): { value: unknown; failedKeys: ReadonlySet<string | undefined> } {
  if (!isTable(raw)) return { value: raw, failedKeys: new Set() };
  const table = tableName(section, id);
  const failedKeys = new Set<string>();
  const entries = Object.entries(raw).map(([key, value]): [string, unknown] => {
    const expanded = expandEnvDeep(value, env, key);
    for (const problem of expanded.problems) {
      failedKeys.add(key);
      issues.push({ file, table, key: problem.path, message: problem.message });
    }
    return [key, expanded.value];
  });
  return { value: Object.fromEntries(entries), failedKeys };
}

function unknownStoreMessage(store: string, defined: ReadonlySet<string>): string {
  if (defined.size === 0) {
    return `store ${JSON.stringify(store)} is not defined; this file defines no stores. Add a [${tableName("stores", store)}] table with an engine.`;
  }
  return (
    `${withSuggestion(`store ${JSON.stringify(store)} is not defined`, store, [...defined])} ` +
    `Defined stores: ${[...defined].join(", ")}. Fix the name or add a [${tableName("stores", store)}] table.`
  );
}
