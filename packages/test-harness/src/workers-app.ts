/**
 * An adapter and core on Cloudflare Workers, for real: a package's worker fixture bundled from
 * the packed, built packages as Wrangler bundles a worker, served by workerd without
 * `nodejs_compat` (workerd.ts). Deliveries are signed by the Standard Webhooks library, not by
 * core. A missing workerd fails the run; it is never skipped.
 *
 * The fixture's contract, on one MemoryStore (which lives as long as the worker instance):
 * - `POST /webhooks`: verified with Standard Webhooks and `SUITE_SECRET`
 *   (`@interlock/test-harness/secret`); the handler records `<id>:<payload.type>` and answers
 *   `{ received: id }`;
 * - `POST /payments`: `Idempotency-Key` with `principal: false`; the handler reads
 *   `{ amount }`, counts a payment and answers 201 `{ id: "pay_<count>", amount }` with
 *   `Location: /payments/pay_<count>`;
 * - `GET /state`: `navigator.userAgent`, `typeof process`, `typeof Buffer`, core's
 *   `cryptoRuntime`, and what the handlers did (`processed`, `payments`).
 */

import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPackedApp, type PackedApp } from "./packed-app.js";
import { SUITE_SECRET } from "./secret.js";
import { bundleFromApp, type RunningWorker, startWorkerd } from "./workerd.js";

export interface WorkerFixture {
  /** The worker's entry, a TypeScript file (absolute path). */
  entry: string;
  /** Interlock package folder names to install from their tarballs ("core", "web"). */
  packages: string[];
  /** Other dependencies, linked: a name to the folder it is installed in (see createPackedApp). */
  linked?: Record<string, string>;
}

function signed(id: string, body: string): Record<string, string> {
  const timestamp = new Date();
  return {
    "content-type": "application/json",
    "webhook-id": id,
    "webhook-timestamp": String(Math.floor(timestamp.getTime() / 1000)),
    "webhook-signature": new Webhook(SUITE_SECRET).sign(id, timestamp, body),
  };
}

/** The fixture's rows (see the contract above), its worker bundled and served once for them all. */
export function describeWorkerApp(name: string, fixture: WorkerFixture): void {
  describe(`${name} and core on Cloudflare Workers (workerd, no nodejs_compat)`, () => {
    let app: PackedApp;
    let worker: RunningWorker;

    beforeAll(async () => {
      app = createPackedApp(fixture.packages, fixture.linked);
      await bundleFromApp(fixture.entry, app.dir, app.dir);
      worker = await startWorkerd(app.dir);
    }, 60_000);
    afterAll(async () => {
      await worker?.close();
      app?.remove();
    });

    const state = async () => (await fetch(`${worker.url}/state`)).json();
    const deliver = (headers: Record<string, string>, body: string) =>
      fetch(`${worker.url}/webhooks`, { method: "POST", headers, body });

    it("runs in workerd, with core on Web Crypto", async () => {
      expect(await state()).toMatchObject({
        userAgent: "Cloudflare-Workers",
        process: "undefined",
        Buffer: "undefined",
        crypto: "web",
      });
    });

    it("webhook: a signed delivery is processed once (its redelivery is a duplicate), a forged one is 401", async () => {
      const body = JSON.stringify({ type: "invoice.paid" });
      const headers = signed("msg_workers_1", body);

      const first = await deliver(headers, body);
      expect([first.status, await first.json()]).toEqual([200, { received: "msg_workers_1" }]);

      const forged = await deliver(headers, JSON.stringify({ type: "invoice.refunded" }));
      expect(forged.status).toBe(401);
      expect(forged.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      expect(await forged.json()).toMatchObject({ status: 401, code: "no_matching_signature" });

      const redelivery = await deliver(headers, body);
      expect([redelivery.status, await redelivery.json()]).toEqual([200, { duplicate: true, id: "msg_workers_1" }]);
      expect((await state()).processed).toEqual(["msg_workers_1:invoice.paid"]);
    });

    it("idempotency: the first POST runs (201), its retry is replayed byte for byte, another body under the key is 422", async () => {
      const pay = (body: string) =>
        fetch(`${worker.url}/payments`, {
          method: "POST",
          headers: { "content-type": "application/json", "idempotency-key": "order-1" },
          body,
        });

      const first = await pay('{"amount":100}');
      const firstBytes = new Uint8Array(await first.arrayBuffer());
      expect([first.status, first.headers.get("location"), JSON.parse(new TextDecoder().decode(firstBytes))]).toEqual([
        201,
        "/payments/pay_1",
        { id: "pay_1", amount: 100 },
      ]);
      expect(first.headers.get("idempotent-replayed")).toBeNull();

      const replay = await pay('{"amount":100}');
      expect([replay.status, replay.headers.get("idempotent-replayed"), replay.headers.get("location")]).toEqual([
        201,
        "true",
        "/payments/pay_1",
      ]);
      expect(replay.headers.get("content-type")).toBe(first.headers.get("content-type"));
      expect(new Uint8Array(await replay.arrayBuffer())).toEqual(firstBytes);

      const other = await pay('{"amount":999}');
      expect(other.status).toBe(422);
      expect(other.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      expect(await other.json()).toMatchObject({ status: 422, code: "idempotency_key_mismatch" });
      expect((await state()).payments).toBe(1);
    });
  });
}
