/** The shared adapter scenario table, on Node (@hono/node-server) over real HTTP. */
import { describeAdapterScenarios } from "@interlock/core/testing";
import { describeHostileClients } from "@interlock/test-harness/hostile-clients";
import { scenarioApp } from "./app.js";
import { listen } from "./serve.js";

describeAdapterScenarios("hono", async (options) => listen(scenarioApp(options)));
describeHostileClients("hono", async (options) => listen(scenarioApp(options)));
