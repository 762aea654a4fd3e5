/**
 * What every NestJS platform must do with Interlock, over real HTTP: a Stripe receiver and a
 * payments API written the way a Nest app writes them (return values, Nest's default 201 for a
 * POST, its default exception filter), each platform's test building that app its own way
 * (`MiddlewareConsumer` on Express, `@RouteConfig` on Fastify) and running these rows on it.
 *
 * The app's controllers, on `/webhooks/stripe` and `/payments`:
 * - Stripe: `invoice.payment_failed` throws an `Error`, `customer.deleted` a `BadRequestException`
 *   ("unknown customer"); any other event is recorded in `work.fulfilled` and answered
 *   `{ received: id }`.
 * - Payments (keyed by `x-api-key`, key required): records the body in `work.charged`, waits for
 *   `work.gate`, throws an `Error` for `{ fail: true }` and a `BadRequestException` for
 *   `{ invalid: true }`, else answers `{ id, amount }`.
 */
import { signWebhook, stripe, type VerifiedWebhook } from "@interlock/core";
import { type ArgumentsHost, BadRequestException, Catch, type ExceptionFilter, HttpException } from "@nestjs/common";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/** What the app's controllers did, and how they behave next. */
export interface NestWork {
  /** Stripe event ids processed. */
  fulfilled: string[];
  /** Payment bodies the controller ran for. */
  charged: unknown[];
  /** Held until released, for the in-flight row. */
  gate?: Promise<void> | undefined;
}

/** A Nest app listening on 127.0.0.1. */
export interface NestApp {
  url: string;
  close(): Promise<void>;
}

/** What the payments controller is sent: an amount, or how to fail. */
export interface PaymentBody {
  /** The amount charged. */
  amount?: number;
  /** Throw an `Error` (Nest's 500). */
  fail?: boolean;
  /** Throw a `BadRequestException` (a 400). */
  invalid?: boolean;
}

/** The Stripe controller's work, the same on every platform (see the module's comment). */
export function receiveStripeEvent(work: NestWork, event: VerifiedWebhook) {
  const { type } = event.payload as { type: string };
  if (type === "invoice.payment_failed") throw new Error("the billing system is down");
  if (type === "customer.deleted") throw new BadRequestException("unknown customer");
  work.fulfilled.push(event.id as string);
  return { received: event.id };
}

/** The payments controller's work, the same on every platform (see the module's comment). */
export async function charge(work: NestWork, body: PaymentBody) {
  work.charged.push(body);
  await work.gate;
  if (body.fail) throw new Error("the card network timed out");
  if (body.invalid) throw new BadRequestException("amount must be positive");
  return { id: `pay_${work.charged.length}`, amount: body.amount };
}

/** The part of a Nest app's HTTP adapter (`app.getHttpAdapter()`) that answers, on any platform. */
export interface NestHttpReply {
  /** Answers `body` (JSON for an object) with `statusCode` on the platform's response. */
  reply(response: unknown, body: unknown, statusCode?: number): unknown;
}

/**
 * The exception filter of the core scenario table's Nest app: a throw answered as the contract
 * says (500 `{"error": "handler failed"}`), an `HttpException` with its own answer. It answers
 * through Nest's adapter, so one filter serves every platform.
 */
export function scenarioExceptionFilter(adapter: NestHttpReply): ExceptionFilter {
  class HandlerFailed implements ExceptionFilter {
    catch(exception: unknown, host: ArgumentsHost) {
      const response = host.switchToHttp().getResponse<unknown>();
      if (exception instanceof HttpException) adapter.reply(response, exception.getResponse(), exception.getStatus());
      else adapter.reply(response, { error: "handler failed" }, 500);
    }
  }
  // `@Catch()` (every exception), applied by hand: this package is not compiled with decorators.
  Catch()(HandlerFailed);
  return new HandlerFailed();
}

/** What Nest's default exception filter answers an `Error` with. */
export const NEST_500 = { statusCode: 500, message: "Internal server error" };

/** A Stripe event of this type, signed now with `secret`. */
export async function stripeEvent(secret: string, type: string, id = `evt_${crypto.randomUUID().slice(0, 8)}`) {
  const body = JSON.stringify({ id, object: "event", type });
  const signed = await signWebhook({ scheme: stripe, secret, body });
  return { id, body, headers: { ...signed.headers, "content-type": "application/json" } };
}

/** Posts a signed event to the app's Stripe route. */
export const deliver = (url: string, event: { headers: Record<string, string>; body: string }) =>
  fetch(`${url}/webhooks/stripe`, { method: "POST", headers: event.headers, body: event.body });

/** Posts a payment under `key` as account `acct_1`. */
export const pay = (url: string, key: string, body: object) =>
  fetch(`${url}/payments`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-api-key": "acct_1", "idempotency-key": key },
    body: JSON.stringify(body),
  });

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The rows every platform passes, on an app `start` serves with a fresh `work`; `more` adds the
 * platform's own rows in the same describe, on the same app.
 */
