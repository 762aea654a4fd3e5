/**
 * The READMEs' copy-paste examples, as files the packed project can compile and run: the code
 * block under a heading, with what the README leaves to the reader (`fulfil`, `createPayment`,
 * your error handler) implemented in place of the README's `declare` lines, and
 * `app.listen(3000)` swapped for a free port on 127.0.0.1 that the process prints. A README
 * whose example changes shape fails here, by name.
 */

import { readFileSync } from "node:fs";
import { join } from "node:path";
import ts from "typescript";
import { repoRoot } from "./packages.js";

/** The first ```ts block after the heading `heading` in packages/<dir>/README.md. */
export function readmeBlock(dir: string, heading: string): string {
  return markdownBlock(`packages/${dir}/README.md`, heading);
}

/** The first ```ts block after the heading `heading` in `file` (from the repository's root). */
function markdownBlock(file: string, heading: string): string {
  const text = readFileSync(join(repoRoot, file), "utf8");
  const at = text.indexOf(`\n${heading}\n`);
  if (at < 0) throw new Error(`${file} has no "${heading}" section`);
  const block = /```ts\n([\s\S]*?)```/.exec(text.slice(at));
  if (block === null) throw new Error(`${file}: no ts block under "${heading}"`);
  return block[1] as string;
}

/** Replaces exactly one occurrence, or says which README line is gone. */
function replaceOnce(source: string, search: string, replacement: string, where: string): string {
  const parts = source.split(search);
  if (parts.length !== 2) throw new Error(`${where}: expected \`${search}\` once, found it ${parts.length - 1} times`);
  return parts.join(replacement);
}

/**
 * What the READMEs leave to the reader, as the examples run it. Each logs what it did as a line
 * of JSON (`{"fulfilled":…}`, `{"created":…}`), so a test can tell a replay from a second run.
 * Function declarations: the example uses them before this code, which is appended to it.
 */
const READER = {
  fulfil: `async function fulfil(event: { type: string }): Promise<void> {
  console.log(JSON.stringify({ fulfilled: event.type }));
}`,
  fulfilOrder: `async function fulfilOrder(payload: unknown): Promise<void> {
  console.log(JSON.stringify({ fulfilled: (payload as { type: string }).type }));
}`,
  // Not `payments`: Fastify's example names its idempotency hooks that.
  createPayment: `let paymentsCreated = 0;
async function createPayment(body: unknown): Promise<{ id: string; amount: unknown }> {
  paymentsCreated += 1;
  console.log(JSON.stringify({ created: paymentsCreated }));
  return { id: \`pay_\${paymentsCreated}\`, amount: (body as { amount?: unknown }).amount };
}`,
};

/** The name a README's `declare` line declares: `declare function fulfil(…)` → `fulfil`. */
const DECLARED = /^declare (?:function|const|let|class) (\w+)\b.*$/gm;

/**
 * The example with the README's `declare` lines replaced by `provided`'s implementations. The
 * README must declare each provided name, and nothing else: otherwise its example changed shape.
 */
function withReaderCode(example: string, provided: Record<string, string>, where: string): string {
  const declared = [...example.matchAll(DECLARED)].map((match) => match[1] as string);
  const unknown = declared.filter((name) => !(name in provided));
  if (unknown.length > 0) throw new Error(`${where}: declares ${unknown.join(", ")}, which readme.ts does not provide`);
  const undeclared = Object.keys(provided).filter((name) => !declared.includes(name));
  if (undeclared.length > 0) throw new Error(`${where}: no longer declares ${undeclared.join(", ")}`);
  return `${example.replace(DECLARED, "")}
// What the README leaves to the reader.
${Object.values(provided).join("\n\n")}
`;
}

/** Core's "Verify a delivery": exports `handle(headers, rawBody)`. */
export function coreVerifyExample(): string {
  return readmeBlock("core", "## Verify a delivery");
}

/** Where a Node HTTP server listens in the examples as run: a free port on 127.0.0.1, printed once listening. */
const PRINT_PORT = "console.log(JSON.stringify({ port: (server.address() as AddressInfo).port }))";
const LISTEN_ON_FREE_PORT = `const server = app.listen(0, "127.0.0.1", () => ${PRINT_PORT});`;

/** The frameworks whose README's "Use it" (Hono's "Example") runs as an app. */
export type Framework = "express" | "fastify" | "koa" | "hono";

/**
 * Each framework's example, as run: the README's section, the line that starts it listening and
 * what replaces that line, and what the example leaves to the reader.
 */
