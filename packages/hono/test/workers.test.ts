/**
 * The adapter and core on Cloudflare Workers, for real: a Hono app (test/fixtures/workers-app.ts)
 * bundled from the packed, built packages as Wrangler bundles a worker, served by workerd
 * (installed from npm) without `nodejs_compat`. Deliveries are signed by the Standard Webhooks
 * library. A missing workerd fails the run; it is never skipped.
 */
import { fileURLToPath } from "node:url";
import { createPackedApp, type PackedApp } from "@interlock/test-harness/packed-app";
import { bundleFromApp, type RunningWorker, startWorkerd } from "@interlock/test-harness/workerd";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SECRET } from "./fixtures/workers-secret.js";

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

let app: PackedApp;
let worker: RunningWorker;

beforeAll(async () => {
  app = createPackedApp(["core", "hono"], { hono: here("../node_modules/hono") });
  await bundleFromApp(here("./fixtures/workers-app.ts"), app.dir, app.dir);
  worker = await startWorkerd(app.dir);
}, 60_000);
afterAll(async () => {
  await worker?.close();
  app?.remove();
});

const state = async () => (await fetch(`${worker.url}/state`)).json();

function signed(id: string, body: string): Record<string, string> {
  const timestamp = new Date();
  return {
    "content-type": "application/json",
    "webhook-id": id,
    "webhook-timestamp": String(Math.floor(timestamp.getTime() / 1000)),
    "webhook-signature": new Webhook(SECRET).sign(id, timestamp, body),
  };
}

const deliver = (headers: Record<string, string>, body: string) =>
  fetch(`${worker.url}/webhooks`, { method: "POST", headers, body });

describe("hono and core on Cloudflare Workers (workerd, no nodejs_compat)", () => {
  it("runs in workerd, with core on Web Crypto", async () => {
    expect(await state()).toMatchObject({
      userAgent: "Cloudflare-Workers",
      process: "undefined",
      Buffer: "undefined",
      crypto: "web",
    });
  });

  it("webhook(): a valid delivery is processed, a tampered one refused, a duplicate not re-run", async () => {
    const body = JSON.stringify({ type: "invoice.paid" });
    const headers = signed("msg_workers_1", body);

    const first = await deliver(headers, body);
    expect([first.status, await first.json()]).toEqual([200, { received: "msg_workers_1" }]);

    const tampered = await deliver(headers, JSON.stringify({ type: "invoice.refunded" }));
    expect(tampered.status).toBe(401);
    expect(tampered.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(await tampered.json()).toMatchObject({ status: 401, code: "no_matching_signature" });

    const duplicate = await deliver(headers, body);
    expect(duplicate.status).toBe(200);
    expect((await state()).processed).toEqual(["msg_workers_1:invoice.paid"]);
  });

  it("idempotency(): the first POST runs (201), its retry is replayed, another body under the key is 422", async () => {
    const pay = (body: string) =>
      fetch(`${worker.url}/payments`, {
        method: "POST",
        headers: { "content-type": "application/json", "idempotency-key": "order-1" },
        body,
      });

    const first = await pay('{"amount":100}');
    const firstBody = await first.text();
    expect([first.status, first.headers.get("location"), JSON.parse(firstBody)]).toEqual([
      201,
      "/payments/pay_1",
      { id: "pay_1", amount: 100 },
    ]);
    expect(first.headers.get("idempotent-replayed")).toBeNull();

    const replay = await pay('{"amount":100}');
    expect([replay.status, replay.headers.get("idempotent-replayed"), await replay.text()]).toEqual([
      201,
      "true",
      firstBody,
    ]);
    expect(replay.headers.get("location")).toBe("/payments/pay_1");

    const other = await pay('{"amount":999}');
    expect(other.status).toBe(422);
    expect(other.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect((await state()).payments).toBe(1);
  });
});