export function describeNestStripeApp(
  title: string,
  secret: string,
  start: (work: NestWork) => Promise<NestApp>,
  more?: (app: () => NestApp, work: NestWork) => void,
): void {
  describe(title, () => {
    const work: NestWork = { fulfilled: [], charged: [] };
    let app: NestApp;
    beforeAll(async () => {
      app = await start(work);
    });
    afterAll(() => app?.close());
    const event = (type: string) => stripeEvent(secret, type);

    it("a Stripe delivery: verified on its raw bytes, processed once, a tampered copy refused", async () => {
      const delivery = await event("checkout.session.completed");
      const first = await deliver(app.url, delivery);
      expect([first.status, await first.json()]).toEqual([201, { received: delivery.id }]);
      const again = await deliver(app.url, delivery);
      expect([again.status, await again.json()]).toEqual([200, { duplicate: true, id: delivery.id }]);
      const tampered = await deliver(app.url, { ...delivery, body: delivery.body.replace("completed", "expired") });
      expect(tampered.status).toBe(401);
      expect(tampered.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      expect(await tampered.json()).toMatchObject({ code: "no_matching_signature" });
      expect(work.fulfilled.filter((id) => id === delivery.id)).toHaveLength(1);
    });

    it("a controller that throws: Nest's filter answers 500 and the delivery is released, its redelivery runs", async () => {
      const delivery = await event("invoice.payment_failed");
      const failed = await deliver(app.url, delivery);
      expect([failed.status, await failed.json()]).toEqual([500, NEST_500]);
      const redelivered = await deliver(app.url, delivery);
      expect(redelivered.status).toBe(500); // ran again (a duplicate would be 200)
      expect(await redelivered.json()).toEqual(NEST_500);
    });

    it("an HttpException's 4xx releases the delivery too: the redelivery runs again", async () => {
      const delivery = await event("customer.deleted");
      const refused = await deliver(app.url, delivery);
      expect(refused.status).toBe(400);
      expect(await refused.json()).toMatchObject({ statusCode: 400, message: "unknown customer" });
      expect((await deliver(app.url, delivery)).status).toBe(400);
    });

    it("an idempotent POST: first 201, retry replayed, another body 422", async () => {
      const key = crypto.randomUUID();
      const first = await pay(app.url, key, { amount: 4200 });
      expect(first.status).toBe(201);
      const created = await first.text();
      const retry = await pay(app.url, key, { amount: 4200 });
      expect(retry.status).toBe(201);
      expect(retry.headers.get("idempotent-replayed")).toBe("true");
      expect(await retry.text()).toBe(created);
      const other = await pay(app.url, key, { amount: 9900 });
      expect(other.status).toBe(422);
      expect(await other.json()).toMatchObject({ code: "idempotency_key_mismatch" });
      expect(work.charged.filter((body) => (body as { amount?: number }).amount === 4200)).toHaveLength(1);
    });

    it("a concurrent copy while the first runs: 409 request_in_flight with Retry-After", async () => {
      const key = crypto.randomUUID();
      let open = () => {};
      work.gate = new Promise((resolve) => {
        open = resolve;
      });
      const first = pay(app.url, key, { amount: 1 });
      await sleep(100);
      const copy = await pay(app.url, key, { amount: 1 });
      open();
      work.gate = undefined;
      expect(copy.status).toBe(409);
      expect(copy.headers.get("retry-after")).not.toBeNull();
      expect(await copy.json()).toMatchObject({ code: "request_in_flight" });
      expect((await first).status).toBe(201);
    });

    it("a controller that throws: Nest's 500 releases the key, the retry runs again", async () => {
      const key = crypto.randomUUID();
      const before = work.charged.length;
      const failed = await pay(app.url, key, { fail: true });
      expect([failed.status, await failed.json()]).toEqual([500, NEST_500]);
      const retry = await pay(app.url, key, { fail: true });
      expect(retry.status).toBe(500);
      expect(retry.headers.get("idempotent-replayed")).toBeNull();
      expect(work.charged.length).toBe(before + 2);
    });

    it("an HttpException's 4xx is an answer: stored and replayed, the controller not run again", async () => {
      const key = crypto.randomUUID();
      const before = work.charged.length;
      const refused = await pay(app.url, key, { invalid: true });
      expect(refused.status).toBe(400);
      const body = await refused.text();
      const replay = await pay(app.url, key, { invalid: true });
      expect(replay.status).toBe(400);
      expect(replay.headers.get("idempotent-replayed")).toBe("true");
      expect(await replay.text()).toBe(body);
      expect(work.charged.length).toBe(before + 1);
    });

    more?.(() => app, work);
  });
}
