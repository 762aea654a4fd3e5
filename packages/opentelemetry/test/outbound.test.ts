/**
 * The outbound client's and OAuth's events, from a real `createClient()` and a real OAuth
 * client calling a scripted server on 127.0.0.1: exact data points and spans.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { CircuitOpenError, createClient, RetryLimitError } from "@interlock/client";
import {
  createClientCredentials,
  createLogin,
  createOAuthClient,
  createSessionTokens,
  generateEncryptionKey,
  type OAuthEvent,
} from "@interlock/oauth";
import { SpanKind, SpanStatusCode } from "@opentelemetry/api";
import { MeterProvider } from "@opentelemetry/sdk-metrics";
import { afterEach, describe, expect, it } from "vitest";
import {
  interlockTelemetry,
  METRIC_CLIENT_ATTEMPT_DURATION,
  METRIC_CLIENT_ATTEMPTS,
  METRIC_CLIENT_BREAKER_TRANSITIONS,
  METRIC_CLIENT_BREAKERS,
  METRIC_CLIENT_GIVE_UPS,
  METRIC_CLIENT_RETRIES,
  METRIC_CLIENT_RETRY_DELAY,
  METRIC_OAUTH_DISCOVERY_FAILURES,
  METRIC_OAUTH_LOGIN_REVOCATIONS,
  METRIC_OAUTH_LOGINS,
  METRIC_OAUTH_SESSION_WRITE_FAILURES,
  METRIC_OAUTH_SESSIONS_ENDED,
  METRIC_OAUTH_TOKEN_LATE_ANSWERS,
  METRIC_OAUTH_TOKEN_REQUEST_DURATION,
  METRIC_OAUTH_TOKEN_REQUESTS,
  METRIC_OAUTH_TOKEN_REUSES,
  SPAN_CLIENT_ATTEMPT,
  SPAN_OAUTH_TOKEN,
} from "../src/index.js";
import { type Sdk, sdk, sorted } from "./harness.js";

interface Answer {
  status: number;
  headers?: Record<string, string>;
  body?: string;
}

/** A server on 127.0.0.1 answering each request with the next scripted answer (then 200). */
async function scripted(answers: Answer[]): Promise<{ url: string; origin: string; requests: () => number }> {
  let requests = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      const answer = answers[requests++] ?? { status: 200, body: "ok" };
      res.writeHead(answer.status, answer.headers).end(answer.body ?? "");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  servers.push(server);
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url: `${origin}/things?secret=not-recorded`, origin, requests: () => requests };
}

/** The origin of a port on 127.0.0.1 that was just listened on and closed: connecting to it is refused. */
async function closedOrigin(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

let otel: Sdk | undefined;
const servers: Server[] = [];
afterEach(async () => {
  await otel?.shutdown();
  otel = undefined;
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    server.close();
  }
});

function telemetry() {
  otel = sdk();
  return {
    otel,
    onEvent: interlockTelemetry({ meterProvider: otel.meterProvider, tracerProvider: otel.tracerProvider }),
  };
}

const ORIGIN = "interlock.client.origin";

/** Session tokens on an OAuth client of `issuer` (the scripted server) that revokes at `/revoke`, without retries. */
function revokingSessions(issuer: string, onEvent: ReturnType<typeof interlockTelemetry>) {
  const client = createOAuthClient({
    issuer,
    clientId: "app",
    clientSecret: "secret",
    metadata: { issuer, token_endpoint: `${issuer}/token`, revocation_endpoint: `${issuer}/revoke` },
    onEvent,
    retry: false,
  });
  return createSessionTokens(client, { encryptionKeys: [{ id: "k1", key: generateEncryptionKey() }] });
}

/** No refresh token: one revocation request per session, for its access token. */
const sessionTokens = (accessToken: string) => ({
  accessToken,
  tokenType: "bearer",
  expiresAt: undefined,
  refreshToken: undefined,
  scope: undefined,
  idToken: undefined,
});

