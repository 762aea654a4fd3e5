/**
 * The READMEs' copy-paste examples, run for real from the packed project: core's "Verify a
 * delivery" (its `handle` given signed, rotated and tampered deliveries), the Express, Fastify
 * and Koa "Use it" and Hono "Example" apps (each on 127.0.0.1, sent a signed webhook and an
 * idempotent request, each twice), and the plain Node servers of the root README's Quick start
 * and the webhooks guide (signed, tampered, and a client gone mid-body).
 */

import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { connect } from "node:net";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  appExample,
  coreVerifyExample,
  FRAMEWORKS,
  type Framework,
  NODE_SERVERS,
  type NodeServer,
  nodeServerExample,
  toJavaScript,
} from "./readme.js";
import { packedApp } from "./ready.js";

const run = promisify(execFile);
const app = await packedApp();
const examples = join(app, "readme");

/** The packed core (its CJS build), to sign deliveries the way a provider does. */
const core: typeof import("@interlock/core") = createRequire(join(app, "package.json"))("@interlock/core");

/**
 * What each framework's webhook route answers a delivery it processed: the README's own
 * answer (Koa's sets 204 and no body).
 */
const RECEIVED: Record<Framework, { status: number; body?: unknown }> = {
  express: { status: 200, body: { received: true } },
  fastify: { status: 200, body: { received: true } },
  koa: { status: 204 },
  hono: { status: 200, body: { received: "evt_1" } },
};

beforeAll(() => {
  mkdirSync(examples, { recursive: true });
  writeFileSync(join(examples, "core-verify.js"), toJavaScript(coreVerifyExample()));
  for (const framework of FRAMEWORKS) {
    writeFileSync(join(examples, `${framework}-app.js`), toJavaScript(appExample(framework)));
  }
  for (const name of Object.keys(NODE_SERVERS) as NodeServer[]) {
    writeFileSync(join(examples, `${name}.js`), toJavaScript(nodeServerExample(name)));
  }
});

describe("@interlock/core's README: Verify a delivery", () => {
  it("accepts deliveries signed with either rotated secret and refuses a tampered one with a 401 problem", async () => {
    const [newSecret, oldSecret] = [1, 2].map(() => `whsec_${randomBytes(24).toString("base64")}`) as [string, string];
    const body = JSON.stringify({ type: "invoice.paid" });
    const sign = async (secret: string, id: string) =>
      (await core.signWebhook({ scheme: core.standardWebhooks, secret, body, id })).headers;
    const deliveries = [
      { headers: await sign(newSecret, "msg_new"), body },
      { headers: await sign(oldSecret, "msg_old"), body },
      { headers: await sign(newSecret, "msg_tampered"), body: body.replace("paid", "void") },
    ];
    const driver = `
      import { handle } from "./core-verify.js";
      const deliveries = ${JSON.stringify(deliveries)};
      const results = [];
      for (const { headers, body } of deliveries) results.push(await handle(headers, new TextEncoder().encode(body)));
      console.log(JSON.stringify(results));`;
    const { stdout } = await run(process.execPath, ["--input-type=module", "-e", driver], {
      cwd: examples,
      env: { ...process.env, WEBHOOK_SECRET_NEW: newSecret, WEBHOOK_SECRET_OLD: oldSecret },
    });
    // The example logs each verified event (id, timestamp, type), then the driver its results.
    const lines = stdout.trim().split("\n");
    expect(lines.slice(0, 2)).toEqual([
      expect.stringMatching(/^msg_new \d+ invoice\.paid$/),
      expect.stringMatching(/^msg_old \d+ invoice\.paid$/),
    ]);
    expect(JSON.parse(lines.at(-1) as string)).toEqual([
      { status: 200 },
      { status: 200 },
      {
        status: 401,
        body: expect.objectContaining({ status: 401, code: "no_matching_signature", scheme: "standard-webhooks" }),
      },
    ]);
  });
});

/**
 * Starts an example app with `env`; resolves its base URL, and keeps every other line it prints
 * in `logged` (a line that is not JSON as `{ line }`).
 */
async function startApp(file: string, env: Record<string, string>, logged: Array<Record<string, unknown>>) {
  const child = spawn(process.execPath, [join(examples, file)], {
    cwd: examples,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (chunk) => {
    stderr += chunk;
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`the README app exited (${code}) before listening:\n${stderr}`)));
    createInterface({ input: child.stdout! }).on("line", (line) => {
      let message: Record<string, unknown>;
      try {
        message = JSON.parse(line);
      } catch {
        message = { line };
      }
      if (typeof message.port === "number") resolve(message.port);
      else logged.push(message);
    });
  });
  return { child, base: `http://127.0.0.1:${port}` };
}

