/**
 * Expected events shared by the adapters' tests.
 */

/**
 * The `webhook.rejected` events of an adapter's own refusal sent twice, first with an
 * `x-request-id` and then without: the first carries the id as its correlation id, the second none.
 * Both name the delivery id its headers claimed (`headers["webhook-id"]` for Standard Webhooks).
 */
export function rejectedTaggedThenUntagged(
  code: string,
  correlationId: string,
  headers: Record<string, string>,
  scheme = "standard-webhooks",
) {
  const rejected = { type: "webhook.rejected", scheme, id: headers["webhook-id"], code, durationMs: 0 };
  return [{ ...rejected, correlationId }, rejected];
}
