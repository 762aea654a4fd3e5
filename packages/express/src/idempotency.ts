/**
 * `idempotency(options)`: the engine's `begin` → `finish` / `abort` around an Express route.
 * Every decision is the engine's; this file translates the request, writes the engine's
 * answers, and captures the route's response for `finish`.
 */

import {
  createIdempotency,
  type HttpResponse,
  type IdempotencyOptions,
  type IdempotencyRequest,
  type ProblemDetails,
  problemResponse,
  type RawBody,
  WebhookVerificationError,
} from "@interlock/core";
import type { Request, RequestHandler, Response } from "express";
import { bodyBytes, holdResponse, responseHeaders } from "./hold.js";
import { TOO_LARGE } from "./raw-body.js";
import { bodyReader, NOT_RAW, type RequestBody } from "./request-body.js";
import { answer, send } from "./respond.js";

/** The engine's view of a request, with the Express request as its `context`. */
export interface ExpressIdempotencyRequest extends IdempotencyRequest {
  context: Request;
}

/** A refusal from the engine (400, 409, 422, 503) or from reading the body (413, 500), before the route ran. */
export interface IdempotencyRefusal {
  /** What Interlock would send: problem+json. */
  response: HttpResponse;
  problem: ProblemDetails;
}

export interface IdempotencyMiddlewareOptions
  extends Omit<IdempotencyOptions, "principal" | "fingerprint" | "required"> {
  /** Who is calling (API key id, user, tenant): keys are scoped by it. `request.context` is the Express request. */
  principal?: ((request: ExpressIdempotencyRequest) => string | undefined | Promise<string | undefined>) | false;
  /** Replaces the default fingerprint (method, path and raw body); then the raw body is not required. */
  fingerprint?: (request: ExpressIdempotencyRequest) => string | Promise<string>;
  required?: boolean | ((request: ExpressIdempotencyRequest) => boolean);
  /** The route a key is scoped to. Default: `req.baseUrl` + the matched route pattern, else + `req.path`. */
  route?: (req: Request) => string;
  /** Largest request body read here, in bytes (default 100 KiB, Express's parser default); past it, 413. */
  maxBodyBytes?: number;
  /**
   * Takes over the answer to a refusal (replays always go out as stored). Send your own with
   * `res`, or return without responding to let `refusal.response` go out. Throwing passes the
   * error to `next`.
   */
  onError?: (refusal: IdempotencyRefusal, req: Request, res: Response) => void | Promise<void>;
}

const DEFAULT_MAX_BODY_BYTES = 100 * 1024;

const NOT_RAW_ADVICE =
  "a body parser read the request before idempotency() ran, so the bytes to fingerprint are gone: " +
  "pass the parser the verify hook, e.g. express.json({ verify: captureRawBody }), or mount idempotency() first";

// Not bytes: core refuses it with `body_not_raw`, but only when it needs the fingerprint (a
// covered request with a key), so requests the engine lets through are not refused for it.
const UNREADABLE = Object.freeze({}) as unknown as RawBody;

function defaultRoute(req: Request): string {
  const pattern: unknown = req.route?.path;
  return req.baseUrl + (pattern === undefined ? req.path : String(pattern));
}

function refusal(response: HttpResponse): IdempotencyRefusal {
  return { response, problem: JSON.parse(Buffer.from(response.body).toString("utf8")) as ProblemDetails };
}

export function idempotency(options: IdempotencyMiddlewareOptions): RequestHandler {
  const { route = defaultRoute, maxBodyBytes = DEFAULT_MAX_BODY_BYTES, onError, ...engineOptions } = options;
  // Sound: every request handed to the engine below carries the Express request as `context`.
  const engine = createIdempotency(engineOptions as IdempotencyOptions);
  const readBody = bodyReader(maxBodyBytes);

  const refuse = (req: Request, res: Response, response: HttpResponse) =>
    answer(res, response, onError && (() => onError(refusal(response), req, res)));

  function translate(req: Request, body: RequestBody): ExpressIdempotencyRequest {
    const raw = body === NOT_RAW ? (options.fingerprint ? undefined : UNREADABLE) : (body as Buffer | undefined);
    return {
      method: req.method,
      route: route(req),
      path: req.originalUrl,
      headers: req.headers,
      body: raw,
      context: req,
    };
  }

  /** Resolves true when the route should run. */
  async function begin(req: Request, res: Response): Promise<boolean> {
    const body = await readBody(req, res);
    if (body === TOO_LARGE) {
      const error = new WebhookVerificationError("body_too_large", `body exceeds ${maxBodyBytes} bytes`, "idempotency");
      await refuse(req, res, problemResponse(error));
      return false;
    }
    const decision = await engine.begin(translate(req, body)).catch((error: unknown) => {
      if (!(error instanceof WebhookVerificationError) || error.code !== "body_not_raw") throw error;
      return { action: "unreadable" as const };
    });
    switch (decision.action) {
      case "pass":
        return true;
      case "unreadable":
        await refuse(
          req,
          res,
          problemResponse(new WebhookVerificationError("body_not_raw", NOT_RAW_ADVICE, "idempotency")),
        );
        return false;
      case "respond":
        if (decision.replayed) send(res, decision.response);
        else await refuse(req, res, decision.response);
        return false;
      case "execute": {
        const { ticket } = decision;
        holdResponse(res, (first) =>
          engine.finish(ticket, { status: res.statusCode, headers: responseHeaders(res), body: bodyBytes(first) }),
        );
        return true;
      }
    }
  }

  return function interlockIdempotency(req, res, next) {
    begin(req, res).then((run) => run && next(), next);
  };
}
