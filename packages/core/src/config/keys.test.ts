import { describe, expect, it } from "vitest";
import { keyName, snakeToCamel, tableName } from "./keys.js";

describe("snakeToCamel", () => {
  it.each([
    ["rate_per_second", "ratePerSecond"],
    ["window_seconds", "windowSeconds"],
    ["key_prefix", "keyPrefix"],
    ["request_timeout_ms", "requestTimeoutMs"],
    ["store", "store"],
    ["pool_size_2", "poolSize2"],
    ["", ""],
  ])("turns %j into %j", (snake, camel) => {
    expect(snakeToCamel(snake)).toBe(camel);
  });
});

describe("keyName", () => {
  it("keeps TOML names and camelCases TypeScript ones", () => {
    expect(keyName("fail_closed", "toml")).toBe("fail_closed");
    expect(keyName("fail_closed", "ts")).toBe("failClosed");
  });
});

describe("tableName", () => {
  it("writes bare ids as TOML does", () => {
    expect(tableName("limiters", "api")).toBe("limiters.api");
    expect(tableName("stores", "redis-main_2")).toBe("stores.redis-main_2");
  });

  it("quotes ids that are not bare keys", () => {
    expect(tableName("limiters", "tenant:42")).toBe('limiters."tenant:42"');
    expect(tableName("limiters", "v1.api")).toBe('limiters."v1.api"');
    expect(tableName("stores", "")).toBe('stores.""');
  });
});
