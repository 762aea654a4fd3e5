/**
 * Both builds of the package loaded in one process, as in an ESM app whose CommonJS dependency
 * requires `@interlock/client` (or the reverse): two copies of every error class, each over its
 * own copy of core. An error made by either copy is an instance of the other copy's class and its
 * bases, and of no sibling. Runs against dist/: build first (`pnpm --filter @interlock/client run
 * build`, and core's, whose CommonJS build the CommonJS copy requires).
 */

import * as esmCore from "@interlock/core";
import { bothBuildsBeforeAll, EACH_WAY } from "@interlock/test-harness/dual-builds";
import { describe, expect, it } from "vitest";

type Package = typeof import("../src/index.js");

const copies = bothBuildsBeforeAll<Package>("client", esmCore, (build) => build.ClientError);
const { cores } = copies;

const details = { origin: "https://api.example.com", method: "POST", attempts: 2, idempotencyKey: "k" };

/** One error of each class the package exports, made by the given copy. */
const make = {
  TimeoutError: (copy: Package) => new copy.TimeoutError("deadline", 1000, details),
  RetryLimitError: (copy: Package) => new copy.RetryLimitError("attempts", details),
  CircuitOpenError: (copy: Package) => new copy.CircuitOpenError(500, details),
  RetryAfterTooLongError: (copy: Package) => new copy.RetryAfterTooLongError(120_000, 60_000, details),
};
const classes = Object.keys(make) as (keyof typeof make)[];

describe.each(EACH_WAY)("an error made by the %s build, asked of the %s build's classes", (made, asked) => {
  it.each(classes)("%s: an instance of its class, ClientError and InterlockError, and of no sibling", (name) => {
    const error = make[name](copies[made]);
    expect(error).toBeInstanceOf(copies[asked][name]);
    expect(error).toBeInstanceOf(copies[asked].ClientError);
    expect(error).toBeInstanceOf(cores[asked].InterlockError);
    for (const sibling of classes.filter((other) => other !== name)) {
      expect(error, sibling).not.toBeInstanceOf(copies[asked][sibling]);
    }
    expect(error).not.toBeInstanceOf(cores[asked].InterlockConfigError);
  });
});
