/**
 * `idempotency(options)`: the `Idempotency-Key` engine around a Fastify route. A request the
 * engine refuses from its headers alone is answered in `preParsing`, before Fastify's parsers
 * can answer it with an error of their own; otherwise the raw body is kept there (for a request
 * with a key: no other is ever read for the engine), the key is claimed in `preHandler` (where
 * the engine takes the body only if the fingerprint needs it), the handler's response is
 * captured and stored as it is sent (`onSend`; a stream, not stored, releases the key once it
 * is over: `settleAtEnd`; a hijacked reply as its response finishes: `settleWhenFinished`), and
 * a handler that throws releases the key (`onError`, or Fastify's diagnostics channel for a
 * hijacked reply). Refusals and replays are
 * answered before the handler.
 */

import {
  assertOptionNames,
  BodyError,
  bodyLimitOption,
  createIdempotency,
  DEFAULT_REQUEST_BODY_LIMIT,
  IDEMPOTENCY_OPTION_NAMES,
  type IdempotencyErrorDecision,
  type IdempotencyOptions,
  type IdempotencyRequest,
  type IdempotencyRespondDecision,
  type IdempotencyTicket,
  isWebResponse,
  optionNames,
  recordResponse,
} from "@interlock/core";
import type { FastifyReply, FastifyRequest } from "fastify";
import {
  hasPending,
  holdUntilSettled,
  payloadBody,
  pendingOf,
  type Settling,
  sentHeaders,
  settleAtEnd,
  takePending,
} from "./capture.js";
import { listenForHandlerThrows } from "./handler-throw.js";
import { hookSet, type InterlockHooks } from "./hooks.js";
import { captureRawBody, rawBodyOf, whenKept } from "./raw-body.js";
import { answer, type TakeOver } from "./respond.js";

/** The engine's view of a Fastify request; `context` is the Fastify request itself. */
export interface FastifyIdempotencyRequest extends IdempotencyRequest {
  context: FastifyRequest;
}

/**
 * Core's engine options, with `principal`, `fingerprint` and `required` given the Fastify
 * request as `request.context` (after the route's own hooks ran, so `request.context.user`
 * is there), plus the adapter's own.
 */
export interface FastifyIdempotencyOptions extends IdempotencyOptions<FastifyIdempotencyRequest> {
  /**
   * The route part of a key's scope, also named in events (OpenTelemetry's `http.route`): return
   * a pattern, not the path. Default the matched route pattern (`/payments/:id`).
   */
  route?: (request: FastifyRequest) => string;
  /**
   * Largest request body kept for the fingerprint, in bytes; a larger one is answered 413
   * `body_too_large` when the fingerprint needs it. Default `DEFAULT_REQUEST_BODY_LIMIT`
   * (1 MiB). The route's own `bodyLimit` still bounds what Fastify's parsers accept.
   */
  bodyLimit?: number;
  /**
   * Answer refusals yourself (replays are always sent as stored): core's decision, with the
   * typed error as `decision.error`. Send through `reply` and return it; return nothing to
   * send `decision.response`.
   */
  onError?: TakeOver<IdempotencyErrorDecision>;
}

export const kIdempotentRun = Symbol("interlock.idempotentRun");

/** Takes the request's unsettled run: each key is finished or aborted once. */
const takeRun = (request: FastifyRequest) => takePending<IdempotencyTicket>(request, kIdempotentRun);

/** The route pattern of a request Fastify matched to no route: none. */
const NO_PATTERN = () => undefined;

/** The matched route's pattern: undefined only where Fastify matched no route. */
const matchedPattern = (request: FastifyRequest): string | undefined => request.routeOptions.url;

const defaultRoute = (request: FastifyRequest) => matchedPattern(request) ?? request.url.split("?", 1)[0] ?? "/";

const CONSUMED =
  "the request body was read before Interlock's preParsing hook, so the bytes to fingerprint are gone: " +
  "remove the hook or plugin that consumes the payload, or register it after Interlock";

const NOT_CAPTURED =
  "Interlock's preParsing hook did not run for this route, so the request body was never captured: " +
  "register the route with `config: { interlock: idempotency(…) }` or spread all of idempotency(…)'s hooks into its options";

/** The kept bytes, for the engine; core answers the `BodyError` returned when there are none. */
function keptBody(request: FastifyRequest): Buffer | BodyError {
  return rawBodyOf(request) ?? new BodyError("body_not_raw", NOT_CAPTURED);
}

/** The options this adapter takes beyond core's. */
const OWN_OPTION_NAMES = optionNames<Omit<FastifyIdempotencyOptions, keyof IdempotencyOptions>>({
  route: true,
  bodyLimit: true,
  onError: true,
});

/**
 * Route hooks that make a route safe to retry with an `Idempotency-Key`: attach them with
 * `config: { interlock: … }` (plugin registered) or spread them into the route's options.
 */
