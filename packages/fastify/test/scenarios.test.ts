/** The shared adapter scenario table, over real HTTP, on Fastify. */
import { describeAdapterScenarios } from "@interlock/core/testing";
import { describeHostileClients } from "@interlock/test-harness/hostile-clients";
import { scenarioApp } from "./app.js";

describeAdapterScenarios("fastify", (options) => scenarioApp(options));
describeAdapterScenarios("fastify over HTTP/2 (h2c)", (options) => scenarioApp(options, { http2: true }));
describeHostileClients("fastify", (options) => scenarioApp(options));
describeHostileClients("fastify over HTTP/2 (h2c)", (options) => scenarioApp(options, { http2: true }), {
  http2: true,
});
