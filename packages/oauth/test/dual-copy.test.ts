/**
 * Both builds of the package loaded in one process, as in an ESM app whose CommonJS dependency
 * requires `@interlock/oauth` (or the reverse): two copies of every error class, each over its
 * own copy of core. An error made by either copy is an instance of the other copy's class and its
 * bases, and of no sibling. Runs against dist/: build first (`pnpm --filter @interlock/oauth run
 * build`, and core's, whose CommonJS build the CommonJS copy requires).
 */

import * as esmCore from "@interlock/core";
import { bothBuildsBeforeAll, EACH_WAY } from "@interlock/test-harness/dual-builds";
import { describe, expect, it } from "vitest";

type Package = typeof import("../src/index.js");

const copies = bothBuildsBeforeAll<Package>("oauth", esmCore, (build) => build.OAuthError);
const { cores } = copies;

/** One error of each class the package exports, made by the given copy. */
const make = {
  OAuthError: (copy: Package) => new copy.OAuthError("invalid_grant", { endpoint: "token", responseStatus: 400 }),
  OAuthResponseError: (copy: Package) => new copy.OAuthResponseError("server_unavailable", "the server answered 503"),
  LoginError: (copy: Package) => new copy.LoginError("state_mismatch", "not this browser's login"),
  LoginRequiredError: (copy: Package) => new copy.LoginRequiredError("no_session", "no session"),
  TokenDecryptionError: (copy: Package) => new copy.TokenDecryptionError("no key opens it"),
};
const classes = Object.keys(make) as (keyof typeof make)[];

describe.each(EACH_WAY)("an error made by the %s build, asked of the %s build's classes", (made, asked) => {
  it.each(classes)("%s: an instance of its class and InterlockError, and of no sibling", (name) => {
    const error = make[name](copies[made]);
    expect(error).toBeInstanceOf(copies[asked][name]);
    expect(error).toBeInstanceOf(cores[asked].InterlockError);
    for (const sibling of classes.filter((other) => other !== name)) {
      expect(error, sibling).not.toBeInstanceOf(copies[asked][sibling]);
    }
    expect(error).not.toBeInstanceOf(cores[asked].StoreUnavailableError);
  });
});
