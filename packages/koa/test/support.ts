/** Test helpers: a tiny router in @koa/router's manner, a stand-in body parser, signed deliveries. */
import type { IncomingMessage } from "node:http";
import { signWebhook, standardWebhooks } from "@interlock/core";
import type { Middleware, Next, ParameterizedContext } from "koa";

export const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

// biome-ignore lint/suspicious/noExplicitAny: test routes take any middleware, as a router does.
type AnyMiddleware = Middleware<any, any>;
// biome-ignore lint/suspicious/noExplicitAny: a context of any state and shape.
type AnyContext = ParameterizedContext<any, any>;

/**
 * Runs `chain` for `method` (or "ALL") on paths matching `pattern` (`:name` segments), and
 * sets `ctx._matchedRoute` to the pattern, as @koa/router does.
 */
export function route(method: string, pattern: string, ...chain: AnyMiddleware[]): AnyMiddleware {
  const matcher = new RegExp(`^${pattern.replace(/:[^/]+/g, "[^/]+")}$`);
  return (ctx: AnyContext, next: Next) => {
    if ((method !== "ALL" && ctx.method !== method) || !matcher.test(ctx.path)) return next();
    ctx._matchedRoute = pattern;
    return run(chain, ctx, 0);
  };
}

async function run(chain: AnyMiddleware[], ctx: AnyContext, index: number): Promise<void> {
  const middleware = chain[index];
  if (middleware) await middleware(ctx, () => run(chain, ctx, index + 1));
}

/**
 * A stand-in for @koa/bodyparser: skips when a body is already set or `ctx.disableBodyParser`
 * is set, otherwise reads the stream, sets `ctx.request.rawBody` (text) and a parsed body.
 */
export function bodyParser(seen: { ran: number } = { ran: 0 }): AnyMiddleware {
  return async (ctx: AnyContext, next: Next) => {
    if (ctx.request.body !== undefined || ctx.disableBodyParser) return next();
    seen.ran++;
    const text = (await readAll(ctx.req)).toString("utf8");
    ctx.request.rawBody = text;
    ctx.request.body = ctx.is("json") && text ? parseJson(ctx, text) : {};
    return next();
  };
}

/** Bad JSON is the client's mistake: a 400, as @koa/bodyparser answers it. */
function parseJson(ctx: AnyContext, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return ctx.throw(400, "the request body is not valid JSON");
  }
}

export async function readAll(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

let sequence = 0;
export const newId = (label: string) => `${label}_${Date.now().toString(36)}_${++sequence}`;

/** A Standard Webhooks delivery of `body` (bytes or text), signed now. */
export async function delivery(body: string | Uint8Array, contentType = "application/json", id = newId("msg")) {
  const signed = await signWebhook({ scheme: standardWebhooks, secret: SECRET, body, id });
  return { headers: { ...signed.headers, "content-type": contentType }, body: signed.body, id };
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Middleware that records what reaches Koa as an error (a throw on the way back up). */
export const watchErrors =
  (errors: unknown[]): Middleware =>
  async (_ctx, next) => {
    try {
      await next();
    } catch (error) {
      errors.push(error);
      throw error;
    }
  };
