/** The shared adapter scenario table, over real HTTP, on Fastify. */
import { describeAdapterScenarios } from "@interlock/core/testing";
import { scenarioApp } from "./app.js";

describeAdapterScenarios("fastify", scenarioApp);
