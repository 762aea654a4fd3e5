// Builds the Next.js example (`next build`, as for a deployment), serves it with Next's own
// server on 127.0.0.1:0 in this process, and drives it over real HTTP, as Stripe and a payments
// client would. In this process so that the test sees the app's database stand-in (the routes
// keep it on globalThis): it reads what the routes did and makes them fail or wait on purpose.
import { execFile } from "node:child_process";
import { createServer, type IncomingHttpHeaders, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { DEFAULT_MAX_BODY_BYTES, signWebhook, stripe } from "@interlock/core";
import next from "next";
import { notFound, permanentRedirect, redirect } from "next/navigation";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { API_KEY, apiKeys, describePaymentsApi } from "../payments-api.js";
import { interlock } from "./lib/interlock";

const STRIPE_SECRET = "whsec_example_nextjs";
const dir = fileURLToPath(new URL(".", import.meta.url));
const nextBin = fileURLToPath(new URL("./node_modules/next/dist/bin/next", import.meta.url));
let server: Server;
let origin: string;

beforeAll(async () => {
  await promisify(execFile)(process.execPath, [nextBin, "build"], {
    cwd: dir,
    env: { ...process.env, NEXT_TELEMETRY_DISABLED: "1" },
  });
  // What the app reads on its first request, as `next start` would find it in the environment.
  process.env.STRIPE_WEBHOOK_SECRET = STRIPE_SECRET;
  process.env.API_KEYS = [...apiKeys()].map(([key, account]) => `${key}:${account}`).join(",");
  const app = next({ dev: false, dir, hostname: "127.0.0.1", port: 0 });
  await app.prepare();
  const handle = app.getRequestHandler();
  server = createServer((req, res) => void handle(req, res));
  server.listen(0, "127.0.0.1");
  await new Promise((resolve) => server.once("listening", resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}, 120_000);
afterAll(() => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())));
afterEach(() => vi.restoreAllMocks());

const db = () => interlock().db;

describe.each([
  ["App Router", "/api/webhooks/stripe"],
  ["Pages Router (bodyParser: false)", "/api/pages-router/stripe"],
])("Stripe webhooks, %s", (_router, path) => {
  const deliver = (headers: Record<string, string>, body: string) =>
    fetch(`${origin}${path}`, { method: "POST", headers: { ...headers, "content-type": "application/json" }, body });
  // Stripe's own layout (two-space indents, a newline at the end): parsed and written again, the
  // bytes would differ from what was signed.
  const eventFor = (id: string, type = "checkout.session.completed") =>
    `${JSON.stringify({ id, object: "event", type, data: { object: { amount_total: 4200 } } }, null, 2)}\n`;

  it("processes a signed delivery once, answers its redelivery as a duplicate, refuses a tampered one", async () => {
    const id = `evt_${path.length}_once`;
    const event = eventFor(id);
    const signed = await signWebhook({ scheme: stripe, secret: STRIPE_SECRET, body: event });

    const first = await deliver(signed.headers, event);
    expect(first.status).toBe(200);
    expect(await first.json()).toEqual({ received: id });

    const again = await deliver(signed.headers, event);
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual({ duplicate: true, id });

    const tampered = await deliver(signed.headers, event.replace("4200", "1"));
    expect(tampered.status).toBe(401);
    expect(tampered.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(await tampered.json()).toMatchObject({ status: 401, code: "no_matching_signature" });
    expect(db().fulfilled.filter((fulfilled) => fulfilled === id)).toEqual([id]);
  });

  it("releases a delivery whose handler throws: Stripe's retry runs it again", async () => {
    const id = `evt_${path.length}_throws`;
    const event = eventFor(id);
    const signed = await signWebhook({ scheme: stripe, secret: STRIPE_SECRET, body: event });
    vi.spyOn(db(), "fulfil").mockRejectedValueOnce(new Error("the warehouse is down"));

    const failed = await deliver(signed.headers, event);
    expect(failed.status).toBe(500);
    expect(db().fulfilled).not.toContain(id);

    const retried = await deliver(signed.headers, event);
    expect(retried.status).toBe(200);
    expect(await retried.json()).toEqual({ received: id });
    expect(db().fulfilled.filter((fulfilled) => fulfilled === id)).toEqual([id]);
  });

  // Signed by the sender, so verified, but no event object: read as one, each was a 500 on every redelivery.
  it.each(["null", "42", '"evt"', "[]", "{not json", "type=checkout.session.completed"])(
    "answers 422 invalid_payload to a signed delivery whose payload is %s, and fulfils nothing",
    async (body) => {
      const fulfilled = [...db().fulfilled];
      const signed = await signWebhook({ scheme: stripe, secret: STRIPE_SECRET, body });

      const refused = await deliver(signed.headers, body);
      expect(refused.status).toBe(422);
      expect(refused.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      expect(await refused.json()).toMatchObject({ status: 422, code: "invalid_payload" });
      expect(db().fulfilled).toEqual(fulfilled);
    },
  );

  // Past the receiver's maxBodyBytes: refused while the client is still sending, so never held whole.
  it.each([
    [
      "declared by Content-Length, before a byte of it is sent",
      { "content-length": String(DEFAULT_MAX_BODY_BYTES + 1) },
    ],
    ["streamed (chunked), while the rest is still to come", { "transfer-encoding": "chunked" }],
  ])("answers a body over the limit 413 problem+json, %s", async (_how, framing) => {
    // Headers that pass until the body is read (a current timestamp; the signature is checked last).
    const signature = `t=${Math.floor(Date.now() / 1000)},v1=00`;
    const answer = await answerBeforeTheEnd(path, { ...framing, "stripe-signature": signature });
    expect(answer, "no answer while the body was still being sent").toBeDefined();
    expect(answer?.status).toBe(413);
    expect(answer?.headers["content-type"]).toMatch(/^application\/problem\+json/);
    expect(JSON.parse(answer?.body ?? "")).toMatchObject({
      status: 413,
      code: "body_too_large",
      detail: `the request body exceeds ${DEFAULT_MAX_BODY_BYTES} bytes`,
    });
  });
});

/**
 * POSTs to `path` a body of more than DEFAULT_MAX_BODY_BYTES (none at all under a Content-Length
 * over it, as a client that sent `Expect: 100-continue` would wait), and never ends it: the
 * answer the server gives meanwhile, or undefined when it gives none within 10 s (it is waiting
 * for the end of the body, to hold it whole).
 */
async function answerBeforeTheEnd(
  path: string,
  headers: Record<string, string>,
): Promise<{ status: number; headers: IncomingHttpHeaders; body: string } | undefined> {
  const upload = request(`${origin}${path}`, {
    method: "POST",
    headers: { ...headers, "content-type": "application/json" },
  });
  upload.on("error", () => {}); // the server may close the connection once it has answered
  let answered = false;
  const answer = new Promise<{ status: number; headers: IncomingHttpHeaders; body: string }>((resolve) => {
    upload.on("response", (response) => {
      answered = true;
      let body = "";
      response.setEncoding("utf8").on("data", (chunk: string) => (body += chunk));
      response.on("end", () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }));
    });
  });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), 10_000);
  });
  try {
    upload.flushHeaders();
    if (headers["transfer-encoding"] === "chunked") {
      const chunk = Buffer.alloc(1024 * 1024, "a");
      for (let sent = 0; sent <= DEFAULT_MAX_BODY_BYTES && !answered && !upload.destroyed; sent += chunk.byteLength) {
        if (!upload.write(chunk)) await new Promise((resolve) => upload.once("drain", resolve).once("close", resolve));
      }
    }
    return await Promise.race([answer, timeout]);
  } finally {
    clearTimeout(timer);
    upload.destroy();
  }
}

