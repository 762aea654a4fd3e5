/**
 * One scenario table for every framework adapter, over real HTTP on 127.0.0.1. An adapter's
 * test supplies `createApp`, which builds the same small app on its framework:
 *
 * - `POST /webhooks`: the adapter's webhook middleware with `options.webhook`, then a route
 *   that calls `handlers.webhook(event)` and answers 200 `{"received": <id>}`;
 * - `POST /payments`: the adapter's idempotency middleware with `options.idempotency` plus a
 *   principal read from the `x-api-key` header, then a route that calls
 *   `handlers.payment(<parsed JSON body>)` and answers its `status`, `headers` and `json`;
 * - `GET /payments`: the same middleware and route (GET is not covered: it passes through; HEAD,
 *   answered by the GET route, is);
 * - `POST /exports`: the same idempotency middleware (one instance with the payments routes),
 *   then a route that answers 200 `text/csv` with the chunks of `handlers.exportRows(<parsed JSON
 *   body>)` streamed as they come, with the framework's own stream: a Node `Readable.from(…)`
 *   piped, sent or assigned as the body on Node frameworks, a `ReadableStream` on web ones. The
 *   route returns before the stream is over; the rows pace it;
 * - an error handler that answers a handler's throw with 500 `{"error": "handler failed"}`: the
 *   app's own, which the adapter's answer to its own errors comes before (a delivery's payload
 *   that cannot be decoded is 400 problem+json whatever the app's error handler says).
 *
 * Every row expects the same status and body from every framework.
 */

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { IdempotencyOptions } from "../idempotency/engine.js";
import type { InterlockStore } from "../store/contract.js";
import { MemoryStore } from "../store/memory.js";
import type { WebhookReceiverOptions } from "../webhooks/receiver.js";
import { standardWebhooks } from "../webhooks/schemes/standard-webhooks.js";
import { signWebhook } from "../webhooks/sign.js";
import type { VerifiedWebhook } from "../webhooks/verified.js";
import { unreachableStore } from "./idempotency.js";

/** The work behind the scenario app's routes, swapped by each scenario. */
export interface ScenarioHandlers {
  /** The webhook route's work. Throwing makes the app answer 500. */
  webhook(event: VerifiedWebhook): Promise<void>;
  /** The payments route's work, given the parsed JSON body. */
  payment(body: unknown): Promise<{
    /** The status to answer. */
    status: number;
    /** Headers to answer with. */
    headers?: Record<string, string>;
    /** The JSON body to answer with. */
    json: unknown;
  }>;
  /**
   * The exports route's work, given the parsed JSON body: the chunks of its 200 `text/csv`
   * answer, which the route streams as they come (not collected first), so the answer is still
   * being sent after the route has returned. The rows pace it: a chunk may be long in coming.
   */
  exportRows(body: unknown): AsyncIterable<string>;
}

/** What `createApp` builds the scenario app with. */
export interface ScenarioAppOptions {
  /** The adapter's webhook middleware options (as core's receiver takes them). */
  webhook: WebhookReceiverOptions;
  /** The adapter's idempotency middleware options, less `principal`, which reads `x-api-key`. */
  idempotency: Omit<IdempotencyOptions, "principal">;
  /** The routes' work. */
  handlers: ScenarioHandlers;
}

