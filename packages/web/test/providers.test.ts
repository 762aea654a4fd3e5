/**
 * The provider pages' fetch-handler sections (docs/webhooks/*.md), run as they are written:
 * each block is written out as a module, its `declare function`s stood in for by recorders, its
 * secrets given as the page reads them (`process.env`, or a Worker's `env`), and its handler
 * served over real HTTP on 127.0.0.1. Deliveries are the providers' own test vectors where one
 * fits, else signed now with core's `signWebhook`. A page whose code stops doing what its prose
 * promises (Slack's challenge and retries, Zoom's validation, GitHub's ping, Shopify's topic)
 * fails here.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  github,
  hmacScheme,
  linear,
  paddle,
  shopify,
  signWebhook,
  slack,
  standardWebhooks,
  stripe,
  type WebhookScheme,
  zoom,
} from "@interlock/core";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { docsDir, read, typeScriptBlocks } from "../../../docs/test/markdown.js";
import vectorFile from "../../core/test/fixtures/webhook-vectors.json" with { type: "json" };
import { problemOf, start, uniqueId } from "./helpers.js";

const SECTION = "### Fetch handlers (Next.js, Bun, Deno, Workers)";

/** The TypeScript blocks of a page's fetch-handler section, in order. */
function fetchSectionBlocks(page: string): string[] {
  const text = read(join(docsDir, "webhooks", `${page}.md`));
  const start = text.indexOf(`\n${SECTION}\n`);
  if (start === -1) throw new Error(`docs/webhooks/${page}.md has no "${SECTION}" section`);
  const rest = text.slice(start + SECTION.length + 2);
  const end = rest.search(/^#{2,3} /m);
  return typeScriptBlocks(end === -1 ? rest : rest.slice(0, end)).map((block) => block.code);
}

type Recorder = (...args: unknown[]) => Promise<void>;

interface ServedPage {
  url: string;
  /** The arguments each call of a function the block declares was made with. */
  calls(name: string): unknown[][];
}

const folder = mkdtempSync(join(tmpdir(), "interlock-web-providers-"));
let loaded = 0;
afterAll(() => rmSync(folder, { recursive: true, force: true }));

afterEach(() => {
  vi.unstubAllEnvs();
  vi.useRealTimers();
});

/**
 * Serves block `index` of a page's section. Every `declare function` becomes a global recorder
 * (or the stand-in given), every secret the block reads is `secret`, and the block is a module
 * of its own each time, so each test starts with an empty store.
 */
async function servePage(
  page: string,
  secret: string,
  { index = 0, standIns = {} }: { index?: number; standIns?: Record<string, Recorder> } = {},
): Promise<ServedPage> {
  const code = fetchSectionBlocks(page)[index];
  if (code === undefined) throw new Error(`docs/webhooks/${page}.md: no block ${index} in its fetch section`);
  const calls = new Map<string, unknown[][]>();
  for (const [, name] of code.matchAll(/^declare function (\w+)/gm)) {
    const seen: unknown[][] = [];
    calls.set(name as string, seen);
    const standIn = standIns[name as string];
    (globalThis as Record<string, unknown>)[name as string] = async (...args: unknown[]) => {
      seen.push(args);
      await standIn?.(...args);
    };
  }
  const env: Record<string, string> = {};
  for (const [, name] of code.matchAll(/\benv\.(\w+)/g)) {
    env[name as string] = secret;
    vi.stubEnv(name as string, secret);
  }
  const file = join(folder, `${page}-${index}-${++loaded}.ts`);
  writeFileSync(file, code);
  const module = (await import(file)) as {
    POST?: (request: Request, env: unknown) => Promise<Response>;
    default?: { fetch: (request: Request, env: unknown) => Promise<Response> };
  };
  const handler = module.POST ?? module.default?.fetch;
  if (!handler) throw new Error(`docs/webhooks/${page}.md: block ${index} exports neither POST nor { fetch }`);
  const url = await start((request) => handler(request, env));
  return {
    url,
    calls: (name) => {
      const seen = calls.get(name);
      if (!seen) throw new Error(`docs/webhooks/${page}.md: block ${index} declares no ${name}()`);
      return seen;
    },
  };
}

interface Delivery {
  headers: Record<string, string>;
  body: string;
}

const post = (url: string, { headers, body }: Delivery, extra: Record<string, string> = {}) =>
  fetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers, ...extra }, body });

