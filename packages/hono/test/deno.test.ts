/**
 * The whole scenario table again, with the app served by Deno (`Deno.serve`) from the packed,
 * built packages: a throwaway app with @interlock/core and @interlock/hono installed from their
 * tarballs and hono linked, which Deno resolves through its `node_modules` and the `deno`
 * package condition (core on Web Crypto). The rows and the handlers' bookkeeping stay here. A
 * missing deno fails the table; it is never skipped.
 */
import { installedRuntime } from "@interlock/test-harness/portability";
import {
  describeDroppedAnswersOn,
  describeScenariosOn,
  type RuntimeCommand,
  usePackedFixtures,
} from "./runtime-server.js";

const appDir = usePackedFixtures(["scenario-server.ts", "dropped-server.ts"]);

/** Deno on a fixture of the throwaway app. */
const deno = (fixture: string): RuntimeCommand => ({
  runtime: "deno",
  command: installedRuntime("deno"),
  // --sloppy-imports: the sources import "../app.js" as TypeScript compiled to .js would.
  args: ["run", "--quiet", "--sloppy-imports", "--allow-net=127.0.0.1", "--allow-env", "--allow-read", fixture],
  cwd: appDir(),
});

describeScenariosOn("hono on Deno", () => deno("fixtures/scenario-server.ts"));
describeDroppedAnswersOn("hono on Deno", () => deno("fixtures/dropped-server.ts"));
