/**
 * `interlock send`, spawned, against the repository's example apps, each booted as its README
 * says (`node server.mjs` with its secret in the environment): Express takes Stripe, Hono
 * GitHub, Fastify Standard Webhooks (Svix) and Koa Shopify deliveries. A valid delivery is
 * processed, its redelivery answered as a duplicate, a tampered one refused with
 * problem+json, a stale one refused where the scheme signs a timestamp.
 */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { interlock, jsonLines, tempDir } from "./helpers.js";

interface Example {
  name: string;
  scheme: string;
  /** The environment variable server.mjs reads the secret from; the CLI reads it with --secret-env. */
  secretEnv: string;
  secret: string;
  body: string;
  /** How the CLI gets the body: a file, stdin or the literal. */
  bodyFrom: "file" | "stdin" | "literal";
  headers: string[];
  /** The id the app answers with: the event id in the body, or the delivery id the CLI made. */
  idInBody: string | undefined;
  signsTimestamp: boolean;
}

const EXAMPLES: Example[] = [
  {
    name: "express",
    scheme: "stripe",
    secretEnv: "STRIPE_WEBHOOK_SECRET",
    secret: "whsec_cli_against_express",
    body: JSON.stringify({ id: "evt_cli_1", object: "event", type: "checkout.session.completed" }),
    bodyFrom: "file",
    headers: [],
    idInBody: "evt_cli_1",
    signsTimestamp: true,
  },
  {
    name: "hono",
    scheme: "github",
    secretEnv: "GITHUB_WEBHOOK_SECRET",
    secret: "cli-against-hono",
    body: JSON.stringify({ ref: "refs/heads/main", after: "6dcb09b5b57875f334f61aebed695e2e4193db5e" }),
    bodyFrom: "file",
    headers: ["x-github-event: push"],
    idInBody: undefined,
    signsTimestamp: false,
  },
  {
    name: "fastify",
    scheme: "svix",
    secretEnv: "WEBHOOK_SECRET",
    secret: `whsec_${Buffer.from("cli-against-fastify-32-bytes-key").toString("base64")}`,
    body: JSON.stringify({ type: "invoice.paid", data: { id: "inv_1" } }),
    bodyFrom: "stdin",
    headers: [],
    idInBody: undefined,
    signsTimestamp: true,
  },
  {
    name: "koa",
    scheme: "shopify",
    secretEnv: "SHOPIFY_WEBHOOK_SECRET",
    secret: "cli-against-koa-client-secret",
    body: JSON.stringify({ id: 450789469, total_price: "42.00" }),
    bodyFrom: "literal",
    headers: ["x-shopify-topic: orders/paid"],
    idInBody: undefined,
    signsTimestamp: false,
  },
];

/** Boots `examples/<name>/server.mjs` on a free port and resolves with its webhook URL. */
async function bootExample(example: Example): Promise<{ url: string; child: ChildProcessWithoutNullStreams }> {
  const cwd = fileURLToPath(new URL(`../../../examples/${example.name}/`, import.meta.url));
  const child = spawn(process.execPath, ["server.mjs"], {
    cwd,
    env: {
      ...process.env,
      PORT: "0",
      HOST: "127.0.0.1",
      [example.secretEnv]: example.secret,
      API_KEYS: "sk_test_cli:acct_cli",
    },
  });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const [first] = (await Promise.race([
    once(createInterface({ input: child.stdout }), "line"),
    once(child, "exit").then(() => {
      throw new Error(`examples/${example.name} did not start: ${stderr}`);
    }),
  ])) as [string];
  // "Stripe webhooks on http://127.0.0.1:PORT/webhooks/stripe, payments on …"
  const url = /(http:\/\/\S+\/webhooks\/\w+)/.exec(first)?.[1];
  if (!url) throw new Error(`examples/${example.name} printed no webhook URL: ${first}`);
  return { url, child };
}

describe.each(EXAMPLES)("examples/$name ($scheme)", (example) => {
  let app: { url: string; child: ChildProcessWithoutNullStreams };
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let bodyArgs: { args: string[]; stdin?: string };

  beforeAll(async () => {
    [app, dir] = await Promise.all([bootExample(example), tempDir()]);
    bodyArgs =
      example.bodyFrom === "file"
        ? { args: ["--body", `@${await dir.file("event.json", example.body)}`] }
        : example.bodyFrom === "stdin"
          ? { args: ["--body", "-"], stdin: example.body }
          : { args: ["--body", example.body] };
  });
  afterAll(async () => {
    app?.child.kill();
    await dir?.remove();
  });

  const send = (...extra: string[]) =>
    interlock(
      [
        "send",
        app.url,
        "--scheme",
        example.scheme,
        "--secret-env",
        example.secretEnv,
        ...bodyArgs.args,
        ...example.headers.flatMap((header) => ["-H", header]),
        "--json",
        ...extra,
      ],
      {
        env: { [example.secretEnv]: example.secret },
        ...(bodyArgs.stdin === undefined ? {} : { stdin: bodyArgs.stdin }),
      },
    );

  it("a valid delivery is processed (2xx); the same delivery again is answered as a duplicate", async () => {
    const result = await send("--repeat", "2");
    expect(result.stderr).toBe(""); // no progress line: stderr is not a terminal
    expect(result.code).toBe(0);
    const [first, second, summary] = jsonLines(result.stdout);
    const id = example.idInBody ?? first?.id;
    expect(typeof id).toBe("string");
    expect(second?.id).toBe(first?.id); // a redelivery keeps its id
    expect(first).toMatchObject({ type: "attempt", delivery: 1, status: 200, acknowledged: true });
    expect(JSON.parse(first?.body as string)).toEqual({ received: id });
    expect(second).toMatchObject({ type: "attempt", delivery: 2, status: 200, acknowledged: true });
    expect(JSON.parse(second?.body as string)).toEqual({ duplicate: true, id });
    expect(summary).toMatchObject({ type: "summary", deliveries: 2, acknowledged: 2, attempts: 2 });
  });

  it("a tampered delivery is refused: 401 problem+json no_matching_signature, exit 1", async () => {
    const result = await send("--tamper");
    expect(result.code).toBe(1);
    const [attempt] = jsonLines(result.stdout);
    expect(attempt).toMatchObject({ status: 401, acknowledged: false });
    expect(attempt?.contentType).toMatch(/^application\/problem\+json/);
    expect(JSON.parse(attempt?.body as string)).toMatchObject({ status: 401, code: "no_matching_signature" });
  });

  if (example.signsTimestamp) {
    it("a stale delivery is refused: 401 timestamp_too_old, exit 1", async () => {
      const result = await send("--stale");
      expect(result.code).toBe(1);
      const [attempt] = jsonLines(result.stdout);
      expect(attempt).toMatchObject({ status: 401, acknowledged: false });
      expect(JSON.parse(attempt?.body as string)).toMatchObject({ code: "timestamp_too_old" });
    });
  } else {
    it("--stale is refused before sending: the scheme signs no timestamp (exit 2)", async () => {
      const result = await send("--stale");
      expect(result.code).toBe(2);
      expect(result.stdout).toBe("");
      expect(jsonLines(result.stderr)).toEqual([
        {
          type: "error",
          code: "usage",
          exitCode: 2,
          message: `--stale does not apply to the ${example.scheme} scheme: it signs no timestamp, so a copy is refused as a duplicate, never as stale`,
        },
      ]);
    });
  }
});
