/**
 * Value rules for configuration keys: what a key accepts, checked strictly. A TOML string `"10"`
 * is not a number, NaN and Infinity are not usable numbers, and integers must be exact.
 */
import { describeValue } from "../errors.js";
import type { Spelling } from "./keys.js";

/** What one key accepts: a type guard, and the wording of the expectation for messages. */
export interface ValueRule<T> {
  /** The expectation, completing "expected ...": `a number > 0`. */
  readonly expected: string;
  /** Whether `value` satisfies the rule. */
  readonly check: (value: unknown) => value is T;
}

function rule<T>(expected: string, check: (value: unknown) => value is T): ValueRule<T> {
  return { expected, check };
}

function isFiniteNumber(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value);
}

/** A finite number > 0. */
export const positiveNumber: ValueRule<number> = rule("a number > 0", (v): v is number => isFiniteNumber(v) && v > 0);

/** A finite number >= 0. */
export const nonNegativeNumber: ValueRule<number> = rule(
  "a number >= 0",
  (v): v is number => isFiniteNumber(v) && v >= 0,
);

/** A safe integer within `[min, max]` (a plain `>= min` when `max` is not given). */
export function integerRule(min: number, max?: number): ValueRule<number> {
  const expected = max === undefined ? `an integer >= ${min}` : `an integer from ${min} to ${max}`;
  return rule(
    expected,
    (v): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= min && (max === undefined || v <= max),
  );
}

/** `true` or `false`. */
export const booleanValue: ValueRule<boolean> = rule("true or false", (v): v is boolean => typeof v === "boolean");

/** Any string. */
export const stringValue: ValueRule<string> = rule("a string", (v): v is string => typeof v === "string");

/** A string with at least one character. */
export const nonEmptyString: ValueRule<string> = rule(
  "a non-empty string",
  (v): v is string => typeof v === "string" && v !== "",
);

/** A string, or an array of strings (for example several server URLs). */
export const stringOrStrings: ValueRule<string | readonly string[]> = rule(
  "a string or an array of strings",
  (v): v is string | readonly string[] =>
    typeof v === "string" || (Array.isArray(v) && v.every((item) => typeof item === "string")),
);

/** A client object the application created; only TypeScript options can pass one. */
export const clientObject: ValueRule<object> = rule(
  "a client instance (passed in TypeScript options, not in the file)",
  (v): v is object => typeof v === "object" && v !== null && !Array.isArray(v),
);

/**
 * Whether `value` is a table: a plain object (`{}` or `Object.create(null)`), not an array, a
 * date, a map or a class instance.
 */
export function isTable(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null) return false;
  const prototype: unknown = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

/**
 * Describes a value as "got ..." in a message, with its type when the value alone could mislead:
 * `"10" (a string)`, `true (a boolean)`, `a table`.
 */
export function describeGot(value: unknown, spelling: Spelling): string {
  if (typeof value === "string") return `${describeValue(value)} (a string)`;
  if (typeof value === "boolean") return `${value} (a boolean)`;
  // TOML integers beyond 2^53 arrive as bigint; they are never usable as counts or durations.
  if (typeof value === "bigint") return `${value} (an integer too large to represent exactly)`;
  if (typeof value === "function") return "a function";
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? "a date" : `a date-time (${value.toISOString()})`;
  if (isTable(value)) return spelling === "toml" ? "a table" : "an object";
  return describeValue(value);
}

/** The message for a value that breaks its rule: names the value and says what to do. */
export function wrongValueMessage(
  rule: ValueRule<unknown>,
  value: unknown,
  spelling: Spelling,
  required: boolean,
): string {
  const action = required ? "Fix the value." : "Fix the value or remove the key.";
  return `expected ${rule.expected}, got ${describeGot(value, spelling)}. ${action}`;
}
