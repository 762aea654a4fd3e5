/**
 * The `interlock` plugin: register it once, then protect a route by naming its hook sets in
 * `config.interlock`. The plugin merges them with the route's own hooks (webhooks before
 * them, idempotency after) and declares `request.webhook` so every request keeps one shape.
 */

import { InterlockConfigError, problemResponse, type VerifiedWebhook } from "@interlock/core";
import type { FastifyInstance, FastifyPluginCallback, FastifyReply, FastifyRequest, RouteOptions } from "fastify";
import { fastifyPlugin } from "fastify-plugin";
import { addWebhookFormParser, kTakesFormRaw } from "./form-body.js";
import { HOOK_NAMES, type InterlockHooks, placementOf } from "./hooks.js";
import { kIdempotentRun } from "./idempotency.js";
import { kRawBody } from "./raw-body.js";
import { sendResponse } from "./respond.js";
import { kWebhookClaim } from "./webhook.js";

declare module "fastify" {
  interface FastifyRequest {
    /** The verified delivery, on routes protected by `webhook()` (null elsewhere). */
    webhook: VerifiedWebhook;
  }
  interface FastifyContextConfig {
    /** Interlock hook sets for this route: `webhook(…)`, `idempotency(…)`, or both. */
    interlock?: InterlockHooks | readonly InterlockHooks[];
  }
}

type Hook = NonNullable<RouteOptions["preHandler"]>;

const asList = (hooks: Hook | undefined): unknown[] =>
  hooks === undefined ? [] : Array.isArray(hooks) ? [...hooks] : [hooks];

/** Adds one set's hooks to a route's, keeping the route's own. */
function applyHooks(route: RouteOptions, hooks: InterlockHooks): void {
  const first = placementOf(hooks) === "first";
  const target = route as unknown as Record<string, unknown>;
  for (const name of HOOK_NAMES) {
    const own = asList(target[name] as Hook | undefined);
    target[name] = first ? [hooks[name], ...own] : [...own, hooks[name]];
  }
  if (hooks.bodyLimit !== undefined) route.bodyLimit ??= hooks.bodyLimit;
}

const plugin: FastifyPluginCallback = (fastify, _options, done) => {
  // Declared up front so requests keep one shape (Fastify's advice for decorations).
  for (const name of ["webhook", kRawBody, kWebhookClaim, kIdempotentRun, kTakesFormRaw] as const) {
    if (!fastify.hasRequestDecorator(name)) fastify.decorateRequest(name, null);
  }
  addWebhookFormParser(fastify);
  fastify.addHook("onRoute", (route) => {
    const sets = route.config?.interlock;
    if (sets === undefined) return;
    for (const hooks of Array.isArray(sets) ? sets : [sets]) applyHooks(route, hooks as InterlockHooks);
    (route.config as Attachable)[kAttached] = true;
  });
  // Routes declared before this registration never passed the onRoute hook: one that names
  // Interlock hooks would run unprotected (any forged delivery accepted). When there are
  // routes already, every request is checked; an app that registers first pays nothing.
  if (declaresRoutes(fastify)) fastify.addHook("onRequest", refuseUnattached);
  done();
};

const kAttached = Symbol("interlock.attached");

interface Attachable {
  interlock?: unknown;
  [kAttached]?: true;
}

/** Whether any route was declared before now (Fastify prints an empty router as "(empty tree)"). */
function declaresRoutes(fastify: FastifyInstance): boolean {
  return !fastify.printRoutes().includes("(empty tree)");
}

const UNATTACHED =
  "this route names Interlock hooks in config.interlock but was declared before `await app.register(interlock)`, " +
  "so they never ran: register the plugin before declaring the route";

/** Fails closed: a route whose Interlock hooks were never attached answers 500 rather than run unprotected. */
function refuseUnattached(request: FastifyRequest, reply: FastifyReply, done: () => void): void {
  const config = request.routeOptions.config as Attachable;
  if (config.interlock === undefined || config[kAttached]) {
    done();
    return;
  }
  const error = new InterlockConfigError(`${request.method} ${request.routeOptions.url}: ${UNATTACHED}`);
  request.log.error({ err: error }, error.message);
  sendResponse(reply, problemResponse(error));
}

/** Register once (`await app.register(interlock)`) before the routes that name Interlock hooks in `config.interlock`. */
export const interlock = fastifyPlugin(plugin, { fastify: "5.x", name: "@interlock/fastify" });
