/**
 * The one way to the authorization server: `@interlock/client` with a policy that is safe for
 * OAuth. Reads (discovery, JWKS, UserInfo), client credentials grants and revocations are retried
 * on transient failures; a repeated client credentials grant only issues another token, a
 * repeated revocation changes nothing (RFC 7009 §2.2). Code exchanges and refresh grants are sent
 * once: a refresh token the server already rotated, sent again, looks like theft and revokes the
 * grant. No `Idempotency-Key` is ever added: authorization servers do not read it, and a repeat
 * must stay a plain repeat.
 */

import {
  CircuitOpenError,
  CLIENT_OPTION_NAMES,
  type Client,
  ClientError,
  type ClientOptions,
  createClient,
  type FetchFunction,
  RetryAfterTooLongError,
  RetryLimitError,
  TimeoutError,
} from "@interlock/client";
import {
  assertOptionNames,
  BodyError,
  InterlockConfigError,
  InterlockError,
  optionNames,
  readStreamUpTo,
  timerDelay,
} from "@interlock/core";
import * as oauth from "oauth4webapi";
import { OAuthResponseError } from "./errors.js";

/**
 * How requests to the authorization server are retried: `createClient`'s options, but for the
 * two this package decides itself (which methods are retried, and no `Idempotency-Key`).
 */
export type OAuthRetryOptions = Omit<ClientOptions, "fetch" | "idempotencyKey" | "retryMethods">;

/**
 * `createClient`'s options this package decides itself (the OAuth client's `fetch` underneath,
 * which methods are retried, no `Idempotency-Key`): in `retry` one would be overridden unseen.
 */
const DECIDED_HERE = optionNames<Omit<ClientOptions, keyof OAuthRetryOptions>>({
  fetch: true,
  idempotencyKey: true,
  retryMethods: true,
});

/** The names `retry` takes: every other is refused, one decided here as a misspelt one. */
const RETRY_OPTION_NAMES = CLIENT_OPTION_NAMES.filter((name) => !DECIDED_HERE.includes(name));

export type Transport = (url: string, options: oauth.CustomFetchOptions<string, unknown>) => Promise<Response>;

/**
 * Where a request sent once hands its answer when it stopped waiting for it (its timeout, the
 * caller's abort) after the request had left: the answer, read whole, still to come, and `stop`,
 * which aborts it. Whoever takes it must settle it: call `stop` when done waiting.
 */
type LateAnswerSink = (answer: Promise<Response>, stop: () => void) => void;

/** The init field that carries a request's `LateAnswerSink` through the client to the fetch underneath. */
const LATE_ANSWER = Symbol("interlock.oauth.lateAnswer");

type LateInit = RequestInit & { [LATE_ANSWER]?: LateAnswerSink };

/**
 * `transport`, for one request whose answer matters even after the caller stopped waiting: a
 * refresh grant that timed out may have rotated the refresh token at the server already, and
 * its answer then holds the only copy of the new one. Such a request is not aborted when it
 * times out: the caller is answered (with the timeout) as before, and `sink` is handed the answer
 * still to come. Only requests sent once do this; a retried one is simply sent again.
 */
function keepingLateAnswer(transport: Transport, sink: LateAnswerSink): Transport {
  return (url, options) => transport(url, { ...options, [LATE_ANSWER]: sink } as typeof options);
}

/** The answer to a request sent once that timed out after it was sent, still to come; `stop` aborts it. */
export interface LateAnswer {
  answer: Promise<Response>;
  stop: () => void;
}

/**
 * oauth4webapi's transport options `http`, for one request whose late answer is kept (see
 * `keepingLateAnswer`): `late()` is that answer once the request timed out after it was sent.
 */
