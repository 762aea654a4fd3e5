/** A form-encoded Slack delivery (a slash command) over real HTTP. */
import { MemoryStore, signWebhook, slack } from "@interlock/core";
import Koa from "koa";
import { afterEach, expect, it } from "vitest";
import { webhook } from "../src/index.js";
import { type Served, serve } from "./serve.js";
import { route } from "./support.js";

const SECRET = "8f742231b10e8888abcd99yyyzzz85a5";
let served: Served | undefined;
afterEach(async () => {
  await served?.close();
  served = undefined;
});

it("a Slack slash command verifies on its form bytes and decodes to its fields; a tampered one is 401", async () => {
  const app = new Koa();
  app.silent = true;
  const verify = webhook({ scheme: slack, secret: SECRET, store: new MemoryStore() });
  app.use(
    route("POST", "/slack/commands", verify, async (ctx) => {
      ctx.body = { payload: ctx.state.webhook.payload };
    }),
  );
  served = await serve(app);

  const body = "command=%2Fdeploy&text=prod+now&user_id=U1&trigger_id=t.1";
  const signed = await signWebhook({ scheme: slack, secret: SECRET, body, timestamp: Math.floor(Date.now() / 1000) });
  const headers = { ...signed.headers, "content-type": "application/x-www-form-urlencoded" };
  const url = `${served.url}/slack/commands`;

  const response = await fetch(url, { method: "POST", headers, body });
  expect(response.status).toBe(200);
  expect((await response.json()).payload).toEqual({
    command: "/deploy",
    text: "prod now",
    user_id: "U1",
    trigger_id: "t.1",
  });

  const tampered = await fetch(url, { method: "POST", headers, body: body.replace("prod", "test") });
  expect(tampered.status).toBe(401);
  expect((await tampered.json()).code).toBe("no_matching_signature");
});
