/** The `WWW-Authenticate` reader `authorizedFetch` decides with (RFC 9110 §11.6.1, RFC 6750 §3). */

import { describe, expect, it } from "vitest";
import { accessTokenRefused, parseChallenges } from "../src/www-authenticate.js";

const read = (header: string) =>
  parseChallenges(header)?.map(({ scheme, params }) => [scheme, Object.fromEntries(params)]);

describe("WWW-Authenticate", () => {
  it("reads several challenges, their params quoted or not, names case-insensitive", () => {
    expect(
      read(
        'Newauth realm="apps", type=1, title="Login to \\"apps\\"", Basic realm="simple", BEARER Error=invalid_token',
      ),
    ).toEqual([
      ["newauth", { realm: "apps", type: "1", title: 'Login to "apps"' }],
      ["basic", { realm: "simple" }],
      ["bearer", { error: "invalid_token" }],
    ]);
  });

  it("reads a quoted string with commas and '=' as one value", () => {
    expect(read('Bearer realm="a, error=invalid_token", error="insufficient_scope"')).toEqual([
      ["bearer", { realm: "a, error=invalid_token", error: "insufficient_scope" }],
    ]);
  });

  it("reads a scheme alone, a token68, whitespace around '=' and empty list elements", () => {
    expect(read("Bearer")).toEqual([["bearer", {}]]);
    expect(read("Bearer error=")).toEqual([["bearer", {}]]); // a token68 ("error="), not a param
    expect(read("Negotiate abc+/def==, Bearer")).toEqual([
      ["negotiate", {}],
      ["bearer", {}],
    ]);
    expect(read(' , Bearer error = "invalid_token" ,, ')).toEqual([["bearer", { error: "invalid_token" }]]);
  });

  it("refuses malformed headers", () => {
    for (const header of [
      'Bearer error="unterminated',
      'Bearer error="a", error="b"', // a param twice
      '"quoted" scheme',
      "Bearer error=a b",
      "Bearer error==x",
    ]) {
      expect(parseChallenges(header), header).toBeUndefined();
    }
  });

  it("tells a refused token from a refusal a new token would not change (RFC 6750 §3.1)", () => {
    expect(accessTokenRefused('Bearer error="invalid_token"')).toBe(true);
    expect(accessTokenRefused('Bearer realm="api"')).toBe(true);
    expect(accessTokenRefused(null)).toBe(true);
    expect(accessTokenRefused('Bearer error="invalid_scope')).toBe(true); // malformed: no error named
    expect(accessTokenRefused('Basic realm="x"')).toBe(true); // no Bearer challenge: no error named
    expect(accessTokenRefused('Bearer error="insufficient_scope"')).toBe(false);
    expect(accessTokenRefused('Bearer error="invalid_request"')).toBe(false);
    expect(accessTokenRefused('Basic realm="x", Bearer error="insufficient_scope"')).toBe(false);
  });
});
