// An idempotent payments API: a client retries POST /api/payments with the same Idempotency-Key
// and gets the first answer back, byte for byte, instead of a second charge. Authentication runs
// first, so that keys are scoped per account: withIdempotency wraps only what runs after it.
import { RequestBodyError, readJson, withIdempotency } from "@interlock/web";
import type { NextRequest } from "next/server";
import { interlock, type Payment, problem, unauthenticated } from "../../../lib/interlock";

export async function POST(request: NextRequest): Promise<Response> {
  const account = interlock().authenticate(request);
  if (account === undefined) return unauthenticated();
  return createPaymentOnce(request, account);
}

const NO_JSON_OBJECT = "send the payment as a JSON object, Content-Type: application/json";

// A replay, a missing key (400), the same key still in flight (409), another body under the key
// (422) or the store down (503) is answered without running createPayment. The options are made
// on the first request (withIdempotency calls the function once): the store comes from the
// environment, which next build, loading this module, does not have.
const createPaymentOnce = withIdempotency(
  () => ({
    store: interlock().store,
    // The account POST authenticated: keys are scoped by it, so one client can never replay
    // another's payment.
    principal: (request) => interlock().authenticate(request.context),
    route: "/api/payments",
    required: true,
    // A body with no JSON object (empty or not JSON: readJson's `body_not_json`; JSON that is no
    // object: createPayment's) is answered 400 `bad_request`, this app's problem, as every
    // example answers it: the others refuse bad JSON through their framework's parser, a plain
    // 400, not `body_not_json`. The key is released all the same: the corrected retry runs.
    onError: ({ error }) =>
      error instanceof RequestBodyError && error.code === "body_not_json"
        ? problem(400, "bad_request", NO_JSON_OBJECT)
        : undefined,
  }),
  createPayment,
);

/** Runs once per key; a throw releases the key (the client's retry runs again), and Next answers 500. */
async function createPayment(request: NextRequest, account: string): Promise<Response> {
  // The body decoded as the wrapper decoded it for the fingerprint (gzip, deflate). Empty, not
  // JSON, or data that is not what its Content-Encoding says: readJson throws a RequestBodyError,
  // which the wrapper answers 400 problem+json (through onError), the key released, so the
  // corrected retry runs.
  const body = await readJson(request);
  if (!isObject(body)) {
    // JSON, but no payment object (null, an array, a number…): the client's mistake all the same,
    // answered and released the same way.
    throw new RequestBodyError("body_not_json", NO_JSON_OBJECT);
  }
  const { amount, currency = "usd" } = body;
  if (typeof amount !== "number" || !Number.isSafeInteger(amount) || amount <= 0 || !isCurrency(currency)) {
    // Stored too (4xx are answers): the same request retried gets the same refusal.
    return problem(400, "invalid_payment", "amount must be a positive integer (cents), currency 3 letters");
  }
  const payment: Payment = {
    id: `pay_${crypto.randomUUID().replaceAll("-", "")}`,
    amount,
    currency,
    account,
    created: new Date().toISOString(),
  };
  await interlock().db.charge(payment);
  return Response.json(payment, { status: 201, headers: { location: `/api/payments/${payment.id}` } });
}

function isObject(value: unknown): value is { amount?: unknown; currency?: unknown } {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isCurrency(currency: unknown): currency is string {
  return typeof currency === "string" && /^[a-z]{3}$/.test(currency);
}
