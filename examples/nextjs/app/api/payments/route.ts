// An idempotent payments API: a client retries POST /api/payments with the same Idempotency-Key
// and gets the first answer back, byte for byte, instead of a second charge. Authentication runs
// first, so that keys are scoped per account.
import { type Db, interlock, type Payment, problem, toResponse, unauthenticated } from "../../../lib/interlock";

export async function POST(request: Request): Promise<Response> {
  const { payments, authenticate, db } = interlock();
  const account = authenticate(request);
  if (account === undefined) return unauthenticated();

  const body = new Uint8Array(await request.arrayBuffer());
  const decision = await payments.begin({
    method: request.method,
    route: "/api/payments",
    path: new URL(request.url).pathname,
    headers: request.headers,
    body,
    context: request,
  });
  // A replay, a missing key (400), the same key still in flight (409), another body under the
  // key (422) or the store down (503).
  if (decision.action === "respond") return toResponse(decision.response);
  if (decision.action === "pass") return createPayment(body, account, db); // a route the engine does not cover

  let response: Response;
  try {
    response = await createPayment(body, account, db);
  } catch (error) {
    await payments.abort(decision.ticket); // released: the client's retry runs again
    throw error; // Next answers 500
  }
  // Store what was answered, then answer the same bytes: a client that retries the moment it
  // reads the response finds the record, not the lock.
  const bytes = new Uint8Array(await response.arrayBuffer());
  await payments.finish(decision.ticket, { status: response.status, headers: response.headers, body: bytes });
  return new Response(bytes, { status: response.status, headers: response.headers });
}

async function createPayment(body: Uint8Array, account: string, db: Db) {
  // The body is still yours to parse: bad JSON, or JSON null, is no payment.
  const { amount, currency = "usd" } = parseJson(body) ?? {};
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
  await db.charge(payment);
  return Response.json(payment, { status: 201, headers: { location: `/api/payments/${payment.id}` } });
}

/** The body as a JSON object, or undefined when it is not one (bad JSON, null, an array, a number…). */
function parseJson(body: Uint8Array): { amount?: unknown; currency?: unknown } | undefined {
  try {
    const value: unknown = JSON.parse(new TextDecoder().decode(body));
    return typeof value === "object" && value !== null && !Array.isArray(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

function isCurrency(currency: unknown): currency is string {
  return typeof currency === "string" && /^[a-z]{3}$/.test(currency);
}
