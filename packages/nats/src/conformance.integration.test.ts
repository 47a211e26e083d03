import { describeEngineConformance } from "@ratesync/core/testing";
import { afterAll } from "vitest";
import { NatsEngine } from "./engine.js";
import { deleteBucket, NATS_URL, uniqueBucket } from "./test-support/buckets.js";

const bucket = uniqueBucket("conformance");

afterAll(() => deleteBucket(bucket), 10_000);

describeEngineConformance({
  name: "nats",
  clock: "store",
  shared: true,
  create: () => new NatsEngine({ url: NATS_URL, bucket, requestTimeoutMs: 2000 }),
});
