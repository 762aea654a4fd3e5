/**
 * Both builds of the package loaded in one process, as in an ESM app whose CommonJS dependency
 * requires `@interlock/cli` (or the reverse): two copies of every error class, each over its
 * own copy of core. An error made by either copy is an instance of the other copy's class and its
 * bases, and of no sibling. Runs against dist/: build first (`pnpm --filter @interlock/cli run
 * build`, and core's: each copy loads core's build of its own format).
 */

import * as esmCore from "@interlock/core";
import { bothBuildsBeforeAll, EACH_WAY } from "@interlock/test-harness/dual-builds";
import { describe, expect, it } from "vitest";

type Package = typeof import("../src/index.js");

const copies = bothBuildsBeforeAll<Package>("cli", esmCore, (build) => build.CliError);
const { cores } = copies;

describe.each(EACH_WAY)("an error made by the %s build, asked of the %s build's classes", (made, asked) => {
  it("CliError: an instance of its class and InterlockError, and of no other", () => {
    const error = new copies[made].CliError("unreachable", "the URL cannot be reached");
    expect(error).toBeInstanceOf(copies[asked].CliError);
    expect(error).toBeInstanceOf(cores[asked].InterlockError);
    expect(error).not.toBeInstanceOf(cores[asked].InterlockConfigError);
    expect(error).not.toBeInstanceOf(cores[asked].WebhookVerificationError);
    expect(new cores[made].InterlockConfigError("bad option")).not.toBeInstanceOf(copies[asked].CliError);
  });
});
