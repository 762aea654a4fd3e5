/**
 * The idempotency engine's behaviour table, for any store: every row of the decision table,
 * run through `begin` / `finish` / `abort` exactly as an adapter drives them.
 *
 * ```ts
 * import { describeIdempotencyBehaviour } from "@interlock/core/testing";
 * describeIdempotencyBehaviour("redis", { create: () => redisStore(client, { prefix: uniquePrefix() }) });
 * ```
 */

import { afterAll, describe, expect, it } from "vitest";
import { StoreUnavailableError } from "../errors.js";
import type { IdempotencyEvent, InterlockEvent } from "../events.js";
import type { HttpResponse } from "../http.js";
import {
  createIdempotency,
  type IdempotencyDecision,
  type IdempotencyEngine,
  type IdempotencyOptions,
  type IdempotencyRequest,
} from "../idempotency/engine.js";
import type { CapturedResponse } from "../idempotency/response.js";
import { runIdempotent } from "../idempotency/run.js";
import type { InterlockStore } from "../store/contract.js";

/** How to make the stores the idempotency behaviour suite runs the engine on. */
export interface IdempotencyBehaviourOptions {
  /** A fresh store whose keys no other test sees. */
  create: () => InterlockStore | Promise<InterlockStore>;
  /** A store of the same kind that cannot reach its server. Default: a store whose every call fails. */
  createUnavailable?: () => InterlockStore | Promise<InterlockStore>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const text = (response: HttpResponse) => new TextDecoder().decode(response.body);
const header = (response: HttpResponse, name: string) =>
  response.headers.find(([n]) => n.toLowerCase() === name.toLowerCase())?.[1];

/** A store that fails every call, as one whose server is gone. */
export function unreachableStore(name = "unreachable"): InterlockStore {
  const fail = () => Promise.reject(new StoreUnavailableError(name, "connection refused"));
  return { name, maxRecordBytes: 1024 * 1024, claim: fail, complete: fail, release: fail, extend: fail };
}

let sequence = 0;

interface HandlerOutput {
  status: number;
  headers?: Record<string, string>;
  body?: Uint8Array | string;
}

/** Registers the idempotency engine's decision table with vitest, on the given store. */
export function describeIdempotencyBehaviour(name: string, options: IdempotencyBehaviourOptions): void {
  const stores: InterlockStore[] = [];
  const fresh = async () => {
    const store = await options.create();
    stores.push(store);
    return store;
  };
  const newKey = () => `key-${Date.now().toString(36)}-${++sequence}`;

  async function engineOn(extra: Partial<IdempotencyOptions> = {}, events: InterlockEvent[] = []) {
    const store = extra.store ?? (await fresh());
    return createIdempotency({ principal: false, ...extra, store, onEvent: (e) => events.push(e) });
  }

  const post = (
    key: string | undefined,
    body = '{"amount":100}',
    extra: Partial<IdempotencyRequest> = {},
  ): IdempotencyRequest => ({
    method: "POST",
    route: "/payments",
    path: "/payments",
    headers: key === undefined ? {} : { "idempotency-key": key },
    body,
    ...extra,
  });

  /** Runs a request through the engine the way an adapter does, with `respond` as the handler. */
  async function send(
    engine: IdempotencyEngine,
    request: IdempotencyRequest,
    respond: () => HandlerOutput | Promise<HandlerOutput> = () => ({
      status: 201,
      headers: { "content-type": "application/json" },
      body: '{"id":"pay_1"}',
    }),
  ): Promise<{ decision: IdempotencyDecision; response: HttpResponse | undefined; ran: boolean }> {
    const decision = await engine.begin(request);
    if (decision.action === "respond") return { decision, response: decision.response, ran: false };
    try {
      const out = await respond();
      const body = typeof out.body === "string" ? new TextEncoder().encode(out.body) : (out.body ?? new Uint8Array());
      if (decision.action === "execute") {
        await engine.finish(decision.ticket, {
          status: out.status,
          headers: out.headers ?? {},
          body: out.body ?? new Uint8Array(),
        });
      }
      return {
        decision,
        response: { status: out.status, headers: Object.entries(out.headers ?? {}), body },
        ran: true,
      };
    } catch (error) {
      if (decision.action === "execute") await engine.abort(decision.ticket);
      throw error;
    }
  }

  describe(`idempotency engine on ${name}`, () => {
    afterAll(async () => {
      await Promise.all(stores.map((s) => s.close?.()));
    });

    describe("what is covered", () => {
      it("passes through methods it does not cover (default: only POST and PATCH)", async () => {
        const engine = await engineOn();
        for (const method of ["GET", "PUT", "DELETE", "HEAD", "OPTIONS"]) {
          expect(await engine.begin(post(newKey(), "", { method }))).toEqual({ action: "pass" });
        }
        expect((await engine.begin(post(newKey(), "", { method: "patch" }))).action).toBe("execute");
      });

      it("passes through a request without a key unless a key is required", async () => {
        expect(await (await engineOn()).begin(post(undefined))).toEqual({ action: "pass" });
        const { response } = await send(await engineOn({ required: true }), post(undefined));
        expect(response?.status).toBe(400);
        expect(header(response as HttpResponse, "content-type")).toBe("application/problem+json");
        expect(JSON.parse(text(response as HttpResponse))).toMatchObject({
          code: "idempotency_key_missing",
          status: 400,
        });
      });

      it("refuses malformed keys with 400: lists, empty, too long, non-ASCII, bad quoting", async () => {
        const engine = await engineOn();
        const bad = [
          '"a", "b"',
          "a,b",
          '""',
          "",
          " ",
          "k".repeat(256),
          "clé",
          '"unterminated',
          '"a";p=1',
          '"tab\there"',
          '"\\x"',
          "k\u00a0",
          "\u00a0k",
          '"k"\u00a0',
          "k\ufeff",
        ];
        for (const key of bad) {
          const { response } = await send(engine, post(key));
          expect(response?.status, JSON.stringify(key)).toBe(400);
          expect(JSON.parse(text(response as HttpResponse)).code, JSON.stringify(key)).toBe("idempotency_key_invalid");
        }
        const { response } = await send(engine, { ...post(undefined), headers: { "idempotency-key": ["a", "b"] } });
        expect(response?.status).toBe(400);
      });

      it("accepts an RFC 9651 string and a bare token, up to 255 characters", async () => {
        const engine = await engineOn();
        const base = newKey();
        for (const key of [
          `"${base}-q"`,
          `${base}-bare`,
          `"${base}-esc\\"\\\\"`,
          `"${base}${"k".repeat(255 - base.length)}"`,
        ]) {
          expect((await engine.begin(post(key))).action, key).toBe("execute");
        }
        // The quoted and bare spellings of one key are the same key.
        const same = await engineOn();
        const k = newKey();
        await send(same, post(`"${k}"`));
        expect((await send(same, post(k))).decision).toMatchObject({ action: "respond", replayed: true });
      });
    });

    describe("first request and replay", () => {
      it("runs the handler once and replays status, allow-listed headers and body bytes exactly", async () => {
        const events: InterlockEvent[] = [];
        const engine = await engineOn({}, events);
        const key = newKey();
        const binary = Uint8Array.from({ length: 300 }, (_, i) => (i * 7) % 256);
        let runs = 0;
        const handler = () => {
          runs++;
          return {
            status: 201,
            headers: {
              "Content-Type": "application/octet-stream",
              Location: "/payments/pay_1",
              ETag: '"v1"',
              "Set-Cookie": "session=secret",
              "X-Request-Id": "req-1",
            },
            body: binary,
          };
        };
        await send(engine, post(key), handler);
        const { decision, response, ran } = await send(engine, post(key), handler);
        expect(ran).toBe(false);
        expect(runs).toBe(1);
        expect(decision).toMatchObject({ action: "respond", replayed: true });
        expect(response?.status).toBe(201);
        expect(Array.from(response?.body ?? [])).toEqual(Array.from(binary));
        expect(response?.headers).toEqual([
          ["content-type", "application/octet-stream"],
          ["location", "/payments/pay_1"],
          ["etag", '"v1"'],
          ["Idempotent-Replayed", "true"],
        ]);
        expect(events.map((e) => e.type)).toEqual([
          "idempotency.first",
          "idempotency.completed",
          "idempotency.replayed",
        ]);
      });

      it("stores a 204 or 205 without a body, whatever the handler gave", async () => {
        const engine = await engineOn();
        for (const status of [204, 205]) {
          const key = newKey();
          await send(engine, post(key), () => ({ status, headers: { etag: '"v1"' }, body: '{"ignored":true}' }));
          const { response, ran } = await send(engine, post(key));
          expect([ran, response?.status, response?.body.byteLength], String(status)).toEqual([false, status, 0]);
          expect(header(response as HttpResponse, "etag"), String(status)).toBe('"v1"');
        }
      });

      it("never stores Content-Length or a connection's own headers, even when replayHeaders names them", async () => {
        const connectionHeaders = [
          "connection",
          "keep-alive",
          "proxy-connection",
          "te",
          "trailer",
          "transfer-encoding",
          "upgrade",
        ];
        const engine = await engineOn({
          replayHeaders: ["content-type", "Content-Length", ...connectionHeaders, "x-trace"],
        });
        const key = newKey();
        await send(engine, post(key), () => ({
          status: 201,
          headers: {
            "content-type": "text/plain",
            "content-length": "99",
            ...Object.fromEntries(connectionHeaders.map((name) => [name, "x"])),
            "x-trace": "t1",
          },
          body: "stored",
        }));
        const { response } = await send(engine, post(key));
        expect(response?.headers).toEqual([
          ["content-type", "text/plain"],
          ["x-trace", "t1"],
          ["Idempotent-Replayed", "true"],
        ]);
      });

      it("never stores Set-Cookie, even when replayHeaders names it", async () => {
        const engine = await engineOn({ replayHeaders: ["content-type", "Set-Cookie", "set-cookie2"] });
        const key = newKey();
        await send(engine, post(key), () => ({
          status: 201,
          headers: {
            "content-type": "application/json",
            "set-cookie": "session=first-request; HttpOnly",
            "set-cookie2": "legacy=1",
          },
          body: "{}",
        }));
        const { response, ran } = await send(engine, post(key));
        expect(ran).toBe(false);
        expect(response?.headers).toEqual([
          ["content-type", "application/json"],
          ["Idempotent-Replayed", "true"],
        ]);
      });

      it("names the replay header as configured", async () => {
        const engine = await engineOn({ replayedHeader: "X-Replayed" });
        const key = newKey();
        await send(engine, post(key));
        expect(header((await send(engine, post(key))).response as HttpResponse, "x-replayed")).toBe("true");
      });

      it("scopes keys by principal, method and route: the same key never collides", async () => {
        const store = await fresh();
        const engine = await engineOn({ store, principal: (r) => (r.headers as Record<string, string>)["x-api-key"] });
        const key = newKey();
        const as = (apiKey: string, extra: Partial<IdempotencyRequest> = {}) =>
          post(key, '{"amount":100}', { headers: { "idempotency-key": key, "x-api-key": apiKey }, ...extra });
        const outcomes = [
          await send(engine, as("tenant-a")),
          await send(engine, as("tenant-b")),
          await send(engine, as("tenant-a", { method: "PATCH" })),
          await send(engine, as("tenant-a", { route: "/refunds", path: "/refunds" })),
        ];
        expect(outcomes.map((o) => o.ran)).toEqual([true, true, true, true]);
        // Each scope again, one after another (the engine remembers the last scope it hashed).
        const again = [
          await send(engine, as("tenant-a")),
          await send(engine, as("tenant-a")),
          await send(engine, as("tenant-b")),
          await send(engine, as("tenant-a", { method: "PATCH" })),
        ];
        expect(again.map((o) => o.ran)).toEqual([false, false, false, false]);
        const other = newKey();
        const asOther = (apiKey: string) =>
          post(other, '{"amount":100}', { headers: { "idempotency-key": other, "x-api-key": apiKey } });
        expect((await send(engine, asOther("tenant-b"))).ran).toBe(true);
        expect((await send(engine, asOther("tenant-c"))).ran).toBe(true);
      });
    });

    describe("conflicts", () => {
      it("a completed key with another body answers 422 (status configurable)", async () => {
        const events: InterlockEvent[] = [];
        const engine = await engineOn({}, events);
        const key = newKey();
        await send(engine, post(key, '{"amount":100}'));
        const { response, ran } = await send(engine, post(key, '{"amount":999}'));
        expect(ran).toBe(false);
        expect(response?.status).toBe(422);
        expect(JSON.parse(text(response as HttpResponse)).code).toBe("idempotency_key_mismatch");
        expect(events.at(-1)?.type).toBe("idempotency.mismatch");
        const custom = await engineOn({ mismatchStatus: 409 });
        await send(custom, post(key, "a"));
        expect((await send(custom, post(key, "b"))).response?.status).toBe(409);
      });

      it("another path is another request under the default fingerprint", async () => {
        const engine = await engineOn();
        const key = newKey();
        await send(engine, post(key, "{}", { path: "/payments?currency=eur" }));
        expect((await send(engine, post(key, "{}", { path: "/payments?currency=usd" }))).response?.status).toBe(422);
      });

      it("checks the fingerprint before the in-flight state: 422, not 409", async () => {
        const engine = await engineOn();
        const key = newKey();
        expect((await engine.begin(post(key, "first"))).action).toBe("execute");
        expect((await send(engine, post(key, "second"))).response?.status).toBe(422);
      });

      it("a key in flight answers 409 with Retry-After: 1 (ask again soon), not the lease", async () => {
        const events: InterlockEvent[] = [];
        const engine = await engineOn({ lockTtlMs: 30_000 }, events);
        const key = newKey();
        expect((await engine.begin(post(key))).action).toBe("execute");
        const { response } = await send(engine, post(key));
        expect(response?.status).toBe(409);
        expect(header(response as HttpResponse, "retry-after")).toBe("1");
        expect(JSON.parse(text(response as HttpResponse)).code).toBe("request_in_flight");
        expect(events.at(-1)).toMatchObject({ type: "idempotency.in_flight", waited: false });
      });

      it("when configured, waits for the first request and replays it", async () => {
        const engine = await engineOn({ waitForInFlight: { timeoutMs: 5_000, pollMs: 10 } });
        const key = newKey();
        const first = engine.begin(post(key));
        const decision = await first;
        if (decision.action !== "execute") throw new Error("expected to execute");
        const second = send(engine, post(key));
        await sleep(60);
        await engine.finish(decision.ticket, { status: 201, headers: { "content-type": "text/plain" }, body: "done" });
        const { response, ran } = await second;
        expect(ran).toBe(false);
        expect(response?.status).toBe(201);
        expect(text(response as HttpResponse)).toBe("done");
      });

      it("a bounded wait that runs out answers 409", async () => {
        const engine = await engineOn({ waitForInFlight: { timeoutMs: 150, pollMs: 20 } });
        const key = newKey();
        await engine.begin(post(key));
        const started = Date.now();
        expect((await send(engine, post(key))).response?.status).toBe(409);
        expect(Date.now() - started).toBeLessThan(2_000);
      });

      it("50 concurrent requests with one key run the handler once; the rest get 409 or the replay", async () => {
        const engine = await engineOn();
        const key = newKey();
        let runs = 0;
        const results = await Promise.all(
          Array.from({ length: 50 }, () =>
            send(engine, post(key), async () => {
              runs++;
              await sleep(30);
              return { status: 201, body: "once" };
            }),
          ),
        );
        expect(runs).toBe(1);
        for (const r of results.filter((x) => !x.ran)) expect([409, 201]).toContain(r.response?.status);
      });
    });

    describe("failures and policies", () => {
      it("a handler that throws releases the key: the retry runs again", async () => {
        const events: InterlockEvent[] = [];
        const engine = await engineOn({}, events);
        const key = newKey();
        await expect(send(engine, post(key), () => Promise.reject(new Error("boom")))).rejects.toThrow("boom");
        expect(events.at(-1)).toMatchObject({ type: "idempotency.released", reason: "error" });
        expect((await send(engine, post(key))).ran).toBe(true);
      });

      it("5xx, 408, 425 and 429 are released by default, cached with cache: 'all'; other 4xx are cached by default, released with cache: '2xx'", async () => {
        const fail500 = () => ({ status: 503, body: "unavailable" });
        const fail400 = () => ({ status: 400, body: "bad" });
        const byDefault = await engineOn();
        const k1 = newKey();
        await send(byDefault, post(k1), fail500);
        expect((await send(byDefault, post(k1))).ran).toBe(true);
        const k2 = newKey();
        await send(byDefault, post(k2), fail400);
        expect((await send(byDefault, post(k2))).response?.status).toBe(400);
        const strict = await engineOn({ cache: "all" });
        const k3 = newKey();
        await send(strict, post(k3), fail500);
        expect((await send(strict, post(k3))).response?.status).toBe(503);
        // 408, 425 and 429 ask for the same request again: released by default, stored with "all".
        for (const status of [408, 425, 429]) {
          const k = newKey();
          await send(byDefault, post(k), () => ({ status, body: "again" }));
          expect((await send(byDefault, post(k))).ran, String(status)).toBe(true);
          const kept = newKey();
          await send(strict, post(kept), () => ({ status, body: "again" }));
          expect((await send(strict, post(kept))).response?.status, String(status)).toBe(status);
        }
        const only2xx = await engineOn({ cache: "2xx" });
        const k4 = newKey();
        await send(only2xx, post(k4), fail400);
        expect((await send(only2xx, post(k4))).ran).toBe(true);
      });

      it("a 304 to an unsafe method is stored under every policy: the handler ran, and released it would run again", async () => {
        // A conditional middleware inside (an ETag plugin that answers every method) made the
        // handler's answer a 304 after the handler ran: the POST's effect has happened.
        let runs = 0;
        const notModified = () => {
          runs++;
          return { status: 304, headers: { etag: '"v1"' }, body: "" };
        };
        for (const cache of ["non-5xx", "all", "2xx"] as const) {
          const engine = await engineOn({ cache });
          const key = newKey();
          const conditional = post(key, "{}", { headers: { "idempotency-key": key, "if-none-match": '"v1"' } });
          expect((await send(engine, conditional, notModified)).response?.status, cache).toBe(304);
          const retry = await send(engine, post(key, "{}"), notModified);
          expect([retry.ran, retry.response?.status], cache).toEqual([false, 304]);
        }
        expect(runs).toBe(3); // once per policy, never for a retry
      });

      it("a 304 Not Modified to a safe method is never stored, whatever the policy: it answers conditional headers the fingerprint does not cover", async () => {
        const events: InterlockEvent[] = [];
        const notModified = () => ({ status: 304, headers: { etag: '"v1"' }, body: "" });
        for (const cache of ["non-5xx", "all", "2xx"] as const) {
          const engine = await engineOn({ cache, methods: ["GET"] }, events);
          const key = newKey();
          const conditional = post(key, "", {
            method: "GET",
            headers: { "idempotency-key": key, "if-none-match": '"v1"' },
          });
          expect((await send(engine, conditional, notModified)).response?.status, cache).toBe(304);
          expect(events.at(-1), cache).toMatchObject({ type: "idempotency.released", reason: "status", status: 304 });
          // The retry without the condition runs, and gets the whole representation.
          const retry = await send(engine, post(key, "", { method: "GET" }), () => ({ status: 200, body: "v1" }));
          expect([retry.ran, retry.response?.status], cache).toEqual([true, 200]);
        }
      });

      it("a streamed or over-size response is not cached: the key is released and an event says why", async () => {
        const events: InterlockEvent[] = [];
        const store = await fresh();
        const engine = await engineOn({ store }, events);
        const streamedKey = newKey();
        const decision = await engine.begin(post(streamedKey));
        if (decision.action !== "execute") throw new Error("expected to execute");
        await engine.finish(decision.ticket, { status: 200, headers: {}, body: undefined });
        expect(events.at(-1)).toMatchObject({ type: "idempotency.released", reason: "streamed", status: 200 });
        expect((await send(engine, post(streamedKey))).ran).toBe(true);
        const bigKey = newKey();
        await send(engine, post(bigKey), () => ({ status: 200, body: new Uint8Array(store.maxRecordBytes + 1) }));
        expect(events.at(-1)).toMatchObject({ type: "idempotency.released", reason: "too_large" });
        expect((await send(engine, post(bigKey))).ran).toBe(true);
      });

      it("a body the adapter stopped keeping at the record limit (tooLarge) is released as too_large, after its status", async () => {
        const events: InterlockEvent[] = [];
        const engine = await engineOn({}, events);
        const finishWith = async (captured: CapturedResponse) => {
          const key = newKey();
          const decision = await engine.begin(post(key));
          if (decision.action !== "execute") throw new Error("expected to execute");
          expect(await engine.finish(decision.ticket, captured)).toBe(false);
          const released = events.at(-1);
          expect((await send(engine, post(key))).ran).toBe(true);
          return released;
        };
        const dropped = { status: 200, headers: {}, body: undefined, tooLarge: true };
        expect(await finishWith(dropped)).toMatchObject({ reason: "too_large", status: 200, released: true });
        // The status decides first, as for a whole body over the limit.
        expect(await finishWith({ ...dropped, status: 503 })).toMatchObject({ reason: "status", status: 503 });
        // What an adapter kept of a body it says was cut is never stored.
        expect(await finishWith({ ...dropped, body: "partial" })).toMatchObject({ reason: "too_large" });
        // Not kept, and not for its size: streamed.
        expect(await finishWith({ ...dropped, tooLarge: false })).toMatchObject({ reason: "streamed" });
      });

      it("a crash mid-handler blocks the key for one lease; then a retry runs once", async () => {
        // A lease long enough that a loaded machine still asks again inside it, and a wait past it
        // with room for a late timer and a store's clock.
        const engine = await engineOn({ lockTtlMs: 800 });
        // The worker that died: it renews nothing (a live engine renews its claims by default).
        const died = await engineOn({ store: engine.options.store, lockTtlMs: 800, extendLease: false });
        const key = newKey();
        expect((await died.begin(post(key))).action).toBe("execute"); // never finished: the worker died
        expect((await send(engine, post(key))).response?.status).toBe(409);
        await sleep(1200);
        let runs = 0;
        const results = await Promise.all(
          [1, 2, 3].map(() => send(engine, post(key), () => ({ status: 201, body: String(++runs) }))),
        );
        expect(runs).toBe(1);
        expect(results.filter((r) => r.ran)).toHaveLength(1);
      });

      it("extendLease (on by default) keeps a long handler's key in flight past the first lease", async () => {
        // Renewed every third of the lease: a renewal may come 400 ms late (a loaded machine) and
        // still hold it; the wait spans two leases.
        const engine = await engineOn({ lockTtlMs: 600 });
        const key = newKey();
        const decision = await engine.begin(post(key));
        if (decision.action !== "execute") throw new Error("expected to execute");
        await sleep(1300);
        expect((await send(engine, post(key))).response?.status).toBe(409);
        await engine.finish(decision.ticket, { status: 201, headers: {}, body: "late" });
        expect(text((await send(engine, post(key))).response as HttpResponse)).toBe("late");
      });

      it("an unreachable store answers 503 problem+json with Retry-After, or passes through with failOpen", async () => {
        const store = options.createUnavailable ? await options.createUnavailable() : unreachableStore();
        stores.push(store);
        const events: InterlockEvent[] = [];
        const closed = await engineOn({ store }, events);
        const { response, ran } = await send(closed, post(newKey()));
        expect(ran).toBe(false);
        expect(response?.status).toBe(503);
        expect(JSON.parse(text(response as HttpResponse)).code).toBe("store_unavailable");
        expect(header(response as HttpResponse, "retry-after")).toBe("2");
        const open = await engineOn({ store, failOpen: true }, events);
        expect(await open.begin(post(newKey()))).toEqual({ action: "pass" });
        const downEvents = events.filter(
          (e): e is Extract<IdempotencyEvent, { type: "idempotency.store_unavailable" }> =>
            e.type === "idempotency.store_unavailable",
        );
        expect(downEvents.map((e) => e.failOpen)).toEqual([false, true]);
      });
    });

    describe("runIdempotent", () => {
      it("runs work once per key and returns the stored value after", async () => {
        const store = await fresh();
        const key = newKey();
        let runs = 0;
        const work = async () => ({ charged: ++runs, at: "2026-11-29" });
        expect(await runIdempotent({ store, key }, work)).toEqual({
          value: { charged: 1, at: "2026-11-29" },
          replayed: false,
          recorded: true,
        });
        expect(await runIdempotent({ store, key }, work)).toEqual({
          value: { charged: 1, at: "2026-11-29" },
          replayed: true,
          recorded: true,
        });
        expect(await runIdempotent({ store, key: newKey() }, () => undefined)).toMatchObject({
          value: undefined,
          replayed: false,
        });
        expect(runs).toBe(1);
      });

      it("refuses a key running elsewhere or used for other input; a failure releases the key", async () => {
        const store = await fresh();
        const key = newKey();
        // The first run holds the key until `finish()`: no timing, so a slow store cannot reorder the rows.
        let started = () => {};
        const running = new Promise<void>((resolve) => {
          started = resolve;
        });
        let finish = () => {};
        const finished = new Promise<void>((resolve) => {
          finish = resolve;
        });
        const slow = runIdempotent({ store, key, fingerprint: "msg-1" }, async () => {
          started();
          await finished;
          return "done";
        });
        await running;
        await expect(runIdempotent({ store, key, fingerprint: "msg-1" }, () => "again")).rejects.toMatchObject({
          code: "request_in_flight",
        });
        await expect(runIdempotent({ store, key, fingerprint: "msg-2" }, () => "other")).rejects.toMatchObject({
          code: "idempotency_key_mismatch",
        });
        const waiting = runIdempotent({ store, key, fingerprint: "msg-1", wait: { timeoutMs: 5_000 } }, () => "again");
        finish();
        expect(await waiting).toEqual({ value: "done", replayed: true, recorded: true });
        expect(await slow).toEqual({ value: "done", replayed: false, recorded: true });
        const failing = newKey();
        await expect(runIdempotent({ store, key: failing }, () => Promise.reject(new Error("nope")))).rejects.toThrow(
          "nope",
        );
        expect(await runIdempotent({ store, key: failing }, () => "second try")).toMatchObject({
          value: "second try",
          replayed: false,
        });
      });

      it("an unreachable store fails before the work runs", async () => {
        const store = options.createUnavailable ? await options.createUnavailable() : unreachableStore();
        stores.push(store);
        let ran = false;
        await expect(runIdempotent({ store, key: newKey() }, () => (ran = true))).rejects.toMatchObject({
          code: "store_unavailable",
        });
        expect(ran).toBe(false);
      });
    });
  });
}
