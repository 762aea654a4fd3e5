// An idempotent payments API: a client retries POST /api/payments with the same Idempotency-Key
// and gets the first answer back, byte for byte, instead of a second charge. Authentication runs
// first, so that keys are scoped per account: withIdempotency wraps only what runs after it.
import { withIdempotency } from "@interlock/web";
import type { NextRequest } from "next/server";
import { interlock, type Payment, problem, unauthenticated } from "../../../lib/interlock";

export async function POST(request: NextRequest): Promise<Response> {
  const account = interlock().authenticate(request);
  if (account === undefined) return unauthenticated();
  // A body that is no JSON object is thrown inside (the key is released, so the client's
  // corrected retry runs) and answered 400 here: Next would answer the throw 500.
  return createPaymentOnce(request, account).catch((error: unknown) => {
    if (error instanceof BadRequest) return problem(400, "bad_request", error.message);
    throw error;
  });
}

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
  }),
  createPayment,
);

/** Runs once per key; a throw releases the key (the client's retry runs again), and Next answers 500. */
async function createPayment(request: NextRequest, account: string): Promise<Response> {
  // The body is still yours to read, and to parse: one that is no JSON object is no payment.
  const { amount, currency = "usd" } = await jsonObject(request);
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

class BadRequest extends Error {}

/**
 * The body as a JSON object, or BadRequest thrown (bad JSON, none, null, an array, a number…).
 * The handler gets the body as sent: a compressed one is decoded here (withIdempotency decodes
 * it only for the fingerprint, and refuses a coding it cannot decode before the handler runs).
 */
async function jsonObject(request: Request): Promise<{ amount?: unknown; currency?: unknown }> {
  const coding = request.headers.get("content-encoding")?.trim().toLowerCase() || "identity";
  const format = coding === "x-gzip" ? "gzip" : coding === "br" ? "brotli" : coding;
  let value: unknown;
  try {
    const body =
      coding === "identity"
        ? request.body
        : request.body?.pipeThrough(new DecompressionStream(format as CompressionFormat));
    value = JSON.parse(await new Response(body).text());
  } catch {
    value = undefined;
  }
  if (typeof value === "object" && value !== null && !Array.isArray(value)) return value;
  throw new BadRequest("send the payment as a JSON object, Content-Type: application/json");
}

function isCurrency(currency: unknown): currency is string {
  return typeof currency === "string" && /^[a-z]{3}$/.test(currency);
}
