import postgres from "postgres";

/** The shared test server (trust auth), overridable for CI. */
export const TEST_URL = process.env.POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test";

/** A schema name unique to this test file and run: test files never see each other's rows. */
export function uniqueSchema(label: string): string {
  return `rs_${label}_${process.pid}_${Date.now().toString(36)}`.toLowerCase();
}

/** Drops a schema and everything in it (afterAll of a test file). */
export async function dropSchema(schema: string, url = TEST_URL): Promise<void> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await sql.end({ timeout: 1 });
  }
}
