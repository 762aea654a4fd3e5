/**
 * Form-encoded deliveries over real HTTP: Slack slash commands and GitHub webhooks set to
 * `application/x-www-form-urlencoded` verify on webhook routes without the app registering a
 * form parser, while the app's own routes parse forms exactly as they would without Interlock.
 */

import formbody from "@fastify/formbody";
import { github, MemoryStore, signWebhook, slack } from "@interlock/core";
import { afterEach, describe, expect, it } from "vitest";
import { idempotency, webhook } from "../src/index.js";
import { listen, type Running } from "./app.js";

const SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5";
const GITHUB_SECRET = "It's a Secret to Everybody";
const FORM = "application/x-www-form-urlencoded";

let running: Running | undefined;
afterEach(async () => {
  await running?.close();
  running = undefined;
});

const slashCommand = () =>
  new URLSearchParams({
    token: "gIkuvaNzQIHg97ATvDxqgjtO",
    team_id: "T0001",
    command: "/weather",
    text: "94070 & more",
    user_id: "U2147483697",
    trigger_id: `13345224609.738474920.${Math.random().toString(36).slice(2)}`,
  }).toString();

async function slackDelivery(body: string) {
  const signed = await signWebhook({
    scheme: slack,
    secret: SLACK_SECRET,
    body,
    timestamp: Math.floor(Date.now() / 1000),
  });
  return { headers: { ...signed.headers, "content-type": FORM }, body };
}

async function githubFormDelivery(event: object) {
  const body = new URLSearchParams({ payload: JSON.stringify(event) }).toString();
  const signed = await signWebhook({ scheme: github, secret: GITHUB_SECRET, body });
  return { headers: { ...signed.headers, "x-github-event": "issues", "content-type": FORM }, body };
}

const post = (url: string, d: { headers: Record<string, string>; body: string }) =>
  fetch(url, { method: "POST", headers: d.headers, body: d.body });

const formPost = (url: string, body: string) => fetch(url, { method: "POST", headers: { "content-type": FORM }, body });

/** Webhook routes for Slack and GitHub that echo the parsed body and the verified payload. */
function webhookRoutes(app: Running["app"]) {
  const store = new MemoryStore();
  const echo = async (request: { body: unknown; webhook: { payload: unknown; text(): string } | null }) => ({
    parsed: request.body,
    payload: request.webhook!.payload,
    verified: request.webhook!.text(),
  });
  app.post("/slack/commands", { config: { interlock: webhook({ scheme: slack, secret: SLACK_SECRET, store }) } }, echo);
  app.post("/github", { config: { interlock: webhook({ scheme: github, secret: GITHUB_SECRET, store }) } }, echo);
}

describe("form bodies on webhook routes, with no form parser in the app", () => {
  it("a Slack slash command verifies; the route gets the form raw and the payload decoded", async () => {
    running = await listen(webhookRoutes);
    const delivery = await slackDelivery(slashCommand());
    const response = await post(`${running.url}/slack/commands`, delivery);
    expect(response.status).toBe(200);
    const seen = await response.json();
    expect(seen.parsed).toBe(delivery.body);
    expect(seen.verified).toBe(delivery.body);
    expect(seen.payload).toMatchObject({ command: "/weather", text: "94070 & more", user_id: "U2147483697" });
  });

  it("a GitHub form delivery verifies and its payload is the JSON in the `payload` field", async () => {
    running = await listen(webhookRoutes);
    const event = { action: "opened", issue: { number: 1347, title: "Found a bug: a + b" } };
    const delivery = await githubFormDelivery(event);
    const response = await post(`${running.url}/github`, delivery);
    expect(response.status).toBe(200);
    expect((await response.json()).payload).toEqual(event);
  });

  it("a content type with parameters is a form too", async () => {
    running = await listen(webhookRoutes);
    const delivery = await slackDelivery(slashCommand());
    delivery.headers["content-type"] = `${FORM}; charset=utf-8`;
    expect((await post(`${running.url}/slack/commands`, delivery)).status).toBe(200);
  });

  it("a tampered form is refused 401 no_matching_signature, for Slack and for GitHub", async () => {
    running = await listen(webhookRoutes);
    const slackCopy = await slackDelivery(slashCommand());
    const slackResponse = await post(`${running.url}/slack/commands`, {
      ...slackCopy,
      body: slackCopy.body.replace("94070", "94071"),
    });
    expect(slackResponse.status).toBe(401);
    expect((await slackResponse.json()).code).toBe("no_matching_signature");

    const githubCopy = await githubFormDelivery({ action: "opened" });
    const githubResponse = await post(`${running.url}/github`, {
      ...githubCopy,
      body: githubCopy.body.replace("opened", "closed"),
    });
    expect(githubResponse.status).toBe(401);
    expect((await githubResponse.json()).code).toBe("no_matching_signature");
  });
});

describe("the app's own routes parse forms as they would without Interlock", () => {
  it("without a form parser, a plain route and an idempotency route still answer Fastify's 415", async () => {
    running = await listen((app) => {
      webhookRoutes(app);
      app.post("/contact", async () => ({ handled: true }));
      app.post(
        "/orders",
        { config: { interlock: idempotency({ store: new MemoryStore(), principal: false }) } },
        async () => ({
          handled: true,
        }),
      );
    });
    for (const path of ["/contact", "/orders"]) {
      const response = await fetch(`${running.url}${path}`, {
        method: "POST",
        headers: { "content-type": FORM, "idempotency-key": '"k-1"' },
        body: "a=1",
      });
      expect(response.status).toBe(415);
      expect((await response.json()).code).toBe("FST_ERR_CTP_INVALID_MEDIA_TYPE");
    }
  });

  it("@fastify/formbody registered after the plugin parses the app's routes, and webhook routes still verify", async () => {
    running = await listen(async (app) => {
      await app.register(formbody);
      webhookRoutes(app);
      app.post("/contact", async (request) => ({ parsed: request.body }));
    });
    const contact = await formPost(`${running.url}/contact`, "name=Ada+Lovelace&topic=engines");
    expect(contact.status).toBe(200);
    expect((await contact.json()).parsed).toEqual({ name: "Ada Lovelace", topic: "engines" });

    // The app's parser wins on webhook routes too: the body is its object, the bytes verified are the ones sent.
    const delivery = await slackDelivery(slashCommand());
    const response = await post(`${running.url}/slack/commands`, delivery);
    expect(response.status).toBe(200);
    const seen = await response.json();
    expect(seen.parsed).toMatchObject({ command: "/weather", text: "94070 & more" });
    expect(seen.verified).toBe(delivery.body);
  });

  it("a form parser in a child scope serves that scope only; webhook routes elsewhere keep taking forms", async () => {
    running = await listen(async (app) => {
      webhookRoutes(app);
      app.post("/outside", async () => ({ handled: true }));
      await app.register(async (child) => {
        child.addContentTypeParser(FORM, { parseAs: "string" }, (_request, body, done) =>
          done(null, { text: body as string }),
        );
        child.post("/inside", async (request) => ({ parsed: request.body }));
      });
    });
    const inside = await formPost(`${running.url}/inside`, "q=1");
    expect(await inside.json()).toEqual({ parsed: { text: "q=1" } });
    expect((await formPost(`${running.url}/outside`, "q=1")).status).toBe(415);
    expect((await post(`${running.url}/slack/commands`, await slackDelivery(slashCommand()))).status).toBe(200);
  });
});
