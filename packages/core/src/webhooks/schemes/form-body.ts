/**
 * Bodies that come as JSON or as an `application/x-www-form-urlencoded` form, whichever the
 * sender was configured for: Slack (forms for slash commands and interactivity, JSON for the
 * Events API) and GitHub (a webhook's "content type" setting). One decoder for both, so they
 * agree on what a form is.
 */

import { utf8 } from "../../encoding.js";

/**
 * Decodes a JSON body, or a form body. A form becomes an object of its fields; with
 * `jsonField` it is instead the JSON held in that one field (GitHub's `payload=<JSON>`), and a
 * form without it throws `SyntaxError`, as `JSON.parse` does: the payload getter throws either as
 * the `cause` of a `WebhookPayloadError`.
 */
export function decodeJsonOrForm(body: Uint8Array, jsonField?: string): unknown {
  const text = utf8.decode(body);
  // A form's first field name cannot start with "{" unencoded, so this never misreads one.
  if (text.trimStart().startsWith("{")) return JSON.parse(text);
  const fields = new URLSearchParams(text);
  if (jsonField === undefined) return Object.fromEntries(fields);
  const json = fields.get(jsonField);
  // (JSON that is no object, such as `null` or `[]`, reads as a form without the field: say both.)
  if (json === null) throw new SyntaxError(`the body is neither a JSON object nor a form with a "${jsonField}" field`);
  return JSON.parse(json);
}
