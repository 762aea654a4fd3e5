/**
 * core's Redis error mapping, as a store of an earlier release calls it: with its label alone
 * (the store's needs came later), beside this core in one app.
 */
import { describe, expect, it } from "vitest";
import { InterlockConfigError, redisUnavailableError, StoreUnavailableError } from "../src/index.js";

/** A client whose socket failed with `error`, as ioredis keeps it. */
const clientFailedWith = (error: Error) => ({ stream: { errored: error } });

describe("redisUnavailableError given a store's label alone (a store of an earlier release)", () => {
  it("a certificate the client does not trust: the setup mistake, named with that label", () => {
    const untrusted = Object.assign(new Error("self-signed certificate"), { code: "DEPTH_ZERO_SELF_SIGNED_CERT" });
    const mapped = redisUnavailableError(
      new StoreUnavailableError("redis", "claim got no answer in 2000 ms"),
      clientFailedWith(untrusted),
      "redis store",
    );
    expect(mapped).toBeInstanceOf(InterlockConfigError);
    expect((mapped as Error).message).toMatch(/^redis store: the server's TLS certificate is not trusted/);
  });

  it("a Cluster client (no socket of its own): the outage as it was", () => {
    const outage = new StoreUnavailableError("redis", "claim got no answer in 2000 ms");
    expect(redisUnavailableError(outage, { isCluster: true, on() {} }, "redis store")).toBe(outage);
  });
});
