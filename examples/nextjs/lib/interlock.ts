// What every route of the app shares: the store, the settings read from the environment, and the
// stand-in for your database. Held on globalThis, made on the first request: `next dev`
// evaluates a module again when it recompiles it, and a second memory store would forget every
// delivery and key the first one held. (Memory is one process only: on serverless or on more
// than one instance, use @interlock/redis or @interlock/postgres here.)
import {
  createWebhookReceiver,
  type InterlockStore,
  memoryStore,
  stripe,
  type VerifiedWebhook,
  type WebhookReceiverOptions,
} from "@interlock/core";
import { bearerToken } from "../../shared/bearer.mjs";
import { apiKeysFrom, StartupError } from "../../shared/config.mjs";
import { INVALID_PAYLOAD_DETAIL, payloadObject } from "../../shared/payload.mjs";

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
  // One set of options for both Stripe routes, on one store: a delivery is processed once
  // whichever route it reaches.
  const stripeWebhooks: WebhookReceiverOptions = { scheme: stripe, secret: stripeSecret, store };
  return {
    db: memoryDb(),
    store,
    stripeWebhooks,
    /** For the Pages Router route, which gets Node's request, not a web Request, and drives the receiver itself. */
    stripeReceiver: createWebhookReceiver(stripeWebhooks),
    /** The account of `Authorization: Bearer <api key>` (strictly: see bearerToken), or undefined. */
    authenticate: (request: Request) => apiKeys.get(bearerToken(request.headers.get("authorization")) ?? ""),
  };
}

const SHARED = Symbol.for("@interlock/example-nextjs");

/** The app's Interlock and database, made from the environment on first use. */
export function interlock(): ReturnType<typeof createInterlock> {
  const holder = globalThis as { [SHARED]?: ReturnType<typeof createInterlock> };
  holder[SHARED] ??= createInterlock(process.env);
  return holder[SHARED];
}

/**
 * What both Stripe routes do with a verified delivery: a paid checkout is fulfilled. Undefined
 * when done (answer 200); the 422 problem to answer instead when the delivery is no event, its
 * payload no JSON object (signed JSON `null`, a number, a form body…): reading `.type` off it
 * would throw, a 500 on every redelivery. (A 4xx releases the delivery too, as any non-2xx.)
 */
export async function processStripeEvent(event: VerifiedWebhook, db: Db): Promise<Response | undefined> {
  const payload = payloadObject(event);
  if (payload === undefined) return problem(422, "invalid_payload", INVALID_PAYLOAD_DETAIL);
  if (payload.type === "checkout.session.completed") await db.fulfil(event.id as string);
  return undefined;
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
