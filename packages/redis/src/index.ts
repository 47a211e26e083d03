/**
 * `@ratesync/redis`: the Redis engine of ratesync. Each decision is one Lua script run on the
 * server's clock; standalone Redis and Redis Cluster.
 *
 * @packageDocumentation
 */
export {
  createRedisEngine,
  engine,
  type RedisClient,
  RedisEngine,
  type RedisEngineOptions,
} from "./engine.js";
export { encodeTarget, keysFor, type RedisKeys } from "./keys.js";

declare module "@ratesync/core" {
  interface EngineOptionsMap {
    redis: import("./engine.js").RedisEngineOptions;
  }
}