/** A running scenario app. */
export interface ScenarioApp {
  /** Base URL, e.g. `http://127.0.0.1:54321`. */
  url: string;
  /**
   * The client the rows send their requests with: default the global `fetch` (HTTP/1.1). An
   * app served over HTTP/2 gives a `fetch` that speaks it, so the same rows run over HTTP/2.
   */
  fetch?: typeof fetch;
  /**
   * Why this server's framework never answers a HEAD request, when it does not (Koa 2 over
   * HTTP/2): the HEAD row then checks that this is still so, and fails once it is not.
   */
  unansweredHead?: string;
  /**
   * Why this app's adapter records a streamed answer and stores it once the stream is over,
   * when it does (the web adapter's `withIdempotency` records a `new Response(readableStream)`
   * body): the streamed-answer row then expects the retry after the end to be a replay of it,
   * the handler not run again, and fails once it is not. Without it, the row expects what a
   * streamed answer gets on every other adapter: released, not stored, the retry run again.
   */
  storesStreamedAnswers?: string;
  /**
   * Why this app's own body parser reads every body before Interlock, when it does (Express with a
   * global `express.json({ verify: captureRawBody })`, NestJS with `rawBody: true`): a body sent
   * with a `Content-Encoding` is decoded, or refused, by that parser, whose refusals keep their
   * status but are its error handler's answer, not Interlock's problem+json. The rows on such
   * bodies then check that the refusal is the parser's, and fail once it is Interlock's.
   */
  parsesBodiesFirst?: string;
  /** Stops the server. */
  close(): Promise<void>;
}

/** Builds and starts the scenario app on an adapter's framework, listening on 127.0.0.1. */
export type CreateScenarioApp = (options: ScenarioAppOptions) => Promise<ScenarioApp>;

const CURRENT_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OLD_SECRET = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface World {
  app: ScenarioApp;
  store: InterlockStore;
  /** Webhook ids the handler processed, in order (failures excluded). */
  processed: string[];
  /** Payments the handler created. */
  payments: number;
  /** Exports the handler started. */
  exports: number;
  /** Holds every export after its first chunk until it opens: a row closes it to pace one. */
  exportGate: Gate;
}

/** A promise the row resolves when it chooses: no timer decides when the held work goes on. */
interface Gate {
  readonly opened: Promise<void>;
  open(): void;
}

function gate(): Gate {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { opened, open };
}

function openGate(): Gate {
  const opened = gate();
  opened.open();
  return opened;
}