const nowSeconds = () => Math.floor(Date.now() / 1000);

async function signed(
  scheme: WebhookScheme,
  secret: string,
  body: string,
  extra: { id?: string; timestamp?: number } = {},
): Promise<Delivery> {
  const { headers } = await signWebhook({ scheme, secret, body, ...extra });
  return { headers, body };
}

type Vector = (typeof vectorFile.vectors)[number];
const vector = (name: string) => vectorFile.vectors.find((v) => v.name === name) as Vector;
/** A vector's delivery as the provider sent it. */
const deliveryOf = (v: Vector): Delivery => ({
  headers: { ...v.headers } as Record<string, string>,
  body: v.body as string,
});

const SECRETS = {
  stripe: vector("stripe ST-1").secret as string,
  github: vector("github GH-2").secret as string,
  slack: vector("slack SL-1 (form body)").secret as string,
  shopify: vector("shopify SH-1").secret as string,
  paddle: vector("paddle PD-1").secret as string,
  linear: vector("linear LN-1").secret as string,
  zoom: vectorFile.zoomUrlValidation.secret,
  "standard-webhooks": vector("standard-webhooks SW-2").secret as string,
  "custom-hmac": "acme-test-secret",
};

/** The page's own partner scheme (custom-hmac.md), as its block builds it. */
const acme = hmacScheme({ name: "acme", signatureHeader: "Acme-Signature", timestampHeader: "Acme-Timestamp" });

interface Row {
  page: keyof typeof SECRETS;
  scheme: WebhookScheme;
  /** A delivery the page's handler acts on: its body, and the headers it reads. */
  body: () => string;
  headers?: Record<string, string>;
  id?: string;
  /** The function the page hands the event to, and what it gets. */
  effect: string;
  expected: (payload: Record<string, unknown>) => unknown[];
  /** What the handler answers, when it is more than a status. */
  answer?: (payload: Record<string, unknown>, id: string) => unknown;
}

const ROWS: Row[] = [
  {
    page: "stripe",
    scheme: stripe,
    body: () => JSON.stringify({ id: uniqueId("evt"), object: "event", type: "checkout.session.completed" }),
    effect: "fulfil",
    expected: (payload) => [payload],
    answer: (payload) => ({ received: payload.id }),
  },
  {
    page: "github",
    scheme: github,
    body: () => JSON.stringify({ ref: "refs/heads/main", after: "6113728f27ae82c7b1a177c8d03f9e96e0adf246" }),
    headers: { "x-github-event": "push" },
    id: "72d3162e-cc78-11e3-81ab-4c9367dc0958",
    effect: "onPush",
    expected: (payload) => [payload],
    answer: (_payload, id) => ({ received: id }),
  },
  {
    page: "slack",
    scheme: slack,
    body: () => JSON.stringify({ type: "event_callback", event_id: uniqueId("Ev"), event: { type: "app_mention" } }),
    effect: "onEvent",
    expected: (payload) => [payload.event],
  },
  {
    page: "shopify",
    scheme: shopify,
    body: () => JSON.stringify({ id: 820982911946154500 }),
    headers: { "x-shopify-topic": "orders/paid" },
    id: "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
    effect: "onOrderPaid",
    expected: (payload) => [payload],
  },
  {
    page: "paddle",
    scheme: paddle,
    body: () =>
      JSON.stringify({ notification_id: uniqueId("ntf"), event_type: "transaction.completed", data: { id: "txn_1" } }),
    effect: "onTransactionCompleted",
    expected: (payload) => [payload.data],
  },
  {
    page: "linear",
    scheme: linear,
    body: () =>
      JSON.stringify({ action: "create", type: "Issue", data: { id: "iss_1" }, webhookTimestamp: Date.now() }),
    id: "a1b2c3d4-0000-4000-8000-000000000001",
    effect: "onIssue",
    expected: (payload) => [payload],
  },
  {
    page: "zoom",
    scheme: zoom,
    body: () => JSON.stringify({ event: "meeting.started", event_ts: Date.now(), payload: { object: { id: "85" } } }),
    effect: "onZoomEvent",
    expected: (payload) => [payload],
  },
  {
    page: "standard-webhooks",
    scheme: standardWebhooks,
    body: () => JSON.stringify({ type: "invoice.paid", data: { id: "inv_1" } }),
    id: "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
    effect: "handle",
    expected: (payload) => [payload],
  },
  {
    page: "custom-hmac",
    scheme: acme,
    body: () => JSON.stringify({ kind: "shipment.created", shipment: "shp_1" }),
    effect: "onAcmeEvent",
    expected: (payload) => [payload],
  },
];

