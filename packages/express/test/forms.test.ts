/** A form-encoded Slack delivery (a slash command) over real HTTP, with the app parsing forms itself. */
import { MemoryStore, signWebhook, slack } from "@interlock/core";
import express from "express";
import { afterEach, expect, it } from "vitest";
import { captureRawBody, webhook } from "../src/index.js";
import { listen, type Running, send } from "./helpers.js";

const SECRET = "8f742231b10e8888abcd99yyyzzz85a5";
const running: Running[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((app) => app.close()));
});

it("a Slack slash command verifies on its form bytes, with express.urlencoded({ verify: captureRawBody }) mounted first; a tampered one is 401", async () => {
  const app = express();
  app.use(express.urlencoded({ extended: false, verify: captureRawBody }));
  app.post("/slack/commands", webhook({ scheme: slack, secret: SECRET, store: new MemoryStore() }), (req, res) => {
    res.json({ payload: req.webhook?.payload, parsed: req.body });
  });
  const server = await listen(app);
  running.push(server);

  const body = "command=%2Fdeploy&text=prod+now&user_id=U1&trigger_id=t.1";
  const signed = await signWebhook({ scheme: slack, secret: SECRET, body, timestamp: Math.floor(Date.now() / 1000) });
  const headers = { ...signed.headers, "content-type": "application/x-www-form-urlencoded" };
  const url = `${server.url}/slack/commands`;

  const response = await send(url, { headers, body });
  expect(response.status).toBe(200);
  const fields = { command: "/deploy", text: "prod now", user_id: "U1", trigger_id: "t.1" };
  // The app's parser keeps parsing: req.body is its object, the payload is decoded from the signed bytes.
  expect(response.json()).toEqual({ payload: fields, parsed: fields });

  const tampered = await send(url, { headers, body: body.replace("prod", "test") });
  expect(tampered.status).toBe(401);
  expect((tampered.json() as { code: string }).code).toBe("no_matching_signature");
});
