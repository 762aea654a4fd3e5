/** The web package's fixtures on another runtime (test/bun.test.ts, test/deno.test.ts). */
import { fileURLToPath } from "node:url";
import { usePackedFixtures } from "@interlock/test-harness/runtime-server";

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

/**
 * For the test file that calls it: a throwaway app with @interlock/core and @interlock/web
 * installed from their packed tarballs, with test/app.ts and these `fixtures` copied in at the
 * same relative paths as here. Resolves to the app's folder.
 */
export function useWebFixtures(fixtures: readonly string[]): () => string {
  const files: Record<string, string> = { "app.ts": here("./app.ts") };
  for (const fixture of fixtures) files[`fixtures/${fixture}`] = here(`./fixtures/${fixture}`);
  return usePackedFixtures({ packages: ["core", "web"], files });
}
