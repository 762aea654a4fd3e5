/** Starts one throwaway PostgreSQL for the whole run (or uses DATABASE_URL) and provides its URL. */

import { startPostgres } from "@interlock/test-harness";
import type { TestProject } from "vitest/node";

declare module "vitest" {
  export interface ProvidedContext {
    /** The test database every postgres test file shares (each uses its own tables). */
    databaseUrl: string;
  }
}

export default async function setup({ provide }: TestProject) {
  const server = await startPostgres();
  provide("databaseUrl", server.url);
  return () => server.stop();
}
