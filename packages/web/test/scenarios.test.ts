/** The shared adapter scenario table, on Node (@hono/node-server's bridge) over real HTTP. */
import { describeAdapterScenarios } from "@interlock/core/testing";
import { describeClientGoneAway } from "@interlock/test-harness/client-gone";
import { describeHostileClients } from "@interlock/test-harness/hostile-clients";
import { describeHttp2Resets } from "@interlock/test-harness/http2-resets";
import { describeProtocolEdges } from "@interlock/test-harness/protocol-edges";
import { STORES_STREAMED_ANSWERS, scenarioApp } from "./app.js";
import { describeReadRoutes } from "./read-routes.js";
import { listen, listenHttp2 } from "./serve.js";

const storesStreamedAnswers = STORES_STREAMED_ANSWERS;

describeAdapterScenarios("web", async (options) => ({
  ...(await listen(scenarioApp(options))),
  storesStreamedAnswers,
}));
describeAdapterScenarios("web over HTTP/2 (h2c)", async (options) => ({
  ...(await listenHttp2(scenarioApp(options))),
  storesStreamedAnswers,
}));
describeHostileClients("web", async (options) => listen(scenarioApp(options)));
describeProtocolEdges("web", async (options) => listen(scenarioApp(options)));
describeClientGoneAway("web", async (options) => listen(scenarioApp(options)));
describeHostileClients("web over HTTP/2 (h2c)", async (options) => listenHttp2(scenarioApp(options)), { http2: true });
describeReadRoutes("web", async (options) => listen(scenarioApp(options)));
describeHttp2Resets("web over HTTP/2 (h2c)", async (options) => listenHttp2(scenarioApp(options)));
