/**
 * The READMEs' copy-paste examples, as files the packed project can compile and run: the code
 * block under a heading, with what the README leaves to the reader (`fulfil`, `createPayment`,
 * your error handler) declared after it, and `app.listen(3000)` swapped for a free port on
 * 127.0.0.1 that the process prints. A README whose example changes shape fails here, by name.
 */

import { readFileSync } from "node:fs";
import { join } from "node:path";
import ts from "typescript";
import { repoRoot } from "./packages.js";

/** The first ```ts block after the heading `heading` in packages/<dir>/README.md. */
export function readmeBlock(dir: string, heading: string): string {
  const readme = readFileSync(join(repoRoot, "packages", dir, "README.md"), "utf8");
  const at = readme.indexOf(`\n${heading}\n`);
  if (at < 0) throw new Error(`packages/${dir}/README.md has no "${heading}" section`);
  const block = /```ts\n([\s\S]*?)```/.exec(readme.slice(at));
  if (block === null) throw new Error(`packages/${dir}/README.md: no ts block under "${heading}"`);
  return block[1] as string;
}

/** Replaces exactly one occurrence, or says which README line is gone. */
function replaceOnce(source: string, search: string, replacement: string, where: string): string {
  const parts = source.split(search);
  if (parts.length !== 2) throw new Error(`${where}: expected \`${search}\` once, found it ${parts.length - 1} times`);
  return parts.join(replacement);
}

/** Core's "Verify a delivery": exports `handle(headers, rawBody)`. */
export function coreVerifyExample(): string {
  return readmeBlock("core", "## Verify a delivery");
}

/**
 * Express's "Use it": the app, listening on 127.0.0.1 port 0. It prints `{"port":…}` once
 * listening, and `{"fulfilled":…}` / `{"created":…}` each time the route's own work runs, so a
 * test can tell a replay from a second run.
 */
export function expressUseItExample(): string {
  const example = replaceOnce(
    readmeBlock("express", "## Use it"),
    "app.listen(3000);",
    'const server = app.listen(0, "127.0.0.1", () => console.log(JSON.stringify({ port: (server.address() as AddressInfo).port })));',
    "packages/express/README.md",
  );
  return `import type { AddressInfo } from "node:net";
${example}
// What the README leaves to the reader.
async function fulfil(event: { type: string }): Promise<void> {
  console.log(JSON.stringify({ fulfilled: event.type }));
}

let payments = 0;
async function createPayment(body: unknown): Promise<{ id: string; amount: unknown }> {
  payments += 1;
  console.log(JSON.stringify({ created: payments }));
  return { id: \`pay_\${payments}\`, amount: (body as { amount?: unknown }).amount };
}

function yourErrorHandler(error: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) {
  res.status(500).json({ error: String(error) });
}
`;
}

/** TypeScript to the JavaScript Node runs (ESM), types dropped and nothing else changed. */
export function toJavaScript(source: string): string {
  return ts.transpileModule(source, {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: false },
  }).outputText;
}

/** The web package's "Example": two exported handlers, with what the README leaves to the reader declared. */
export function webExample(): string {
  return `${readmeBlock("web", "## Example")}
// What the README leaves to the reader.
async function fulfil(event: StripeEvent): Promise<void> {
  console.log(JSON.stringify({ fulfilled: event.type }));
}

function accountOf(authorization: string | null): string | undefined {
  return authorization ?? undefined;
}

async function createPayment(body: unknown): Promise<{ id: string; amount: unknown }> {
  return { id: "pay_1", amount: (body as { amount?: unknown }).amount };
}
`;
}