describe("every page's fetch handler, as written: processed once, a copy a duplicate, a forgery refused", () => {
  for (const row of ROWS) {
    it(row.page, async () => {
      const served = await servePage(row.page, SECRETS[row.page]);
      const body = row.body();
      const id = row.id ?? uniqueId("id");
      const delivery = await signed(row.scheme, SECRETS[row.page], body, { id });
      const payload = JSON.parse(body) as Record<string, unknown>;

      const first = await post(served.url, delivery, row.headers);
      expect(first.status).toBeLessThan(300);
      if (row.answer) expect(await first.json()).toEqual(row.answer(payload, id));
      expect(served.calls(row.effect)).toEqual([row.expected(payload)]);

      const copy = await post(served.url, delivery, row.headers);
      expect([copy.status, await copy.json()]).toMatchObject([200, { duplicate: true }]);

      const forged = await post(served.url, { ...delivery, body: `${body} ` }, row.headers);
      expect([forged.status, (await problemOf(forged)).code]).toEqual([401, "no_matching_signature"]);
      expect(served.calls(row.effect)).toHaveLength(1);
    });
  }
});

describe("Slack (docs/webhooks/slack.md)", () => {
  const secret = SECRETS.slack;
  // Slack's documented example of the challenge it sends when the Request URL is saved.
  const challenge = (token: string) =>
    JSON.stringify({ token: "Jhj5dZrVaK7ZwHHjRyZWjbDl", challenge: token, type: "url_verification" });

  it("answers the url_verification challenge with it, each time the URL is saved, and runs nothing", async () => {
    const served = await servePage("slack", secret);
    for (const [token, timestamp] of [
      ["3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", nowSeconds() - 60],
      ["a-second-save-of-the-request-url", nowSeconds()],
    ] as const) {
      const response = await post(served.url, await signed(slack, secret, challenge(token), { timestamp }));
      expect([response.status, await response.json()]).toEqual([200, { challenge: token }]);
    }
    expect(served.calls("onEvent")).toEqual([]);
  });

  it("a retry (X-Slack-Retry-Num), signed afresh, of a processed event is a duplicate: the handler ran once", async () => {
    const served = await servePage("slack", secret);
    const eventId = uniqueId("Ev");
    const body = JSON.stringify({ type: "event_callback", event_id: eventId, event: { type: "app_mention" } });
    const first = await post(served.url, await signed(slack, secret, body, { timestamp: nowSeconds() - 5 }));
    expect(first.status).toBe(200);
    const retry = await post(served.url, await signed(slack, secret, body, { timestamp: nowSeconds() }), {
      "x-slack-retry-num": "1",
      "x-slack-retry-reason": "http_error",
    });
    expect([retry.status, await retry.json()]).toEqual([200, { duplicate: true, id: eventId }]);
    expect(served.calls("onEvent")).toHaveLength(1);
  });

  it("a retry that arrives while the handler still runs (http_timeout) is answered 409 with Retry-After", async () => {
    let release = () => {};
    const running = new Promise<void>((resolve) => {
      release = resolve;
    });
    let entered = () => {};
    const inHandler = new Promise<void>((resolve) => {
      entered = resolve;
    });
    const served = await servePage("slack", secret, {
      standIns: {
        onEvent: async () => {
          entered();
          await running;
        },
      },
    });
    const body = JSON.stringify({ type: "event_callback", event_id: uniqueId("Ev"), event: { type: "message" } });
    const first = post(served.url, await signed(slack, secret, body, { timestamp: nowSeconds() - 3 }));
    await inHandler;
    const retry = await post(served.url, await signed(slack, secret, body, { timestamp: nowSeconds() }), {
      "x-slack-retry-num": "1",
      "x-slack-retry-reason": "http_timeout",
    });
    expect([retry.status, (await problemOf(retry)).code]).toEqual([409, "request_in_flight"]);
    expect(Number(retry.headers.get("retry-after"))).toBeGreaterThan(0);
    release();
    expect((await first).status).toBe(200);
    expect(served.calls("onEvent")).toHaveLength(1);
  });

  it("the slash command route answers Slack's own signed example (a form body) from its fields", async () => {
    const v = vector("slack SL-1 (form body)");
    // The example was signed in 2018: the clock is set to its time so the page's code, unchanged, checks it.
    vi.useFakeTimers({ toFake: ["Date"], now: (v.timestamp as number) * 1000 });
    const served = await servePage("slack", secret, { index: 1 });
    const response = await post(served.url, deliveryOf(v), {
      "content-type": "application/x-www-form-urlencoded",
    });
    expect([response.status, await response.json()]).toEqual([
      200,
      { response_type: "ephemeral", text: "/webhook-collect : on it" },
    ]);
  });
});

