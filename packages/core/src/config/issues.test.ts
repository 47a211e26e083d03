import { describe, expect, it } from "vitest";
import { isRateSyncError } from "../errors.js";
import { type ConfigIssue, configInvalid, formatIssue, IssueCollector, quoteList } from "./issues.js";

const issue = (overrides: Partial<ConfigIssue>): ConfigIssue => ({
  file: "rate-sync.toml",
  table: "limiters.api",
  key: "rate_per_second",
  message: "expected a number > 0, got -1. Fix the value or remove the key.",
  ...overrides,
});

describe("formatIssue", () => {
  it("names the file, the table and the key", () => {
    expect(formatIssue(issue({}))).toBe(
      "rate-sync.toml: [limiters.api] rate_per_second: expected a number > 0, got -1. Fix the value or remove the key.",
    );
  });

  it("leaves out what is not known", () => {
    expect(formatIssue(issue({ file: undefined }))).toBe(
      "[limiters.api] rate_per_second: expected a number > 0, got -1. Fix the value or remove the key.",
    );
    expect(formatIssue(issue({ key: undefined, message: "no policy." }))).toBe(
      "rate-sync.toml: [limiters.api] no policy.",
    );
    expect(formatIssue(issue({ table: undefined, key: "limiter", message: "unknown." }))).toBe(
      "rate-sync.toml: limiter: unknown.",
    );
    expect(formatIssue({ file: undefined, table: undefined, key: undefined, message: "bad." })).toBe("bad.");
  });

  it("gives a syntax error's position as file:line:column", () => {
    const syntax = {
      file: "rate-sync.toml",
      table: undefined,
      key: undefined,
      message: "invalid TOML.",
      line: 3,
      column: 7,
    };
    expect(formatIssue(syntax)).toBe("rate-sync.toml:3:7: invalid TOML.");
    expect(formatIssue({ ...syntax, file: undefined })).toBe("line 3, column 7: invalid TOML.");
  });
});

describe("configInvalid", () => {
  it("is one CONFIG_INVALID error listing every issue, one per line", () => {
    const issues = [issue({}), issue({ table: "stores.redis", key: "port", message: "expected an integer." })];
    const error = configInvalid(issues);
    expect(isRateSyncError(error, "CONFIG_INVALID")).toBe(true);
    expect(error.message).toBe(
      [
        "Invalid ratesync configuration (2 problems):",
        "  - rate-sync.toml: [limiters.api] rate_per_second: expected a number > 0, got -1. Fix the value or remove the key.",
        "  - rate-sync.toml: [stores.redis] port: expected an integer.",
      ].join("\n"),
    );
    expect(error.details).toEqual({ issues });
    expect(error.cause).toBeUndefined();
  });

  it("counts a single problem in the singular and keeps the cause", () => {
    const cause = new Error("parser");
    const error = configInvalid([issue({})], { cause });
    expect(error.message.split("\n")[0]).toBe("Invalid ratesync configuration (1 problem):");
    expect(error.cause).toBe(cause);
  });
});

describe("IssueCollector", () => {
  it("stamps every issue with its file and table", () => {
    const collector = new IssueCollector("a.toml", "stores.x");
    collector.add("url", "bad.");
    collector.add(undefined, "worse.");
    expect(collector.issues).toEqual([
      { file: "a.toml", table: "stores.x", key: "url", message: "bad." },
      { file: "a.toml", table: "stores.x", key: undefined, message: "worse." },
    ]);
  });
});

describe("quoteList", () => {
  it("joins quoted names as a sentence", () => {
    expect(quoteList([])).toBe("(none)");
    expect(quoteList(["a"])).toBe('"a"');
    expect(quoteList(["a", "b"])).toBe('"a" or "b"');
    expect(quoteList(["a", "b", "c"], "and")).toBe('"a", "b" and "c"');
  });
});