export function idempotency(options: FastifyIdempotencyOptions): InterlockHooks {
  assertOptionNames("idempotency()", options, IDEMPOTENCY_OPTION_NAMES, OWN_OPTION_NAMES);
  const { route = defaultRoute, bodyLimit, onError, ...engineOptions } = options;
  const limit = bodyLimitOption(bodyLimit, DEFAULT_REQUEST_BODY_LIMIT);
  const engine = createIdempotency(engineOptions);
  const recordLimit = engine.options.store.maxRecordBytes;
  listenForHandlerThrows();
  /**
   * The engine's view of the request. The app's own `route` is its pattern, and so is the
   * default one where Fastify matched a route; events name none where it matched none. The kept
   * bytes are handed over as they are; otherwise (not kept yet, or a `BodyError` kept in their
   * place) a reader the engine calls only if it needs the body.
   */
  function neutralOf(request: FastifyRequest): FastifyIdempotencyRequest {
    const routed = options.route !== undefined || matchedPattern(request) !== undefined;
    const kept = rawBodyOf(request);
    return {
      method: request.method,
      route: route(request),
      routePattern: routed ? undefined : NO_PATTERN,
      path: request.url,
      headers: request.headers,
      body: kept instanceof Uint8Array ? kept : () => keptBody(request),
      context: request,
    };
  }

  /** Answers the engine's decision without the handler: a replay goes out as stored, a refusal through `onError`. */
  function respond(decision: IdempotencyRespondDecision, request: FastifyRequest, reply: FastifyReply): void {
    if (decision.replayed) answer(decision, request, reply, undefined);
    else answer(decision, request, reply, onError);
  }

  /** Stores what a hijacked reply wrote: once it has finished, or once the client left and it ended. */
  async function finishHijacked(request: FastifyRequest): Promise<void> {
    const run = takeRun(request);
    if (run) await engine.finish(run.ticket, run.hijacked());
  }

  /** The handler threw: releases the key so a retry runs again. */
  async function abortRun(request: FastifyRequest): Promise<void> {
    const run = takeRun(request);
    if (run) await engine.abort(run.ticket);
  }

  const capture = captureRawBody({
    limitOf: (request) => Math.min(limit, request.routeOptions.bodyLimit),
    consumed: CONSUMED,
    // A payload already read (Fastify could not parse it either): refused now, reported by the engine.
    refuse: (error, request, reply) => answer(engine.refuse(neutralOf(request), error), request, reply, onError),
    report: (error, request) => void engine.refuse(neutralOf(request), error),
    // Past the limit: refused (413) only if the engine asks for the body.
    tooLarge: "defer",
    // A request without a key is passed or refused unread: its payload goes to Fastify as sent.
    wanted: (request) => engine.mayReadBody(request),
    decode: true,
  });

  const settling: Settling = {
    slot: kIdempotentRun,
    recordLimit,
    settle: finishHijacked,
    release: abortRun,
    // The client left: what the hijacked reply wrote is stored as it stands.
    cutOff: (request) => void finishHijacked(request),
    stopRenewal: (request) => {
      const run = pendingOf<IdempotencyTicket>(request, kIdempotentRun);
      if (run) engine.cutOff(run.ticket);
    },
  };

  /** Claims the key (the engine reads the kept body if the fingerprint needs it); the route runs (`done()`) unless answered. */
  function claim(request: FastifyRequest, reply: FastifyReply, done: (error?: Error) => void): void {
    engine.begin(neutralOf(request)).then((decision) => {
      if (decision.action === "respond") return respond(decision, request, reply);
      if (decision.action === "execute") holdUntilSettled(request, reply, decision.ticket, settling);
      done();
    }, done);
  }

  return hookSet("last", {
    preParsing(request, reply, payload, done) {
      // Left to preHandler, the refusal would come after Fastify's parsers, whose own errors (415
      // for a type none parses, 400 for an empty JSON body) would answer first.
      if (!engine.refusesUnread(request)) return capture(request, reply, payload, done);
      // Refused before the body is read or a key claimed; a method the engine does not cover passes.
      engine.begin(neutralOf(request)).then((decision) => {
        if (decision.action === "respond") return respond(decision, request, reply);
        capture(request, reply, payload, done);
      }, done);
    },

    preHandler(request, reply, done) {
      whenKept(request, () => claim(request, reply, done));
    },

    // Stored before the answer goes out, so a client retrying at once gets the replay, not a 409.
    onSend(request, reply, payload, done) {
      const run = takeRun(request);
      if (!run) return done(null, payload);
      if (isWebResponse(payload)) {
        // Its body is recorded as Fastify sends it (never read ahead: a slow client holds it back).
        const recording = recordResponse(payload, {
          headers: () => sentHeaders(reply, payload),
          limit: recordLimit,
          bodyless: false, // Fastify reads a HEAD answer's stream too
          finish: (captured) => engine.finish(run.ticket, captured),
          abort: () => engine.abort(run.ticket),
        });
        recording.then((recorded) => done(null, recorded.response), done);
        return;
      }
      const body = payloadBody(payload);
      const captured = { status: reply.statusCode, headers: reply.getHeaders(), body };
      if (body === undefined) {
        // A stream: passed through uncached, the key released (as streamed) once it is over, not
        // before: a retry while it is still produced is refused (409), not run beside it.
        settleAtEnd(reply.raw, () => engine.finish(run.ticket, captured));
        return done(null, payload);
      }
      // Bytes go out as the copy stored (see payloadBody); anything else as it came.
      const sent = body instanceof Uint8Array ? body : payload;
      engine.finish(run.ticket, captured).then(() => done(null, sent), done);
    },

    // The handler threw: release the key, then Fastify's error handling answers. (A hijacked
    // reply's throw reaches no hook: `ends.threw` above.)
    onError(request, _reply, _error, done) {
      if (!hasPending(request, kIdempotentRun)) return done();
      abortRun(request).then(() => done(), done);
    },
  });
}
