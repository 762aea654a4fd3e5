/**
 * The whole scenario table again, with the app served by Deno (`Deno.serve`) from the packed,
 * built packages: a throwaway app with @interlock/core and @interlock/hono installed from their
 * tarballs and hono linked, which Deno resolves through its `node_modules` and the `deno`
 * package condition (core on Web Crypto). The rows and the handlers' bookkeeping stay here. A
 * missing deno fails the table; it is never skipped.
 */
import { cpSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createPackedApp, type PackedApp } from "@interlock/test-harness/packed-app";
import { installedRuntime } from "@interlock/test-harness/portability";
import { afterAll, beforeAll } from "vitest";
import { describeDroppedAnswersOn, describeScenariosOn, type RuntimeCommand } from "./runtime-server.js";

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

let app: PackedApp;

beforeAll(() => {
  app = createPackedApp(["core", "hono"], { hono: here("../node_modules/hono") });
  // The app and its server, at the same relative paths as here; TypeScript Deno runs itself.
  mkdirSync(join(app.dir, "fixtures"));
  cpSync(here("./app.ts"), join(app.dir, "app.ts"));
  cpSync(here("./fixtures/scenario-server.ts"), join(app.dir, "fixtures/scenario-server.ts"));
  cpSync(here("./fixtures/dropped-server.ts"), join(app.dir, "fixtures/dropped-server.ts"));
}, 60_000);
afterAll(() => app?.remove());

/** Deno on a fixture of the throwaway app. */
const deno = (fixture: string): RuntimeCommand => ({
  runtime: "deno",
  command: installedRuntime("deno"),
  // --sloppy-imports: the sources import "../app.js" as TypeScript compiled to .js would.
  args: ["run", "--quiet", "--sloppy-imports", "--allow-net=127.0.0.1", "--allow-env", "--allow-read", fixture],
  cwd: app.dir,
});

describeScenariosOn("hono on Deno", () => deno("fixtures/scenario-server.ts"));
describeDroppedAnswersOn("hono on Deno", () => deno("fixtures/dropped-server.ts"));