describe("@interlock/client events", () => {
  it("a method the semantic conventions do not know is recorded as _OTHER, not one series per name; QUERY is known", async () => {
    const { otel, onEvent } = telemetry();
    const server = await scripted([]);
    const client = createClient({ onEvent });
    for (const method of ["PATCH", "PROPFIND", "PURGE", "PROPFIND", "QUERY"]) {
      await (await client(server.url, { method })).text();
    }
    const methods = (await otel.metrics())[METRIC_CLIENT_ATTEMPTS]?.map((p) => [
      p.attributes["http.request.method"],
      "value" in p && p.value,
    ]);
    expect(methods?.sort()).toEqual([
      ["PATCH", 1],
      ["QUERY", 1],
      ["_OTHER", 3],
    ]);
  });

  it("a 503 with Retry-After, then a 200: two attempts, one retry, two spans", async () => {
    const { otel, onEvent } = telemetry();
    const server = await scripted([{ status: 503, headers: { "retry-after": "0" } }]);
    const client = createClient({ onEvent, backoff: { baseMs: 1, capMs: 1 } });
    const response = await client(server.url);
    expect(response.status).toBe(200);
    await response.text();

    const metrics = await otel.metrics();
    const get = { [ORIGIN]: server.origin, "http.request.method": "GET" };
    expect(sorted(metrics[METRIC_CLIENT_ATTEMPTS])).toEqual(
      sorted([
        {
          attributes: {
            ...get,
            "interlock.client.outcome": "response",
            "http.response.status_code": 503,
            "error.type": "503",
          },
          value: 1,
        },
        {
          attributes: { ...get, "interlock.client.outcome": "response", "http.response.status_code": 200 },
          value: 1,
        },
      ]),
    );
    expect(metrics[METRIC_CLIENT_ATTEMPT_DURATION]?.map((p) => "count" in p && p.count)).toEqual([1, 1]);
    const retry = {
      ...get,
      "http.response.status_code": 503,
      "interlock.client.retry_after": true,
      "interlock.client.stale_connection": false,
    };
    expect(metrics[METRIC_CLIENT_RETRIES]).toEqual([{ attributes: retry, value: 1 }]);
    expect(metrics[METRIC_CLIENT_RETRY_DELAY]).toMatchObject([{ attributes: retry, count: 1 }]);
    expect(metrics[METRIC_CLIENT_GIVE_UPS]).toBeUndefined();

    const spans = (await otel.spans()).filter((s) => s.name === SPAN_CLIENT_ATTEMPT);
    expect(
      spans.map((s) => [s.attributes["interlock.client.attempt"], s.status.code, s.attributes["error.type"]]),
    ).toEqual([
      [1, SpanStatusCode.ERROR, "503"],
      [2, SpanStatusCode.UNSET, undefined],
    ]);
    // INTERNAL, with the semantic conventions' attributes of where the attempt went; the resend
    // count on the retry only.
    const port = Number(new URL(server.origin).port);
    expect(spans.map((s) => [s.kind, s.attributes])).toEqual([
      [
        SpanKind.INTERNAL,
        {
          ...get,
          "interlock.client.outcome": "response",
          "http.response.status_code": 503,
          "error.type": "503",
          "server.address": "127.0.0.1",
          "server.port": port,
          "url.scheme": "http",
          "interlock.client.attempt": 1,
          "interlock.client.probe": false,
        },
      ],
      [
        SpanKind.INTERNAL,
        {
          ...get,
          "interlock.client.outcome": "response",
          "http.response.status_code": 200,
          "server.address": "127.0.0.1",
          "server.port": port,
          "url.scheme": "http",
          "http.request.resend_count": 1,
          "interlock.client.attempt": 2,
          "interlock.client.probe": false,
        },
      ],
    ]);
    // Neither the path nor the query reaches telemetry.
    expect(JSON.stringify(spans.map((s) => s.attributes))).not.toContain("secret");
  });

  it("a breaker opening, refusing, probing and closing: transitions, the open-breaker gauge, give-ups", async () => {
    const { otel, onEvent } = telemetry();
    const server = await scripted([{ status: 500 }, { status: 500 }]);
    let now = Date.UTC(2030, 0, 1);
    const client = createClient({
      onEvent,
      maxAttempts: 1,
      breaker: { failures: 2, halfOpenAfterMs: 5_000 },
      now: () => now,
    });
    await expect(client(server.url)).rejects.toBeInstanceOf(RetryLimitError);
    await expect(client(server.url)).rejects.toBeInstanceOf(RetryLimitError); // opens the circuit
    const open = await otel.metrics();
    expect(open[METRIC_CLIENT_BREAKERS]).toEqual([
      { attributes: { [ORIGIN]: server.origin, "interlock.client.breaker.state": "open" }, value: 1 },
    ]);

    await expect(client(server.url)).rejects.toBeInstanceOf(CircuitOpenError);
    expect(server.requests()).toBe(2);
    now += 5_000;
    expect((await client(server.url)).status).toBe(200); // the probe closes it

    const metrics = await otel.metrics();
    const transition = (from: string, to: string) => ({
      attributes: {
        [ORIGIN]: server.origin,
        "interlock.client.breaker.from": from,
        "interlock.client.breaker.state": to,
      },
      value: 1,
    });
    expect(sorted(metrics[METRIC_CLIENT_BREAKER_TRANSITIONS])).toEqual(
      sorted([transition("closed", "open"), transition("open", "half_open"), transition("half_open", "closed")]),
    );
    // Read at collection: the open point, reported before, is now 0; half-open came and went
    // between two collections.
    expect(metrics[METRIC_CLIENT_BREAKERS]).toEqual([
      { attributes: { [ORIGIN]: server.origin, "interlock.client.breaker.state": "open" }, value: 0 },
    ]);
    const get = { [ORIGIN]: server.origin, "http.request.method": "GET" };
    expect(sorted(metrics[METRIC_CLIENT_GIVE_UPS])).toEqual(
      sorted([
        {
          attributes: { ...get, "interlock.client.give_up_reason": "attempts", "http.response.status_code": 500 },
          value: 2,
        },
        { attributes: { ...get, "interlock.client.give_up_reason": "circuit_open" }, value: 1 },
      ]),
    );
    const probe = (await otel.spans()).filter((s) => s.name === SPAN_CLIENT_ATTEMPT).at(-1);
    expect(probe?.attributes["interlock.client.probe"]).toBe(true);
  });

  it("a stale kept-alive connection, then a 200: its retry is recorded as one, sent at once", async () => {
    const { otel, onEvent } = telemetry();
    // What Node's fetch throws when the server closed a pooled connection as the request went
    // out on it: "other side closed" on a connection that had already read an earlier answer.
    const closed = Object.assign(new Error("other side closed"), { code: "UND_ERR_SOCKET", socket: { bytesRead: 64 } });
    let calls = 0;
    const client = createClient({
      onEvent,
      fetch: async () => {
        if (calls++ === 0) throw new TypeError("fetch failed", { cause: closed });
        return new Response("ok");
      },
    });
    const response = await client("https://api.example.com/things");
    expect(response.status).toBe(200);
    await response.text();
    expect(calls).toBe(2);

    const metrics = await otel.metrics();
    const retry = {
      [ORIGIN]: "https://api.example.com",
      "http.request.method": "GET",
      "interlock.client.retry_after": false,
      "interlock.client.stale_connection": true,
    };
    expect(metrics[METRIC_CLIENT_RETRIES]).toEqual([{ attributes: retry, value: 1 }]);
    expect(metrics[METRIC_CLIENT_RETRY_DELAY]).toEqual([{ attributes: retry, count: 1, sum: 0 }]);
    expect(metrics[METRIC_CLIENT_GIVE_UPS]).toBeUndefined();
  });
});

