/** A form-encoded Slack delivery (a slash command) over real HTTP, with the route reading the form itself. */
import { MemoryStore, signWebhook, slack } from "@interlock/core";
import { Hono } from "hono";
import { expect, it } from "vitest";
import { webhook } from "../src/index.js";
import { start } from "./helpers.js";

const SECRET = "8f742231b10e8888abcd99yyyzzz85a5";

it("a Slack slash command verifies on its form bytes, and c.req.parseBody() still reads it; a tampered one is 401", async () => {
  const app = new Hono();
  app.post("/slack/commands", webhook({ scheme: slack, secret: SECRET, store: new MemoryStore() }), async (c) =>
    c.json({ payload: c.get("webhook").payload, parsed: await c.req.parseBody() }),
  );
  const url = `${await start(app)}/slack/commands`;

  const body = "command=%2Fdeploy&text=prod+now&user_id=U1&trigger_id=t.1";
  const signed = await signWebhook({ scheme: slack, secret: SECRET, body, timestamp: Math.floor(Date.now() / 1000) });
  const headers = { ...signed.headers, "content-type": "application/x-www-form-urlencoded" };
  const fields = { command: "/deploy", text: "prod now", user_id: "U1", trigger_id: "t.1" };

  const response = await fetch(url, { method: "POST", headers, body });
  expect(response.status).toBe(200);
  expect(await response.json()).toEqual({ payload: fields, parsed: fields });

  const tampered = await fetch(url, { method: "POST", headers, body: body.replace("prod", "test") });
  expect(tampered.status).toBe(401);
  expect((await tampered.json()).code).toBe("no_matching_signature");
});
