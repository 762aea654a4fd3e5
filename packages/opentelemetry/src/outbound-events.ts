/**
 * The events of `@interlock/client` and `@interlock/oauth` as telemetry reads them: their `type`
 * and the fields the mapping records, declared here rather than imported. Both packages are
 * optional peers: a declaration file importing their types would fail to compile in an app that
 * installs neither (with `skipLibCheck: false`), and widen `TelemetryEvent` to `any` with it on.
 * The real `ClientEvent` and `OAuthEvent` are assignable to these shapes, and name the same event
 * types; test/outbound-events.test.ts checks both against the packages, so the two cannot drift.
 */

/** One of `@interlock/client`'s events (`ClientEvent`), as telemetry reads it. */
export type TelemetryClientEvent =
  | {
      /** An attempt ended: a response, a network error, a timeout or an abort. */
      type: "client.attempt";
      /** The origin called (`https://api.example.com`), never a path. */
      origin: string;
      /** The request's method, as fetch sends it (DELETE, GET, HEAD, OPTIONS, POST and PUT in upper case, any other as written). */
      method: string;
      /** 1 for the first attempt. */
      attempt: number;
      /** How the attempt ended: `response`, `network_error`, `timeout` or `aborted`. */
      outcome: string;
      /** The response status, for `outcome: "response"`. */
      status: number | undefined;
      /** For a network error: the platform's error code or the error's name. */
      error: string | undefined;
      /** True when this attempt was the half-open circuit's probe. */
      probe: boolean;
      /** The request's `Idempotency-Key`, when it has one. */
      key: string | undefined;
      /** How long the attempt took, in milliseconds. */
      durationMs: number;
    }
  | {
      /** A retry is coming, after `delayMs`. */
      type: "client.retry";
      /** The origin called (`https://api.example.com`), never a path. */
      origin: string;
      /** The request's method, as fetch sends it (DELETE, GET, HEAD, OPTIONS, POST and PUT in upper case, any other as written). */
      method: string;
      /** What the client waits before the next attempt: the backoff, raised to `Retry-After`. */
      delayMs: number;
      /** The server's `Retry-After`, in milliseconds, when it sent a valid one. */
      retryAfterMs: number | undefined;
      /** The failed attempt's status, when it got a response. */
      status: number | undefined;
      /**
       * True when the failed attempt was taken for a stale kept-alive connection (one the server
       * closed as the request went out on it): resent at once, unpaid by the budget, the breaker
       * not told. Absent from an older client's events.
       */
      staleConnection?: boolean;
    }
  | {
      /** The client stopped: an outcome worth retrying was not retried. */
      type: "client.give_up";
      /** The origin called (`https://api.example.com`), never a path. */
      origin: string;
      /** The request's method, as fetch sends it (DELETE, GET, HEAD, OPTIONS, POST and PUT in upper case, any other as written). */
      method: string;
      /** Why the outcome was not retried (`attempts`, `budget`, `circuit_open`, …). */
      reason: string;
      /** The last response's status, when the last attempt got one. */
      status: number | undefined;
    }
  | {
      /** An origin's circuit breaker changed state. */
      type: "client.breaker";
      /** The origin whose breaker it is. */
      origin: string;
      /** The state before: `closed`, `open` or `half_open`. */
      from: string;
      /** The state now. */
      to: string;
    }
  | {
      /** A client was made: it hands over its breaker registry, which the breakers gauge reads. */
      type: "client.created";
      /** The client's `client.breakers`: each origin's breaker, live. */
      breakers: Iterable<{
        /** The origin the breaker guards. */
        readonly origin: string;
        /** Its state: `closed`, `open` or `half_open`. */
        readonly state: string;
      }>;
    };

/** A client's breaker registry (`client.breakers`), as the breakers gauge reads it. */
export type BreakerStates = Extract<TelemetryClientEvent, { type: "client.created" }>["breakers"];

/** One of `@interlock/oauth`'s events (`OAuthEvent`), as telemetry reads it. */
export type TelemetryOAuthEvent =
  | {
      /** A token request went to the authorization server. */
      type: "oauth.token.requested";
      /** The grant it used. */
      grant: string;
      /** `"issued"`, or the error's code. */
      outcome: string;
      /** How long the request took, retries included, in milliseconds. */
      durationMs: number;
    }
  | {
      /** The answer to a token request sent once that had timed out (a refresh grant, a code exchange), still waited for. */
      type: "oauth.token.answered_late";
      /** The grant it used. */
      grant: string;
      /** `"issued"` (the new tokens were kept), or the error's code. */
      outcome: string;
      /** How long the answer was waited for after the timeout, in milliseconds. */
      durationMs: number;
    }
  | {
      /** Another process was already requesting the token: this one used its result. */
      type: "oauth.token.shared";
      /** The grant the other process used. */
      grant: string;
    }
  | {
      /** The token was due and the server (or the store) failed: the unexpired token was used. */
      type: "oauth.token.stale_used";
      /** The grant that failed. */
      grant: string;
      /** Why it failed: the error's code. */
      code: string;
    }
  | {
      /** The server's metadata could not be discovered. */
      type: "oauth.discovery.failed";
      /** The error's code. */
      code: string;
    }
  | {
      /** A login was started. */
      type: "oauth.login.started";
    }
  | {
      /** A callback was exchanged for tokens. */
      type: "oauth.login.completed";
    }
  | {
      /** A callback did not end in tokens. */
      type: "oauth.login.refused";
      /** The refusal's code. */
      code: string;
    }
  | {
      /** A session's tokens were deleted because they can no longer be used. */
      type: "oauth.session.ended";
      /**
       * Why they can no longer be used: `no_session`, `expired`, `refresh_rejected`,
       * `token_rejected`, `identity_changed` or `refresh_answer_refused`.
       */
      reason: string;
      /** The store's error code (`store_unavailable`) when it failed the delete: the tokens stay in the store, unused here. */
      error?: string;
    }
  | {
      /** A refresh's new tokens could not be written to the store. */
      type: "oauth.session.write_failed";
      /** Why the write failed: the error's code. */
      code: string;
    }
  | {
      /**
       * Tokens nothing will hold were revoked at the server: those of a login that ended refused,
       * of a refresh whose session had ended, or of a refresh answer refused that ended its session.
       */
      type: "oauth.login.tokens_revoked";
      /**
       * `late` (the code exchange's answer came after its timeout), `refused` (the login refused
       * it), `session_ended` (a refresh answered after its session ended) or `refresh_refused` (a
       * refresh answer refused that ended its session).
       */
      reason: string;
      /** Whether the server revoked a token. */
      revoked: boolean;
      /**
       * Present when revoking at the server failed: the error's code; or, with `revoked`, the OAuth
       * error the server answered in place of a revocation that still counts: `invalid_token`, for
       * a token no longer valid there (revoked with its grant, or by an attempt whose answer came
       * too late), or another, for the access token once the refresh token was revoked.
       */
      error?: string;
    }
  | {
      /** `revoke()` deleted a session's tokens. */
      type: "oauth.session.revoked";
      /** Whether the server revoked a token. */
      revoked: boolean;
      /**
       * Present when revoking at the server failed: the error's code; or, with `revoked`, the OAuth
       * error the server answered in place of a revocation that still counts: `invalid_token`, for
       * a token no longer valid there (revoked with its grant, or by an attempt whose answer came
       * too late), or another, for the access token once the refresh token was revoked.
       */
      error?: string;
    };