describe("where an attempt went", () => {
  it("server.port is the scheme's default when the origin names none; an IPv6 address loses its brackets", async () => {
    const { otel, onEvent } = telemetry();
    const client = createClient({ onEvent, fetch: async () => new Response("ok") });
    for (const url of ["https://api.example.com/things", "http://example.com/", "http://[::1]:8080/things"]) {
      await (await client(url)).text();
    }
    const spans = (await otel.spans()).filter((s) => s.name === SPAN_CLIENT_ATTEMPT);
    expect(
      spans.map((s) => [
        s.attributes[ORIGIN],
        s.attributes["server.address"],
        s.attributes["server.port"],
        s.attributes["url.scheme"],
      ]),
    ).toEqual([
      ["https://api.example.com", "api.example.com", 443, "https"],
      ["http://example.com", "example.com", 80, "http"],
      ["http://[::1]:8080", "::1", 8080, "http"],
    ]);
    // Metrics keep the origin alone: the rest is derived from it, one series either way.
    expect(JSON.stringify(await otel.metrics())).not.toContain("server.address");
  });
});

describe("failed attempts", () => {
  it("a 500 is an error by its status, a refused connection by the platform's code", async () => {
    const { otel, onEvent } = telemetry();
    const server = await scripted([{ status: 500 }]);
    const client = createClient({ onEvent, maxAttempts: 1 });
    await expect(client(server.url)).rejects.toBeInstanceOf(RetryLimitError);
    const closed = await closedOrigin();
    await expect(client(`${closed}/things`)).rejects.toThrow();

    const metrics = await otel.metrics();
    expect(sorted(metrics[METRIC_CLIENT_ATTEMPTS])).toEqual(
      sorted([
        {
          attributes: {
            [ORIGIN]: server.origin,
            "http.request.method": "GET",
            "interlock.client.outcome": "response",
            "http.response.status_code": 500,
            "error.type": "500",
          },
          value: 1,
        },
        {
          attributes: {
            [ORIGIN]: closed,
            "http.request.method": "GET",
            "interlock.client.outcome": "network_error",
            "error.type": "ECONNREFUSED",
          },
          value: 1,
        },
      ]),
    );
    const spans = (await otel.spans()).filter((s) => s.name === SPAN_CLIENT_ATTEMPT);
    expect(spans.map((s) => [s.status.code, s.attributes["error.type"]])).toEqual([
      [SpanStatusCode.ERROR, "500"],
      [SpanStatusCode.ERROR, "ECONNREFUSED"],
    ]);
  });
});

