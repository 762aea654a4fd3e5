/** `untrustedCertificate`: the TLS mistakes in a caller's own settings, found through wrappers. */

import tls from "node:tls";
import { describe, expect, it } from "vitest";
import { untrustedCertificate } from "../src/index.js";

const coded = (code: string, cause?: unknown) => Object.assign(new Error(code), { code }, cause && { cause });

describe("untrustedCertificate", () => {
  it("is true for an untrusted or misnamed certificate, itself or as a wrapper's cause", () => {
    expect(untrustedCertificate(coded("DEPTH_ZERO_SELF_SIGNED_CERT"))).toBe(true);
    expect(untrustedCertificate(coded("ERR_TLS_CERT_ALTNAME_INVALID"))).toBe(true);
    // fetch's "fetch failed" TypeError carries the socket's error as its cause.
    const fetchFailed = new TypeError("fetch failed", { cause: coded("SELF_SIGNED_CERT_IN_CHAIN") });
    expect(untrustedCertificate(fetchFailed)).toBe(true);
  });

  it("is false for an outage, an expired certificate, anything else, and a cause cycle", () => {
    expect(untrustedCertificate(coded("ECONNREFUSED"))).toBe(false);
    expect(untrustedCertificate(coded("CERT_HAS_EXPIRED"))).toBe(false);
    for (const value of [undefined, null, "DEPTH_ZERO_SELF_SIGNED_CERT", 42, {}]) {
      expect(untrustedCertificate(value)).toBe(false);
    }
    const cycle: { cause?: unknown } = {};
    cycle.cause = cycle;
    expect(untrustedCertificate(cycle)).toBe(false);
  });

  it("knows the code of Node's own host-name check", () => {
    const error = tls.checkServerIdentity("db.example", {
      subject: { CN: "other.example" },
      subjectaltname: "",
    } as never);
    expect(untrustedCertificate(error)).toBe(true);
  });
});
