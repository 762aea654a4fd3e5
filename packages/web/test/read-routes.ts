/**
 * `readJson` and `readBytes` behind the wrappers, over real HTTP on 127.0.0.1, on each runtime
 * the scenario table runs on (Node, Bun, Deno, Workers): the scenario app's read routes
 * (test/app.ts, `readRoutes`), whose handlers read their body with `readJson(request)`, without
 * options, and answer what they parsed, `request.bodyUsed` and what a second `readBytes` did.
 * What read.test.ts checks in process, on Node, here on each runtime's own Request and server.
 */
import { createHash } from "node:crypto";
import { gzipSync } from "node:zlib";
import { MemoryStore, standardWebhooks } from "@interlock/core";
import type { ScenarioAppOptions } from "@interlock/core/testing";
import { SUITE_SECRET } from "@interlock/test-harness/secret";
import { bytesOf, delivery, problemOf, uniqueId } from "@interlock/test-harness/web-requests";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { READ_BODY_LIMIT } from "./app.js";

/** The app with the read routes, listening on 127.0.0.1. */
export interface ReadApp {
  url: string;
  close(): Promise<void>;
}

/**
 * Starts the app with `options` (a fresh MemoryStore, Standard Webhooks deliveries signed with
 * `SUITE_SECRET`); an app with options of its own (the Workers fixture) must match them.
 */
export type StartReadApp = (options: ScenarioAppOptions) => Promise<ReadApp>;

const MIB = 1024 * 1024;

/** What every read route reports when `readJson` took the body: unread before, used after, no second read. */
const READ_ONCE = { bodyUsedBefore: false, bodyUsed: true, secondRead: "TypeError" };

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

/** What a read route answers of the JSON it parsed from `text` (see `readRoutes`). */
function parsedAs(text: string) {
  const json: unknown = JSON.parse(text);
  const again = JSON.stringify(json);
  return { ...(again.length <= 4096 && { json }), jsonChars: again.length, jsonSha256: sha256(again) };
}

/** A JSON object of about `bytes` bytes (ASCII), under `label`. */
function largeJson(label: string, bytes: number): string {
  const line = "x".repeat(90);
  const lines = Array.from({ length: Math.ceil(bytes / 110) }, (_, n) => ({ n, line }));
  return JSON.stringify({ label, lines });
}

function options(): ScenarioAppOptions {
  const store = new MemoryStore();
  const never = () => {
    throw new Error("the read routes call none of the scenario table's handlers");
  };
  return {
    webhook: { scheme: standardWebhooks, secret: SUITE_SECRET, store },
    idempotency: { store },
    handlers: { webhook: never, payment: never, exportRows: never },
  };
}

export function describeReadRoutes(name: string, start: StartReadApp): void {
  describe(`${name}: readJson and readBytes in the wrappers' handlers, over HTTP`, () => {
    let app: ReadApp | undefined;
    beforeAll(async () => {
      app = await start(options());
    }, 60_000);
    afterAll(async () => {
      await app?.close();
    });

    const post = (path: string, body: string | Uint8Array<ArrayBuffer>, headers: Record<string, string> = {}) =>
      fetch(`${app?.url}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-api-key": "read-routes", ...headers },
        body,
      });
    const answerOf = async (response: Response) => {
      const bytes = await bytesOf(response);
      return {
        status: response.status,
        replayed: response.headers.get("idempotent-replayed"),
        json: JSON.parse(new TextDecoder().decode(bytes)) as unknown,
        bytes,
      };
    };

    it("a keyed JSON body of 1.5 MiB under bodyLimit 2 MiB: readJson, without options, reads it within 2 MiB (201, not 413); its retry is replayed byte for byte", async () => {
      const text = largeJson("large", 1.5 * MIB);
      expect(text.length).toBeGreaterThan(1.4 * MIB);
      expect(text.length).toBeLessThan(READ_BODY_LIMIT);
      const key = uniqueId("read-large");

      const first = await answerOf(await post("/read/json", text, { "idempotency-key": key }));
      expect([first.status, first.replayed, first.json]).toEqual([201, null, { ...parsedAs(text), ...READ_ONCE }]);

      const replay = await answerOf(await post("/read/json", text, { "idempotency-key": key }));
      expect([replay.status, replay.replayed]).toEqual([201, "true"]);
      expect(replay.bytes).toEqual(first.bytes);
    });

    it("without a key (the wrapper reads nothing), readJson reads the request's own 1.5 MiB body within 2 MiB", async () => {
      const text = largeJson("unkeyed", 1.5 * MIB);
      const answer = await answerOf(await post("/read/json", text));
      expect([answer.status, answer.replayed, answer.json]).toEqual([201, null, { ...parsedAs(text), ...READ_ONCE }]);
    });

    it("a gzip-encoded keyed body: readJson gives the decoded JSON; the same JSON sent plain under the key is its replay", async () => {
      const text = JSON.stringify({ order: uniqueId("gzip"), amount: 4200, note: "ünïcödé" });
      const key = uniqueId("read-gzip");

      const first = await answerOf(
        await post("/read/json", gzipSync(text), { "content-encoding": "gzip", "idempotency-key": key }),
      );
      // What it parsed is the decoded JSON, answered whole.
      expect([first.status, first.replayed, first.json]).toEqual([
        201,
        null,
        { json: JSON.parse(text), ...parsedAs(text), ...READ_ONCE },
      ]);

      const plain = await answerOf(await post("/read/json", text, { "idempotency-key": key }));
      expect([plain.status, plain.replayed]).toEqual([201, "true"]);
      expect(plain.bytes).toEqual(first.bytes);
    });

    it("a body that is not JSON is the client's mistake: 400 body_not_json, and the corrected retry under the key runs (201), not 422", async () => {
      const key = uniqueId("read-mistake");
      const mistake = await post("/read/json", '{"amount": 100,', { "idempotency-key": key });
      expect(mistake.status).toBe(400);
      expect(await problemOf(mistake)).toMatchObject({ status: 400, code: "body_not_json" });

      const text = '{"amount":100}';
      const corrected = await answerOf(await post("/read/json", text, { "idempotency-key": key }));
      expect([corrected.status, corrected.replayed, corrected.json]).toEqual([
        201,
        null,
        { json: { amount: 100 }, ...parsedAs(text), ...READ_ONCE },
      ]);
      const retry = await answerOf(await post("/read/json", text, { "idempotency-key": key }));
      expect([retry.status, retry.replayed]).toEqual([201, "true"]);
      expect(retry.bytes).toEqual(corrected.bytes);
    });

    it.each([
      ["a delivery", () => JSON.stringify({ type: "invoice.paid", invoice: uniqueId("in") })],
      [
        "a 1.5 MiB delivery (over readJson's own 1 MiB default, within maxBodyBytes)",
        () => largeJson("hook", 1.5 * MIB),
      ],
    ])("%s: readJson in withWebhook's handler gives the verified payload", async (_, payload) => {
      const text = payload();
      const signed = await delivery(text);
      const answer = await fetch(`${app?.url}/read/webhook`, {
        method: "POST",
        headers: signed.headers,
        body: signed.body,
      });
      expect(answer.status).toBe(200);
      expect(await answer.json()).toEqual({ received: signed.id, isPayload: true, ...parsedAs(text), ...READ_ONCE });
    });
  });
}
