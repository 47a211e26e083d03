/**
 * `@ratesync/nats`: the NATS JetStream KV engine of ratesync. Each decision is a read, core's pure
 * algorithm on server-corrected time, and a compare-and-set on the entry's revision.
 *
 * @packageDocumentation
 */
export {
  createNatsEngine,
  DEFAULT_MAX_CONFLICT_RETRIES,
  DEFAULT_NATS_BUCKET,
  DEFAULT_NATS_TTL_SECONDS,
  engine,
  isConflict,
  NatsEngine,
  type NatsEngineOptions,
} from "./engine.js";
export { encodeKvKey } from "./keys.js";
export { ServerClock } from "./server-clock.js";

declare module "@ratesync/core" {
  interface EngineOptionsMap {
    nats: import("./engine.js").NatsEngineOptions;
  }
}
