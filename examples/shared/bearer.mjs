// `Authorization: Bearer <token>` read strictly, as RFC 6750 (section 2.1) writes it: the scheme in
// any case, exactly one space, then a b64token and nothing after it. Web standards only (no
// `node:` imports), so the Hono apps that run on Bun, Deno and Workers use it too. Copy it with
// the example.

/** RFC 6750: `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`. */
const BEARER = /^bearer ([A-Za-z0-9\-._~+/]+=*)$/i;

/**
 * The token of an `Authorization` header value (`null` or undefined when the request has none),
 * or undefined when it is not exactly `Bearer <token>`: `Bearer <key> extra`, two spaces, another
 * scheme. The caller answers 401 then, as for an unknown token, rather than guessing what was meant.
 */
export function bearerToken(header) {
  return BEARER.exec(header ?? "")?.[1];
}