export function keptLateAnswer<H extends { [oauth.customFetch]: Transport }>(
  http: H,
): { http: H; late: () => LateAnswer | undefined } {
  let late: LateAnswer | undefined;
  const keeping = keepingLateAnswer(http[oauth.customFetch], (answer, stop) => {
    late = { answer, stop };
  });
  return { http: { ...http, [oauth.customFetch]: keeping }, late: () => late };
}

/**
 * A late answer, waited for `withinMs` more at most (then aborted): one that does not come by
 * then fails as `server_unavailable`. Call `done` once it is used, to end the wait's timer.
 */
export function lateAnswerWithin(
  late: LateAnswer,
  withinMs: number,
  request: string,
): { answer: Promise<Response>; done: () => void } {
  const timer = Number.isFinite(withinMs) ? setTimeout(late.stop, timerDelay(withinMs)) : undefined;
  const answer = late.answer.catch((error: unknown) => {
    const why = `no answer to the timed-out ${request} within ${Math.round(withinMs)} ms more`;
    throw new OAuthResponseError("server_unavailable", why, { cause: error });
  });
  return { answer, done: () => clearTimeout(timer) };
}

/**
 * `fetchImpl`, except for a request that carries a `LateAnswerSink`: it runs on a signal of its
 * own, and what aborts the attempt (its timeout, the time limit, the caller) ends only the wait
 * for it, handing the answer to the sink. The answer is read whole before it is given, so the
 * time limits cover its body, as `read` does for every other request.
 */
function lateAnswerFetch(fetchImpl: FetchFunction): FetchFunction {
  return (input, init) => {
    const { [LATE_ANSWER]: sink, signal, ...rest } = (init ?? {}) as LateInit;
    if (sink === undefined) return fetchImpl(input, init);
    const own = new AbortController();
    const answer = fetchImpl(input, { ...rest, signal: own.signal }).then(read);
    const stop = () => own.abort(signal?.reason);
    return new Promise<Response>((resolve, reject) => {
      const stopped = () => {
        sink(answer, stop);
        reject(signal?.reason);
      };
      if (signal?.aborted) return stopped();
      signal?.addEventListener("abort", stopped, { once: true });
      answer.then(
        (response) => {
          signal?.removeEventListener("abort", stopped);
          resolve(response);
        },
        (error: unknown) => {
          signal?.removeEventListener("abort", stopped);
          reject(error);
        },
      );
    });
  };
}

/** Attempts per retried request to the authorization server, the first included. */
const DEFAULT_TOKEN_ATTEMPTS = 3;

/** The client's own bound on a whole request (attempts and waits), raised to one attempt's timeout if longer. */
const DEFAULT_DEADLINE_MS = 30_000;

/** Methods the retrying clients may send again: reads, and the POST of a client credentials grant or a revocation. */
const REPEATABLE_METHODS = ["GET", "HEAD", "POST"];

/**
 * Every request goes through one of three clients sharing nothing (each its own breaker and
 * retry budget per origin): one that sends once (code exchanges, refresh grants); one that
 * retries the requests that get the app its tokens (discovery, JWKS, client credentials grants);
 * and one that retries revocations. Those have their own so that a revocation endpoint that fails
 * (each logout retried, and revocations in the background) opens no breaker in front of the
 * token endpoint. With `retry: false`, only the first, without a breaker: the user's fetch is
 * called once, bounded by `timeoutMs`.
 */
