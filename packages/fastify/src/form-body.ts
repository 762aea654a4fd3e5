/**
 * Form bodies on webhook routes. Fastify parses only JSON and plain text by default and answers
 * 415 to any other content type before the route's preHandler runs, so a form-encoded delivery
 * (Slack slash commands and interactivity, GitHub set to `application/x-www-form-urlencoded`)
 * would never reach verification. The plugin adds a fallback form parser that takes the body
 * raw on webhook routes only and answers every other route the 415 Fastify would have.
 *
 * The fallback is a RegExp parser on purpose: Fastify tries parsers registered by content-type
 * string first, so an app's own form parser (`@fastify/formbody`, `addContentTypeParser`) wins
 * on every route in its scope, webhook routes included, and registering one never collides
 * with the fallback (`FST_ERR_CTP_ALREADY_PRESENT`).
 */

import { errorCodes, type FastifyInstance, type FastifyRequest } from "fastify";
import { rawBodyOf } from "./raw-body.js";

/** `application/x-www-form-urlencoded`, with or without parameters, as Fastify normalises it. */
const FORM = /^application\/x-www-form-urlencoded(?:;|$)/;

export const kTakesFormRaw = Symbol("interlock.takesFormRaw");

interface WithFormFlag {
  [kTakesFormRaw]?: true | null;
}

/** Marks a request whose route verifies a webhook: its form body is taken raw. */
export function takeFormRaw(request: FastifyRequest): void {
  (request as WithFormFlag)[kTakesFormRaw] = true;
}

/**
 * The body the fallback gives a webhook route: the signed text, as Fastify's text parser would
 * (`request.webhook.payload` holds the decoded fields). Nothing is read again: the bytes are the
 * ones the raw-body hook kept.
 */
function parseFormRaw(request: FastifyRequest, _payload: unknown, done: (error: Error | null, body?: unknown) => void) {
  const raw = rawBodyOf(request);
  if ((request as WithFormFlag)[kTakesFormRaw] !== true || !Buffer.isBuffer(raw)) {
    return done(new errorCodes.FST_ERR_CTP_INVALID_MEDIA_TYPE());
  }
  done(null, raw.toString("utf8"));
}

/** Adds the fallback to the scope the plugin is registered in, once. */
export function addWebhookFormParser(fastify: FastifyInstance): void {
  if (!fastify.hasContentTypeParser(FORM)) fastify.addContentTypeParser(FORM, parseFormRaw);
}
