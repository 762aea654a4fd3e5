/**
 * The `interlock` plugin: register it at the root, then protect a route by naming its hook sets in
 * `config.interlock`. The plugin merges them with the route's own hooks (webhooks before
 * them, idempotency after) and declares `request.webhook` so every request keeps one shape.
 */

import { subscribe } from "node:diagnostics_channel";
import { InterlockConfigError, problemResponse, type VerifiedWebhook } from "@interlock/core";
import type { FastifyInstance, FastifyPluginCallback, FastifyReply, FastifyRequest, RouteOptions } from "fastify";
import { fastifyPlugin } from "fastify-plugin";
import { addWebhookBodyFallback, kTakesBodyRaw } from "./body-fallback.js";
import { errorAnswerOf, HOOK_NAMES, type InterlockHooks, placementOf, setOfHook } from "./hooks.js";
import { kIdempotentRun } from "./idempotency.js";
import { kRawBody } from "./raw-body.js";
import { sendResponse } from "./respond.js";
import { answerRouteErrors } from "./route-errors.js";
import { kWebhookClaim } from "./webhook.js";

/**
 * This declaration view's key in `InterlockVerifiedWebhookTypes`: the package ships its
 * declarations twice (index.d.ts, index.d.cts), and each view's `declare const` is a symbol of its own.
 */
declare const thisView: unique symbol;

/** The intersection of the union's members: a value of every one of them. */
type EveryOf<U> = (U extends unknown ? (member: U) => void : never) extends (all: infer I) => void ? I : never;

declare global {
  /**
   * Core's `VerifiedWebhook` as each declaration view of an adapter in the program names it. A
   * TypeScript program can see both the ESM and the CommonJS declarations of core and of an
   * adapter (`.mts` and `.cts` files in one project), and a class with private fields is then
   * two types. One property of Fastify's naming either would be declared twice with two types (a
   * compile error), so each view adds its own key here, and `request.webhook` is a delivery of
   * every view's type: exactly core's `VerifiedWebhook` where there is one view, as in most programs.
   */
  interface InterlockVerifiedWebhookTypes {
    [thisView]: VerifiedWebhook;
  }
}

declare module "fastify" {
  interface FastifyRequest {
    /**
     * The verified delivery, on routes protected by `webhook()`; null on every other route (the
     * plugin declares it on every request). A webhook route's handler, and its own preHandler
     * hooks, only ever run with it set: read it there as `request.webhook!`. Core's `VerifiedWebhook`.
     */
    webhook: EveryOf<InterlockVerifiedWebhookTypes[keyof InterlockVerifiedWebhookTypes]> | null;
  }
  interface FastifyContextConfig {
    /** Interlock hook sets for this route: `webhook(…)`, `idempotency(…)`, or both. */
    interlock?: InterlockHooks | readonly InterlockHooks[];
  }
}

type Hook = NonNullable<RouteOptions["preHandler"]>;

const asList = (hooks: Hook | undefined): unknown[] =>
  hooks === undefined ? [] : Array.isArray(hooks) ? [...hooks] : [hooks];

/**
 * Adds one set's hooks to a route's, keeping the route's own, and never twice: a plugin
 * registered twice (in one scope, or at the root and again in a child) runs its onRoute hook
 * twice for the same route, and a set attached twice claims a key or delivery in its first
 * preHandler, finds it in flight in its second (409), and its first onSend then settles the
 * claim with that 409: stored as the key's answer, or a delivery refused on every retry.
 */
function applyHooks(route: RouteOptions, hooks: InterlockHooks): void {
  const first = placementOf(hooks) === "first";
  const target = route as unknown as Record<string, unknown>;
  for (const name of HOOK_NAMES) {
    const own = asList(target[name] as Hook | undefined);
    if (own.includes(hooks[name])) continue;
    target[name] = first ? [hooks[name], ...own] : [...own, hooks[name]];
  }
  if (hooks.bodyLimit !== undefined) route.bodyLimit ??= hooks.bodyLimit;
  answerErrorsOf(route, hooks);
}