export function createTransport(
  fetchImpl: FetchFunction,
  timeoutMs: number,
  retry: OAuthRetryOptions | false,
): Transport {
  if (retry !== false && (typeof retry !== "object" || retry === null)) {
    throw new InterlockConfigError("retry must be client options (createClient's) or false");
  }
  if (retry !== false) assertOptionNames("createOAuthClient() retry", retry, RETRY_OPTION_NAMES);
  const fetchOnce = lateAnswerFetch(fetchImpl);
  const once: Client =
    retry === false
      ? createClient({
          fetch: fetchOnce,
          maxAttempts: 1,
          timeoutMs,
          deadlineMs: false,
          breaker: false,
          budget: false,
          idempotencyKey: false,
        })
      : createClient({ ...clientOptions(fetchOnce, timeoutMs, retry), maxAttempts: 1 });
  const retrying = (): Client => (retry === false ? once : createClient(clientOptions(fetchImpl, timeoutMs, retry)));
  const clients: Record<RequestKind, Client> = { once, repeatable: retrying(), revocation: retrying() };
  const onceMs = longestSingleRequestMs(timeoutMs, retry);
  const retryingMs = retry === false ? onceMs : wholeRequestMs(bounds(timeoutMs, retry).deadlineMs);

  return async (url, init) => {
    const kind = requestKind(init);
    return bounded(kind === "once" ? onceMs : retryingMs, init.signal, async (signal) => {
      try {
        return await read(await clients[kind](url, { ...init, signal } as RequestInit));
      } catch (error) {
        throw unavailable(error);
      }
    });
  };
}

const wholeRequestMs = (limit: number | false): number => (limit === false ? Number.POSITIVE_INFINITY : limit);

/**
 * Runs `request` with a signal that follows the caller's and aborts once `limitMs` have passed.
 * The client's timers end when the headers are in; this one also covers the body, which
 * oauth4webapi reads after: a server that sends its headers and then stalls would otherwise
 * hold the request, and the refresh lock sized to it (see `longestSingleRequestMs`), for good.
 */
