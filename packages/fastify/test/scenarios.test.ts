/** The shared adapter scenario table, over real HTTP, on Fastify. */
import { describeAdapterScenarios } from "@interlock/core/testing";
import { describeHostileClients } from "@interlock/test-harness/hostile-clients";
import { scenarioApp } from "./app.js";

describeAdapterScenarios("fastify", scenarioApp);
describeHostileClients("fastify", scenarioApp);
