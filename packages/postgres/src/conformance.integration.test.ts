import { describeEngineConformance } from "@ratesync/core/testing";
import { afterAll } from "vitest";
import { PostgresEngine } from "./engine.js";
import { dropSchema, TEST_URL, uniqueSchema } from "./test-support/databases.js";

const schema = uniqueSchema("conf");
afterAll(() => dropSchema(schema), 30_000);

describeEngineConformance({
  name: "postgres",
  clock: "store",
  shared: true,
  create: () => new PostgresEngine({ url: TEST_URL, schema, requestTimeoutMs: 2000, poolSize: 4 }),
});
