/**
 * The whole scenario table again, with the app (test/app.ts) served by Bun (`Bun.serve`) from
 * the packed, built packages: a throwaway app with @interlock/core and @interlock/web installed
 * from their tarballs, as users install them (Bun takes core's `bun` condition: Web Crypto). The
 * wrappers and core run on Bun's own Request/Response, while the rows and the handlers'
 * bookkeeping stay here. A missing bun fails the table; it is never skipped. Then what only Bun
 * does differently: the answers whose Content-Type it adds as it sends.
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
import { STORES_STREAMED_ANSWERS } from "./app.js";
import { describeReadRoutes } from "./read-routes.js";
import { useWebFixtures } from "./runtime-server.js";

const appDir = useWebFixtures(["scenario-server.ts", "bun-answers.ts"]);

/** Bun on one of the copied fixtures, in the packed app. */
const bun = (fixture: string) => bunCommand(appDir(), `fixtures/${fixture}`);

describeScenariosOn("web on Bun", () => bun("scenario-server.ts"), {
  storesStreamedAnswers: STORES_STREAMED_ANSWERS,
});
describeClientGoneAway(
  "web on Bun",
  runtimeScenarioApp(() => bun("scenario-server.ts")),
);

describeReadRoutes(
  "web on Bun",
  runtimeScenarioApp(() => bun("scenario-server.ts")),
);

describe("web on Bun: answers whose Content-Type Bun handles its own way", () => {
  let server: RuntimeServer;
  beforeAll(async () => {
    server = await startRuntimeServer(bun("bun-answers.ts"), null);
  });
  afterAll(async () => {
    if (server) await stopRuntimeServer(server);
  });

  /** The first answer to a keyed POST of `path` and its replay, each with its bytes. */
  async function firstAndReplay(path: string) {
    const send = async () => {
      const response = await fetch(`${server.url}${path}`, {
        method: "POST",
        headers: { "idempotency-key": "k" },
        body: "{}",
      });
      return { response, bytes: new Uint8Array(await response.arrayBuffer()) };
    };
    const first = await send();
    const replay = await send();
    expect([
      first.response.headers.get("idempotent-replayed"),
      replay.response.headers.get("idempotent-replayed"),
    ]).toEqual([null, "true"]);
    return { first, replay };
  }

  it.each([
    ["/json", 201, /^application\/json;\s?charset=utf-8$/i],
    ["/bytes", 202, /^image\/png$/],
    ["/typed-text", 201, /^text\/plain;\s?charset=utf-8$/i],
  ])("%s: the replay has the first answer's status, Content-Type and bytes", async (path, status, type) => {
    const { first, replay } = await firstAndReplay(path);
    expect([first.response.status, first.response.headers.get("content-type")]).toEqual([
      status,
      expect.stringMatching(type),
    ]);
    expect([replay.response.status, replay.response.headers.get("content-type")]).toEqual([
      first.response.status,
      first.response.headers.get("content-type"),
    ]);
    expect(replay.bytes).toEqual(first.bytes);
  });

  // Bun adds a default Content-Type only to a string or bytes it sends itself (text/plain for a
  // string, application/octet-stream for bytes; it leaves it out of `response.headers`, unlike the
  // Fetch spec: oven-sh/bun#8530). The wrapper sends the body it records, a stream, which Bun sends
  // untyped; the replay is the stored bytes, which Bun types application/octet-stream.
  it.each(["/bare-text", "/bare-bytes"])(
    "%s, no Content-Type set: the first answer goes out untyped and its replay as application/octet-stream, with the first answer's status and bytes",
    async (path) => {
      const { first, replay } = await firstAndReplay(path);
      expect([first.response.status, first.response.headers.get("content-type")]).toEqual([201, null]);
      expect([replay.response.status, replay.response.headers.get("content-type")]).toEqual([
        201,
        "application/octet-stream",
      ]);
      expect(replay.bytes).toEqual(first.bytes);
    },
  );
});
