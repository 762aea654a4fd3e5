// Types for payload.mjs, for the TypeScript examples (NestJS, Next.js) that import it.

/** The `detail` of the examples' 422 `invalid_payload` problem for such a delivery. */
export const INVALID_PAYLOAD_DETAIL: string;

/**
 * The delivery's payload when it is a JSON object, or undefined when it is not one: `null`, a
 * number, a string, an array, or a body the payload getter cannot decode (it throws
 * `SyntaxError` then). Any other error is thrown on.
 */
export function payloadObject(delivery: { readonly payload: unknown }): Record<string, unknown> | undefined;
