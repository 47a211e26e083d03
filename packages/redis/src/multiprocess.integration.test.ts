import { describeMultiprocessSuite, uniqueRunId } from "@ratesync/core/testing";
import { engine } from "./index.js";

// SPEC section 5 across processes, against a real Redis: the checks every engine passes.
const url = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

describeMultiprocessSuite("Redis", {
  // Unique per run: parallel test files and CI jobs sharing this Redis never share a key.
  store: `
engine = "redis"
url = "${url}"
key_prefix = "ratesync-mp-${uniqueRunId()}:"
`,
  engine,
  setup: new URL("./index.ts", import.meta.url),
});
