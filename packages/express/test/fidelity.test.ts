/**
 * Replay fidelity: a retry gets what the first client got (status, body bytes on the wire, the
 * replayable header lines), for the ways real Express apps answer.
 */
import { MemoryStore } from "@interlock/core";
import { expectFaithfulReplay, type WireAnswer, wireRequest } from "@interlock/test-harness/wire";
import express, { type Express, type RequestHandler } from "express";
import { afterEach, describe, expect, it } from "vitest";
import { idempotency } from "../src/index.js";
import { asyncRoute } from "./framework.js";
import { listen, type Running } from "./helpers.js";

let running: Running | undefined;
afterEach(async () => {
  await running?.close();
  running = undefined;
});

let sequence = 0;
const newKey = () => `key-${Date.now().toString(36)}-${++sequence}`;

/** An app with `settings`, and `handler` on POST /things behind idempotency(); counts its runs. */
async function start(handler: RequestHandler, settings: (app: Express) => void = () => {}) {
  const app = express();
  settings(app);
  const calls = { count: 0 };
  app.post(
    "/things",
    idempotency({ store: new MemoryStore(), principal: false }),
    asyncRoute((req, res, next) => {
      calls.count++;
      return handler(req, res, next);
    }),
  );
  running = await listen(app);
  return calls;
}

/** Sends the same keyed POST twice: the first answer and its replay, as they came over the wire. */
async function firstAndReplay(
  headers: Record<string, string> = {},
  path = "/things",
): Promise<[WireAnswer, WireAnswer]> {
  const sent = { "content-type": "application/json", "idempotency-key": newKey(), ...headers };
  const first = await wireRequest(`${running?.url}${path}`, sent, "{}");
  const replay = await wireRequest(`${running?.url}${path}`, sent, "{}");
  return [first, replay];
}

describe("writeHead's header lists", () => {
  // Without Express's own X-Powered-By (set with setHeader before the route), Node writes the
  // list that writeHead was given as it is: a list of pairs, and a name listed twice, twice.
  const bare = (app: Express) => app.disable("x-powered-by");

  it("writeHead(status, [[name, value], …]): the pairs are replayed as sent", async () => {
    await start((_req, res) => {
      res.writeHead(201, [
        ["Content-Type", "text/plain"],
        ["Location", "/things/1"],
      ] as unknown as string[]);
      res.end("made");
    }, bare);
    const [first, replay] = await firstAndReplay();
    expect([first.headers["content-type"], first.headers.location]).toEqual(["text/plain", "/things/1"]);
    expectFaithfulReplay(first, replay);
  });

  it("a name a flat list repeats keeps each of its lines", async () => {
    await start((_req, res) => {
      res.writeHead(200, ["Content-Type", "text/plain", "Link", "</a>; rel=next", "Link", "</b>; rel=prev"]);
      res.end("ok");
    }, bare);
    const [first, replay] = await firstAndReplay();
    expect(first.headers.link).toBe("</a>; rel=next, </b>; rel=prev");
    expectFaithfulReplay(first, replay);
  });
});

describe("Express's own serialisers and shortcuts", () => {
  it("res.json with the app's json spaces, replacer and escape settings", async () => {
    await start(
      (_req, res) => {
        res.status(201).json({ id: "thing_1", secret: "hidden", html: "<b>&</b>" });
      },
      (app) => {
        app.set("json spaces", 2);
        app.set("json replacer", (key: string, value: unknown) => (key === "secret" ? undefined : value));
        app.set("json escape", true);
      },
    );
    const [first, replay] = await firstAndReplay();
    expect(first.raw.toString()).toBe('{\n  "id": "thing_1",\n  "html": "\\u003cb\\u003e\\u0026\\u003c/b\\u003e"\n}');
    expectFaithfulReplay(first, replay);
  });

  it("res.jsonp, res.sendStatus, res.redirect and res.format", async () => {
    await start((req, res) => {
      const answer = req.query.answer;
      if (answer === "jsonp") res.jsonp({ id: "thing_1" });
      else if (answer === "status") res.sendStatus(202);
      else if (answer === "redirect") res.redirect(303, "/things/1");
      else res.format({ "text/html": () => res.send("<p>thing</p>"), "application/json": () => res.json({}) });
    });
    for (const query of ["answer=jsonp&callback=cb", "answer=status", "answer=redirect", "answer=format"]) {
      const [first, replay] = await firstAndReplay({ accept: "text/html" }, `/things?${query}`);
      expectFaithfulReplay(first, replay);
    }
  });

  it("an ETag (the app's etag setting) is replayed; a POST's If-None-Match is not a 304", async () => {
    await start(
      (_req, res) => {
        res.send("thing");
      },
      (app) => app.set("etag", "strong"),
    );
    const [first, replay] = await firstAndReplay();
    expect(first.headers.etag).toBeDefined();
    const [conditional, conditionalReplay] = await firstAndReplay({ "if-none-match": String(first.headers.etag) });
    expect(conditional.status).toBe(200);
    expectFaithfulReplay(first, replay);
    expectFaithfulReplay(conditional, conditionalReplay);
  });
});

describe("the bytes a handler hands over", () => {
  it("res.send(buffer), then the handler reuses its buffer: the first client gets what is stored", async () => {
    await start((_req, res) => {
      const buffer = Buffer.from("first bytes");
      res.type("text/plain").send(buffer);
      buffer.fill("x");
    });
    const [first, replay] = await firstAndReplay();
    expect(first.raw.toString()).toBe("first bytes");
    expectFaithfulReplay(first, replay);
  });

  it("res.write(buffer) then res.end(): a reused buffer is sent and stored as written", async () => {
    await start((_req, res) => {
      const buffer = Buffer.from("part one;");
      res.type("text/plain");
      res.write(buffer);
      buffer.write("part two.");
      res.end(buffer);
      buffer.fill("x");
    });
    const [first, replay] = await firstAndReplay();
    expect(first.raw.toString()).toBe("part one;part two.");
    expectFaithfulReplay(first, replay);
  });

  it("repeated headers keep their lines and order; Set-Cookie is not replayed", async () => {
    await start((_req, res) => {
      res.append("Link", "</a>; rel=next");
      res.append("Link", "</b>; rel=prev");
      res.vary("Accept").vary("Accept-Language");
      res.cookie("session", "first-request-only");
      res.json({ ok: true });
    });
    const [first, replay] = await firstAndReplay();
    expectFaithfulReplay(first, replay);
    expect(first.headers["set-cookie"]).toBeDefined();
    expect(replay.headers["set-cookie"]).toBeUndefined();
  });
});
