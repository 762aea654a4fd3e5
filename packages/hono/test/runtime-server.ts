/**
 * Hono's apps on another runtime (test/bun.test.ts, test/deno.test.ts), from the packed, built
 * packages with the test harness's runtime-server.ts: the throwaway app Hono's fixtures run in,
 * and test/fixtures/dropped-server.ts's rows.
 */
import { fileURLToPath } from "node:url";
import {
  type RuntimeCommand,
  type RuntimeServer,
  startRuntimeServer,
  stopRuntimeServer,
  usePackedFixtures,
} from "@interlock/test-harness/runtime-server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

/**
 * For the test file that calls it: a throwaway app with @interlock/core and @interlock/hono
 * installed from their packed tarballs and hono linked, with test/app.ts and these `fixtures`
 * copied in at the same relative paths as here. Resolves to the app's folder.
 */
export function useHonoFixtures(fixtures: readonly string[]): () => string {
  const files: Record<string, string> = { "app.ts": here("./app.ts") };
  for (const fixture of fixtures) files[`fixtures/${fixture}`] = here(`./fixtures/${fixture}`);
  return usePackedFixtures({ packages: ["core", "hono"], linked: { hono: here("../node_modules/hono") }, files });
}

/**
 * test/fixtures/dropped-server.ts served by `command`: an outer middleware drops the recorded
 * answer unread, and the key still settles (stored within `maxRecordBytes`, released past it).
 */
export function describeDroppedAnswersOn(name: string, command: () => RuntimeCommand): void {
  describe(`${name}: an answer an outer middleware drops unread`, () => {
    let server: RuntimeServer;
    beforeAll(async () => {
      server = await startRuntimeServer(command(), null);
    }, 60_000);
    afterAll(async () => {
      if (server) await stopRuntimeServer(server);
    });
    const send = (path: string) =>
      fetch(`${server.url}${path}`, { method: "POST", headers: { "idempotency-key": "k" }, body: "{}" });

    it("is stored all the same: the retry is a replay, through the outer middleware again", async () => {
      const first = await send("/dropped");
      expect([first.status, await first.text()]).toEqual([201, "custom page"]);
      const retry = await send("/dropped");
      expect([retry.status, await retry.text(), retry.headers.get("idempotent-replayed")]).toEqual([
        201,
        "custom page",
        "true",
      ]);
    });

    it("past maxRecordBytes, its key is released: the retry runs the route again", async () => {
      expect(await (await send("/dropped-large")).text()).toBe("custom page");
      const retry = await send("/dropped-large");
      expect([retry.status, await retry.text(), retry.headers.get("idempotent-replayed")]).toEqual([
        200,
        "custom page",
        null,
      ]);
    });
  });
}
