import { Kvm } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";

/** The shared NATS JetStream of the test machine (never stopped by tests). */
export const NATS_URL = process.env.NATS_URL ?? "nats://127.0.0.1:4222";

/** A bucket name of its own for one test file and run: files running at once never share state. */
export function uniqueBucket(name: string): string {
  return `rs-${name}-${process.pid}-${Date.now().toString(36)}`;
}

/** Deletes a bucket (best effort: a test that failed before creating it leaves nothing to delete). */
export async function deleteBucket(bucket: string, url = NATS_URL): Promise<void> {
  const connection = await connect({ servers: url, timeout: 2000 });
  try {
    const kv = await new Kvm(connection).open(bucket);
    await kv.destroy().catch(() => {});
  } finally {
    await connection.close();
  }
}
