// A CommonJS project as `tsc --init` with "module": "commonjs" leaves it: "moduleResolution"
// node10, which reads no `exports` map. OAuth's token stores, from their subpaths: their types
// come from `typesVersions` (the CommonJS build's declarations), the package's own from `types`.
import type { TokenStore } from "@interlock/oauth";
import { migrate, postgresTokenStore } from "@interlock/oauth/postgres";
import { redisTokenStore } from "@interlock/oauth/redis";
import { Redis } from "ioredis";
import { Pool } from "pg";

const pool = new Pool();
export const ready: Promise<void> = migrate(pool);
export const stores: TokenStore[] = [redisTokenStore(new Redis()), postgresTokenStore(pool)];