describe.each(FRAMEWORKS)("@interlock/%s's README app", (framework) => {
  const received = RECEIVED[framework];
  const secret = `whsec_${randomBytes(24).toString("base64")}`;
  let child: ChildProcess;
  let base: string;
  const logged: Array<Record<string, unknown>> = [];

  beforeAll(async () => {
    ({ child, base } = await startApp(`${framework}-app.js`, { STRIPE_WEBHOOK_SECRET: secret }, logged));
  });

  afterAll(() => {
    child?.kill();
  });

  it("processes a signed Stripe webhook once, and refuses a tampered copy", async () => {
    const body = JSON.stringify({ id: "evt_1", object: "event", type: "invoice.paid" });
    const { headers } = await core.signWebhook({ scheme: core.stripe, secret, body });
    const send = (payload: string) => fetch(`${base}/webhooks/stripe`, { method: "POST", headers, body: payload });

    const first = await send(body);
    expect(first.status).toBe(received.status);
    const firstBody = await first.text();
    expect(firstBody === "" ? undefined : JSON.parse(firstBody)).toEqual(received.body);
    const again = await send(body);
    expect(again.status).toBe(200); // a duplicate: acknowledged, the route not run again
    await again.arrayBuffer();
    const tampered = await send(body.replace("paid", "void"));
    expect(tampered.status).toBe(401);
    expect(tampered.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(await tampered.json()).toMatchObject({ code: "no_matching_signature" });
    expect(logged.filter((entry) => "fulfilled" in entry)).toEqual([{ fulfilled: "invoice.paid" }]);
  });

  it("runs an idempotent payment once and replays its response to the retry", async () => {
    // The caller's API key, as each README's authentication reads it.
    const caller = { "x-api-key": "key_1", authorization: "Bearer key_1" };
    const pay = (key: string) =>
      fetch(`${base}/payments`, {
        method: "POST",
        headers: { "content-type": "application/json", ...caller, "idempotency-key": `"${key}"` },
        body: JSON.stringify({ amount: 1000 }),
      });
    const key = randomUUID();
    const send = () => pay(key);

    const first = await send();
    expect(first.status).toBe(201);
    expect(first.headers.get("location")).toBe("/payments/pay_1");
    const firstBody = await first.text();
    expect(JSON.parse(firstBody)).toEqual({ id: "pay_1", amount: 1000 });

    const retry = await send();
    expect(retry.status).toBe(201);
    expect(retry.headers.get("idempotent-replayed")).toBe("true");
    expect(retry.headers.get("location")).toBe("/payments/pay_1");
    expect(await retry.text()).toBe(firstBody);
    expect(logged.filter((entry) => "created" in entry)).toEqual([{ created: 1 }]);

    // Another key is another payment.
    const other = await pay(randomUUID());
    expect(other.status).toBe(201);
    expect(await other.json()).toEqual({ id: "pay_2", amount: 1000 });
  });
});

/** Sends a request's headers and part of its body, then leaves: a client gone mid-upload. */
function leaveMidBody(base: string): Promise<void> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => {
      socket.write('POST /webhooks HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 100\r\n\r\n{"id":');
      setTimeout(() => socket.destroy(), 50);
    });
    socket.once("error", reject).once("close", () => resolve());
  });
}

describe.each(Object.keys(NODE_SERVERS) as NodeServer[])("the plain Node server of %s", (name) => {
  const secret = `whsec_${randomBytes(24).toString("base64")}`;
  let child: ChildProcess;
  let base: string;
  let exited: number | null = null;
  const logged: Array<Record<string, unknown>> = [];

  beforeAll(async () => {
    ({ child, base } = await startApp(`${name}.js`, { STRIPE_WEBHOOK_SECRET: secret }, logged));
    child.once("exit", (code) => {
      exited = code;
    });
  });

  afterAll(() => {
    child?.kill();
  });

  it("answers a signed Stripe delivery 200 and a tampered one 401 problem+json", async () => {
    const body = JSON.stringify({ id: "evt_1", object: "event", type: "invoice.paid" });
    const { headers } = await core.signWebhook({ scheme: core.stripe, secret, body });
    const send = (payload: string) => fetch(`${base}/webhooks`, { method: "POST", headers, body: payload });
    const signed = await send(body);
    expect(signed.status).toBe(200);
    await signed.arrayBuffer();
    const tampered = await send(body.replace("paid", "void"));
    expect([tampered.status, tampered.headers.get("content-type")]).toEqual([401, "application/problem+json"]);
    expect(await tampered.json()).toMatchObject({ code: "no_matching_signature" });
  });

  it("outlives a client that leaves mid-body, and answers the next delivery", async () => {
    await leaveMidBody(base);
    const body = JSON.stringify({ id: "evt_2", object: "event", type: "invoice.paid" });
    const { headers } = await core.signWebhook({ scheme: core.stripe, secret, body });
    const next = await fetch(`${base}/webhooks`, { method: "POST", headers, body });
    expect([next.status, exited]).toEqual([200, null]);
    await next.arrayBuffer();
  });
});