/** A set that answers errors of its route (`webhook()`'s) gets the route's error handler to ask it first. */
function answerErrorsOf(route: RouteOptions, hooks: InterlockHooks): void {
  const answer = errorAnswerOf(hooks);
  if (answer !== undefined) answerRouteErrors(route, answer);
}

const plugin: FastifyPluginCallback = (fastify, _options, done) => {
  // Declared up front so requests keep one shape (Fastify's advice for decorations).
  for (const name of ["webhook", kRawBody, kWebhookClaim, kIdempotentRun, kTakesBodyRaw] as const) {
    if (!fastify.hasRequestDecorator(name)) fastify.decorateRequest(name, null);
  }
  addWebhookBodyFallback(fastify);
  fastify.addHook("onRoute", (route) => {
    const sets = route.config?.interlock;
    if (sets === undefined) return;
    for (const hooks of Array.isArray(sets) ? sets : [sets]) applyHooks(route, hooks as InterlockHooks);
    // Attached: the check `checkEveryRoute` gave the route is no longer needed (whichever copy of the package gave it).
    const onRequest = asList(route.onRequest as Hook | undefined).filter((hook) => !isUnattachedCheck(hook));
    (route as unknown as Record<string, unknown>).onRequest = onRequest.length > 0 ? onRequest : undefined;
    // Marked on a copy: the app's own config object may be shared with a route out of reach.
    route.config = { ...route.config, [kAttached]: true } as NonNullable<RouteOptions["config"]>;
  });
  guardRoutesOutOfReach(fastify);
  done();
};

/** The root instances whose routes are all guarded, or all within the plugin's reach. */
const guardedRoots = new WeakSet<FastifyInstance>();

/**
 * A route that names Interlock hooks but never passed this plugin's onRoute hook would run
 * unprotected (any forged delivery accepted): one declared before the registration, or in a
 * scope the registration does not reach (fastify-plugin applies the onRoute hook to the scope
 * registering the plugin and to the scopes it creates later; a parent or a sibling never gets
 * it). Such routes are refused by an onRequest check on the root: Fastify adds a root's
 * lifecycle hooks to every scope, those created before included, and gives a route its hooks
 * only once the app is ready, so the check reaches every route however it was declared. It is
 * added once per app, and not at all when the plugin is registered at the root before any
 * route: then every route passes the onRoute hook (an app that registers first pays nothing).
 */
function guardRoutesOutOfReach(fastify: FastifyInstance): void {
  const root = rootOf(fastify);
  if (guardedRoots.has(root)) return;
  guardedRoots.add(root);
  if (fastify === root && !declaresRoutes(root)) return;
  root.addHook("onRequest", refuseUnattached);
}

/**
 * The app's root instance. Fastify makes each encapsulated scope with `Object.create(parent)`,
 * so the scopes above this one are its prototypes that share its server.
 */
function rootOf(fastify: FastifyInstance): FastifyInstance {
  let root = fastify;
  for (let up = Object.getPrototypeOf(root); isScopeOf(up, fastify); up = Object.getPrototypeOf(up)) root = up;
  return root;
}

function isScopeOf(candidate: unknown, fastify: FastifyInstance): candidate is FastifyInstance {
  return (
    typeof candidate === "object" &&
    candidate !== null &&
    typeof (candidate as FastifyInstance).addHook === "function" &&
    (candidate as FastifyInstance).server === fastify.server
  );
}

/** A route's mark that its sets were attached: global, so the check of every copy of the package reads any copy's mark. */
const kAttached = Symbol.for("@interlock/fastify.attached");

interface Attachable {
  interlock?: unknown;
  [kAttached]?: true;
}

/** Whether any route was declared before now (Fastify prints an empty router as "(empty tree)"). */
function declaresRoutes(fastify: FastifyInstance): boolean {
  return !fastify.printRoutes().includes("(empty tree)");
}

