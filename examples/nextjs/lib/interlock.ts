// What every route of the app shares: the store, the webhook receiver, the idempotency engine,
// and the stand-in for your database. Held on globalThis, made on the first request: `next dev`
// evaluates a module again when it recompiles it, and a second memory store would forget every
// delivery and key the first one held. (Memory is one process only: on serverless or on more
// than one instance, use @interlock/redis or @interlock/postgres here.)
import {
  createIdempotency,
  createWebhookReceiver,
  type HttpResponse,
  type InterlockStore,
  memoryStore,
  stripe,
} from "@interlock/core";
import { bearerToken } from "../../shared/bearer.mjs";
import { apiKeysFrom, StartupError } from "../../shared/config.mjs";

export interface Payment {
  id: string;
  amount: number;
  currency: string;
  account: string;
  created: string;
}

/** Stands in for your database and payment provider: what the routes did, so you (and the test) can look. */
export function memoryDb() {
  return {
    fulfilled: [] as string[],
    payments: new Map<string, Payment>(),
    /** Fulfils the order a paid checkout is for: ship it, grant access… */
    async fulfil(eventId: string): Promise<void> {
      this.fulfilled.push(eventId);
    },
    /** Charges the card and writes the row. */
    async charge(payment: Payment): Promise<void> {
      this.payments.set(payment.id, payment);
    },
  };
}

export type Db = ReturnType<typeof memoryDb>;

function createInterlock(env: Record<string, string | undefined>, store: InterlockStore = memoryStore()) {
  const stripeSecret = env.STRIPE_WEBHOOK_SECRET;
  if (!stripeSecret)
    throw new StartupError('Set STRIPE_WEBHOOK_SECRET and API_KEYS ("sk_test_1:acct_1,…"); see README.md.');
  const apiKeys = apiKeysFrom(env.API_KEYS, "API_KEYS");
  return {
    db: memoryDb(),
    receiver: createWebhookReceiver({ scheme: stripe, secret: stripeSecret, store }),
    payments: createIdempotency({
      store,
      // The account authenticate() found: keys are scoped per account, so one client can never
      // replay another's payment.
      principal: (request) => accountOf(request.context as Request, apiKeys),
      required: true,
    }),
    /** The account of `Authorization: Bearer <api key>` (strictly: see bearerToken), or undefined. */
    authenticate: (request: Request) => accountOf(request, apiKeys),
  };
}

function accountOf(request: Request, apiKeys: Map<string, string>): string | undefined {
  return apiKeys.get(bearerToken(request.headers.get("authorization")) ?? "");
}

const SHARED = Symbol.for("@interlock/example-nextjs");

/** The app's Interlock and database, made from the environment on first use. */
export function interlock(): ReturnType<typeof createInterlock> {
  const holder = globalThis as { [SHARED]?: ReturnType<typeof createInterlock> };
  holder[SHARED] ??= createInterlock(process.env);
  return holder[SHARED];
}

/** Interlock's decision (a refusal, a duplicate, a replay…) as a web Response. */
export function toResponse({ status, headers, body }: HttpResponse): Response {
  // No body at all when there is none: a Response refuses even an empty one for a 204 or 304.
  return new Response(body.byteLength === 0 ? null : new Uint8Array(body), { status, headers });
}

/** An RFC 9457 problem, as Interlock's own refusals are. */
export function problem(status: number, code: string, detail: string, headers: HeadersInit = {}): Response {
  const body = { type: `urn:example:problem:${code}`, title: code.replaceAll("_", " "), status, detail, code };
  return Response.json(body, { status, headers: { ...headers, "content-type": "application/problem+json" } });
}

/** The 401 for a request without a known API key. */
export function unauthenticated(): Response {
  return problem(401, "unauthenticated", "send Authorization: Bearer <api key>", { "www-authenticate": "Bearer" });
}
