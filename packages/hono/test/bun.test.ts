/**
 * The whole scenario table again, with the app served by Bun from the packed, built packages: a
 * throwaway app with @interlock/core and @interlock/hono installed from their tarballs and hono
 * linked, as users install them (Bun takes core's `bun` condition: Web Crypto). The adapter and
 * core run on Bun's own Request/Response, while the rows and the handlers' bookkeeping stay
 * here. A missing bun fails the table; it is never skipped. Then what only Bun does
 * differently: text answers, whose default Content-Type Bun keeps out of `response.headers`.
 */
import { describeClientGoneAway } from "@interlock/test-harness/client-gone";
import {
  bunCommand,
  describeScenariosOn,
  type RuntimeServer,
  runtimeScenarioApp,
  startRuntimeServer,
  stopRuntimeServer,
} from "@interlock/test-harness/runtime-server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { describeDroppedAnswersOn, useHonoFixtures } from "./runtime-server.js";

const appDir = useHonoFixtures(["scenario-server.ts", "dropped-server.ts", "bun-text-answers.ts"]);

/** Bun on one of the copied fixtures, in the packed app. */
const bun = (fixture: string) => bunCommand(appDir(), `fixtures/${fixture}`);

describeScenariosOn("hono on Bun", () => bun("scenario-server.ts"));
describeClientGoneAway(
  "hono on Bun",
  runtimeScenarioApp(() => bun("scenario-server.ts")),
);
describeDroppedAnswersOn("hono on Bun", () => bun("dropped-server.ts"));

describe("hono on Bun: text answers", () => {
  let server: RuntimeServer;
  beforeAll(async () => {
    server = await startRuntimeServer(bun("bun-text-answers.ts"), null);
  });
  afterAll(async () => {
    if (server) await stopRuntimeServer(server);
  });

  // Bun keeps a string's default Content-Type out of `response.headers`: the replay, made of
  // stored bytes, must still carry the type the first answer went out with.
  it.each(["/text", "/text-with-status", "/body", "/new-response"])(
    "%s: the replay has the first answer's text/plain type, status and bytes",
    async (path) => {
      const send = () =>
        fetch(`${server.url}${path}`, { method: "POST", headers: { "idempotency-key": "k" }, body: "{}" });
      const first = await send();
      const firstBytes = new Uint8Array(await first.arrayBuffer());
      const replay = await send();
      expect(replay.headers.get("idempotent-replayed")).toBe("true");
      expect(first.headers.get("content-type")).toMatch(/^text\/plain; ?charset=utf-8$/i);
      expect([replay.status, replay.headers.get("content-type")]).toEqual([
        first.status,
        first.headers.get("content-type"),
      ]);
      expect(new Uint8Array(await replay.arrayBuffer())).toEqual(firstBytes);
    },
  );
});