const UNATTACHED =
  "this route names Interlock hooks in config.interlock but the interlock plugin never attached them, so they never ran: " +
  "it was declared before `await app.register(interlock)`, or in a scope that registration does not reach " +
  "(a parent or sibling of the plugin that registered it): register the plugin at the root before declaring routes";

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

/**
 * Marks the check as the one of every copy of the package (one function per copy): the plugin
 * of either copy removes the check of either, and a route gets one check however many copies
 * give it.
 */
const kUnattachedCheck = Symbol.for("@interlock/fastify.unattachedCheck");
Object.defineProperty(refuseUnattached, kUnattachedCheck, { value: true });

const isUnattachedCheck = (hook: unknown): boolean =>
  typeof hook === "function" && (hook as { [kUnattachedCheck]?: true })[kUnattachedCheck] === true;

/**
 * Every Fastify app made after this module loaded checks its routes as they are declared, with
 * or without the plugin: a route naming hook sets in `config.interlock` gets a check that fails
 * closed until the plugin attaches them (the plugin removes it then, so a protected route pays
 * nothing), which covers an app that never registered the plugin; a near miss of the key
 * (`config.interLock`) and a spread set missing one of its hooks (the route's own `preHandler`
 * written after the spread replaces Interlock's) are refused when the route is declared.
 */
function checkEveryRoute(fastify: FastifyInstance): void {
  fastify.addHook("onRoute", (route) => {
    const config = route.config as Record<string, unknown> | undefined;
    for (const key of Object.keys(config ?? {})) {
      if (key !== "interlock" && key.toLowerCase() === "interlock")
        throw new InterlockConfigError(`${describeRoute(route)}: config.${key} is not read: name it config.interlock`);
    }
    refuseIncompleteSets(route);
    // A set spread into the route's options: its errors are answered as when the plugin attaches it.
    for (const hook of asList(route.preHandler as Hook | undefined)) {
      const set = setOfHook(hook);
      if (set !== undefined) answerErrorsOf(route, set);
    }
    if (config?.interlock === undefined) return;
    const onRequest = asList(route.onRequest as Hook | undefined);
    // Both builds loaded: each copy subscribes and runs this hook, and the first gave the check.
    if (onRequest.some(isUnattachedCheck)) return;
    (route as unknown as Record<string, unknown>).onRequest = [refuseUnattached, ...onRequest];
  });
}

const describeRoute = (route: RouteOptions) =>
  `${Array.isArray(route.method) ? route.method.join(",") : route.method} ${route.url}`;

/**
 * A hook set spread into a route's options without its `preHandler`, where deliveries are
 * verified and keys claimed: the route's own `preHandler`, written after the spread, replaced
 * it, and the route would run unprotected. (A set without its `preParsing` is answered at
 * request time, and is of use with a `fingerprint` of the app's own: see the README.)
 */
function refuseIncompleteSets(route: RouteOptions): void {
  const target = route as unknown as Record<string, unknown>;
  const preHandlers = asList(route.preHandler as Hook | undefined);
  for (const name of HOOK_NAMES)
    for (const hook of asList(target[name] as Hook | undefined)) {
      const set = setOfHook(hook);
      if (set === undefined || preHandlers.includes(set.preHandler)) continue;
      throw new InterlockConfigError(
        `${describeRoute(route)}: Interlock's preHandler is missing from the route's options, so nothing verifies or claims ` +
          "(a preHandler of the route's own, written after the spread, replaces it): pass both as a list, " +
          "preHandler: [hooks.preHandler, yours], or name the set in config.interlock",
      );
    }
}

subscribe("fastify.initialization", (message) => {
  const fastify = (message as { fastify?: FastifyInstance }).fastify;
  if (typeof fastify?.addHook === "function") checkEveryRoute(fastify);
});

/**
 * Register at the root (`await app.register(interlock)`) before the routes that name Interlock
 * hooks in `config.interlock`. Registering it again (in one scope, or in a child) is harmless.
 */
export const interlock = fastifyPlugin(plugin, { fastify: "5.x", name: "@interlock/fastify" });
