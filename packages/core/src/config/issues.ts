/**
 * Configuration issues: every problem found in a file or in programmatic options, collected and
 * then thrown together as one `CONFIG_INVALID` error, so a user fixes them all in one pass.
 */
import { RateSyncError } from "../errors.js";

/** One problem in a configuration: where it is, and what to do about it. */
export interface ConfigIssue {
  /** The file, when the configuration came from one. */
  readonly file: string | undefined;
  /** The TOML table, e.g. `limiters.api`; `undefined` for problems of the whole file. */
  readonly table: string | undefined;
  /** The key inside the table, in the source's spelling; `undefined` for the table as a whole. */
  readonly key: string | undefined;
  /** What is wrong, with the offending value, and what to do. */
  readonly message: string;
  /** 1-based line, for TOML syntax errors. */
  readonly line?: number;
  /** 1-based column, for TOML syntax errors. */
  readonly column?: number;
}

/**
 * One issue as a line of text:
 * `rate-sync.toml: [limiters.api] rate_per_second: expected a number > 0, got -1. Fix the value or remove the key.`
 */
export function formatIssue(issue: ConfigIssue): string {
  const where = location(issue);
  return [
    where === undefined ? undefined : `${where}:`,
    issue.table === undefined ? undefined : `[${issue.table}]`,
    issue.key === undefined ? undefined : `${issue.key}:`,
    issue.message,
  ]
    .filter((part) => part !== undefined)
    .join(" ");
}

/** `file`, `file:line:column` (the form editors and terminals link), or `line L, column C` without a file. */
function location(issue: ConfigIssue): string | undefined {
  if (issue.line === undefined) return issue.file;
  const column = issue.column ?? 1;
  return issue.file === undefined ? `line ${issue.line}, column ${column}` : `${issue.file}:${issue.line}:${column}`;
}

/**
 * The single `CONFIG_INVALID` error for a list of issues: the message lists every issue, one per
 * line, and `details.issues` holds them for programs.
 */
export function configInvalid(issues: readonly ConfigIssue[], options: { cause?: unknown } = {}): RateSyncError {
  const count = issues.length === 1 ? "1 problem" : `${issues.length} problems`;
  const lines = issues.map((issue) => `  - ${formatIssue(issue)}`);
  return new RateSyncError("CONFIG_INVALID", [`Invalid ratesync configuration (${count}):`, ...lines].join("\n"), {
    ...options,
    details: { issues },
  });
}

/**
 * Collects the issues of one table. Validators add to it as they go and never stop at the first
 * problem.
 */
export class IssueCollector {
  /** The issues added so far. */
  readonly issues: ConfigIssue[] = [];
  readonly #file: string | undefined;
  readonly #table: string | undefined;

  constructor(file: string | undefined, table: string | undefined) {
    this.#file = file;
    this.#table = table;
  }

  /** Adds an issue about `key` (or the whole table when `key` is `undefined`). */
  add(key: string | undefined, message: string): void {
    this.issues.push({ file: this.#file, table: this.#table, key, message });
  }
}

/** Lists names for a message: `"a"`, `"a" or "b"`, `"a", "b" or "c"`. */
export function quoteList(names: readonly string[], conjunction = "or"): string {
  const quoted = names.map((name) => JSON.stringify(name));
  const last = quoted.pop();
  if (last === undefined) return "(none)";
  return quoted.length === 0 ? last : `${quoted.join(", ")} ${conjunction} ${last}`;
}
