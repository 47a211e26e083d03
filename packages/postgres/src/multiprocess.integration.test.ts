import { describeMultiprocessSuite, uniqueRunId } from "@ratesync/core/testing";
import { engine } from "./index.js";
import { dropSchema, TEST_URL } from "./test-support/databases.js";

// SPEC section 5 across processes, against a real PostgreSQL: the checks every engine passes.
// Unique per run: parallel test files and CI jobs sharing this database never share a row.
const schema = `rs_mp_${uniqueRunId()}`.toLowerCase().replace(/[^a-z0-9_]/g, "_");

describeMultiprocessSuite("PostgreSQL", {
  store: `
engine = "postgres"
url = "${TEST_URL}"
schema = "${schema}"
pool_size = 4
`,
  engine,
  setup: new URL("./index.ts", import.meta.url),
  cleanup: () => dropSchema(schema),
});