const APPS: Record<
  Framework,
  { heading: string; listen: string; listenOnFreePort: string; reader: Record<string, string> }
> = {
  express: {
    heading: "## Use it",
    listen: "app.listen(3000);",
    listenOnFreePort: LISTEN_ON_FREE_PORT,
    reader: {
      fulfil: READER.fulfil,
      createPayment: READER.createPayment,
      yourErrorHandler: `function yourErrorHandler(error: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) {
  res.status(500).json({ error: String(error) });
}`,
    },
  },
  fastify: {
    heading: "## Use it",
    listen: "await app.listen({ port: 3000 });",
    listenOnFreePort: `await app.listen({ port: 0, host: "127.0.0.1" });\nconst server = app.server;\n${PRINT_PORT};`,
    reader: { fulfil: READER.fulfil, createPayment: READER.createPayment },
  },
  koa: {
    heading: "## Use it",
    listen: "app.listen(3000);",
    listenOnFreePort: LISTEN_ON_FREE_PORT,
    reader: {
      fulfilOrder: READER.fulfilOrder,
      createPayment: READER.createPayment,
      // The caller is the API key it sends.
      authenticate: `async function authenticate(ctx: Koa.Context, next: Koa.Next): Promise<void> {
  const id = ctx.get("x-api-key");
  if (id !== "") ctx.state.user = { id };
  await next();
}`,
    },
  },
  hono: {
    heading: "## Example",
    // Hono's example exports the app; its comment says how Node serves it.
    listen: "export default app; // Bun, Deno, Workers; on Node: serve({ fetch: app.fetch }) from @hono/node-server",
    listenOnFreePort: `import { serve } from "@hono/node-server";
const server = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, () => ${PRINT_PORT});`,
    reader: {
      fulfil: READER.fulfil,
      createPayment: READER.createPayment,
      // The caller is the API key it sends as its bearer token.
      authenticate: `async function authenticate(authorization: string | undefined): Promise<string> {
  return authorization?.replace(/^Bearer /, "") ?? "anonymous";
}`,
    },
  },
};

export const FRAMEWORKS = Object.keys(APPS) as Framework[];

/**
 * A framework's README example, as an app listening on 127.0.0.1 port 0. It prints
 * `{"port":…}` once listening, and `{"fulfilled":…}` / `{"created":…}` each time the route's
 * own work runs.
 */
export function appExample(framework: Framework): string {
  const { heading, listen, listenOnFreePort, reader } = APPS[framework];
  const where = `packages/${framework}/README.md`;
  const example = replaceOnce(readmeBlock(framework, heading), listen, listenOnFreePort, where);
  return `import type { AddressInfo } from "node:net";
${withReaderCode(example, reader, where)}`;
}

/** TypeScript to the JavaScript Node runs (ESM), types dropped and nothing else changed. */
export function toJavaScript(source: string): string {
  return ts.transpileModule(source, {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: false },
  }).outputText;
}

/** The web package's "Example": two exported handlers, with what the README leaves to the reader. */
export function webExample(): string {
  return withReaderCode(
    readmeBlock("web", "## Example"),
    {
      fulfil: READER.fulfil,
      accountOf: `function accountOf(authorization: string | null): string | undefined {
  return authorization ?? undefined;
}`,
      createPayment: READER.createPayment,
    },
    "packages/web/README.md",
  );
}

/** The plain Node servers of the docs (no framework), each `createServer(…).listen(3000)`. */
export const NODE_SERVERS = {
  "quick-start": { file: "README.md", heading: "## Quick start", reader: {} },
  "receiver-without-framework": {
    file: "docs/webhooks/README.md",
    heading: "### Without a framework",
    reader: {
      fulfil: `async function fulfil(payload: unknown): Promise<void> {
  console.log(JSON.stringify({ fulfilled: (payload as { type: string }).type }));
}`,
    },
  },
} satisfies Record<string, { file: string; heading: string; reader: Record<string, string> }>;

export type NodeServer = keyof typeof NODE_SERVERS;

/** A docs page's plain Node server, listening on 127.0.0.1 port 0 and printing `{"port":…}`. */
export function nodeServerExample(name: NodeServer): string {
  const { file, heading, reader } = NODE_SERVERS[name];
  const example = replaceOnce(
    markdownBlock(file, heading),
    "}).listen(3000);",
    `}).listen(0, "127.0.0.1", function (this: Server) {
  console.log(JSON.stringify({ port: (this.address() as AddressInfo).port }));
});`,
    file,
  );
  return `import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
${withReaderCode(example, reader, file)}`;
}