// The shared table holds this app to the others: JSON that is no payment object is thrown as
// readJson's own refusal, so the key is released as for bad JSON, and answered 400 bad_request.
describePaymentsApi(() => ({ url: `${origin}/api`, db: db() }));

describe("POST /api/payments, while a payment is running or fails", () => {
  const pay = (key: string) =>
    fetch(`${origin}/api/payments`, {
      method: "POST",
      headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json", "idempotency-key": key },
      body: JSON.stringify({ amount: 1500 }),
      redirect: "manual", // a redirect Next answers is what the client got, not followed
    });

  it("answers 409 to the same key while the first request is still charging, then replays it", async () => {
    const charge = db().charge.bind(db());
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let started!: () => void;
    const charging = new Promise<void>((resolve) => {
      started = resolve;
    });
    vi.spyOn(db(), "charge").mockImplementationOnce(async (payment) => {
      started();
      await held;
      await charge(payment);
    });

    const first = pay("in-flight");
    await charging;
    const concurrent = await pay("in-flight");
    expect(concurrent.status).toBe(409);
    expect(concurrent.headers.get("retry-after")).toMatch(/^\d+$/);
    expect(await concurrent.json()).toMatchObject({ code: "request_in_flight" });

    release();
    const created = await first;
    expect(created.status).toBe(201);
    const replay = await pay("in-flight");
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(await replay.text()).toBe(await created.text());
  });

  // Next answers these throws itself (307, 308, 404), so the key keeps that answer: released as a
  // failure, the client's retry charged again.
  it.each([
    ["redirect()", () => redirect("/payments/charged"), 307, "/payments/charged"],
    ["permanentRedirect()", () => permanentRedirect("/payments/charged"), 308, "/payments/charged"],
    ["notFound()", () => notFound(), 404, null],
  ])(
    "stores what Next answers when the handler calls %s after charging: the retry charges once",
    async (_name, interrupt, status, location) => {
      const charge = db().charge.bind(db());
      const payments = db().payments.size;
      vi.spyOn(db(), "charge").mockImplementationOnce(async (payment) => {
        await charge(payment);
        interrupt();
      });

      const first = await pay(`interrupted-${status}`);
      expect([first.status, first.headers.get("location")]).toEqual([status, location]);
      expect(db().payments.size).toBe(payments + 1);

      const retried = await pay(`interrupted-${status}`);
      expect([retried.status, retried.headers.get("location"), retried.headers.get("idempotent-replayed")]).toEqual([
        status,
        location,
        "true",
      ]);
      expect(db().payments.size).toBe(payments + 1);
    },
  );

  it("releases the key when the handler throws: the retry charges once", async () => {
    const payments = db().payments.size;
    vi.spyOn(db(), "charge").mockRejectedValueOnce(new Error("the card network timed out"));

    const failed = await pay("throws");
    expect(failed.status).toBe(500);
    expect(db().payments.size).toBe(payments);

    const retried = await pay("throws");
    expect(retried.status).toBe(201);
    expect(retried.headers.get("idempotent-replayed")).toBeNull();
    expect(db().payments.size).toBe(payments + 1);
  });
});
