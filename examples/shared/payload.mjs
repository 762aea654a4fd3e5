// A verified delivery's payload, as the examples' handlers read it: a JSON object, or nothing.
// A signature proves who sent the bytes, not that they are the event the handler expects: a
// sender may sign JSON `null`, a number, an array, or a body the scheme cannot decode at all (a
// form-encoded body to a JSON endpoint). Reading `.type` off those throws, which is a 500 on
// every redelivery; the handler answers 422 instead. Web standards only (no `node:` imports), so
// the Hono app that runs on Bun, Deno and Workers uses it too. Copy it with the example.

/** The `detail` of the examples' 422 `invalid_payload` problem for such a delivery. */
export const INVALID_PAYLOAD_DETAIL = "the webhook payload must be a JSON object";

/**
 * The delivery's payload when it is a JSON object, or undefined when it is not one: `null`, a
 * number, a string, an array, or a body the payload getter cannot decode (it throws
 * `WebhookPayloadError` then, which the adapters would answer 400). Any other error is thrown on.
 *
 * @param {{ readonly payload: unknown }} delivery  a verified delivery (`req.webhook`, `event`…)
 * @returns {Record<string, unknown> | undefined}
 */
export function payloadObject(delivery) {
  let payload;
  try {
    payload = delivery.payload;
  } catch (error) {
    // By its code, which every copy of core gives it: this file imports nothing.
    if (error?.code === "payload_not_decodable") return undefined;
    throw error;
  }
  return typeof payload === "object" && payload !== null && !Array.isArray(payload) ? payload : undefined;
}
