/**
 * Bodies of any content type on webhook routes. Fastify parses only JSON and plain text by
 * default and answers 415 to any other content type (and to a body sent without one) before
 * the route's preHandler runs, so a form-encoded delivery (Slack slash commands and
 * interactivity, GitHub set to `application/x-www-form-urlencoded`), an
 * `application/octet-stream` one, a vendor type (`application/vnd.x+json`) or one with no
 * Content-Type would never reach verification, though Express, Koa, Hono and the web adapter
 * verify them all. The plugin adds a fallback parser that takes the body raw on webhook routes
 * only (flagged per request by `takeBodyRaw`) and answers every other route as Fastify would.
 *
 * The fallback is Fastify's catch-all (`'*'`) on purpose, the parser Fastify tries last: after
 * the parsers registered by content-type string, then by RegExp, in this scope or inherited.
 * Every parser of the app (JSON, text, `@fastify/formbody`, its own `addContentTypeParser`,
 * before or after the plugin, in any scope) so wins on every route, webhook routes included.
 * A request without Content-Type but with a body is dispatched to the catch-all directly (one
 * without a body is not parsed at all). A RegExp matching everything would not do: Fastify
 * tries RegExp parsers before the catch-all, the last added first, so it would shadow the
 * app's catch-all and any RegExp parser the app added before the plugin.
 *
 * There is one catch-all per scope, and the app's own wins too:
 * - registered before the plugin (in its scope, or inherited from a parent), it is kept: the
 *   fallback is not added (`hasCatchAll`), and the app's parser gives webhook routes their body.
 * - registered after the plugin, in its scope or a child, it replaces the fallback there, with
 *   no error: Fastify never reports `'*'` as already present (`FST_ERR_CTP_ALREADY_PRESENT`
 *   is not thrown for it), a later catch-all silently takes the place of the earlier one.
 * Either way webhook routes still verify the bytes sent: the raw-body hook kept them before
 * any parser ran.
 */

import { errorCodes, type FastifyInstance, type FastifyRequest } from "fastify";
import { rawBodyOf, whenKept } from "./raw-body.js";

/** Global, as `kRawBody` is: the fallback of the plugin of either copy of the package serves the webhook sets of either. */
export const kTakesBodyRaw = Symbol.for("@interlock/fastify.takesBodyRaw");

interface WithRawFlag {
  [kTakesBodyRaw]?: true | null;
}

/** Marks a request whose route verifies a webhook: a body no parser of the app takes is taken raw. */
export function takeBodyRaw(request: FastifyRequest): void {
  (request as WithRawFlag)[kTakesBodyRaw] = true;
}

/** Media types whose body is text: given as a string, as Fastify's text parser would. */
const TEXTUAL =
  /^(?:text\/[^;]+|application\/(?:x-www-form-urlencoded|json|xml)|[^/;]+\/[^;]+\+(?:json|xml))\s*(?:;|$)/i;

/**
 * The body the fallback gives a webhook route (`request.webhook` holds the verified, decoded
 * payload): for a text type (`text/*`, a form, JSON or XML, a `+json` or `+xml` suffix) the
 * signed text, decoded as UTF-8 as Fastify's text parser does; for any other type, and a body
 * sent without Content-Type (which HTTP lets a recipient treat as `application/octet-stream`),
 * a Buffer of the signed bytes (a copy: the route may change it, the bytes kept stay as sent).
 * Nothing is read again: the bytes are the ones the raw-body hook kept.
 */
function parseBodyRaw(request: FastifyRequest, _payload: unknown, done: (error: Error | null, body?: unknown) => void) {
  // A request no route matched: Fastify leaves its body unparsed and answers 404, not 415.
  if (request.is404) return done(null, undefined);
  // A tapped body is read as this parser waits: nothing else reads the payload.
  whenKept(request, () => giveBodyRaw(request, done));
}

function giveBodyRaw(request: FastifyRequest, done: (error: Error | null, body?: unknown) => void) {
  const raw = rawBodyOf(request);
  // Not a webhook route: Fastify's own 415, through the app's error handler. (As after any
  // parser's error, Fastify closes the connection after it, the unread body with it.)
  if ((request as WithRawFlag)[kTakesBodyRaw] !== true || raw === undefined) {
    return done(new errorCodes.FST_ERR_CTP_INVALID_MEDIA_TYPE());
  }
  // Bytes that could not be kept: no body, and the webhook set's preHandler refuses them.
  if (!Buffer.isBuffer(raw)) return done(null, undefined);
  const type = request.headers["content-type"];
  done(null, type !== undefined && TEXTUAL.test(type.trim()) ? raw.toString("utf8") : Buffer.from(raw));
}

/**
 * Fastify keeps the catch-all under the empty key, which `hasContentTypeParser("*")` never
 * looks up (it normalises `"*"` to another key: false even with a catch-all registered).
 * `hasContentTypeParser` looks a RegExp up by its `toString()`: this one names that key.
 */
const CATCH_ALL_KEY = Object.assign(/(?:)/, { toString: () => "" });

/** Whether this scope has a catch-all parser already: the app's (kept), or the plugin's (registered twice). */
function hasCatchAll(fastify: FastifyInstance): boolean {
  return fastify.hasContentTypeParser("*") || fastify.hasContentTypeParser(CATCH_ALL_KEY);
}

/** Adds the fallback to the scope the plugin is registered in, once, unless the scope has a catch-all. */
export function addWebhookBodyFallback(fastify: FastifyInstance): void {
  if (!hasCatchAll(fastify)) fastify.addContentTypeParser("*", parseBodyRaw);
}
