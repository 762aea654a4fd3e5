export { type MigrateOptions, migrate, migrationSql } from "./migrate.js";
export type { PgQuery, PgQueryable, PgResult } from "./query.js";
export { DEFAULT_TABLE, type TableOptions } from "./sql.js";
export {
  type PostgresCompleteOptions,
  PostgresStore,
  type PostgresStoreOptions,
  type PurgeOptions,
  postgresStore,
} from "./store.js";
