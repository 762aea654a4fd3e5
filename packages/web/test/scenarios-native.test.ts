/**
 * The shared scenario tables again, with Node's own `Request` and `Response` left global (what
 * Next.js on Node, Bun, Deno and Workers give a handler): @hono/node-server, used to serve, puts
 * its lighter ones in their place unless told not to, and they check less (scenarios.test.ts).
 */
import { describeAdapterScenarios } from "@interlock/core/testing";
import { describeClientGoneAway } from "@interlock/test-harness/client-gone";
import { describeHostileClients } from "@interlock/test-harness/hostile-clients";
import { describeProtocolEdges } from "@interlock/test-harness/protocol-edges";
import { describe, expect, it } from "vitest";
import { STORES_STREAMED_ANSWERS, scenarioApp } from "./app.js";
import { describeReadRoutes } from "./read-routes.js";
import { listen, listenHttp2 } from "./serve.js";

const native = { nativeGlobals: true };
const storesStreamedAnswers = STORES_STREAMED_ANSWERS;
const NodeResponse = globalThis.Response;

describe("the globals these tables run with", () => {
  it("are Node's own Request and Response, also once a server is listening", async () => {
    const served = await listen(() => new Response("ok"), undefined, native);
    try {
      expect(globalThis.Response).toBe(NodeResponse);
      // Node's Response refuses a 204 with a body as it is made; the lighter one took it.
      expect(() => new Response("body", { status: 204 })).toThrow(TypeError);
      expect(await (await fetch(served.url)).text()).toBe("ok");
    } finally {
      await served.close();
    }
  });
});

describeAdapterScenarios("web (Node's Response)", async (options) => ({
  ...(await listen(scenarioApp(options), undefined, native)),
  storesStreamedAnswers,
}));
describeAdapterScenarios("web over HTTP/2 (h2c, Node's Response)", async (options) => ({
  ...(await listenHttp2(scenarioApp(options), native)),
  storesStreamedAnswers,
}));
describeHostileClients("web (Node's Response)", async (options) => listen(scenarioApp(options), undefined, native));
describeProtocolEdges("web (Node's Response)", async (options) => listen(scenarioApp(options), undefined, native));
describeClientGoneAway("web (Node's Response)", async (options) => listen(scenarioApp(options), undefined, native));
describeReadRoutes("web (Node's Response)", async (options) => listen(scenarioApp(options), undefined, native));
