// Interlock demo, on the embedded memory store: a webhook receiver and a payments API on
// 127.0.0.1, then a "provider" and a "client" that exercise them. One line per request: what
// was sent, and what the server decided. Needs nothing but Node.
import { createServer } from "node:http";
import { createIdempotency, createWebhookReceiver, MemoryStore, signWebhook, stripe } from "@interlock/core";

const STRIPE_SECRET = "whsec_demo_stripe_secret";
const store = new MemoryStore(); // one process; @interlock/redis or @interlock/postgres for many
const receiver = createWebhookReceiver({ scheme: stripe, secret: STRIPE_SECRET, store });
const idempotency = createIdempotency({ store, principal: (req) => req.headers["x-api-key"] });

const fulfilled = [];
const payments = [];

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks);
}

function send(res, { status, headers, body }) {
  res.writeHead(status, headers.flat()).end(body);
}

function json(res, status, value, headers = {}) {
  const all = { "content-type": "application/json", ...headers };
  res.writeHead(status, all).end(JSON.stringify(value));
  return { status, headers: all, body: JSON.stringify(value) };
}

/** A refusal as RFC 9457 problem+json, as Interlock's own refusals are. */
function problem(res, status, code, detail) {
  res.writeHead(status, { "content-type": "application/problem+json" });
  res.end(JSON.stringify({ title: code.replaceAll("_", " "), status, detail, code }));
}

/** The body's `amount`, or undefined when the body is no JSON object with an integer amount. */
function amountOf(body) {
  try {
    const { amount } = JSON.parse(body) ?? {};
    return Number.isSafeInteger(amount) ? amount : undefined;
  } catch {
    return undefined;
  }
}

const server = createServer(async (req, res) => {
  const body = await readBody(req);
  if (req.url === "/webhooks/stripe") {
    const decision = await receiver.begin(req.headers, body);
    if (decision.action === "respond") return send(res, decision.response);
    fulfilled.push(decision.event.id); // the business work: fulfil the order
    await receiver.finish(decision.ticket, { status: 200 });
    return json(res, 200, { received: decision.event.id });
  }
  if (req.url === "/payments") {
    const request = { method: req.method, route: "/payments", path: req.url, headers: req.headers, body };
    const decision = await idempotency.begin(request);
    if (decision.action === "respond") return send(res, decision.response);
    const amount = amountOf(body);
    if (amount === undefined) {
      // The client's mistake: a 400, and the key released (abort), so its corrected retry runs.
      if (decision.action === "execute") await idempotency.abort(decision.ticket);
      return problem(res, 400, "bad_request", "send a JSON object with an integer amount");
    }
    await new Promise((resolve) => setTimeout(resolve, 800)); // a slow card network
    const payment = { id: `pay_${payments.length + 1}`, amount };
    payments.push(payment);
    const sent = json(res, 201, payment, { location: `/payments/${payment.id}` });
    if (decision.action === "execute") await idempotency.finish(decision.ticket, sent);
    return;
  }
  problem(res, 404, "not_found", `no route for ${req.method} ${req.url}`);
});

await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const base = `http://127.0.0.1:${server.address().port}`;
const lines = [];
const say = (label, outcome) => {
  const line = `${label.padEnd(52)} -> ${outcome}`;
  lines.push(line);
  console.log(line);
};

async function describe(response) {
  const type = response.headers.get("content-type") ?? "";
  const body = type.includes("json") ? await response.json() : await response.text();
  if (type.startsWith("application/problem+json")) return `${response.status} refused: ${body.code}`;
  const replayed = response.headers.get("idempotent-replayed") ? " (replayed)" : "";
  return `${response.status} ${JSON.stringify(body)}${replayed}`;
}

async function deliver(label, { headers, body }) {
  const response = await fetch(`${base}/webhooks/stripe`, { method: "POST", headers, body });
  say(label, await describe(response));
  return response.status;
}

const now = Math.floor(Date.now() / 1000);
const event = JSON.stringify({ id: "evt_demo_1", object: "event", type: "checkout.session.completed" });
const signed = (extra = {}) => signWebhook({ scheme: stripe, secret: STRIPE_SECRET, body: event, ...extra });

console.log(`Interlock demo: receiver and payments API on ${base} (Node ${process.versions.node}, memory store)\n`);
const statuses = [];
statuses.push(await deliver("provider: signed delivery evt_demo_1", await signed()));
statuses.push(await deliver("provider: the same delivery again (its retry)", await signed({ timestamp: now + 5 })));
statuses.push(
  await deliver("attacker: body tampered in transit", {
    ...(await signed()),
    body: event.replace("completed", "expired"),
  }),
);
statuses.push(await deliver("attacker: replay captured 10 minutes ago", await signed({ timestamp: now - 600 })));
statuses.push(
  await deliver(
    "attacker: signed with a guessed secret",
    await signWebhook({ scheme: stripe, secret: "whsec_guess", body: event }),
  ),
);

const pay = (signal) =>
  fetch(`${base}/payments`, {
    method: "POST",
    headers: { "content-type": "application/json", "idempotency-key": "order-1042-attempt", "x-api-key": "shop-7" },
    body: JSON.stringify({ amount: 4200 }),
    signal,
  });
try {
  await pay(AbortSignal.timeout(100)); // the response is "dropped": the client gives up first
} catch {
  say("client: POST /payments, response lost (timeout)", "the server keeps working");
}
const early = await pay();
say("client: retry while the first is still running", await describe(early));
statuses.push(early.status);
// The client retries (bounded) until the first request has finished.
let late = await pay();
for (let i = 0; i < 50 && late.status === 409; i++) {
  await new Promise((resolve) => setTimeout(resolve, 100));
  late = await pay();
}
say("client: retry after it finished", await describe(late));
statuses.push(late.status);

const order = (body) =>
  fetch(`${base}/payments`, {
    method: "POST",
    headers: { "content-type": "application/json", "idempotency-key": "order-1043", "x-api-key": "shop-7" },
    body,
  });
const malformed = await order('{"amount":');
say("client: POST /payments, body cut short", await describe(malformed));
statuses.push(malformed.status);
const corrected = await order(JSON.stringify({ amount: 990 }));
say("client: the same key, body corrected", await describe(corrected));
statuses.push(corrected.status);
server.close();

console.log(`\nOrders fulfilled: ${fulfilled.length} (${fulfilled.join(", ")}); payments created: ${payments.length}.`);
const expected = [200, 200, 401, 401, 401, 409, 201, 400, 201];
const ok =
  statuses.join() === expected.join() &&
  fulfilled.length === 1 &&
  payments.length === 2 &&
  late.headers.get("idempotent-replayed") === "true";
if (!ok) {
  console.error(`unexpected outcome: statuses ${statuses.join(", ")} (expected ${expected.join(", ")})`);
  process.exit(1);
}
console.log("Every request got the answer it should: each webhook processed once, each payment made once.");