/** `text` compressed as `format` says, with the web's own `CompressionStream` (every runtime has it). */
async function compressed(body: string | Uint8Array, format: "gzip" | "deflate" | "deflate-raw"): Promise<Uint8Array> {
  const stream = new Blob([body as BlobPart]).stream().pipeThrough(new CompressionStream(format));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** The exports handler's instructions, sent in the request body. */
interface ExportBody {
  /** How many rows after the header line. */
  rows?: number;
}

/** What the exports handler streams for `rows` rows: the header line, then one line a row. */
const exportCsv = (rows: number) => [
  "id,amount\n",
  ...Array.from({ length: rows }, (_, row) => `${row + 1},${(row + 1) * 100}\n`),
];

/** The payments handler's instructions, sent in the request body. */
interface PaymentBody {
  amount?: number;
  /** Answer this status instead of 201. */
  status?: number;
  /** Take this long (ms). */
  delayMs?: number;
}

function worldOptions(world: Omit<World, "app">, store: InterlockStore): ScenarioAppOptions {
  const failedOnce = new Set<string>();
  return {
    webhook: { scheme: standardWebhooks, secret: [CURRENT_SECRET, OLD_SECRET], store, lockTtlMs: 5_000 },
    idempotency: { store, lockTtlMs: 5_000, required: false, methods: ["POST", "PATCH", "HEAD"] },
    handlers: {
      async webhook(event) {
        const payload = event.payload as { fail?: boolean; delayMs?: number };
        if (payload.delayMs) await sleep(payload.delayMs);
        if (payload.fail && !failedOnce.has(event.id as string)) {
          failedOnce.add(event.id as string);
          throw new Error("the webhook handler failed once");
        }
        world.processed.push(event.id as string);
      },
      async payment(body) {
        const { amount = 100, status = 201, delayMs = 0 } = (body ?? {}) as PaymentBody;
        if (delayMs) await sleep(delayMs);
        if (status >= 500) return { status, json: { error: "payment provider unavailable" } };
        const id = `pay_${++world.payments}`;
        return { status, headers: { location: `/payments/${id}`, "set-cookie": "session=abc" }, json: { id, amount } };
      },
      async *exportRows(body) {
        const { rows = 3 } = (body ?? {}) as ExportBody;
        world.exports++;
        const [header, ...lines] = exportCsv(rows);
        yield header as string;
        // The rest waits for the row's gate: the answer is still being sent after the route returned.
        await world.exportGate.opened;
        yield* lines;
      },
    },
  };
}

/**
 * Registers the shared scenario table with vitest for one framework adapter: the same
 * requests must get the same statuses and bodies from every adapter.
 */
export function describeAdapterScenarios(framework: string, createApp: CreateScenarioApp): void {
  let world: World;
  let down: ScenarioApp;
  let sequence = 0;
  const newId = (label: string) => `msg_${label}_${Date.now().toString(36)}_${++sequence}`;
  const now = () => Math.floor(Date.now() / 1000);

  async function delivery(
    options: { id?: string; payload?: unknown; body?: string; secret?: string; timestamp?: number } = {},
  ) {
    const body = options.body ?? JSON.stringify(options.payload ?? { type: "invoice.paid" });
    const signed = await signWebhook({
      scheme: standardWebhooks,
      secret: options.secret ?? CURRENT_SECRET,
      body,
      id: options.id ?? newId("d"),
      timestamp: options.timestamp ?? now(),
    });
    return { headers: { ...signed.headers, "content-type": "application/json" }, body, id: signed.id as string };
  }

  /** Sends with the app's own client (HTTP/2 for an app served over it), else the global fetch. */
  const send = (app: ScenarioApp, path: string, init: RequestInit) => (app.fetch ?? fetch)(`${app.url}${path}`, init);

  const postWebhook = (d: { headers: Record<string, string>; body: string }, app = world.app) =>
    send(app, "/webhooks", { method: "POST", headers: d.headers, body: d.body });

  const pay = (key: string | undefined, body: PaymentBody = {}, extra: Record<string, string> = {}, app = world.app) =>
    send(app, "/payments", {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-api-key": "client-a",
        ...(key ? { "idempotency-key": key } : {}),
        ...extra,
      },
      body: JSON.stringify(body),
    });

  /** A keyed payment whose body is `body` as given, sent with `Content-Encoding: encoding`, unless none. */
  const payEncoded = (key: string, body: Uint8Array | string, encoding?: string) =>
    send(world.app, "/payments", {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-api-key": "client-a",
        "idempotency-key": key,
        ...(encoding && { "content-encoding": encoding }),
      },
      body: body as BodyInit,
    });

  /**
   * A body refused before a key is claimed or the handler runs: `status` with Interlock's `code`;
   * for an app whose own parser reads every body first, that parser's refusal of that status.
   */
  const refusedUnclaimed = async (response: Response, status: number, code: string) => {
    const parser = world.app.parsesBodiesFirst;
    if (parser === undefined) {
      expect([response.status, (await problem(response)).code]).toEqual([status, code]);
      return;
    }
    expect(response.status, parser).toBe(status);
    expect(response.headers.get("content-type") ?? "", parser).not.toMatch(/^application\/problem\+json/);
  };

  const exportRows = (key: string, body: ExportBody) =>
    send(world.app, "/exports", {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": "client-a", "idempotency-key": key },
      body: JSON.stringify(body),
    });

  const problem = async (response: Response) => {
    expect(response.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    return (await response.json()) as { code: string; status: number; type: string; title: string };
  };

  describe(`adapter scenarios: ${framework}`, () => {
    beforeAll(async () => {
      const store = new MemoryStore();
      // One object: the handlers count into it and the rows read it.
      const shared = { store, processed: [] as string[], payments: 0, exports: 0, exportGate: openGate() } as Omit<
        World,
        "app"
      > & { app?: ScenarioApp };
      shared.app = await createApp(worldOptions(shared, store));
      world = shared as World;
      const unreachable = unreachableStore();
      down = await createApp(
        worldOptions(
          { store: unreachable, processed: [], payments: 0, exports: 0, exportGate: openGate() },
          unreachable,
        ),
      );
    });
    afterAll(async () => {
      await world?.app.close();
      await down?.close();
    });

    describe("webhooks", () => {
      it("valid delivery → 200, handler runs", async () => {
        const d = await delivery();
        const response = await postWebhook(d);
        expect(response.status).toBe(200);
        expect(await response.json()).toEqual({ received: d.id });
        expect(world.processed).toContain(d.id);
      });

      it("tampered body → 401 no_matching_signature, handler not run", async () => {
        const d = await delivery();
        const response = await postWebhook({ ...d, body: d.body.replace("invoice", "refund") });
        expect(response.status).toBe(401);
        // RFC 9110 §15.5.2: a 401 carries a challenge.
        expect(response.headers.get("www-authenticate")).toBe('Signature scheme="standard-webhooks"');
        expect(await problem(response)).toMatchObject({ code: "no_matching_signature", status: 401 });
        expect(world.processed).not.toContain(d.id);
      });

      it("stale and future timestamps → 401 with their codes", async () => {
        const stale = await postWebhook(await delivery({ timestamp: now() - 600 }));
        expect([stale.status, stale.headers.get("www-authenticate")]).toEqual([
          401,
          'Signature scheme="standard-webhooks"',
        ]);
        expect((await problem(stale)).code).toBe("timestamp_too_old");
        const future = await postWebhook(await delivery({ timestamp: now() + 600 }));
        expect([future.status, (await problem(future)).code]).toEqual([401, "timestamp_in_future"]);
      });

      it("missing signature headers → 400 missing_header", async () => {
        const response = await send(world.app, "/webhooks", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: "{}",
        });
        expect([response.status, (await problem(response)).code]).toEqual([400, "missing_header"]);
      });

      it("duplicate delivery → 200 duplicate, handler not run again", async () => {
        const d = await delivery();
        expect((await postWebhook(d)).status).toBe(200);
        const again = await postWebhook(await delivery({ id: d.id })); // the provider re-signs its retry
        expect(again.status).toBe(200);
        expect(await again.json()).toEqual({ duplicate: true, id: d.id });
        expect(world.processed.filter((id) => id === d.id)).toHaveLength(1);
      });

      it("handler failure → 500; the redelivery is processed, once", async () => {
        const d = await delivery({ payload: { type: "invoice.paid", fail: true } });
        const failed = await postWebhook(d);
        expect(failed.status).toBe(500);
        expect(await failed.json()).toEqual({ error: "handler failed" });
        expect(world.processed).not.toContain(d.id);
        expect((await postWebhook(d)).status).toBe(200);
        expect((await postWebhook(d)).status).toBe(200);
        expect(world.processed.filter((id) => id === d.id)).toHaveLength(1);
      });

      it("a signed body that is not JSON, whose payload the handler reads → 400 payload_not_decodable, released: the redelivery is answered the same, never recorded", async () => {
        // The signature matched: the content is the sender's mistake, not a 500 for it to retry as the server's.
        const d = await delivery({ body: "not json {" });
        for (let attempt = 0; attempt < 2; attempt++) {
          const response = await postWebhook(d);
          // An app whose JSON parser reads every body first refuses it there, unclaimed: its own 400.
          if (world.app.parsesBodiesFirst !== undefined) {
            await refusedUnclaimed(response, 400, "payload_not_decodable");
            continue;
          }
          expect(response.status).toBe(400);
          expect(await problem(response)).toEqual({
            type: "urn:interlock:problem:payload_not_decodable",
            title: "The webhook payload cannot be decoded",
            status: 400,
            detail: "the delivery's body is not valid JSON",
            code: "payload_not_decodable",
            scheme: "standard-webhooks",
          });
        }
        expect(world.processed).not.toContain(d.id);
      });

      it("secret rotation: the previous secret still verifies", async () => {
        const d = await delivery({ secret: OLD_SECRET });
        expect((await postWebhook(d)).status).toBe(200);
      });

      it("concurrent copies of one delivery → the handler runs once", async () => {
        const d = await delivery({ payload: { type: "invoice.paid", delayMs: 100 } });
        const statuses = (await Promise.all(Array.from({ length: 8 }, () => postWebhook(d)))).map((r) => r.status);
        expect(statuses.filter((s) => s === 200).length).toBeGreaterThanOrEqual(1);
        expect(statuses.every((s) => s === 200 || s === 409)).toBe(true);
        expect(world.processed.filter((id) => id === d.id)).toHaveLength(1);
      });

      it("a delivery sent compressed → 415 unsupported_content_encoding with Accept-Encoding: identity, handler not run", async () => {
        const d = await delivery();
        const response = await send(world.app, "/webhooks", {
          method: "POST",
          headers: { ...d.headers, "content-encoding": "gzip" },
          body: (await compressed(d.body, "gzip")) as BodyInit,
        });
        expect([response.status, response.headers.get("accept-encoding")]).toEqual([415, "identity"]);
        expect((await problem(response)).code).toBe("unsupported_content_encoding");
        expect(world.processed).not.toContain(d.id);
        // Nothing was claimed: the delivery sent as it is, then, is processed, not a duplicate.
        const plain = await postWebhook(d);
        expect([plain.status, await plain.json()]).toEqual([200, { received: d.id }]);
      });

      it("store down → 503 store_unavailable with Retry-After, handler not run", async () => {
        const response = await postWebhook(await delivery(), down);
        expect([response.status, (await problem(response)).code]).toEqual([503, "store_unavailable"]);
        expect(response.headers.get("retry-after")).toBe("2");
      });
    });

    describe("idempotency", () => {
      it("first request → 201 from the handler; replay → the same status, headers and body, marked", async () => {
        const key = newId("pay");
        const first = await pay(key, { amount: 250 });
        expect(first.status).toBe(201);
        const body = await first.json();
        expect(body).toMatchObject({ amount: 250 });
        const before = world.payments;
        const replay = await pay(key, { amount: 250 });
        expect(replay.status).toBe(201);
        expect(await replay.json()).toEqual(body);
        expect(replay.headers.get("idempotent-replayed")).toBe("true");
        expect(replay.headers.get("location")).toBe(first.headers.get("location"));
        expect(replay.headers.get("set-cookie")).toBeNull();
        expect(world.payments).toBe(before);
      });

      it("same key, other body → 422 idempotency_key_mismatch", async () => {
        const key = newId("pay");
        await pay(key, { amount: 1 });
        const response = await pay(key, { amount: 2 });
        expect([response.status, (await problem(response)).code]).toEqual([422, "idempotency_key_mismatch"]);
      });

      it("one body sent compressed (gzip, deflate) and plain under one key is one request: replayed, the handler run once", async () => {
        const json = JSON.stringify({ amount: 42 });
        for (const [first, then] of [
          ["gzip", undefined],
          [undefined, "deflate"],
        ] as const) {
          const key = newId("pay");
          const before = world.payments;
          const bodyFor = async (encoding: "gzip" | "deflate" | undefined) =>
            encoding === undefined ? json : compressed(json, encoding);
          const answer = await payEncoded(key, await bodyFor(first), first);
          expect([first, answer.status]).toEqual([first, 201]);
          const body = await answer.json();
          expect(body).toMatchObject({ amount: 42 });
          const replay = await payEncoded(key, await bodyFor(then), then);
          expect([then, replay.status, replay.headers.get("idempotent-replayed")]).toEqual([then, 201, "true"]);
          expect(await replay.json()).toEqual(body);
          expect(world.payments).toBe(before + 1);
        }
      });

      it("a coding however it is spelled (any case, identity or empty members around it, x-gzip) is the one it names: decoded, the plain send replayed", async () => {
        const json = JSON.stringify({ amount: 47 });
        const gzip = await compressed(json, "gzip");
        for (const encoding of ["GZip", " gzip ,identity", "identity, gzip", ", gzip,", "X-Gzip"]) {
          const key = newId("pay");
          const before = world.payments;
          const sent = await payEncoded(key, gzip, encoding);
          if (world.app.parsesBodiesFirst !== undefined) {
            await sent.body?.cancel(); // the app's own parser decodes it, or refuses it, as it spells codings
            continue;
          }
          expect([encoding, sent.status]).toEqual([encoding, 201]);
          const replay = await payEncoded(key, json);
          expect([encoding, replay.status, replay.headers.get("idempotent-replayed")]).toEqual([encoding, 201, "true"]);
          expect(world.payments).toBe(before + 1);
        }
      });

      it("a content coding not decoded (compress, an unknown one, two at once, one mixed with an unknown one) → 415 unsupported_content_encoding naming the ones decoded, nothing claimed", async () => {
        const json = JSON.stringify({ amount: 43 });
        const twice = await compressed(await compressed(json, "deflate"), "gzip");
        const gzip = await compressed(json, "gzip");
        for (const [encoding, body] of [
          ["compress", json],
          ["x-unknown", json],
          ["deflate, gzip", twice],
          ["gzip, gzip", await compressed(gzip, "gzip")],
          ["gzip, x-unknown", gzip],
        ] as const) {
          const key = newId("pay");
          const before = world.payments;
          const refused = await payEncoded(key, body, encoding);
          if (world.app.parsesBodiesFirst === undefined)
            expect(refused.headers.get("accept-encoding"), encoding).toMatch(/^gzip, deflate\b/);
          await refusedUnclaimed(refused, 415, "unsupported_content_encoding");
          expect(world.payments).toBe(before);
          // Nothing was claimed: the key then runs, sent plain.
          const plain = await payEncoded(key, json);
          expect([encoding, plain.status, plain.headers.get("idempotent-replayed")]).toEqual([encoding, 201, null]);
        }
      });

      it("an empty body sent with a Content-Encoding (Content-Length: 0) is the empty body sent plain: the same answer, replayed to the plain send", async () => {
        // Whatever reads it first decides for an app whose own parser reads every body.
        if (world.app.parsesBodiesFirst !== undefined) return;
        const fresh = await payEncoded(newId("pay"), "");
        const key = newId("pay");
        const coded = await payEncoded(key, "", "gzip");
        expect(coded.status).toBe(fresh.status);
        if (coded.status !== 201) return; // the framework's own answer to an empty JSON body (Fastify's 400)
        expect(await coded.json()).toMatchObject({ amount: 100 }); // the handler's default: it got no body
        const plain = await payEncoded(key, "");
        expect([plain.status, plain.headers.get("idempotent-replayed")]).toEqual([201, "true"]);
      });

      it("a body that is not its coding's data (gzip corrupt or cut short; raw deflate sent as deflate, which is zlib's format: RFC 9110 §8.4.1.2) → 400 body_not_decodable, nothing claimed", async () => {
        const json = JSON.stringify({ amount: 44 });
        const gzip = await compressed(json, "gzip");
        const corrupt = new Uint8Array([...gzip.subarray(0, 10), 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0xfa]);
        for (const [body, encoding] of [
          [corrupt, "gzip"],
          [gzip.subarray(0, gzip.byteLength - 6), "gzip"],
          [await compressed(json, "deflate-raw"), "deflate"],
        ] as const) {
          const key = newId("pay");
          const before = world.payments;
          await refusedUnclaimed(await payEncoded(key, body, encoding), 400, "body_not_decodable");
          expect(world.payments).toBe(before);
          // Nothing was claimed: the key then runs, sent plain.
          const plain = await payEncoded(key, json);
          expect([encoding, plain.status, plain.headers.get("idempotent-replayed")]).toEqual([encoding, 201, null]);
        }
      });

      it("a small gzip body that inflates past the body limit (a zip bomb) → 413 body_too_large, nothing claimed", async () => {
        // 2 MiB of spaces inside the JSON, past the adapters' default 1 MiB: about 2 KiB gzipped.
        const bomb = await compressed(JSON.stringify({ amount: 45, pad: " ".repeat(2 * 1024 * 1024) }), "gzip");
        expect(bomb.byteLength).toBeLessThan(64 * 1024);
        const key = newId("pay");
        const before = world.payments;
        await refusedUnclaimed(await payEncoded(key, bomb, "gzip"), 413, "body_too_large");
        expect(world.payments).toBe(before);
        expect((await payEncoded(key, JSON.stringify({ amount: 45 }))).status).toBe(201);
      });

      it("malformed key → 400 idempotency_key_invalid", async () => {
        const response = await pay('"a", "b"');
        expect([response.status, (await problem(response)).code]).toEqual([400, "idempotency_key_invalid"]);
      });

      it("a key with a non-ASCII byte at either end (a no-break space, 0xA0) → 400, not the key without it", async () => {
        const key = newId("pay");
        for (const sent of [`${key}\u00a0`, `\u00a0${key}`, `"${key}"\u00a0`]) {
          const response = await pay(sent);
          expect([response.status, (await problem(response)).code], JSON.stringify(sent)).toEqual([
            400,
            "idempotency_key_invalid",
          ]);
        }
      });

      it("same key while the first is running → 409 request_in_flight with Retry-After: 1", async () => {
        const key = newId("pay");
        const slow = pay(key, { delayMs: 300 });
        await sleep(80);
        const response = await pay(key, { delayMs: 300 });
        expect(response.status).toBe(409);
        expect(response.headers.get("retry-after")).toBe("1");
        expect((await problem(response)).code).toBe("request_in_flight");
        expect((await slow).status).toBe(201);
      });

      it("a 5xx answer is released: the retry runs the handler again", async () => {
        const key = newId("pay");
        const failed = await pay(key, { status: 503 });
        expect(failed.status).toBe(503);
        const retry = await pay(key, { status: 503 });
        expect(retry.status).toBe(503);
        expect(retry.headers.get("idempotent-replayed")).toBeNull();
      });

      it("a 429 answer is released: the retry it asks for runs the handler again", async () => {
        const key = newId("pay");
        const before = world.payments;
        const limited = await pay(key, { status: 429 });
        expect(limited.status).toBe(429);
        const retry = await pay(key, { status: 429 });
        expect(retry.status).toBe(429);
        expect(retry.headers.get("idempotent-replayed")).toBeNull();
        expect(world.payments).toBe(before + 2);
      });

      it("a 204 is replayed without content: no body, no Content-Length (RFC 9110 §8.6)", async () => {
        const key = newId("pay");
        const first = await pay(key, { status: 204 });
        expect(first.status).toBe(204);
        const replay = await pay(key, { status: 204 });
        expect(replay.status).toBe(204);
        expect(replay.headers.get("idempotent-replayed")).toBe("true");
        expect(replay.headers.get("content-length")).toBeNull();
        expect(await replay.text()).toBe("");
      });

      it("HEAD, covered: replayed as first answered, no content, the same Content-Length or none (RFC 9110 §8.6)", async () => {
        const key = newId("head");
        const headers = { "x-api-key": "client-a", "idempotency-key": key };
        const head = (signal?: AbortSignal) =>
          send(world.app, "/payments", { method: "HEAD", headers, ...(signal && { signal }) });
        if (world.app.unansweredHead !== undefined) {
          const unanswered = await head(AbortSignal.timeout(1_000)).then(
            () => false,
            (error: Error) => error.name === "TimeoutError",
          );
          expect(unanswered, world.app.unansweredHead).toBe(true);
          return;
        }
        const before = world.payments;
        const first = await head();
        const replay = await head();
        expect([first.status, replay.status]).toEqual([201, 201]);
        expect(replay.headers.get("idempotent-replayed")).toBe("true");
        // A HEAD answer may leave Content-Length out; one it sends is a GET's length (RFC 9110 §8.6).
        const length = replay.headers.get("content-length");
        if (length !== null) expect(length).toBe(first.headers.get("content-length"));
        expect([await first.text(), await replay.text()]).toEqual(["", ""]);
        expect(world.payments).toBe(before + 1);
      });

      it("concurrent requests with one key → the handler runs once", async () => {
        const key = newId("pay");
        const before = world.payments;
        const responses = await Promise.all(Array.from({ length: 10 }, () => pay(key, { delayMs: 100 })));
        const statuses = responses.map((r) => r.status);
        expect(statuses.filter((s) => s === 201).length).toBeGreaterThanOrEqual(1);
        expect(statuses.every((s) => s === 201 || s === 409)).toBe(true);
        expect(world.payments).toBe(before + 1);
      });

      it("keys are scoped by principal: another client's same key runs its own request", async () => {
        const key = newId("pay");
        const a = await pay(key, { amount: 5 });
        const b = await pay(key, { amount: 5 }, { "x-api-key": "client-b" });
        expect([a.status, b.status]).toEqual([201, 201]);
        expect((await a.json()).id).not.toBe((await b.json()).id);
      });

      it("GET is not covered; requests without a key pass through", async () => {
        const get = await send(world.app, "/payments", { headers: { "idempotency-key": newId("get") } });
        expect(get.status).not.toBe(400);
        const before = world.payments;
        expect((await pay(undefined)).status).toBe(201);
        expect((await pay(undefined)).status).toBe(201);
        expect(world.payments).toBe(before + 2);
      });

      it("a streamed answer holds its key until the stream is over (a retry meanwhile → 409 request_in_flight), then is released, not stored: the retry runs again (replayed where the app declares its adapter stores streams)", async () => {
        const key = newId("export");
        const csv = exportCsv(3).join("");
        const before = world.exports;
        const held = gate();
        world.exportGate = held;
        // Only for an app that fails the row by holding the answer back until the stream is
        // over: the gate opens anyway, and the checks below say what came instead of a hang.
        const unstick = setTimeout(held.open, 10_000);
        let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
        try {
          const first = await exportRows(key, { rows: 3 });
          expect(first.status).toBe(200);
          expect(first.headers.get("content-type")).toMatch(/^text\/csv/);
          reader = (first.body as ReadableStream<Uint8Array>).getReader();
          const decoder = new TextDecoder();
          let received = "";
          // The header line, the one chunk before the gate: the route has returned, its answer is being sent.
          while (!received.endsWith("\n")) {
            const { value, done } = await reader.read();
            if (done) break;
            received += decoder.decode(value, { stream: true });
          }
          expect(received).toBe("id,amount\n");

          const retry = await exportRows(key, { rows: 3 });
          expect(retry.status).toBe(409);
          expect(retry.headers.get("retry-after")).toBe("1");
          expect((await problem(retry)).code).toBe("request_in_flight");
          expect(world.exports).toBe(before + 1);

          held.open();
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            received += decoder.decode(value, { stream: true });
          }
          reader = undefined;
          expect(received + decoder.decode()).toBe(csv);
        } finally {
          clearTimeout(unstick);
          held.open();
          await reader?.cancel().catch(() => {});
        }

        // Released before the stream's end reached the client: a retry the moment it has the whole answer is not in flight.
        const again = await exportRows(key, { rows: 3 });
        expect(again.status).toBe(200);
        expect(again.headers.get("content-type")).toMatch(/^text\/csv/);
        expect(await again.text()).toBe(csv);
        const stores = world.app.storesStreamedAnswers;
        if (stores === undefined) {
          expect(again.headers.get("idempotent-replayed")).toBeNull();
          expect(world.exports).toBe(before + 2);
        } else {
          expect([again.headers.get("idempotent-replayed"), world.exports], stores).toEqual(["true", before + 1]);
        }
      });

      it("store down → 503 store_unavailable with Retry-After (RFC 9110 §15.6.4)", async () => {
        const response = await pay(newId("pay"), {}, {}, down);
        expect([response.status, (await problem(response)).code]).toEqual([503, "store_unavailable"]);
        expect(response.headers.get("retry-after")).toBe("2");
      });
    });
  });
}
