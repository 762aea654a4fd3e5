/**
 * Both builds of the package loaded in one process, as in an ESM app whose CommonJS dependency
 * requires `@interlock/express` (or the reverse): two copies of core, each with its own
 * `VerifiedWebhook`. The delivery one build's `webhook()` hands the route is a `VerifiedWebhook`
 * of the other copy of core too, and that copy's functions taking a delivery work on it (Zoom's
 * URL validation, as the Zoom guide writes it, with core imported by the app). Runs against
 * dist/: build first (`pnpm --filter @interlock/express run build`, and core's, whose CommonJS
 * build the CommonJS copy requires).
 */

import * as esmCore from "@interlock/core";
import { type Build, bothBuildsBeforeAll, EACH_WAY } from "@interlock/test-harness/dual-builds";
import express from "express";
import { afterEach, describe, expect, it } from "vitest";
import { listen, type Running, send } from "./helpers.js";

type Package = typeof import("../src/index.js");
type Core = typeof esmCore;

const copies = bothBuildsBeforeAll<Package>("express", esmCore, (build) => build.webhook);
const { cores } = copies;

const ZOOM_TOKEN = "zoom-secret-token-0123456789";
const challengeOf = (plainToken: string) => ({ event: "endpoint.url_validation", payload: { plainToken } });
const CHALLENGE = JSON.stringify(challengeOf("tok123"));
/** What a holder of a delivery would have the key sign: a forged Zoom delivery's signed content. */
const FORGED = 'v0:1700000000:{"event":"meeting.deleted","payload":{"object":{"id":"1"}}}';

const running: Running[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((server) => server.close()));
});

/**
 * An app whose `webhook()` is the `made` build's, its route answering with what `route` makes of
 * `req.webhook` using the `asked` build's core: the route's answer, or a 500 naming its error.
 */
async function app(
  made: Build,
  options: Parameters<Package["webhook"]>[0],
  route: (core: Core, delivery: esmCore.VerifiedWebhook) => Promise<unknown>,
  asked: Build,
): Promise<string> {
  const app = express();
  app.post("/hook", copies[made].webhook(options), async (req, res) => {
    try {
      res.json((await route(cores[asked], req.webhook as esmCore.VerifiedWebhook)) ?? null);
    } catch (error) {
      res.status(500).json({ error: String(error) });
    }
  });
  const server = await listen(app);
  running.push(server);
  return `${server.url}/hook`;
}

