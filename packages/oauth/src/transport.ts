/**
 * The one way to the authorization server: `@interlock/client` with a policy that is safe for
 * OAuth. Reads (discovery, JWKS, UserInfo) and client credentials grants are retried on
 * transient failures; a repeated client credentials grant only issues another token. Code
 * exchanges, refresh grants and revocations are sent once: a refresh token the server already
 * rotated, sent again, looks like theft and revokes the grant. No `Idempotency-Key` is ever
 * added: authorization servers do not read it, and a repeat must stay a plain repeat.
 */

import {
  CircuitOpenError,
  type Client,
  ClientError,
  type ClientOptions,
  createClient,
  type FetchFunction,
  RetryAfterTooLongError,
  RetryLimitError,
  TimeoutError,
} from "@interlock/client";
import { InterlockConfigError, InterlockError } from "@interlock/core";
import type * as oauth from "oauth4webapi";
import { OAuthResponseError } from "./errors.js";

/**
 * How requests to the authorization server are retried: `createClient`'s options, but for the
 * two this package decides itself (which methods are retried, and no `Idempotency-Key`).
 */
export type OAuthRetryOptions = Omit<ClientOptions, "fetch" | "idempotencyKey" | "retryMethods">;

export type Transport = (url: string, options: oauth.CustomFetchOptions<string, unknown>) => Promise<Response>;

/** Attempts per retried request to the authorization server, the first included. */
const DEFAULT_TOKEN_ATTEMPTS = 3;

/** The client's own bound on a whole request (attempts and waits), raised to one attempt's timeout if longer. */
const DEFAULT_DEADLINE_MS = 30_000;

/** Methods the retrying client may send again: reads, and the POST of a client credentials grant. */
const REPEATABLE_METHODS = ["GET", "HEAD", "POST"];

/**
 * Every request goes through one of two clients sharing nothing: one that retries (the requests
 * safe to repeat) and one that sends once. With `retry: false`, only the second, without a
 * breaker: the user's fetch is called once, bounded by `timeoutMs`.
 */
export function createTransport(
  fetchImpl: FetchFunction,
  timeoutMs: number,
  retry: OAuthRetryOptions | false,
): Transport {
  if (retry !== false && (typeof retry !== "object" || retry === null)) {
    throw new InterlockConfigError("retry must be client options (createClient's) or false");
  }
  const once: Client =
    retry === false
      ? createClient({
          fetch: fetchImpl,
          maxAttempts: 1,
          timeoutMs,
          deadlineMs: false,
          breaker: false,
          budget: false,
          idempotencyKey: false,
        })
      : createClient({ ...clientOptions(fetchImpl, timeoutMs, retry), maxAttempts: 1 });
  const retrying: Client = retry === false ? once : createClient(clientOptions(fetchImpl, timeoutMs, retry));

  return async (url, init) => {
    const client = isRepeatable(init) ? retrying : once;
    try {
      return await client(url, init as RequestInit);
    } catch (error) {
      throw unavailable(error);
    }
  };
}

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

/** Whether sending the request twice is harmless: a read, or a client credentials grant (decided from its body). */
export function isRepeatable(init: { method?: string; body?: unknown }): boolean {
  const method = (init.method ?? "GET").toUpperCase();
  if (method === "GET" || method === "HEAD") return true;
  if (method !== "POST") return false;
  const { body } = init;
  const form =
    body instanceof URLSearchParams ? body : typeof body === "string" ? new URLSearchParams(body) : undefined;
  return form?.get("grant_type") === "client_credentials";
}

/** A failure to get an answer, as `server_unavailable`: the client's typed errors, a network error, a timeout. */
function unavailable(error: unknown): unknown {
  if (error instanceof InterlockError && !(error instanceof ClientError)) return error;
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
