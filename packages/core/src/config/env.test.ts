// biome-ignore-all lint/suspicious/noTemplateCurlyInString: "${NAME}" in these strings is the syntax under test.
import { afterEach, describe, expect, it, vi } from "vitest";
import { expandEnv, expandEnvDeep, processEnv } from "./env.js";

const env = { HOST: "cache", PORT: "6380", EMPTY: "", PASSWORD: "0123", DOLLAR: "a$b" };

describe("expandEnv", () => {
  it.each([
    ["no references", "no references"],
    ["${HOST}", "cache"],
    ["redis://${HOST}:${PORT}/0", "redis://cache:6380/0"],
    ["${HOST}${HOST}", "cachecache"],
    ["${MISSING:-localhost}", "localhost"],
    ["${HOST:-localhost}", "cache"],
    ["${MISSING:-redis://localhost:6379/0}", "redis://localhost:6379/0"],
    ["${MISSING:-}", ""],
    ["${EMPTY}", ""],
    ["${DOLLAR}", "a$b"],
  ])("expands %j to %j", (input, expected) => {
    expect(expandEnv(input, env)).toEqual({ ok: true, value: expected });
  });

  it("uses the default for a variable that is set but empty, as shells do", () => {
    expect(expandEnv("${EMPTY:-fallback}", env)).toEqual({ ok: true, value: "fallback" });
  });

  it("keeps a value that looks like a number a string", () => {
    const result = expandEnv("${PASSWORD}", env);
    expect(result).toEqual({ ok: true, value: "0123" });
    expect(result.ok && typeof result.value).toBe("string");
  });

  it("expands the value once: references inside a variable's value stay as they are", () => {
    expect(expandEnv("${INNER}", { INNER: "${HOST}" })).toEqual({ ok: true, value: "${HOST}" });
  });

  it.each([
    ["$${HOST}", "${HOST}"],
    ["cost: $${", "cost: ${"],
    ["$${HOST} and ${HOST}", "${HOST} and cache"],
    ["$HOST", "$HOST"],
    ["price $5", "price $5"],
    ["$$", "$$"],
    ["{HOST}", "{HOST}"],
  ])("treats %j literally as %j", (input, expected) => {
    expect(expandEnv(input, env)).toEqual({ ok: true, value: expected });
  });

  it("reports a missing variable without a default", () => {
    expect(expandEnv("redis://${REDIS_HOST}:6379", env)).toEqual({ ok: false, missing: ["REDIS_HOST"], malformed: [] });
  });

  it("reports every missing variable", () => {
    expect(expandEnv("${A}-${HOST}-${B}", env)).toEqual({ ok: false, missing: ["A", "B"], malformed: [] });
  });

  it("does not take inherited object keys for variables", () => {
    expect(expandEnv("${toString}", {})).toEqual({ ok: false, missing: ["toString"], malformed: [] });
  });

  it.each([
    ["${", "${"],
    ["url ${HOST", "${"],
    ["${}", "${}"],
    ["${1HOST}", "${1HOST}"],
    ["${HOST-x}", "${HOST-x}"],
    ["${HO ST}", "${HO ST}"],
    ["${A:-${B}}", "${A:-${B}"],
  ])("reports the malformed reference in %j", (input, reference) => {
    expect(expandEnv(input, env)).toEqual({ ok: false, missing: [], malformed: [reference] });
  });
});

describe("expandEnvDeep", () => {
  it("expands strings inside arrays and tables and leaves other values alone", () => {
    const value = {
      url: "${HOST}",
      servers: ["nats://${HOST}:4222", "x"],
      nested: { port: "${PORT}", n: 1 },
      flag: true,
    };
    expect(expandEnvDeep(value, env, "store")).toEqual({
      value: { url: "cache", servers: ["nats://cache:4222", "x"], nested: { port: "6380", n: 1 }, flag: true },
      problems: [],
    });
  });

  it("returns a copy and leaves the input untouched", () => {
    const value = { servers: ["${HOST}"] };
    const { value: expanded } = expandEnvDeep(value, env, "k");
    expect(value).toEqual({ servers: ["${HOST}"] });
    expect(expanded).not.toBe(value);
  });

  it("returns non-string scalars as they are", () => {
    const date = new Date(0);
    expect(expandEnvDeep(42, env, "k").value).toBe(42);
    expect(expandEnvDeep(date, env, "k").value).toBe(date);
    expect(expandEnvDeep(null, env, "k").value).toBeNull();
  });

  it("reports each failure with its path and leaves the string as written", () => {
    const value = ["ok", "${NOPE}", { inner: "${A} ${" }];
    expect(expandEnvDeep(value, env, "servers")).toEqual({
      value: ["ok", "${NOPE}", { inner: "${A} ${" }],
      problems: [
        {
          path: "servers[1]",
          message: "environment variable NOPE is not set; set it, or give a default with ${NOPE:-value}.",
        },
        {
          path: "servers[2].inner",
          message: "environment variable A is not set; set it, or give a default with ${A:-value}.",
        },
        {
          path: "servers[2].inner",
          message:
            'malformed environment reference "${"; write ${NAME} or ${NAME:-default} (NAME: letters, digits and _, not starting with a digit), or $${ for a literal ${.',
        },
      ],
    });
  });

  it("keeps a key named __proto__ as a plain key", () => {
    const raw = JSON.parse('{"__proto__": {"polluted": "${HOST}"}}') as unknown;
    const { value } = expandEnvDeep(raw, env, "k");
    expect(Object.keys(value as object)).toEqual(["__proto__"]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.getPrototypeOf(value)).toBe(Object.prototype);
  });
});

describe("processEnv", () => {
  afterEach(() => {
    vi.unstubAllEnvs();
    vi.unstubAllGlobals();
  });

  it("is the process environment", () => {
    vi.stubEnv("RATESYNC_ENV_TEST", "yes");
    expect(processEnv().RATESYNC_ENV_TEST).toBe("yes");
  });

  it("is empty in runtimes without process", () => {
    vi.stubGlobal("process", undefined);
    const result = processEnv();
    vi.unstubAllGlobals();
    expect(result).toEqual({});
  });
});
