/**
 * The whole scenario table again, with the app (test/app.ts) served by Deno (`Deno.serve`) from
 * the packed, built packages: a throwaway app with @interlock/core and @interlock/web installed
 * from their tarballs, which Deno resolves through its `node_modules` and the `deno` package
 * condition (core on Web Crypto). The rows and the handlers' bookkeeping stay here. A missing
 * deno fails the table; it is never skipped.
 */
import { describeClientGoneAway } from "@interlock/test-harness/client-gone";
import { denoCommand, describeScenariosOn, runtimeScenarioApp } from "@interlock/test-harness/runtime-server";
import { STORES_STREAMED_ANSWERS } from "./app.js";
import { describeReadRoutes } from "./read-routes.js";
import { useWebFixtures } from "./runtime-server.js";

const appDir = useWebFixtures(["scenario-server.ts"]);

/** Deno on one of the copied fixtures, in the packed app. */
const deno = (fixture: string) => denoCommand(appDir(), `fixtures/${fixture}`);

describeScenariosOn("web on Deno", () => deno("scenario-server.ts"), {
  storesStreamedAnswers: STORES_STREAMED_ANSWERS,
});
describeClientGoneAway(
  "web on Deno",
  runtimeScenarioApp(() => deno("scenario-server.ts")),
);
describeReadRoutes(
  "web on Deno",
  runtimeScenarioApp(() => deno("scenario-server.ts")),
);
