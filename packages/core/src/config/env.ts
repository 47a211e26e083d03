/**
 * `${NAME}` and `${NAME:-default}` references in configuration strings, expanded from the
 * environment. Expansion is textual: a string stays a string, so a password such as `"0123"` is
 * never turned into a number.
 */

import { isTable } from "./values.js";

/** Environment variables by name, as `process.env` holds them. */
export type EnvSource = Readonly<Record<string, string | undefined>>;

/** The result of {@link expandEnv}: the expanded string, or every reference that could not be expanded. */
export type EnvExpansion =
  | { readonly ok: true; readonly value: string }
  | {
      readonly ok: false;
      /** Names of referenced variables that are not set and have no default. */
      readonly missing: readonly string[];
      /** References that are not `${NAME}` or `${NAME:-default}`, as written. */
      readonly malformed: readonly string[];
    };

/** A reference that failed to expand somewhere inside a value, for one configuration issue. */
export interface EnvProblem {
  /** Where inside the value: the key, then `[index]` or `.key` for nested arrays and tables. */
  readonly path: string;
  /** What is wrong and what to do, naming the variable. */
  readonly message: string;
}

// `$${` is the escape for a literal `${`; an unterminated `${` is caught by the last branch.
const REFERENCE = /\$\$\{|\$\{([^}]*)\}|\$\{/g;
const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const DEFAULT_SEPARATOR = ":-";

/**
 * Expands `${NAME}` and `${NAME:-default}` anywhere inside `value`; `$${` gives a literal `${`.
 * As in POSIX shells, the default applies when the variable is unset or empty. Defaults are taken
 * literally (no nested references).
 *
 * @example
 * ```ts
 * expandEnv("redis://${REDIS_HOST:-localhost}:6379", { REDIS_HOST: "cache" });
 * // { ok: true, value: "redis://cache:6379" }
 * ```
 */
export function expandEnv(value: string, env: EnvSource): EnvExpansion {
  const missing: string[] = [];
  const malformed: string[] = [];
  const expanded = value.replace(REFERENCE, (match: string, body: string | undefined) => {
    if (match === "$${") return "${";
    const reference = parseReference(body);
    if (reference === undefined) {
      malformed.push(match);
      return match;
    }
    const set = env[reference.name];
    // Only strings count: a plain-object env inherits keys such as "toString".
    const current = typeof set === "string" ? set : undefined;
    if (reference.fallback !== undefined && (current === undefined || current === "")) return reference.fallback;
    if (current !== undefined) return current;
    missing.push(reference.name);
    return match;
  });
  return missing.length === 0 && malformed.length === 0
    ? { ok: true, value: expanded }
    : { ok: false, missing, malformed };
}

/**
 * Expands every string inside `value` (recursing into arrays and tables) and returns a copy;
 * other values are returned as they are. Strings that fail to expand stay as written, and each
 * failure is reported with its `path` (starting at `path`).
 */
export function expandEnvDeep(
  value: unknown,
  env: EnvSource,
  path: string,
): { readonly value: unknown; readonly problems: readonly EnvProblem[] } {
  const problems: EnvProblem[] = [];
  const visit = (node: unknown, at: string): unknown => {
    if (typeof node === "string") {
      const result = expandEnv(node, env);
      if (result.ok) return result.value;
      problems.push(...describeFailure(result, at));
      return node;
    }
    if (Array.isArray(node)) return node.map((item, index) => visit(item, `${at}[${index}]`));
    if (isTable(node)) {
      // fromEntries defines own properties, so a key named "__proto__" stays a plain key.
      return Object.fromEntries(Object.entries(node).map(([key, item]) => [key, visit(item, `${at}.${key}`)]));
    }
    return node;
  };
  return { value: visit(value, path), problems };
}

/** The environment of the current process, or an empty one in runtimes without `process`. */
export function processEnv(): EnvSource {
  return typeof process === "undefined" || process.env === undefined ? {} : process.env;
}

function parseReference(body: string | undefined): { name: string; fallback: string | undefined } | undefined {
  if (body === undefined) return undefined;
  const separator = body.indexOf(DEFAULT_SEPARATOR);
  const name = separator === -1 ? body : body.slice(0, separator);
  const fallback = separator === -1 ? undefined : body.slice(separator + DEFAULT_SEPARATOR.length);
  // A "${" inside a default means the author expected nesting, which would silently mis-expand.
  if (!NAME.test(name) || fallback?.includes("${")) return undefined;
  return { name, fallback };
}

function describeFailure(failure: Extract<EnvExpansion, { ok: false }>, path: string): EnvProblem[] {
  return [
    ...failure.missing.map((name) => ({
      path,
      message: `environment variable ${name} is not set; set it, or give a default with \${${name}:-value}.`,
    })),
    ...failure.malformed.map((reference) => ({
      path,
      message: `malformed environment reference ${JSON.stringify(reference)}; write \${NAME} or \${NAME:-default} (NAME: letters, digits and _, not starting with a digit), or $\${ for a literal \${.`,
    })),
  ];
}
