import { describe, expect, it } from "vitest";
import {
  booleanValue,
  clientObject,
  describeGot,
  integerRule,
  isTable,
  nonEmptyString,
  nonNegativeNumber,
  positiveNumber,
  stringOrStrings,
  wrongValueMessage,
} from "./values.js";

describe("value rules", () => {
  it("positiveNumber takes finite numbers above zero only", () => {
    for (const good of [1, 0.001, 10.5, Number.MAX_VALUE]) expect(positiveNumber.check(good)).toBe(true);
    for (const bad of [0, -0, -1, Number.NaN, Number.POSITIVE_INFINITY, "10", true, null, [1], 1n]) {
      expect(positiveNumber.check(bad)).toBe(false);
    }
  });

  it("nonNegativeNumber takes zero", () => {
    expect(nonNegativeNumber.check(0)).toBe(true);
    expect(nonNegativeNumber.check(-0.1)).toBe(false);
    expect(nonNegativeNumber.check(Number.NaN)).toBe(false);
  });

  it("integerRule takes safe integers in range", () => {
    const atLeastOne = integerRule(1);
    expect(atLeastOne.expected).toBe("an integer >= 1");
    for (const good of [1, 2, Number.MAX_SAFE_INTEGER]) expect(atLeastOne.check(good)).toBe(true);
    for (const bad of [0, 1.5, -1, 2 ** 53, Number.NaN, "2", 2n]) expect(atLeastOne.check(bad)).toBe(false);
    const port = integerRule(1, 65_535);
    expect(port.expected).toBe("an integer from 1 to 65535");
    expect(port.check(65_535)).toBe(true);
    expect(port.check(65_536)).toBe(false);
  });

  it("booleanValue, nonEmptyString, stringOrStrings and clientObject check their types", () => {
    expect(booleanValue.check(false)).toBe(true);
    expect(booleanValue.check("true")).toBe(false);
    expect(nonEmptyString.check("a")).toBe(true);
    expect(nonEmptyString.check("")).toBe(false);
    expect(stringOrStrings.check("a")).toBe(true);
    expect(stringOrStrings.check(["a", "b"])).toBe(true);
    expect(stringOrStrings.check([])).toBe(true);
    expect(stringOrStrings.check(["a", 1])).toBe(false);
    expect(clientObject.check({})).toBe(true);
    expect(clientObject.check("redis://")).toBe(false);
    expect(clientObject.check([])).toBe(false);
  });
});

describe("isTable", () => {
  it("accepts plain objects only", () => {
    expect(isTable({})).toBe(true);
    expect(isTable(Object.create(null))).toBe(true);
    for (const other of [[], new Date(), new Map(), new (class Engine {})(), null, undefined, "x", 1]) {
      expect(isTable(other)).toBe(false);
    }
  });
});

describe("describeGot", () => {
  it.each([
    ["10", "toml", '"10" (a string)'],
    [-1, "toml", "-1"],
    [Number.NaN, "toml", "NaN"],
    [Number.POSITIVE_INFINITY, "toml", "Infinity"],
    [true, "toml", "true (a boolean)"],
    [[1], "toml", "an array"],
    [{}, "toml", "a table"],
    [{}, "ts", "an object"],
    [null, "ts", "null"],
    [undefined, "ts", "undefined"],
    [12345678901234567890n, "toml", "12345678901234567890 (an integer too large to represent exactly)"],
    [new Date("2024-01-02T03:04:05Z"), "toml", "a date-time (2024-01-02T03:04:05.000Z)"],
    [() => 1, "ts", "a function"],
  ] as const)("describes %s in %s as %s", (value, spelling, expected) => {
    expect(describeGot(value, spelling)).toBe(expected);
  });
});

describe("wrongValueMessage", () => {
  it("names the expectation, the value and the fix", () => {
    expect(wrongValueMessage(positiveNumber, -1, "toml", false)).toBe(
      "expected a number > 0, got -1. Fix the value or remove the key.",
    );
    expect(wrongValueMessage(nonEmptyString, "", "toml", true)).toBe(
      'expected a non-empty string, got "" (a string). Fix the value.',
    );
  });
});
