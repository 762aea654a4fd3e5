/** The shared adapter scenario table, over real HTTP, on Fastify. */
import { describeAdapterScenarios } from "@interlock/core/testing";
import { describeHostileClients } from "@interlock/test-harness/hostile-clients";
import { describeHttp2Resets } from "@interlock/test-harness/http2-resets";
import { describeProtocolEdges } from "@interlock/test-harness/protocol-edges";
import { scenarioApp } from "./app.js";

describeAdapterScenarios("fastify", (options) => scenarioApp(options));
describeAdapterScenarios("fastify over HTTP/2 (h2c)", (options) => scenarioApp(options, { http2: true }));
describeHostileClients("fastify", (options) => scenarioApp(options));
describeHostileClients("fastify over HTTP/2 (h2c)", (options) => scenarioApp(options, { http2: true }), {
  http2: true,
});
describeHttp2Resets("fastify over HTTP/2 (h2c)", (options) => scenarioApp(options, { http2: true }));
// A keyed payment declared past the limit meets Fastify's own parser first, whose route bodyLimit
// is the same 1 MiB: its 413 FST_ERR_CTP_BODY_TOO_LARGE, as on any route (see the README).
describeProtocolEdges("fastify", (options) => scenarioApp(options), { oversizedPayment: "framework" });
