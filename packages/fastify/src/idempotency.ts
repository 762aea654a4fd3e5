/**
 * `idempotency(options)`: the `Idempotency-Key` engine around a Fastify route. The raw body
 * is captured in `preParsing` (for the fingerprint), the key is claimed in `preHandler`, the
 * handler's response is captured and stored as it is sent (`onSend`), and a handler that
 * throws releases the key (`onError`). Refusals and replays are answered before the handler.
 */

import {
  BodyError,
  type CapturedResponse,
  createIdempotency,
  type IdempotencyDecision,
  type IdempotencyOptions,
  type IdempotencyRequest,
  type IdempotencyTicket,
  problemResponse,
} from "@interlock/core";
import type { FastifyReply, FastifyRequest } from "fastify";
import { payloadBody, recordHijackedWrites } from "./capture.js";
import { hookSet, type InterlockHooks } from "./hooks.js";
import { captureRawBody, type RawBodyRefusal, rawBodyOf } from "./raw-body.js";
import { answer, type TakeOver } from "./respond.js";

/** The engine's view of a Fastify request; `context` is the Fastify request itself. */
export interface FastifyIdempotencyRequest extends IdempotencyRequest {
  context: FastifyRequest;
}

/** A refusal (problem+json, with its typed `error`) or a replay, answered without running the handler. */
export type IdempotencyRespondDecision = Extract<IdempotencyDecision, { action: "respond" }>;

/**
 * Core's engine options, with `principal`, `fingerprint` and `required` given the Fastify
 * request as `request.context`, plus `route` and `onError`. The raw body read for the
 * fingerprint is bounded by the route's own `bodyLimit` (Fastify's default 1 MiB): past it,
 * 413 `body_too_large`.
 */
export interface FastifyIdempotencyOptions extends Omit<IdempotencyOptions, "principal" | "fingerprint" | "required"> {
  /**
   * Who is calling (API key id, user, tenant): keys are scoped by it. `request.context` is the
   * Fastify request, after the route's own hooks ran (so `request.context.user` is there).
   * `false` declares a deliberately shared key space.
   */
  principal?: ((request: FastifyIdempotencyRequest) => string | undefined | Promise<string | undefined>) | false;
  /** Replaces the default fingerprint (hash of method, path with query, and raw body). */
  fingerprint?: (request: FastifyIdempotencyRequest) => string | Promise<string>;
  /** Refuse covered requests without a key (400). Default false. */
  required?: boolean | ((request: FastifyIdempotencyRequest) => boolean);
  /** The route part of a key's scope. Default the matched route pattern (`/payments/:id`). */
  route?: (request: FastifyRequest) => string;
  /**
   * Answer refusals yourself (replays are always sent as stored): send through `reply` and
   * return it. Return nothing to send `decision.response`.
   */
  onError?: TakeOver<IdempotencyRespondDecision>;
}

export const kIdempotentRun = Symbol("interlock.idempotentRun");

/** A claimed key, and how to read the handler's response if it bypasses onSend. */
interface Run {
  ticket: IdempotencyTicket;
  hijacked: () => CapturedResponse;
}

interface WithRun {
  [kIdempotentRun]?: Run | null;
}

/** Takes the request's unsettled run: each key is finished or aborted once. */
function takeRun(request: FastifyRequest): Run | undefined {
  const run = (request as WithRun)[kIdempotentRun] ?? undefined;
  if (run) (request as WithRun)[kIdempotentRun] = null;
  return run;
}

const defaultRoute = (request: FastifyRequest) => request.routeOptions.url ?? request.url.split("?", 1)[0] ?? "/";

const CONSUMED =
  "the request body was read before Interlock's preParsing hook, so the bytes to fingerprint are gone: " +
  "remove the hook or plugin that consumes the payload, or register it after Interlock";

const NOT_CAPTURED =
  "Interlock's preParsing hook did not run for this route, so the request body was never captured: " +
  "register the route with `config: { interlock: idempotency(…) }` or spread all of idempotency(…)'s hooks into its options";

/** A refusal this adapter makes itself, shaped like the engine's own. */
function refusal(error: BodyError): IdempotencyRespondDecision {
  return { action: "respond", response: problemResponse(error), replayed: false, error };
}

// Core reads the body only when the default fingerprint needs it (a covered request with a
// key): requests the engine passes through are not refused for a body that was never captured.
const notCaptured = () => {
  throw new BodyError("body_not_raw", NOT_CAPTURED);
};

export function idempotency(options: FastifyIdempotencyOptions): InterlockHooks {
  const { route = defaultRoute, onError, ...engineOptions } = options;
  // Sound: every request the engine is given carries the Fastify request as its context.
  const engine = createIdempotency(engineOptions as IdempotencyOptions);
  const recordLimit = engine.options.store.maxRecordBytes;

  const respond = (decision: IdempotencyRespondDecision, request: FastifyRequest, reply: FastifyReply) =>
    answer(decision, request, reply, decision.replayed ? undefined : onError);

  const refuseRaw: RawBodyRefusal = (problem, limit, request, reply) => {
    const error =
      problem === "too_large"
        ? new BodyError("body_too_large", `body exceeds the route's bodyLimit of ${limit} bytes`)
        : new BodyError("body_not_raw", CONSUMED);
    respond(refusal(error), request, reply);
  };

  return hookSet("last", {
    preParsing: captureRawBody((request) => request.routeOptions.bodyLimit, refuseRaw),

    preHandler(request, reply, done) {
      const neutral: FastifyIdempotencyRequest = {
        method: request.method,
        route: route(request),
        path: request.url,
        headers: request.headers,
        body: rawBodyOf(request) ?? notCaptured,
        context: request,
      };
      engine.begin(neutral).then((decision) => {
        if (decision.action === "respond") return respond(decision, request, reply);
        if (decision.action === "execute") {
          const run: Run = { ticket: decision.ticket, hijacked: recordHijackedWrites(reply, recordLimit) };
          (request as WithRun)[kIdempotentRun] = run;
        }
        done();
      }, done);
    },

    // Stored before the answer goes out, so a client retrying at once gets the replay, not a 409.
    onSend(request, reply, payload, done) {
      const run = takeRun(request);
      if (!run) return done(null, payload);
      const captured = { status: reply.statusCode, headers: reply.getHeaders(), body: payloadBody(payload) };
      engine.finish(run.ticket, captured).then(() => done(null, payload), done);
    },

    // A hijacked reply never passes onSend: store what it wrote once it has finished.
    onResponse(request, _reply, done) {
      const run = takeRun(request);
      if (!run) return done();
      engine.finish(run.ticket, run.hijacked()).then(() => done(), done);
    },

    // The handler threw: release the key so a retry runs again, then Fastify's error handling answers.
    onError(request, _reply, _error, done) {
      const run = takeRun(request);
      if (!run) return done();
      engine.abort(run.ticket).then(() => done(), done);
    },
  });
}
