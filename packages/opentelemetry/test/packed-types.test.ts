/**
 * The published types as an app sees them that installs only what this package requires: the
 * packed @interlock/core and @interlock/opentelemetry (the files npm gets), @opentelemetry/api
 * and Node's types; neither optional peer (@interlock/client, @interlock/oauth). A declaration
 * that imports an optional peer fails there under `skipLibCheck: false` (TS2307), and under
 * `skipLibCheck: true` quietly widens `TelemetryEvent` to `any`. Compiled once as ESM (index.d.ts)
 * and once as CommonJS (index.d.cts).
 */
import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { createPackedApp, type PackedApp } from "@interlock/test-harness/packed-app";
import { afterAll, beforeAll, expect, it } from "vitest";

const run = promisify(execFile);
const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

/**
 * One hook for every event, one narrowed to core's, and a client event passed without the
 * client installed. The refused event type fails the compile if `TelemetryEvent` were `any`.
 */
const CONSUMER = `import type { InterlockEvent } from "@interlock/core";
import { interlockTelemetry, type TelemetryEvent, type TelemetryHook } from "@interlock/opentelemetry";

const seen: string[] = [];
export const telemetry: TelemetryHook = interlockTelemetry({ onEvent: (event: TelemetryEvent) => seen.push(event.type) });
export const coreOnly: TelemetryHook<InterlockEvent> = interlockTelemetry<InterlockEvent>({
  onEvent: (event) => seen.push(event.correlationId ?? event.type),
});
telemetry({ type: "client.breaker", origin: "https://api.example.com", from: "closed", to: "open" });
// @ts-expect-error no such event type: refused, so TelemetryEvent is not \`any\`
telemetry({ type: "no.such_event" });
`;

const COMPILER_OPTIONS = {
  module: "node16",
  moduleResolution: "node16",
  target: "es2022",
  lib: ["es2023"],
  types: ["node"],
  strict: true,
  skipLibCheck: false,
  noEmit: true,
};

let app: PackedApp;

beforeAll(() => {
  app = createPackedApp(["core", "opentelemetry"], {
    "@opentelemetry/api": here("../node_modules/@opentelemetry/api"),
    "@types/node": here("../../../node_modules/@types/node"),
  });
  writeFileSync(join(app.dir, "consumer.ts"), CONSUMER);
  writeFileSync(join(app.dir, "consumer.cts"), CONSUMER);
  writeFileSync(
    join(app.dir, "tsconfig.json"),
    JSON.stringify({ compilerOptions: COMPILER_OPTIONS, include: ["consumer.ts", "consumer.cts"] }),
  );
}, 120_000);
afterAll(() => app?.remove());

it("compiles with skipLibCheck false, without @interlock/client or @interlock/oauth installed", async () => {
  const result = await run(process.execPath, [tsc, "-p", "tsconfig.json", "--pretty", "false"], {
    cwd: app.dir,
  }).catch((error: { stdout: string; stderr: string }) => error);
  const errors = `${result.stdout}${result.stderr}`.split("\n").filter((line) => line.trim() !== "");
  expect(errors).toEqual([]);
}, 60_000);
