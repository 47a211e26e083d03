import { describeMultiprocessSuite, uniqueRunId } from "@ratesync/core/testing";
import { engine } from "./index.js";
import { deleteBucket, NATS_URL } from "./test-support/buckets.js";

// SPEC section 5 across processes, against a real NATS JetStream: the checks every engine passes,
// every decision a compare-and-set on the shared key's entry.
// Unique per run: parallel test files and CI jobs sharing this server never share a bucket.
const bucket = `ratesync-mp-${uniqueRunId()}`.replace(/[^-\w]/g, "-");

describeMultiprocessSuite("NATS", {
  store: `
engine = "nats"
url = "${NATS_URL}"
bucket = "${bucket}"
`,
  engine,
  setup: new URL("./index.ts", import.meta.url),
  cleanup: () => deleteBucket(bucket).catch(() => {}),
});
