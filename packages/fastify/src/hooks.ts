/** The shape `webhook()` and `idempotency()` return: Fastify route options made of hooks. */

import type {
  FastifyReply,
  FastifyRequest,
  onErrorHookHandler,
  onSendHookHandler,
  preHandlerHookHandler,
  preParsingHookHandler,
} from "fastify";

/**
 * Route-level hooks: spread them into a route's options (`app.post(path, webhook(…), handler)`),
 * or list them in `config.interlock` once the `interlock` plugin is registered, which merges
 * them with the route's own hooks.
 */
export interface InterlockHooks {
  /** Webhooks only: lets the route's parsers accept what the verifier accepts. */
  readonly bodyLimit?: number;
  /** Keeps the raw bytes and hands Fastify's parsers the same bytes. */
  readonly preParsing: preParsingHookHandler;
  /** Asks core what to do: run the handler, or answer (refusal, duplicate, replay, 409, 503). */
  readonly preHandler: preHandlerHookHandler;
  /**
   * Settles with the store before the answer goes out. (A reply that never passes `onSend`, a
   * hijacked one, is settled as its response finishes: see `settleWhenFinished`.)
   */
  readonly onSend: onSendHookHandler;
  /** Releases the delivery or key when the handler throws. */
  readonly onError: onErrorHookHandler;
}

/** The hook names an `InterlockHooks` set fills, in lifecycle order. */
export const HOOK_NAMES = ["preParsing", "preHandler", "onSend", "onError"] as const;

/**
 * Where the plugin puts a set among the route's own hooks. Webhooks run first, so the route's
 * hooks see only verified deliveries; idempotency runs last, after the route's own hooks
 * (authentication) have established the principal.
 */
export type Placement = "first" | "last";

/**
 * A set's answer to an error of its route, before the app's error handler sees it (`webhook()`'s:
 * a delivery Fastify's JSON parser refused before it was verified): undefined when the error is
 * not the set's to answer, else a promise of whether it answered (false: the error goes on).
 */
export type ErrorAnswer = (
  error: unknown,
  request: FastifyRequest,
  reply: FastifyReply,
) => Promise<boolean> | undefined;

interface HookRegistry {
  readonly placements: WeakMap<InterlockHooks, Placement>;
  /** Each hook function of a set, back to its set: to tell a set spread into a route whole from one cut short. */
  readonly sets: WeakMap<object, InterlockHooks>;
  /** The sets that answer errors of their routes, and how. */
  errorAnswers: WeakMap<InterlockHooks, ErrorAnswer>;
}

const REGISTRY = Symbol.for("@interlock/fastify.hookRegistry");

/**
 * One registry for every copy of the package in the process, on `globalThis`: an app may load
 * both builds (an ESM app with a CommonJS dependency that requires the package, or the reverse),
 * make its sets with one copy and register the plugin of the other, which must still know where
 * each set goes (a webhook set placed last would run after the route's own hooks, which would
 * then see unverified deliveries) and recognise its hooks. Made by the first copy loaded.
 */
const inProcess = globalThis as { [REGISTRY]?: HookRegistry };
inProcess[REGISTRY] ??= { placements: new WeakMap(), sets: new WeakMap(), errorAnswers: new WeakMap() };
const registry = inProcess[REGISTRY];
// A registry an older copy of the package made has no such map yet.
registry.errorAnswers ??= new WeakMap();

export function hookSet(placement: Placement, hooks: InterlockHooks, errorAnswer?: ErrorAnswer): InterlockHooks {
  registry.placements.set(hooks, placement);
  if (errorAnswer !== undefined) registry.errorAnswers.set(hooks, errorAnswer);
  for (const name of HOOK_NAMES) registry.sets.set(hooks[name], hooks);
  return hooks;
}

/** The set a route hook belongs to, if it is one of Interlock's. */
export function setOfHook(hook: unknown): InterlockHooks | undefined {
  return typeof hook === "function" ? registry.sets.get(hook) : undefined;
}

export function placementOf(hooks: InterlockHooks): Placement {
  return registry.placements.get(hooks) ?? "last";
}

/** How a set answers errors of its route before the app's error handler (see `routeErrorHandler`). */
export function errorAnswerOf(hooks: InterlockHooks): ErrorAnswer | undefined {
  return registry.errorAnswers.get(hooks);
}
