/**
 * The body parsers Koa apps mount, loaded without their type declarations: each declares
 * `rawBody: string` on Koa's `Request` for the whole program, which would clash with the
 * adapter's own `rawBody: Buffer` (see `RawBodyRequest`), as it would in an app's types.
 */
import { createRequire } from "node:module";
import type { Middleware } from "koa";

const require = createRequire(import.meta.url);

/** `@koa/bodyparser`: skips a request with `ctx.request.body` or `ctx.disableBodyParser` set. */
export const koaBodyParser = (require("@koa/bodyparser") as { bodyParser: () => Middleware }).bodyParser;

/** `koa-bodyparser`, its predecessor, which skips the same requests. */
export const legacyBodyParser = require("koa-bodyparser") as () => Middleware;

/** `koa-body`: reads every request its types cover, whatever read it before. */
export const koaBody = (require("koa-body") as { koaBody: (options?: { includeUnparsed?: boolean }) => Middleware })
  .koaBody;
