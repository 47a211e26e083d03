/**
 * `@ratesync/postgres`: the PostgreSQL engine of ratesync. Each decision is one call of a PL/pgSQL
 * function on the server's clock; waiters for a slot are woken by LISTEN/NOTIFY.
 *
 * @packageDocumentation
 */
export {
  createPostgresEngine,
  engine,
  type PostgresClient,
  PostgresEngine,
  type PostgresEngineOptions,
} from "./engine.js";
export { checkIdentifier, MAX_SCHEMA_LENGTH, MAX_TABLE_LENGTH, releaseChannel, rowId } from "./identifiers.js";
export {
  DEFAULT_SCHEMA,
  DEFAULT_TABLE,
  type PostgresObjects,
  type PostgresSetupOptions,
  postgresFunctionsVersion,
  postgresObjects,
  postgresSetupSql,
} from "./sql.js";

declare module "@ratesync/core" {
  interface EngineOptionsMap {
    postgres: import("./engine.js").PostgresEngineOptions;
  }
}
