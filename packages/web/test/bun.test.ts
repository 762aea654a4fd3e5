/**
 * The whole scenario table again, with the app (test/app.ts) served by Bun (`Bun.serve`) from
 * the packed, built packages: a throwaway app with @interlock/core and @interlock/web installed
 * from their tarballs, as users install them (Bun takes core's `bun` condition: Web Crypto). The
 * wrappers and core run on Bun's own Request/Response, while the rows and the handlers'
 * bookkeeping stay here. A missing bun fails the table; it is never skipped. Then what only Bun
 * does differently: the answers whose Content-Type it adds as it sends.
 */
import { bunCommand, describeScenariosOn } from "@interlock/test-harness/runtime-server";
import { useWebFixtures } from "./runtime-server.js";

const appDir = useWebFixtures(["scenario-server.ts"]);

/** Bun on one of the copied fixtures, in the packed app. */
const bun = (fixture: string) => bunCommand(appDir(), `fixtures/${fixture}`);

describeScenariosOn("web on Bun", () => bun("scenario-server.ts"));