async function bounded(
  limitMs: number,
  callerSignal: AbortSignal | null | undefined,
  request: (signal: AbortSignal | undefined) => Promise<Response>,
): Promise<Response> {
  if (limitMs === Number.POSITIVE_INFINITY) return request(callerSignal ?? undefined);
  const limit = new AbortController();
  const timer = setTimeout(() => {
    limit.abort(
      new OAuthResponseError("server_unavailable", `authorization server's answer did not arrive within ${limitMs} ms`),
    );
  }, timerDelay(limitMs));
  try {
    return await request(callerSignal ? AbortSignal.any([callerSignal, limit.signal]) : limit.signal);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The response with its body read whole (token, metadata and key set answers are small), so
 * the time limit covers reading it, and up to `MAX_ANSWER_BYTES` only: a server that sends
 * without end fills no memory meanwhile. A 204 or 304 carries no body, as fetch gives it.
 */
async function read(response: Response): Promise<Response> {
  const { status, statusText, headers } = response;
  if (NULL_BODY_STATUSES.has(status) || response.body === null) {
    await response.body?.cancel();
    return new Response(null, { status, statusText, headers });
  }
  const body = await readStreamUpTo(response.body, MAX_ANSWER_BYTES);
  if (body instanceof BodyError) {
    if (body.code !== "body_too_large") throw body.cause; // the stream failed: the network's error, as fetch gives it
    throw new OAuthResponseError(
      "invalid_response",
      `authorization server's answer is larger than ${MAX_ANSWER_BYTES} bytes: no token, metadata or key set answer is`,
      { responseStatus: status },
    );
  }
  return new Response(body, { status, statusText, headers });
}

const NULL_BODY_STATUSES = new Set([101, 103, 204, 205, 304]);

/** The largest answer read from the authorization server: 1 MiB, hundreds of times a real one. */
const MAX_ANSWER_BYTES = 1024 * 1024;

function clientOptions(fetchImpl: FetchFunction, timeoutMs: number, retry: OAuthRetryOptions): ClientOptions {
  return {
    maxAttempts: DEFAULT_TOKEN_ATTEMPTS,
    ...bounds(timeoutMs, retry),
    ...retry,
    fetch: fetchImpl,
    retryMethods: REPEATABLE_METHODS,
    idempotencyKey: false,
  };
}

/** The attempt timeout and the deadline the clients use, as `retry` overrides them. */
function bounds(
  timeoutMs: number,
  retry: OAuthRetryOptions,
): { timeoutMs: number | false; deadlineMs: number | false } {
  const attemptMs = retry.timeoutMs ?? timeoutMs;
  const deadlineMs = attemptMs === false ? DEFAULT_DEADLINE_MS : Math.max(DEFAULT_DEADLINE_MS, attemptMs);
  return { timeoutMs: attemptMs, deadlineMs: retry.deadlineMs ?? deadlineMs };
}

/**
 * The longest a request that is sent once (a refresh grant, a code exchange) can take, in ms:
 * its one attempt's timeout or the deadline, whichever ends it first. `Infinity` when `retry`
 * turned both off.
 */
export function longestSingleRequestMs(timeoutMs: number, retry: OAuthRetryOptions | false): number {
  if (retry === false) return timeoutMs;
  const limits = Object.values(bounds(timeoutMs, retry)).filter((limit) => typeof limit === "number");
  return limits.length === 0 ? Number.POSITIVE_INFINITY : Math.min(...limits);
}

/** Which client sends a request (see `createTransport`). */
type RequestKind = "once" | "repeatable" | "revocation";

/**
 * Which client sends the request, decided from its body: sending it twice is harmless for a read
 * and a client credentials grant (`repeatable`), and for a revocation (RFC 7009 §2.1: a `token`
 * and no `grant_type`, the only such request sent), which a server answers as the first time once
 * the token is revoked (§2.2), and whose 503 means the token still exists and may be retried
 * (§2.2.1). Anything else is sent `once`.
 */
function requestKind(init: { method?: string; body?: unknown }): RequestKind {
  const method = (init.method ?? "GET").toUpperCase();
  if (method === "GET" || method === "HEAD") return "repeatable";
  if (method !== "POST") return "once";
  const { body } = init;
  const form =
    body instanceof URLSearchParams ? body : typeof body === "string" ? new URLSearchParams(body) : undefined;
  const grant = form?.get("grant_type");
  if (grant === "client_credentials") return "repeatable";
  return grant === null && form?.has("token") === true ? "revocation" : "once";
}

/** A failure to get an answer, as `server_unavailable`: the client's typed errors, a network error, a timeout. */
function unavailable(error: unknown): unknown {
  if (error instanceof InterlockError && !(error instanceof ClientError)) return error;
  // An answer refused as the attempt read it (a request sent once reads its answer there, see
  // `lateAnswerFetch`): that refusal, not a failure to get an answer.
  const refusal = error instanceof ClientError ? error.cause : undefined;
  if (refusal instanceof OAuthResponseError && refusal.code !== "server_unavailable") return refusal;
  const response = error instanceof ClientError ? error.response : undefined;
  // The answer is not read past its status: free its connection.
  response?.body?.cancel().catch(() => {});
  return new OAuthResponseError("server_unavailable", describe(error), {
    responseStatus: response?.status,
    cause: error,
  });
}

function describe(error: unknown): string {
  if (error instanceof RetryLimitError) {
    const limit = error.reason === "attempts" ? "" : ` (the retry ${error.reason} was reached)`;
    return `${describe(error.response ?? error.cause)}; gave up after ${error.attempts} attempts${limit}`;
  }
  if (error instanceof Response) return `authorization server answered ${error.status}`;
  if (error instanceof TimeoutError) {
    return error.scope === "attempt"
      ? `authorization server unreachable: no answer in ${error.timeoutMs} ms`
      : `authorization server unreachable: no answer within the ${error.timeoutMs} ms deadline`;
  }
  if (error instanceof CircuitOpenError) {
    return `authorization server failing: calls to it are suspended for ${error.retryAfterMs} ms (circuit open)`;
  }
  if (error instanceof RetryAfterTooLongError) {
    return `authorization server asked to retry in ${error.retryAfterMs} ms, more than the ${error.maxRetryAfterMs} ms allowed`;
  }
  return `authorization server unreachable: ${(error as Error)?.message ?? String(error)}`;
}
