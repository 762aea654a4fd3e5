/**
 * The whole scenario table again, with the app served by Bun: the adapter and core run on
 * Bun's own Request/Response and Web Crypto, while the rows and the handlers' bookkeeping
 * stay here. A missing bun fails the table; it is never skipped. Then what only Bun does
 * differently: text answers, whose default Content-Type Bun keeps out of `response.headers`.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createServer } from "node:http";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { type SchemeName, schemes, type VerifiedWebhook } from "@interlock/core";
import { describeAdapterScenarios, type ScenarioAppOptions, type ScenarioHandlers } from "@interlock/core/testing";
import { installedRuntime } from "@interlock/test-harness/portability";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BunScenarioConfig } from "./fixtures/bun-server.js";
import { type Served, serveNode } from "./serve.js";

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

async function call(handlers: ScenarioHandlers, path: string | undefined, input: { body?: unknown }) {
  if (path !== "/webhook") return handlers.payment(input.body);
  await handlers.webhook(input as VerifiedWebhook);
  return {};
}

/** The table's handlers, called by the Bun app over HTTP. */
function handlerEndpoint(handlers: ScenarioHandlers): Promise<Served> {
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const input = JSON.parse(Buffer.concat(chunks).toString());
    try {
      const output = await call(handlers, req.url, input);
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(output));
    } catch {
      res.writeHead(500).end();
    }
  });
  return serveNode(server);
}

function schemeName(options: ScenarioAppOptions): SchemeName {
  const found = Object.entries(schemes).find(([, scheme]) => scheme === options.webhook.scheme);
  if (!found) throw new Error("the scenario's scheme is not a preset");
  return found[0] as SchemeName;
}

function configFor(options: ScenarioAppOptions, handlers: string): BunScenarioConfig {
  const { webhook, idempotency } = options;
  return {
    handlers,
    store: webhook.store.name === "memory" ? "memory" : "unreachable",
    webhook: {
      scheme: schemeName(options),
      secret: ([] as unknown[]).concat(webhook.secret) as string[],
      ...(webhook.lockTtlMs === undefined ? {} : { lockTtlMs: webhook.lockTtlMs }),
    },
    idempotency: {
      ...(idempotency.lockTtlMs === undefined ? {} : { lockTtlMs: idempotency.lockTtlMs }),
      ...(typeof idempotency.required === "boolean" ? { required: idempotency.required } : {}),
    },
  };
}

interface Started {
  url: string;
  runtime: { bun: string | undefined; crypto: string };
}

/** Starts a Bun app (the scenario app unless told) and waits for the URL it prints. */
async function startBun(
  config: BunScenarioConfig | undefined,
  app = "./fixtures/bun-server.ts",
): Promise<{ child: ChildProcess; url: string }> {
  const args = ["--tsconfig-override", here("./fixtures/bun.tsconfig.json"), here(app)];
  const child = spawn(installedRuntime("bun"), args, {
    cwd: here("."),
    env: { ...process.env, INTERLOCK_SCENARIO: JSON.stringify(config ?? null) },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = new Promise<never>((_, reject) =>
    child.once("exit", (code) => reject(new Error(`bun exited (${code}) before serving`))),
  );
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const first = new Promise<string>((resolve) => lines.once("line", resolve));
  const started = JSON.parse(await Promise.race([first, exited])) as Started;
  if (!started.runtime.bun || started.runtime.crypto !== "web") {
    throw new Error(`expected Bun with Web Crypto, got ${JSON.stringify(started.runtime)}`);
  }
  return { child, url: started.url };
}

describeAdapterScenarios("hono on Bun", async (options) => {
  const endpoint = await handlerEndpoint(options.handlers);
  const { child, url } = await startBun(configFor(options, endpoint.url));
  return {
    url,
    async close() {
      const exit = new Promise((resolve) => child.once("exit", resolve));
      child.kill();
      await exit;
      await endpoint.close();
    },
  };
});

describe("hono on Bun: text answers", () => {
  let bun: { child: ChildProcess; url: string };
  beforeAll(async () => {
    bun = await startBun(undefined, "./fixtures/bun-text-answers.ts");
  });
  afterAll(async () => {
    const exit = new Promise((resolve) => bun.child.once("exit", resolve));
    bun.child.kill();
    await exit;
  });

  // Bun keeps a string's default Content-Type out of `response.headers`: the replay, made of
  // stored bytes, must still carry the type the first answer went out with.
  it.each(["/text", "/text-with-status", "/body", "/new-response"])(
    "%s: the replay has the first answer's text/plain type, status and bytes",
    async (path) => {
      const send = () =>
        fetch(`${bun.url}${path}`, { method: "POST", headers: { "idempotency-key": "k" }, body: "{}" });
      const first = await send();
      const firstBytes = new Uint8Array(await first.arrayBuffer());
      const replay = await send();
      expect(replay.headers.get("idempotent-replayed")).toBe("true");
      expect(first.headers.get("content-type")).toMatch(/^text\/plain; ?charset=utf-8$/i);
      expect([replay.status, replay.headers.get("content-type")]).toEqual([
        first.status,
        first.headers.get("content-type"),
      ]);
      expect(new Uint8Array(await replay.arrayBuffer())).toEqual(firstBytes);
    },
  );
});
