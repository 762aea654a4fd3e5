// Boots the Hono example on Node (@hono/node-server) on 127.0.0.1:0 and drives it over real
// HTTP, as GitHub and a payments client would; then serves the same app.mjs on Bun and Deno.
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { github, signWebhook } from "@interlock/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { API_KEY, apiKeys, describePaymentsApi, itLogsAnUnexpectedError } from "../payments-api.js";
import { memoryDb } from "./app.mjs";
import { start } from "./server.mjs";

const GITHUB_WEBHOOK_SECRET = "example-hono-github-secret";
const db = memoryDb();
let app: { url: string; close(): Promise<void> };

beforeAll(async () => {
  app = await start({ port: 0, host: "127.0.0.1", githubSecret: GITHUB_WEBHOOK_SECRET, apiKeys: apiKeys(), db });
});
afterAll(() => app?.close());

describe("GitHub webhooks", () => {
  const push = JSON.stringify({ ref: "refs/heads/main", after: "6dcb09b5b57875f334f61aebed695e2e4193db5e" });
  const deliver = (headers: Record<string, string>, body: string | Uint8Array) =>
    fetch(`${app.url}/webhooks/github`, { method: "POST", headers: { ...headers, "x-github-event": "push" }, body });

  it("processes a signed delivery once, answers its redelivery as a duplicate, refuses a tampered one", async () => {
    const id = "72d3162e-cc78-11e3-81ab-4c9367dc0958";
    const signed = await signWebhook({ scheme: github, secret: GITHUB_WEBHOOK_SECRET, body: push, id });

    const first = await deliver(signed.headers, signed.body);
    expect(first.status).toBe(200);
    expect(await first.json()).toEqual({ received: id });

    const again = await deliver(signed.headers, signed.body);
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual({ duplicate: true, id });
    expect(db.deliveries).toEqual([{ id, event: "push", head: "6dcb09b5b57875f334f61aebed695e2e4193db5e" }]);

    const tampered = await deliver(signed.headers, push.replace("main", "release"));
    expect(tampered.status).toBe(401);
    expect(tampered.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(await tampered.json()).toMatchObject({ status: 401, code: "no_matching_signature" });
    expect(db.deliveries).toHaveLength(1);
  });

  // Signed by the sender, so verified, but no event object: read as one, each was a 500 on every redelivery.
  const notObjects = ["null", "42", '"evt"', "[]", "{not json", "ref=refs%2Fheads%2Fmain"];

  it.each(notObjects)(
    "answers 422 invalid_payload to a signed delivery whose payload is %s, and records nothing",
    async (body) => {
      const deliveries = db.deliveries.length;
      const signed = await signWebhook({
        scheme: github,
        secret: GITHUB_WEBHOOK_SECRET,
        body,
        id: crypto.randomUUID(),
      });

      const refused = await deliver(signed.headers, signed.body);
      expect(refused.status).toBe(422);
      expect(refused.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      expect(await refused.json()).toMatchObject({ status: 422, code: "invalid_payload" });
      expect(db.deliveries).toHaveLength(deliveries);
    },
  );
});

describePaymentsApi(() => ({ url: app.url, db }));
itLogsAnUnexpectedError(() => ({ url: app.url, db }));

// The runtimes the repository installs (root devDependencies): a missing one fails, never skips.
const bin = (name: string) => fileURLToPath(new URL(`../../node_modules/.bin/${name}`, import.meta.url));
const runtimes = {
  bun: [
    bin("bun"),
    "-e",
    `const { default: app } = await import("./app.mjs");
     const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: app.fetch });
     console.log(server.url.href);`,
  ],
  deno: [
    bin("deno"),
    "eval",
    `const { default: app } = await import("./app.mjs");
     Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: ({ port }) => console.log("http://127.0.0.1:" + port) }, app.fetch);`,
  ],
};

describe.each(Object.entries(runtimes))("the same app.mjs on %s", (_name, [command, ...args]) => {
  let child: ChildProcess;
  let url: string;

  beforeAll(async () => {
    child = spawn(command!, args, {
      cwd: fileURLToPath(new URL(".", import.meta.url)),
      env: { ...process.env, GITHUB_WEBHOOK_SECRET, API_KEYS: `${API_KEY}:acct_shop_7`, NO_COLOR: "1" },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true, // its own process group: deno's npm launcher runs the real binary as a child
    });
    let stderr = ""; // shown if it fails to start (Deno also prints notices there)
    child.stderr!.on("data", (chunk) => {
      stderr += chunk;
    });
    const [line] = (await Promise.race([
      once(createInterface({ input: child.stdout! }), "line"),
      once(child, "exit").then(([code]) => Promise.reject(new Error(`${command} exited with ${code}: ${stderr}`))),
    ])) as [string];
    url = new URL(line).origin;
  }, 20_000);
  afterAll(() => {
    if (child?.pid !== undefined && child.exitCode === null) process.kill(-child.pid, "SIGTERM");
  });

  it("verifies and de-duplicates a delivery, and replays a payment", async () => {
    const body = JSON.stringify({ ref: "refs/heads/main", after: "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c" });
    const signed = await signWebhook({ scheme: github, secret: GITHUB_WEBHOOK_SECRET, body });
    const deliver = () =>
      fetch(`${url}/webhooks/github`, {
        method: "POST",
        headers: { ...signed.headers, "x-github-event": "push" },
        body: signed.body,
      });
    expect(await (await deliver()).json()).toEqual({ received: signed.id });
    expect(await (await deliver()).json()).toEqual({ duplicate: true, id: signed.id });

    const pay = () =>
      fetch(`${url}/payments`, {
        method: "POST",
        headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json", "idempotency-key": "k-1" },
        body: JSON.stringify({ amount: 4200 }),
      });
    const first = await pay();
    const retry = await pay();
    expect([first.status, retry.status]).toEqual([201, 201]);
    expect(retry.headers.get("idempotent-replayed")).toBe("true");
    expect(await retry.text()).toBe(await first.text());
  });
});
