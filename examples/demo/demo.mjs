// Interlock demo: a webhook receiver on 127.0.0.1 verifying Stripe, Standard Webhooks and
// GitHub deliveries, and a "provider" that sends it good and bad ones. One line per delivery:
// what was sent, and what the server decided. Needs nothing but Node.
import { createServer } from "node:http";
import {
  createWebhookVerifier,
  github,
  PROBLEM_CONTENT_TYPE,
  signWebhook,
  standardWebhooks,
  stripe,
  WebhookVerificationError,
} from "@interlock/core";

const SECRETS = {
  stripe: "whsec_demo_stripe_secret",
  "standard-webhooks": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"],
  github: "demo-github-secret",
};
const verifiers = {
  "/webhooks/stripe": createWebhookVerifier({ scheme: stripe, secret: SECRETS.stripe }),
  "/webhooks/svix": createWebhookVerifier({ scheme: standardWebhooks, secret: SECRETS["standard-webhooks"] }),
  "/webhooks/github": createWebhookVerifier({ scheme: github, secret: SECRETS.github }),
};
const MAX_BODY = 1024 * 1024;

function readRawBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on("data", (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY) reject(Object.assign(new Error("body too large"), { status: 413 }));
      else chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

function answer(res, status, body, type = "application/json") {
  res.writeHead(status, { "content-type": type }).end(JSON.stringify(body));
}

const server = createServer(async (req, res) => {
  const verifier = verifiers[req.url];
  if (req.method !== "POST" || !verifier) return answer(res, 404, { error: "not found" });
  try {
    const body = await readRawBody(req);
    const event = await verifier.verify(req.headers, body);
    answer(res, 200, { received: event.id ?? "(no id)", scheme: event.scheme });
  } catch (error) {
    if (error instanceof WebhookVerificationError) {
      return answer(res, error.status, error.toProblem(), PROBLEM_CONTENT_TYPE);
    }
    answer(res, error.status ?? 500, { error: String(error.message) });
  }
});

await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const base = `http://127.0.0.1:${server.address().port}`;

async function deliver(label, path, { headers, body }) {
  const response = await fetch(base + path, { method: "POST", headers, body });
  const result = await response.json();
  const verdict = response.ok ? `accepted ${result.received}` : `refused: ${result.code}`;
  console.log(`${label.padEnd(48)} -> ${response.status} ${verdict}`);
  return response.status;
}

const now = Math.floor(Date.now() / 1000);
const stripeBody = JSON.stringify({ id: "evt_demo_1", object: "event", type: "invoice.paid" });
const svixBody = JSON.stringify({ type: "user.created", data: { id: "u_1" } });
const ghBody = JSON.stringify({ action: "opened", number: 42 });

const signed = (scheme, secret, body, extra = {}) => signWebhook({ scheme, secret, body, ...extra });

console.log(`Interlock demo: receiver on ${base} (Node ${process.versions.node})\n`);
const statuses = [
  await deliver("Stripe: signed delivery", "/webhooks/stripe", await signed(stripe, SECRETS.stripe, stripeBody)),
  await deliver("Stripe: body tampered in transit", "/webhooks/stripe", {
    ...(await signed(stripe, SECRETS.stripe, stripeBody)),
    body: stripeBody.replace("invoice.paid", "invoice.void"),
  }),
  await deliver(
    "Stripe: replayed 10 minutes later",
    "/webhooks/stripe",
    await signed(stripe, SECRETS.stripe, stripeBody, { timestamp: now - 600 }),
  ),
  await deliver(
    "Stripe: signed with the wrong secret",
    "/webhooks/stripe",
    await signed(stripe, "whsec_guess", stripeBody),
  ),
  await deliver(
    "Svix: signed with the previous secret (rotation)",
    "/webhooks/svix",
    await signed(standardWebhooks, SECRETS["standard-webhooks"][1], svixBody),
  ),
  await deliver("Svix: signature header missing", "/webhooks/svix", {
    headers: { "webhook-id": "msg_1", "webhook-timestamp": String(now) },
    body: svixBody,
  }),
  await deliver("GitHub: signed delivery", "/webhooks/github", await signed(github, SECRETS.github, ghBody)),
  await deliver("GitHub: truncated signature", "/webhooks/github", {
    headers: { "x-hub-signature-256": "sha256=abc123" },
    body: ghBody,
  }),
];
server.close();

const expected = [200, 401, 401, 401, 200, 400, 200, 401];
if (statuses.join() !== expected.join()) {
  console.error(`\nunexpected statuses: ${statuses.join(", ")} (expected ${expected.join(", ")})`);
  process.exit(1);
}
console.log("\nEvery delivery got the answer it should.");
