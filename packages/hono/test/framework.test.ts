/**
 * The Hono these tests run on: the project's module resolution picks it (see vitest.workspace.ts),
 * so it is told from what loaded. Hono 4.8's `routePath(c)` takes no route index; 4.10 added one.
 */
import { routePath } from "hono/route";
import { expect, it } from "vitest";

it("runs on the Hono this project names", () => {
  const loaded = routePath.length < 2 ? "4.8" : "latest";
  expect(loaded).toBe(process.env.INTERLOCK_EXPECTED_HONO ?? "latest");
});