describe.each(EACH_WAY)(
  "a delivery the %s build's webhook() verified, used with the %s build's core",
  (made, asked) => {
    it("is a VerifiedWebhook of either copy, and answers Zoom's URL validation under the token that signed it", async () => {
      const url = await app(
        made,
        { scheme: cores[made].zoom, secret: ZOOM_TOKEN, store: cores[made].memoryStore() },
        async (core, delivery) => ({
          instance: delivery instanceof core.VerifiedWebhook,
          answer: await core.answerZoomUrlValidation(delivery),
        }),
        asked,
      );
      const signed = await esmCore.signWebhook({ scheme: esmCore.zoom, secret: ZOOM_TOKEN, body: CHALLENGE });
      const response = await send(url, {
        headers: { ...signed.headers, "content-type": "application/json" },
        body: CHALLENGE,
      });
      const expected = await esmCore.answerZoomUrlValidation(JSON.parse(CHALLENGE), ZOOM_TOKEN);
      expect([response.status, response.json()]).toEqual([200, { instance: true, answer: expected }]);
    });

    it("a delivery another scheme verified is still refused with a typed configuration error", async () => {
      const url = await app(
        made,
        { scheme: cores[made].slack, secret: ZOOM_TOKEN, store: cores[made].memoryStore() },
        async (core, delivery) => {
          const refused = await core.answerZoomUrlValidation(delivery).catch((error: unknown) => error);
          return { configError: refused instanceof core.InterlockConfigError };
        },
        asked,
      );
      const signed = await esmCore.signWebhook({ scheme: esmCore.slack, secret: ZOOM_TOKEN, body: CHALLENGE });
      const response = await send(url, {
        headers: { ...signed.headers, "content-type": "application/json" },
        body: CHALLENGE,
      });
      expect([response.status, response.json()]).toEqual([200, { configError: true }]);
    });

    it("a delivery another scheme verified, relabelled zoom and its payload made a challenge by the route, is refused with a typed configuration error", async () => {
      const url = await app(
        made,
        { scheme: cores[made].github, secret: ZOOM_TOKEN, store: cores[made].memoryStore() },
        async (core, delivery) => {
          // What code handed the delivery but not the secret would have the key sign: a forged delivery's body.
          Object.assign(delivery, { scheme: "zoom" });
          Object.defineProperty(delivery, "payload", { value: challengeOf(FORGED) });
          const refused = await core.answerZoomUrlValidation(delivery).catch((error: unknown) => error);
          return { configError: refused instanceof core.InterlockConfigError };
        },
        asked,
      );
      const body = '{"action":"opened"}';
      const signed = await esmCore.signWebhook({ scheme: esmCore.github, secret: ZOOM_TOKEN, body, id: "d-1" });
      const response = await send(url, { headers: { ...signed.headers, "content-type": "application/json" }, body });
      expect([response.status, response.json()]).toEqual([200, { configError: true }]);
    });

    it("a Zoom delivery whose payload the route edited is answered from what was verified: an event gets no answer, a challenge its own token's", async () => {
      const url = await app(
        made,
        { scheme: cores[made].zoom, secret: ZOOM_TOKEN, store: cores[made].memoryStore() },
        async (core, delivery) => {
          const verified = structuredClone(delivery.payload);
          Object.assign(delivery.payload as object, challengeOf(FORGED));
          return { verified, answer: await core.answerZoomUrlValidation(delivery) };
        },
        asked,
      );
      const answers: unknown[] = [];
      for (const body of ['{"event":"meeting.started","payload":{}}', CHALLENGE]) {
        const signed = await esmCore.signWebhook({ scheme: esmCore.zoom, secret: ZOOM_TOKEN, body });
        const response = await send(url, { headers: { ...signed.headers, "content-type": "application/json" }, body });
        expect(response.status).toBe(200);
        answers.push(response.json());
      }
      const genuine = await esmCore.answerZoomUrlValidation(JSON.parse(CHALLENGE), ZOOM_TOKEN);
      expect(answers).toEqual([
        { verified: { event: "meeting.started", payload: {} } },
        { verified: JSON.parse(CHALLENGE), answer: genuine },
      ]);
    });

    it("deliveryKey keys a delivery whose id is unsigned on what its scheme says identifies it, as the copy that made it does", async () => {
      const url = await app(
        made,
        { scheme: cores[made].linear, secret: ZOOM_TOKEN, store: cores[made].memoryStore() },
        async (core, delivery) => ({
          asked: await core.deliveryKey(delivery),
          made: await cores[made].deliveryKey(delivery),
        }),
        asked,
      );
      // Linear's deliveries are keyed on their body less the `webhookTimestamp` it signs afresh on each retry.
      const body = JSON.stringify({ action: "create", webhookTimestamp: Date.now() });
      const signed = await esmCore.signWebhook({ scheme: esmCore.linear, secret: ZOOM_TOKEN, body, id: "d-1" });
      const response = await send(url, { headers: { ...signed.headers, "content-type": "application/json" }, body });
      const keys = response.json() as { asked: unknown; made: unknown };
      expect(response.status).toBe(200);
      expect(keys.made).toMatchObject({ key: expect.stringMatching(/^wh:linear:d-1:[0-9a-f]{32}$/) });
      expect(keys.asked).toEqual(keys.made);
    });

    it("an object given the prototype of the other copy's deliveries is a delivery of neither", () => {
      const lookalike = Object.create(cores[made].VerifiedWebhook.prototype);
      expect(lookalike instanceof cores[asked].VerifiedWebhook).toBe(false);
      expect(lookalike instanceof cores[made].VerifiedWebhook).toBe(false);
    });
  },
);
