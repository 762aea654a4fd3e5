/**
 * Options made on the first request, from its context: a Worker's secrets are bindings on
 * `c.env`, known only once a request comes (no `process.env` without `nodejs_compat`).
 */
import { MemoryStore, standardWebhooks } from "@interlock/core";
import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import { idempotency, type WebhookEnv, webhook } from "../src/index.js";
import { delivery, problemOf, SECRET, uniqueId } from "./helpers.js";

type Bindings = { WEBHOOK_SECRET: string };
const ENV: Bindings = { WEBHOOK_SECRET: SECRET };

describe("webhook((c) => options)", () => {
  it("is made once, from the first request's c.env, and verifies with its secret from then on", async () => {
    let made = 0;
    const store = new MemoryStore();
    const app = new Hono<{ Bindings: Bindings } & WebhookEnv>();
    app.post(
      "/hook",
      webhook((c) => {
        made++;
        return { scheme: standardWebhooks, secret: (c.env as Bindings).WEBHOOK_SECRET, store };
      }),
      (c) => c.json({ id: c.get("webhook").id }),
    );
    const send = async (body = '{"type":"a"}') => {
      const d = await delivery(body);
      return app.request("/hook", { method: "POST", headers: d.headers, body: d.body }, ENV);
    };
    // Two first requests at the same instant share one build.
    const answers = await Promise.all([send(), send()]);
    expect(answers.map((answer) => answer.status)).toEqual([200, 200]);
    const again = await send();
    expect(again.status).toBe(200);
    const d = await delivery('{"type":"b"}');
    const tampered = await app.request("/hook", { method: "POST", headers: d.headers, body: '{"type":"c"}' }, ENV);
    expect([tampered.status, (await problemOf(tampered)).code]).toEqual([401, "no_matching_signature"]);
    expect(made).toBe(1);
  });

  it("a factory that throws fails that request, and is asked again on the next", async () => {
    let calls = 0;
    const app = new Hono();
    app.onError((error, c) => c.json({ failed: error.message }, 500));
    app.post(
      "/hook",
      webhook(() => {
        if (++calls === 1) throw new Error("no secret bound yet");
        return { scheme: standardWebhooks, secret: SECRET, store: new MemoryStore() };
      }),
      (c) => c.text("ok"),
    );
    const send = async () => {
      const d = await delivery('{"type":"a"}');
      return app.request("/hook", { method: "POST", headers: d.headers, body: d.body });
    };
    const first = await send();
    expect([first.status, await first.json()]).toEqual([500, { failed: "no secret bound yet" }]);
    expect((await send()).status).toBe(200);
    expect(calls).toBe(2);
  });
});

describe("idempotency((c) => options)", () => {
  it("is made once, from the first request's context, and replays from then on", async () => {
    let made = 0;
    let runs = 0;
    const app = new Hono<{ Bindings: { TENANT: string } }>();
    app.post(
      "/pay",
      idempotency((c) => {
        made++;
        const tenant = (c.env as { TENANT: string }).TENANT;
        return { store: new MemoryStore(), principal: () => tenant };
      }),
      (c) => c.json({ run: ++runs }, 201),
    );
    const key = uniqueId("key");
    const pay = () =>
      app.request("/pay", { method: "POST", headers: { "idempotency-key": key }, body: "{}" }, { TENANT: "t1" });
    const first = await pay();
    const replay = await pay();
    expect([first.status, await first.json()]).toEqual([201, { run: 1 }]);
    expect([replay.status, replay.headers.get("idempotent-replayed"), await replay.json()]).toEqual([
      201,
      "true",
      { run: 1 },
    ]);
    expect([made, runs]).toEqual([1, 1]);
  });
});
