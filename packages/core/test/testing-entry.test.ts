/**
 * `@interlock/core/testing` is public: it holds the suites store authors run (documented in
 * docs/stores.md), and nothing of this repository's own adapter tests, whose scenario table and
 * fixtures live in the private test harness (`@interlock/test-harness/scenarios`).
 */
import { expect, it } from "vitest";
import * as testing from "../src/testing/index.js";

it("exports the store suites only", () => {
  expect(Object.keys(testing).sort()).toEqual([
    "describeIdempotencyBehaviour",
    "describeStoreConformance",
    "describeWebhookReplayBehaviour",
  ]);
});