describe("Zoom (docs/webhooks/zoom.md), a Worker whose secret token comes in env", () => {
  const { secret, plainToken, encryptedToken } = vectorFile.zoomUrlValidation;
  const validation = (eventTs: number) =>
    JSON.stringify({ event: "endpoint.url_validation", event_ts: eventTs, payload: { plainToken } });

  it("answers endpoint.url_validation with the token Zoom checks, and again when Zoom re-validates", async () => {
    const served = await servePage("zoom", secret);
    for (const at of [nowSeconds() - 120, nowSeconds()]) {
      const response = await post(served.url, await signed(zoom, secret, validation(at * 1000), { timestamp: at }));
      expect([response.status, await response.json()]).toEqual([200, { plainToken, encryptedToken }]);
    }
    expect(served.calls("onZoomEvent")).toEqual([]);
  });

  it("a validation signed with another token is refused, not answered", async () => {
    const served = await servePage("zoom", secret);
    const response = await post(served.url, await signed(zoom, "not-the-secret-token", validation(Date.now())));
    expect([response.status, (await problemOf(response)).code]).toEqual([401, "no_matching_signature"]);
  });
});

describe("GitHub (docs/webhooks/github.md)", () => {
  const v = vector("github GH-2");
  const ping = deliveryOf(v);
  ping.headers["x-github-delivery"] = "8d9d2f3a-1e11-11ef-9b6b-2f4a5c6d7e8f";

  it("acknowledges a ping (GitHub's signed example) without handing it on, and its redelivery is a duplicate", async () => {
    const served = await servePage("github", SECRETS.github);
    const response = await post(served.url, ping, { "x-github-event": "ping" });
    expect([response.status, await response.json()]).toEqual([200, { received: ping.headers["x-github-delivery"] }]);
    const again = await post(served.url, ping, { "x-github-event": "ping" });
    expect([again.status, await again.json()]).toMatchObject([200, { duplicate: true }]);
    expect(served.calls("onPush")).toEqual([]);
  });

  it("hands on only what X-GitHub-Event names a push", async () => {
    const served = await servePage("github", SECRETS.github);
    const body = JSON.stringify({ action: "opened", issue: { number: 1 } });
    const issues = await signed(github, SECRETS.github, body, { id: uniqueId("gh") });
    expect((await post(served.url, issues, { "x-github-event": "issues" })).status).toBe(200);
    expect(served.calls("onPush")).toEqual([]);
  });
});

describe("Shopify (docs/webhooks/shopify.md)", () => {
  const v = vector("shopify SH-1");

  it("hands on a delivery (a signed example) whose X-Shopify-Topic is orders/paid, and only that", async () => {
    const served = await servePage("shopify", SECRETS.shopify);
    const paid = await post(served.url, deliveryOf(v), { "x-shopify-topic": "orders/paid" });
    expect(paid.status).toBe(200);
    expect(served.calls("onOrderPaid")).toEqual([[JSON.parse(v.body as string)]]);

    const other = await signed(shopify, SECRETS.shopify, '{"id":2}', { id: uniqueId("shop") });
    expect((await post(served.url, other, { "x-shopify-topic": "orders/create" })).status).toBe(200);
    expect(served.calls("onOrderPaid")).toHaveLength(1);
  });
});