describe("attempts that time out, and keyed attempts", () => {
  it("an attempt that times out is an error by its outcome", async () => {
    const { otel, onEvent } = telemetry();
    const silent = createServer(() => {}); // never answers
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    servers.push(silent);
    const origin = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    const client = createClient({ onEvent, maxAttempts: 1, timeoutMs: 50 });
    await expect(client(`${origin}/slow`)).rejects.toThrow();

    const metrics = await otel.metrics();
    expect(metrics[METRIC_CLIENT_ATTEMPTS]).toEqual([
      {
        attributes: {
          [ORIGIN]: origin,
          "http.request.method": "GET",
          "interlock.client.outcome": "timeout",
          "error.type": "timeout",
        },
        value: 1,
      },
    ]);
    const spans = (await otel.spans()).filter((s) => s.name === SPAN_CLIENT_ATTEMPT);
    expect(spans.map((s) => [s.status.code, s.attributes["error.type"]])).toEqual([[SpanStatusCode.ERROR, "timeout"]]);
  });

  it("a POST's attempt span carries the Idempotency-Key the server received; its metrics do not", async () => {
    const { otel, onEvent } = telemetry();
    const received: Array<string | undefined> = [];
    const server = createServer((req, res) => {
      received.push(req.headers["idempotency-key"] as string | undefined);
      req.resume().on("end", () => res.end("ok"));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    servers.push(server);
    const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const client = createClient({ onEvent });
    await (await client(`${origin}/payments`, { method: "POST", body: "{}" })).text();

    expect(received).toEqual([expect.any(String)]);
    const [span] = (await otel.spans()).filter((s) => s.name === SPAN_CLIENT_ATTEMPT);
    expect(span?.attributes["interlock.idempotency.key"]).toBe(received[0]);
    const metrics = await otel.metrics();
    expect(JSON.stringify(metrics[METRIC_CLIENT_ATTEMPTS])).not.toContain("interlock.idempotency.key");
  });
});

describe("@interlock/oauth events", () => {
  it("a client credentials token request retried once: one request issued, two attempts", async () => {
    const { otel, onEvent } = telemetry();
    const token = JSON.stringify({ access_token: "at-1", token_type: "bearer", expires_in: 3600 });
    const server = await scripted([
      { status: 503, headers: { "retry-after": "0" } },
      { status: 200, headers: { "content-type": "application/json" }, body: token },
      { status: 401, headers: { "content-type": "application/json" }, body: '{"error":"invalid_client"}' },
    ]);
    const issuer = server.origin;
    const oauth = (scope: string) =>
      createClientCredentials(
        createOAuthClient({
          issuer,
          clientId: "service",
          clientSecret: "secret",
          metadata: { issuer, token_endpoint: `${issuer}/token` },
          onEvent,
          retry: { onEvent, backoff: { baseMs: 1, capMs: 1 } },
        }),
        { scope },
      );
    await expect(oauth("a").getAccessToken()).resolves.toBe("at-1");
    await expect(oauth("b").getAccessToken()).rejects.toMatchObject({ code: "invalid_client" });

    const metrics = await otel.metrics();
    expect(sorted(metrics[METRIC_OAUTH_TOKEN_REQUESTS])).toEqual(
      sorted([
        {
          attributes: { "interlock.oauth.grant": "client_credentials", "interlock.oauth.outcome": "issued" },
          value: 1,
        },
        {
          attributes: {
            "interlock.oauth.grant": "client_credentials",
            "interlock.oauth.outcome": "invalid_client",
            "error.type": "invalid_client",
          },
          value: 1,
        },
      ]),
    );
    expect(metrics[METRIC_OAUTH_TOKEN_REQUEST_DURATION]?.map((p) => "count" in p && p.count)).toEqual([1, 1]);
    const post = { [ORIGIN]: server.origin, "http.request.method": "POST", "interlock.client.outcome": "response" };
    expect(sorted(metrics[METRIC_CLIENT_ATTEMPTS])).toEqual(
      sorted([
        { attributes: { ...post, "http.response.status_code": 503, "error.type": "503" }, value: 1 },
        { attributes: { ...post, "http.response.status_code": 200 }, value: 1 },
        { attributes: { ...post, "http.response.status_code": 401 }, value: 1 },
      ]),
    );
    const spans = (await otel.spans()).filter((s) => s.name === SPAN_OAUTH_TOKEN);
    expect(spans.map((s) => [s.attributes["interlock.oauth.outcome"], s.status.code])).toEqual([
      ["issued", SpanStatusCode.UNSET],
      ["invalid_client", SpanStatusCode.ERROR],
    ]);
  });

  it("a token request refused with an error code the server made up is counted as _OTHER, a known one as it is", async () => {
    const { otel, onEvent } = telemetry();
    // An authorization server's extension codes are its own: one series each would be unbounded.
    for (const outcome of ["x_quota_7f3a", "x_quota_9b21", "invalid_grant"])
      onEvent({ type: "oauth.token.requested", grant: "refresh_token", outcome, durationMs: 4 });
    const grant = { "interlock.oauth.grant": "refresh_token" };
    expect(sorted((await otel.metrics())[METRIC_OAUTH_TOKEN_REQUESTS])).toEqual(
      sorted([
        { attributes: { ...grant, "interlock.oauth.outcome": "_OTHER", "error.type": "_OTHER" }, value: 2 },
        {
          attributes: { ...grant, "interlock.oauth.outcome": "invalid_grant", "error.type": "invalid_grant" },
          value: 1,
        },
      ]),
    );
  });

  it("a token request's span names a made-up code _OTHER in error.type too, the code itself only in its status message", async () => {
    const { otel, onEvent } = telemetry();
    onEvent({ type: "oauth.token.requested", grant: "refresh_token", outcome: "x_quota_7f3a", durationMs: 4 });
    onEvent({ type: "oauth.token.requested", grant: "refresh_token", outcome: "invalid_grant", durationMs: 4 });
    const spans = (await otel.spans()).filter((s) => s.name === SPAN_OAUTH_TOKEN);
    expect(
      spans.map((s) => [
        s.status.code,
        s.status.message,
        s.attributes["interlock.oauth.outcome"],
        s.attributes["error.type"],
      ]),
    ).toEqual([
      [SpanStatusCode.ERROR, "x_quota_7f3a", "_OTHER", "_OTHER"],
      [SpanStatusCode.ERROR, "invalid_grant", "invalid_grant", "invalid_grant"],
    ]);
  });

  it("a login refused with whatever error a browser put in its callback: a known code as it is, the rest _OTHER", async () => {
    const { otel, onEvent } = telemetry();
    const issuer = "https://id.example.com";
    // The token endpoint's answers, one per code exchange: down, then a response with no token.
    const tokenAnswers = [new Response("busy", { status: 503 }), Response.json({ token_type: "Bearer" })];
    const client = createOAuthClient({
      issuer,
      clientId: "app",
      clientSecret: "secret",
      metadata: { issuer, authorization_endpoint: `${issuer}/authorize`, token_endpoint: `${issuer}/token` },
      fetch: async () => tokenAnswers.shift() ?? Response.error(),
      onEvent,
    });
    const login = createLogin(client, { redirectUri: "https://app.example.com/callback" });
    // Anyone can start a login and send its callback back with an `error` of their choosing.
    for (const error of ["access_denied", "x-1f3a9c", "x-77b0e2"]) {
      const { state } = await login.begin();
      const callback = new URLSearchParams({ state, error });
      await expect(login.complete(callback, { state })).rejects.toMatchObject({ code: error });
    }
    await expect(login.complete(new URLSearchParams({ state: "s" }), { state: "t" })).rejects.toMatchObject({
      code: "state_mismatch",
    });
    // A failed exchange is counted by its own code, not as _OTHER.
    for (const code of ["server_unavailable", "invalid_response"]) {
      const { state } = await login.begin();
      await expect(login.complete(new URLSearchParams({ state, code: "c" }), { state })).rejects.toMatchObject({
        code,
      });
    }

    const refused = { "interlock.oauth.outcome": "refused" };
    expect(sorted((await otel.metrics())[METRIC_OAUTH_LOGINS])).toEqual(
      sorted([
        { attributes: { "interlock.oauth.outcome": "started" }, value: 5 },
        { attributes: { ...refused, "error.type": "access_denied" }, value: 1 },
        { attributes: { ...refused, "error.type": "_OTHER" }, value: 2 },
        { attributes: { ...refused, "error.type": "state_mismatch" }, value: 1 },
        { attributes: { ...refused, "error.type": "server_unavailable" }, value: 1 },
        { attributes: { ...refused, "error.type": "invalid_response" }, value: 1 },
      ]),
    );
  });

  it("a failed discovery is counted by its code; the discovery that then succeeds is not", async () => {
    const { otel, onEvent } = telemetry();
    const answers: Answer[] = [{ status: 404 }, { status: 404 }];
    const server = await scripted(answers);
    const issuer = server.origin;
    const json = { "content-type": "application/json" };
    answers.push({ status: 200, headers: json, body: JSON.stringify({ issuer, token_endpoint: `${issuer}/token` }) });
    const client = createOAuthClient({ issuer, clientId: "app", clientSecret: "secret", onEvent, retry: false });
    const failed = await client.metadata().catch((error: { code: string }) => error);
    expect(failed).toMatchObject({ name: "OAuthResponseError" });
    const { code } = failed as { code: string };
    await expect(client.metadata()).rejects.toMatchObject({ code });
    await expect(client.metadata()).resolves.toMatchObject({ issuer });
    await expect(client.metadata()).resolves.toMatchObject({ issuer });
    expect(server.requests()).toBe(3);

    expect((await otel.metrics())[METRIC_OAUTH_DISCOVERY_FAILURES]).toEqual([
      { attributes: { "error.type": code }, value: 2 },
    ]);
  });

  it("discoveries an issuer refused with an error code it made up are counted as _OTHER, a known one as it is", async () => {
    const { otel, onEvent } = telemetry();
    // A multi-tenant issuer may name the tenant in its `error`: one series per code would be unbounded.
    const refused = (error: string) => ({
      status: 400,
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ error }),
    });
    const server = await scripted([
      refused("tenant_1_not_found"),
      refused("tenant_2_not_found"),
      refused("invalid_request"),
    ]);
    const client = createOAuthClient({
      issuer: server.origin,
      clientId: "app",
      clientSecret: "secret",
      onEvent,
      retry: false,
    });
    for (const code of ["tenant_1_not_found", "tenant_2_not_found", "invalid_request"]) {
      await expect(client.metadata()).rejects.toMatchObject({ code });
    }
    expect(server.requests()).toBe(3);

    expect(sorted((await otel.metrics())[METRIC_OAUTH_DISCOVERY_FAILURES])).toEqual(
      sorted([
        { attributes: { "error.type": "_OTHER" }, value: 2 },
        { attributes: { "error.type": "invalid_request" }, value: 1 },
      ]),
    );
  });

  it("revoke(): one revoked at the server counted as revoked, one the server failed as deleted with the error's code", async () => {
    const { otel, onEvent } = telemetry();
    const server = await scripted([{ status: 200 }, { status: 503 }]);
    const sessions = revokingSessions(server.origin, onEvent);
    await sessions.save("revoked", sessionTokens("at-1"));
    await sessions.save("failed", sessionTokens("at-2"));
    expect(await sessions.revoke("revoked")).toEqual({ revoked: true });
    await expect(sessions.revoke("failed")).rejects.toMatchObject({ code: "server_unavailable" });
    expect(server.requests()).toBe(2);
    expect(await sessions.get("failed")).toBeUndefined(); // deleted here all the same

    expect(sorted((await otel.metrics())[METRIC_OAUTH_SESSIONS_ENDED])).toEqual(
      sorted([
        { attributes: { "interlock.oauth.outcome": "revoked" }, value: 1 },
        { attributes: { "interlock.oauth.outcome": "deleted", "error.type": "server_unavailable" }, value: 1 },
      ]),
    );
  });

  it("revocations a server refused with an error code it made up are counted as _OTHER, a known one as it is", async () => {
    const { otel, onEvent } = telemetry();
    // RFC 7009 lets the server answer any `error`: one series per extension code would be unbounded.
    const refused = (error: string) => ({
      status: 400,
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ error }),
    });
    const server = await scripted([refused("x_revoke_7f3a"), refused("x_revoke_9b21"), refused("invalid_client")]);
    const sessions = revokingSessions(server.origin, onEvent);
    for (const code of ["x_revoke_7f3a", "x_revoke_9b21", "invalid_client"]) {
      await sessions.save(code, sessionTokens(`at-${code}`));
      await expect(sessions.revoke(code)).rejects.toMatchObject({ code });
    }
    // A login's orphaned tokens, revoked the same way (handed over as @interlock/oauth emits it).
    onEvent({ type: "oauth.login.tokens_revoked", reason: "refused", revoked: false, error: "x_revoke_c01d" });

    const metrics = await otel.metrics();
    const deleted = { "interlock.oauth.outcome": "deleted" };
    expect(sorted(metrics[METRIC_OAUTH_SESSIONS_ENDED])).toEqual(
      sorted([
        { attributes: { ...deleted, "error.type": "_OTHER" }, value: 2 },
        { attributes: { ...deleted, "error.type": "invalid_client" }, value: 1 },
      ]),
    );
    expect(metrics[METRIC_OAUTH_LOGIN_REVOCATIONS]).toEqual([
      {
        attributes: {
          "interlock.oauth.reason": "refused",
          "interlock.oauth.outcome": "not_revoked",
          "error.type": "_OTHER",
        },
        value: 1,
      },
    ]);
  });

  it("a session revoked, its access token answered invalid_token once its refresh token was: error.type invalid_token, not _OTHER", async () => {
    const { otel, onEvent } = telemetry();
    // The refresh token revoked (200), then the access token, revoked with it (RFC 7009 §2.1), refused.
    const server = await scripted([
      { status: 200 },
      {
        status: 400,
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ error: "invalid_token" }),
      },
    ]);
    const sessions = revokingSessions(server.origin, onEvent);
    await sessions.save("revoked", { ...sessionTokens("at-1"), refreshToken: "rt-1" });
    expect(await sessions.revoke("revoked")).toMatchObject({ revoked: true });
    expect(server.requests()).toBe(2);
    // A refresh answer refused that ended its session, its tokens revoked the same way (as @interlock/oauth emits it).
    onEvent({ type: "oauth.login.tokens_revoked", reason: "refresh_refused", revoked: true, error: "invalid_token" });

    const metrics = await otel.metrics();
    expect(metrics[METRIC_OAUTH_SESSIONS_ENDED]).toEqual([
      { attributes: { "interlock.oauth.outcome": "revoked", "error.type": "invalid_token" }, value: 1 },
    ]);
    expect(metrics[METRIC_OAUTH_LOGIN_REVOCATIONS]).toEqual([
      {
        attributes: {
          "interlock.oauth.reason": "refresh_refused",
          "interlock.oauth.outcome": "revoked",
          "error.type": "invalid_token",
        },
        value: 1,
      },
    ]);
  });

  it("reused tokens (shared, stale_used with its code), late answers to refresh grants, sessions ended by reason and session writes that failed are counted, one series each", async () => {
    const { otel } = telemetry();
    const onEvent = interlockTelemetry<OAuthEvent>({
      meterProvider: otel.meterProvider,
      tracerProvider: otel.tracerProvider,
    });
    // As @interlock/oauth emits them: these need another process, a failing server or an
    // expired session, so they are handed to the hook directly.
    onEvent({ type: "oauth.token.shared", grant: "client_credentials", waitedMs: 12 });
    onEvent({ type: "oauth.token.shared", grant: "client_credentials", waitedMs: 3 });
    onEvent({ type: "oauth.token.stale_used", grant: "refresh_token", code: "server_error" });
    // A token store's outage by its name; a 503 whose `error` the server made up as _OTHER.
    onEvent({ type: "oauth.token.stale_used", grant: "refresh_token", code: "store_unavailable" });
    onEvent({ type: "oauth.token.stale_used", grant: "refresh_token", code: "x_overloaded_7f3a" });
    onEvent({ type: "oauth.session.ended", reason: "expired" });
    onEvent({ type: "oauth.session.ended", reason: "refresh_rejected" });
    // Ended though the store failed the delete: the store's code as the error.
    onEvent({ type: "oauth.session.ended", reason: "refresh_answer_refused", error: "store_unavailable" });
    onEvent({ type: "oauth.session.write_failed", code: "store_unavailable" });
    onEvent({ type: "oauth.token.answered_late", grant: "refresh_token", outcome: "issued", durationMs: 900 });
    onEvent({
      type: "oauth.token.answered_late",
      grant: "refresh_token",
      outcome: "server_unavailable",
      durationMs: 9,
    });
    onEvent({ type: "oauth.login.tokens_revoked", reason: "late", revoked: true });
    onEvent({ type: "oauth.login.tokens_revoked", reason: "refused", revoked: false, error: "server_unavailable" });

    const metrics = await otel.metrics();
    expect(sorted(metrics[METRIC_OAUTH_TOKEN_LATE_ANSWERS])).toEqual(
      sorted([
        { attributes: { "interlock.oauth.grant": "refresh_token", "interlock.oauth.outcome": "issued" }, value: 1 },
        {
          attributes: {
            "interlock.oauth.grant": "refresh_token",
            "interlock.oauth.outcome": "server_unavailable",
            "error.type": "server_unavailable",
          },
          value: 1,
        },
      ]),
    );
    expect(sorted(metrics[METRIC_OAUTH_LOGIN_REVOCATIONS])).toEqual(
      sorted([
        { attributes: { "interlock.oauth.reason": "late", "interlock.oauth.outcome": "revoked" }, value: 1 },
        {
          attributes: {
            "interlock.oauth.reason": "refused",
            "interlock.oauth.outcome": "not_revoked",
            "error.type": "server_unavailable",
          },
          value: 1,
        },
      ]),
    );
    expect(metrics[METRIC_OAUTH_SESSION_WRITE_FAILURES]).toEqual([
      { attributes: { "error.type": "store_unavailable" }, value: 1 },
    ]);
    expect(sorted(metrics[METRIC_OAUTH_TOKEN_REUSES])).toEqual(
      sorted([
        {
          attributes: { "interlock.oauth.grant": "client_credentials", "interlock.oauth.outcome": "shared" },
          value: 2,
        },
        {
          attributes: {
            "interlock.oauth.grant": "refresh_token",
            "interlock.oauth.outcome": "stale_used",
            "error.type": "server_error",
          },
          value: 1,
        },
        {
          attributes: {
            "interlock.oauth.grant": "refresh_token",
            "interlock.oauth.outcome": "stale_used",
            "error.type": "store_unavailable",
          },
          value: 1,
        },
        {
          attributes: {
            "interlock.oauth.grant": "refresh_token",
            "interlock.oauth.outcome": "stale_used",
            "error.type": "_OTHER",
          },
          value: 1,
        },
      ]),
    );
    expect(sorted(metrics[METRIC_OAUTH_SESSIONS_ENDED])).toEqual(
      sorted([
        { attributes: { "interlock.oauth.outcome": "expired" }, value: 1 },
        { attributes: { "interlock.oauth.outcome": "refresh_rejected" }, value: 1 },
        {
          attributes: { "interlock.oauth.outcome": "refresh_answer_refused", "error.type": "store_unavailable" },
          value: 1,
        },
      ]),
    );
    expect(await otel.spans()).toEqual([]);
  });

  it("the breakers gauge follows client.breakers when the LRU drops a breaker and when a snapshot is restored", async () => {
    const { otel, onEvent } = telemetry();
    const [a, b, c] = await Promise.all([failing(), failing(), failing()]);
    const client = createClient({ onEvent, maxAttempts: 1, maxOrigins: 2, breaker: { failures: 1 } });
    const point = (origin: string, value: number) => ({
      attributes: { [ORIGIN]: origin, "interlock.client.breaker.state": "open" },
      value,
    });
    /** The gauge's points, checked against what the client's registry says at the same moment. */
    const gauge = async () => {
      const points = sorted((await otel.metrics())[METRIC_CLIENT_BREAKERS]);
      const registry = [...client.breakers].filter((breaker) => breaker.state !== "closed");
      expect(points.filter((p) => "value" in p && p.value !== 0)).toEqual(
        sorted(registry.map((breaker) => point(breaker.origin, 1))),
      );
      return points;
    };

    await expect(client(a.url)).rejects.toBeInstanceOf(RetryLimitError);
    await expect(client(b.url)).rejects.toBeInstanceOf(RetryLimitError);
    expect(await gauge()).toEqual(sorted([point(a.origin, 1), point(b.origin, 1)]));
    const saved = client.breakers.snapshot();

    // A third origin: the least recently used (a), open, is dropped without a transition.
    await expect(client(c.url)).rejects.toBeInstanceOf(RetryLimitError);
    expect(client.breakers.get(a.origin)).toBeUndefined();
    expect(await gauge()).toEqual(sorted([point(a.origin, 0), point(b.origin, 1), point(c.origin, 1)]));

    // Restoring a and b drops b, then c, to make room; a and b come back open.
    client.breakers.restore(saved);
    expect([...client.breakers].map((breaker) => [breaker.origin, breaker.state])).toEqual([
      [a.origin, "open"],
      [b.origin, "open"],
    ]);
    expect(await gauge()).toEqual(sorted([point(a.origin, 1), point(b.origin, 1), point(c.origin, 0)]));

    // A snapshot that closes a.
    client.breakers.restore({
      version: 1,
      breakers: { [a.origin]: { state: "closed", consecutiveFailures: 0, openedAt: null } },
    });
    expect(await gauge()).toEqual(sorted([point(a.origin, 0), point(b.origin, 1), point(c.origin, 0)]));
  });

  it("the breakers gauge sums the clients sharing one hook", async () => {
    const { otel, onEvent } = telemetry();
    const server = await failing();
    const first = createClient({ onEvent, maxAttempts: 1, breaker: { failures: 1 } });
    const second = createClient({ onEvent, maxAttempts: 1, breaker: { failures: 1 } });
    await expect(first(server.url)).rejects.toBeInstanceOf(RetryLimitError);
    await expect(second(server.url)).rejects.toBeInstanceOf(RetryLimitError);
    expect((await otel.metrics())[METRIC_CLIENT_BREAKERS]).toEqual([
      { attributes: { [ORIGIN]: server.origin, "interlock.client.breaker.state": "open" }, value: 2 },
    ]);
  });

  it("the breakers gauge sums the clients of two hooks on one meter provider, and zeroes only what none reports", async () => {
    const { otel } = telemetry();
    // One hook per module: both hooks' instruments are the same ones, and so is the gauge.
    const hook = () => interlockTelemetry({ meterProvider: otel.meterProvider, tracerProvider: otel.tracerProvider });
    const server = await failing();
    const first = createClient({ onEvent: hook(), maxAttempts: 1, breaker: { failures: 1 } });
    const second = createClient({ onEvent: hook(), maxAttempts: 1, breaker: { failures: 1 } });
    await expect(first(server.url)).rejects.toBeInstanceOf(RetryLimitError);
    await expect(second(server.url)).rejects.toBeInstanceOf(RetryLimitError);
    const open = { [ORIGIN]: server.origin, "interlock.client.breaker.state": "open" };
    expect((await otel.metrics())[METRIC_CLIENT_BREAKERS]).toEqual([{ attributes: open, value: 2 }]);

    // The first client's breaker closes: the second's is still open.
    first.breakers.restore({
      version: 1,
      breakers: { [server.origin]: { state: "closed", consecutiveFailures: 0, openedAt: null } },
    });
    expect((await otel.metrics())[METRIC_CLIENT_BREAKERS]).toEqual([{ attributes: open, value: 1 }]);
  });
});

describe("many clients", () => {
  it("a hook whose metrics are never collected keeps nothing of the clients the app let go", async () => {
    // A meter provider with no reader (tracing only, say) never runs the breakers gauge's
    // callback: the clients' registries must still be let go of, however many were made.
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const onEvent = interlockTelemetry({ meterProvider: new MeterProvider() });
    // A WeakRef keeps its target alive until the job that made it ends: the app makes its
    // clients over many turns (one per tenant, per request), and lets each go after its turn.
    const make = async (turns: number) => {
      for (let turn = 0; turn < turns; turn++) {
        for (let i = 0; i < 2_000; i++) onEvent({ type: "client.created", breakers: [] });
        await new Promise((resolve) => setImmediate(resolve));
        gc();
      }
    };
    await make(5);
    const before = process.memoryUsage().heapUsed;
    await make(150);
    expect(process.memoryUsage().heapUsed - before).toBeLessThan(4_000_000);
  });
});

/** A server on 127.0.0.1 that answers every request 500. */
function failing() {
  return scripted(Array.from({ length: 10 }, () => ({ status: 500 })));
}
