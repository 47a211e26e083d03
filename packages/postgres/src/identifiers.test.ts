import { isRateSyncError } from "@ratesync/core";
import { describe, expect, it } from "vitest";
import { PostgresEngine } from "./engine.js";
import { checkIdentifier, quoteIdentifier, releaseChannel, rowId } from "./identifiers.js";
import { postgresAdmitStatement, postgresObjects, postgresSetupSql } from "./sql.js";

function thrown(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  throw new Error("expected a throw");
}

describe("schema and table names", () => {
  it("accepts plain identifiers and quotes them", () => {
    expect(checkIdentifier("schema", "ratesync_2")).toBe("ratesync_2");
    expect(checkIdentifier("table", "Limits")).toBe("Limits");
    expect(quoteIdentifier("Limits")).toBe('"Limits"');
    expect(postgresObjects("app", "Limits").qualifiedTable).toBe('"app"."Limits"');
    expect(postgresObjects("app", "limits").functions.decide).toBe('"app"."limits_decide"');
  });

  it.each([
    ["schema", ""],
    ["schema", "my schema"],
    ["table", "rate-limits"],
    ["table", '"; DROP TABLE users; --'],
    ["table", "1limits"],
    ["table", "x".repeat(49)],
    ["schema", "s".repeat(64)],
    ["schema", 42],
  ] as const)("refuses %s %j with CONFIG_INVALID naming the value", (option, value) => {
    const error = thrown(() => checkIdentifier(option, value));
    expect(isRateSyncError(error, "CONFIG_INVALID")).toBe(true);
    expect((error as Error).message).toContain(option);
    expect((error as Error).message).toContain(typeof value === "string" ? JSON.stringify(value) : String(value));
  });

  it.each([0, 2.5, -1, Number.NaN])("refuses pool_size %s when the engine is created, naming it", (poolSize) => {
    const error = thrown(() => new PostgresEngine({ url: "postgres://nowhere.invalid/db", poolSize }));
    expect(isRateSyncError(error, "CONFIG_INVALID")).toBe(true);
    expect((error as Error).message).toContain(
      `pool_size must be a whole number of connections, at least 1; got ${poolSize}`,
    );
  });

  it("checks names when the engine is created, before any connection", () => {
    const error = thrown(() => new PostgresEngine({ url: "postgres://nowhere.invalid/db", table: "bad-name" }));
    expect(isRateSyncError(error, "CONFIG_INVALID")).toBe(true);
    expect((error as Error).message).toContain('"bad-name"');
  });
});

describe("row ids", () => {
  it("never lets two (limiter, key) pairs meet, whatever the separators", () => {
    const pairs: [string, string][] = [
      ["a.b", "c"],
      ["a", "b.c"],
      ["a", ""],
      ["", "a"],
      ["a", "\0"],
      ["a", "\0\0"],
      ["a", "\ud800"],
      ["a", "\udc00"],
      ["a", "\ufffd"],
      ["a", "x".repeat(300)],
      ["a", `${"x".repeat(299)}y`],
    ];
    const ids = pairs.map(([limiter, key]) => rowId(limiter, key));
    expect(new Set(ids).size).toBe(pairs.length);
    for (const id of ids) {
      expect(id).not.toContain("\0");
      expect(id.length).toBeLessThanOrEqual(200);
    }
  });

  it("gives each table its own release channel", () => {
    expect(releaseChannel("a", "b_c")).not.toBe(releaseChannel("a_b", "c"));
    expect(releaseChannel("public", "ratesync")).toMatch(/^ratesync_[0-9a-f]{20}$/);
  });
});

describe("postgresSetupSql", () => {
  it("creates everything idempotently, under an advisory lock, with quoted names", () => {
    const sql = postgresSetupSql({ schema: "Limits", table: "rs" });
    expect(sql).toContain("pg_advisory_xact_lock");
    expect(sql).toContain('CREATE TABLE IF NOT EXISTS "Limits"."rs"');
    expect(sql).not.toContain("UNLOGGED");
    for (const name of ["decide", "admit", "admit_batch", "release", "renew", "reset", "sweep"]) {
      expect(sql).toContain(`CREATE OR REPLACE FUNCTION "Limits"."rs_${name}"(`);
    }
    expect(postgresSetupSql({ unlogged: true })).toContain('CREATE UNLOGGED TABLE IF NOT EXISTS "public"."ratesync"');
  });
});

describe("postgresAdmitStatement", () => {
  it("writes the policy's numbers in as double precision literals that read back exactly, into a quoted table", () => {
    const objects = postgresObjects("Limits", "rs");
    const bucket = postgresAdmitStatement(objects, { kind: 1, a: 0.1, b: 3 });
    expect(bucket).toMatch(/^UPDATE "Limits"\."rs" r SET/);
    expect(bucket).toContain("0.1::float8");
    expect(bucket).toContain("3::float8");
    expect(bucket).toContain("r.rate_kind=1");
    const window = postgresAdmitStatement(objects, { kind: 3, a: 60_000, b: 1e21 });
    expect(window).toContain("60000::float8");
    expect(window).toContain("1e+21::float8");
    expect(window).toContain("r.rate_kind=3");
    // One line, the time read once: postgres.js hashes the whole text on every call.
    expect(bucket).not.toContain("\n");
    expect(bucket.match(/statement_timestamp\(\)/g)).toHaveLength(1);
    // Only the row id and the cost are parameters.
    expect(bucket.match(/\$\d/g)?.every((p) => p === "$1" || p === "$2")).toBe(true);
    expect(() => postgresAdmitStatement(objects, { kind: 1, a: Number.POSITIVE_INFINITY, b: 3 })).toThrow(RangeError);
  });
});
