/**
 * Both builds of the package loaded in one process, as in an ESM app whose CommonJS dependency
 * requires `@interlock/web` (or the reverse): two copies of every error class, each over its
 * own copy of core. An error made by either copy is an instance of the other copy's class and its
 * bases, and of no sibling. Runs against dist/: build first (`pnpm --filter @interlock/web run
 * build`, and core's, whose CommonJS build the CommonJS copy requires).
 */

import * as esmCore from "@interlock/core";
import { bothBuildsBeforeAll, EACH_WAY } from "@interlock/test-harness/dual-builds";
import { describe, expect, it } from "vitest";

type Package = typeof import("../src/index.js");

const copies = bothBuildsBeforeAll<Package>("web", esmCore, (build) => build.RequestBodyError);
const { cores } = copies;

describe.each(EACH_WAY)("an error made by the %s build, asked of the %s build's classes", (made, asked) => {
  it("RequestBodyError: an instance of its class and InterlockError, and of no other", () => {
    const error = new copies[made].RequestBodyError("body_not_json", "the request body is not valid JSON");
    expect(error).toBeInstanceOf(copies[asked].RequestBodyError);
    expect(error).toBeInstanceOf(cores[asked].InterlockError);
    // Core's body error is a sibling: the same codes but for one, answered alike, another class.
    expect(error).not.toBeInstanceOf(cores[asked].BodyError);
    expect(error).not.toBeInstanceOf(cores[asked].InterlockConfigError);
    expect(new cores[made].BodyError("body_too_large", "too large")).not.toBeInstanceOf(copies[asked].RequestBodyError);
  });
});

describe.each(EACH_WAY)(
  "a wrapper of the %s build, its handler reading with the %s build's readJson",
  (made, asked) => {
    it("reads within the wrapper's bodyLimit, not the 1 MiB default", async () => {
      const handler = copies[made].withIdempotency(
        { store: cores[made].memoryStore(), principal: false, bodyLimit: 8 * 1024 * 1024 },
        async (request) => {
          const { s } = (await copies[asked].readJson(request)) as { s: string };
          return Response.json({ length: s.length }, { status: 201 });
        },
      );
      const body = JSON.stringify({ s: "x".repeat(2 * 1024 * 1024) });
      const response = await handler(
        new Request("http://localhost/imports", {
          method: "POST",
          headers: { "idempotency-key": `k-${made}-${asked}`, "content-type": "application/json" },
          body,
        }),
      );
      expect(response.status).toBe(201);
      expect(await response.json()).toEqual({ length: 2 * 1024 * 1024 });
    });
  },
);
