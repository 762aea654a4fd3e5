/** The types the middlewares add to Koa's context, without augmenting Koa's own interfaces. */

import type { VerifiedWebhook } from "@interlock/core";
import type { Request } from "koa";

/**
 * What Interlock puts on `ctx.request` once it has read the body: always after `webhook()`;
 * after `idempotency()` only for the requests it fingerprinted. `rawBody` is a `Buffer` (the
 * bytes as received); `@koa/bodyparser` declares its own `rawBody` as a decoded string, so
 * this is a context type and not a global `declare module "koa"`.
 */
export interface RawBodyRequest {
  /** The request body exactly as received. */
  rawBody: Buffer;
  /** Parsed from `rawBody` on first read for JSON and url-encoded forms; otherwise undefined. */
  body?: unknown;
}

/** The context type `webhook()` hands to the middleware after it. */
export interface RawBodyContext {
  /** Koa's request, with the raw body. */
  request: Request & RawBodyRequest;
}

/** `ctx.state` after `webhook()`: the verified delivery. */
export interface WebhookState<T = unknown> {
  /** The verified delivery. */
  webhook: VerifiedWebhook<T>;
}
