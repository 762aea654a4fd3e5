/**
 * The client promises Node, Bun, Deno and Workers, so its source uses web standards only (no
 * `node:` module, no Node global), and the built package, packed as users get it, retries,
 * times out and opens its circuit on Bun, Deno and Cloudflare's workerd (installed from npm as
 * dev dependencies) against a real server here, and loads through `require` on Node.
 */
import { execFile as execFileCallback, execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { createPackedApp, type PackedApp } from "@interlock/test-harness/packed-app";
import { describeWebStandardsOnly, installedRuntime } from "@interlock/test-harness/portability";
import {
  bundleFromApp,
  startWorkerd,
  TIMER_CONFIGURATION_NAMES,
  TIMER_CONFIGURATIONS,
} from "@interlock/test-harness/workerd";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serve } from "./helpers/setup.js";

const execFile = promisify(execFileCallback);
const srcDir = fileURLToPath(new URL("../src/", import.meta.url));

describeWebStandardsOnly(srcDir);

const PROBE = `
import { createClient } from "@interlock/client";
const base = globalThis.Deno ? Deno.args[0] : process.argv[2];
const runtime = globalThis.Bun ? "bun" : globalThis.Deno ? "deno" : "node";
const codes = (error) => [error.code, error.cause?.code ?? null];

const outcomes = [];
const client = createClient({ backoff: { baseMs: 1 }, onEvent: (e) => e.type === "client.attempt" && outcomes.push(e.outcome) });
const paid = await client(base + "/pay", { method: "POST", body: '{"amount":1}' });

const slow = createClient({ timeoutMs: 100, maxAttempts: 1 });
const timedOut = await slow(base + "/hang").then(() => "answered", codes);

const fragile = createClient({ maxAttempts: 1, breaker: { failures: 1 } });
const failed = await fragile(base + "/fail").then(() => "answered", codes);
const refused = await fragile(base + "/fail").then(() => "answered", codes);

// A keyed POST on a kept-alive connection the server closes as it arrives: resent at once.
const resends = [];
const pooled = createClient({ backoff: { baseMs: 60_000, capMs: 60_000 }, breaker: { failures: 1 }, onEvent: (e) => e.type === "client.retry" && resends.push(e.staleConnection) });
await (await pooled(base + "/stale")).text();
await new Promise((resolve) => setTimeout(resolve, 20));
const resent = await pooled(base + "/stale", { method: "POST", body: "again" });
const stale = { status: resent.status, resends, breaker: pooled.breakers.get(base)?.state };

// A GET with a body, which fetch refuses (Bun's Request takes it, its fetch refuses it): fetch's
// TypeError before any attempt, the origin charged nothing.
let attempts = 0;
const strict = createClient({ breaker: { failures: 1 }, onEvent: (e) => e.type === "client.attempt" && attempts++ });
const getBody = await strict(base + "/search", { method: "GET", body: '{"q":1}' }).then(() => "answered", (e) => [e.name, e.message, e.code ?? null]);
const afterGetBody = { attempts, breaker: strict.breakers.get(base)?.state ?? null };

console.log(JSON.stringify({ runtime, status: paid.status, body: await paid.text(), outcomes, timedOut, failed, refused, getBody, afterGetBody, stale }));
`;

/**
 * A thousand calls, fifty at a time, sharing one long-lived signal: the signal gets a single
 * listener (Node warns past ten), and every response can be garbage-collected once dropped:
 * the link that lets the signal abort a response's body must not hold the response.
 */
const SHARED_SIGNAL_PROBE = `
import { getEventListeners } from "node:events";
import { createClient } from "@interlock/client";
const client = createClient();
const shared = new AbortController().signal;
let collected = 0;
const registry = new FinalizationRegistry(() => collected++);
let most = 0;
await Promise.all(Array.from({ length: 50 }, async () => {
  for (let i = 0; i < 20; i++) {
    const response = await client(process.argv[2] + "/x", { signal: shared });
    most = Math.max(most, getEventListeners(shared, "abort").length);
    await response.text();
    registry.register(response, 0);
  }
}));
for (let i = 0; i < 50 && collected < 1000; i++) {
  globalThis.gc();
  await new Promise((resolve) => setTimeout(resolve, 20));
}
console.log(JSON.stringify({ most, collected }));
`;

describe("the built package, packed as users get it", () => {
  let app: PackedApp;
  let workDir: string;

  beforeAll(() => {
    // A throwaway app with both packages installed from their packed tarballs: exactly the files users get.
    app = createPackedApp(["core", "client"]);
    workDir = app.dir;
    writeFileSync(join(workDir, "probe.mjs"), PROBE);
    writeFileSync(join(workDir, "shared-signal.mjs"), SHARED_SIGNAL_PROBE);
  }, 60_000);
  afterAll(() => app?.remove());

  /**
   * A server per run: /pay answers 503, resets, then 201; /hang never answers; /fail answers 500;
   * /slow answers 200 after 200 ms; /search answers 200 (and must never be reached);
   * /stale closes the connection of the first POST to come on a kept-alive one, as it arrives.
   */
  function scriptedServer() {
    let payments = 0;
    let staleClosed = false;
    return serve((_, request) => {
      if (request.url === "/hang") return { hang: true };
      if (request.url === "/fail") return { status: 500 };
      if (request.url === "/slow") return { delayMs: 200, answer: { status: 200 } };
      if (request.url === "/search") return { status: 200 };
      if (request.url === "/stale") {
        if (staleClosed || request.method !== "POST" || request.onConnection === 1) return { status: 200 };
        staleClosed = true;
        return { drop: true };
      }
      payments++;
      // Connection: close puts the reset on a fresh connection: Deno's HTTP stack (hyper) resends a
      // request itself when a reused keep-alive connection turns out closed, hiding the failure.
      if (payments === 1) return { status: 503, headers: { "retry-after": "0", connection: "close" } };
      if (payments === 2) return { reset: true };
      return { status: 201, body: "paid" };
    });
  }

  const paymentKeys = (server: Awaited<ReturnType<typeof serve>>) =>
    server.received.filter((r) => r.url === "/pay").map((r) => r.headers["idempotency-key"]);

  async function probe(command: string, args: string[]) {
    const server = await scriptedServer();
    const { stdout } = await execFile(command, [...args, server.origin], { cwd: workDir, timeout: 60_000 });
    // /stale was asked three times: the GET, the POST on the closed connection, and its resend.
    expect(server.received.filter((r) => r.url === "/stale").map((r) => r.method)).toEqual(["GET", "POST", "POST"]);
    expect(server.received.filter((r) => r.url === "/search")).toEqual([]);
    return { result: JSON.parse(stdout), keys: paymentKeys(server) };
  }

  /**
   * `resends`, for the probes that try /stale: Node's and Bun's fetch fail the POST on the closed
   * connection, and the client resends it; Deno's resends it itself.
   */
  const expected = (runtime: string, resends?: boolean[]) => ({
    runtime,
    status: 201,
    body: "paid",
    outcomes: ["response", "network_error", "response"],
    timedOut: ["retry_limit", "timeout"],
    failed: ["retry_limit", null],
    refused: ["circuit_open", null],
    getBody: ["TypeError", "Request with GET/HEAD method cannot have body.", null],
    afterGetBody: { attempts: 0, breaker: null },
    ...(resends && { stale: { status: 200, resends, breaker: "closed" } }),
  });

  it("Bun", async () => {
    const { result, keys } = await probe(installedRuntime("bun"), ["probe.mjs"]);
    expect(result).toEqual(expected("bun", [true]));
    expect(keys).toHaveLength(3);
    expect(new Set(keys).size).toBe(1);
  });

  it("Deno", async () => {
    const { result, keys } = await probe(installedRuntime("deno"), [
      "run",
      "--quiet",
      "--allow-read",
      "--allow-net",
      "probe.mjs",
    ]);
    expect(result).toEqual(expected("deno", []));
    expect(keys).toHaveLength(3);
    expect(new Set(keys).size).toBe(1);
  });

  // workerd (Cloudflare's runtime, from npm) serves test/fixtures/workers-probe.ts bundled from the
  // packed packages as Wrangler bundles a worker, without nodejs_compat; its outbound fetch
  // reaches the scripted server on 127.0.0.1.
  it("Cloudflare Workers (workerd)", async () => {
    const server = await scriptedServer();
    await bundleFromApp(fileURLToPath(new URL("./fixtures/workers-probe.ts", import.meta.url)), workDir, workDir);
    const worker = await startWorkerd(workDir);
    try {
      const answer = await fetch(`${worker.url}/?origin=${encodeURIComponent(server.origin)}`);
      const { runtime, ...result } = await answer.json();
      expect(runtime).toEqual({ userAgent: "Cloudflare-Workers", process: "undefined", Buffer: "undefined" });
      expect({ ...result, runtime: "workerd" }).toEqual(expected("workerd"));
      // The timeout aborted the outbound request: workerd, still running, closed its connection.
      await server.hungUp(server.received.findIndex((r) => r.url === "/hang"));
    } finally {
      await worker.close();
    }
    const keys = paymentKeys(server);
    expect(keys).toHaveLength(3);
    expect(new Set(keys).size).toBe(1);
    // The open circuit failed the second call fast: /fail was reached once.
    expect(server.received.filter((r) => r.url === "/fail")).toHaveLength(1);
    expect(server.received.filter((r) => r.url === "/search")).toEqual([]);
  });

  // On Workers a timer fires only while the request that set it runs: workerd cancels it when that
  // request ends, with or without nodejs_compat (which gives timers Node's shape, `unref` and all).
  // A client made at start-up is used by every request: its timers must be each call's own. So
  // too without the global `navigator` (a documented switch).
  it.each(TIMER_CONFIGURATION_NAMES)(
    "Cloudflare Workers (workerd), %s: a client made at start-up times out a call made while another's request ends, and every call after",
    async (configuration) => {
      const server = await scriptedServer();
      await bundleFromApp(fileURLToPath(new URL("./fixtures/workers-probe.ts", import.meta.url)), workDir, workDir);
      const worker = await startWorkerd(workDir, TIMER_CONFIGURATIONS[configuration]);
      const call = (path: string) =>
        fetch(`${worker.url}/shared?url=${encodeURIComponent(server.origin + path)}`, {
          signal: AbortSignal.timeout(10_000),
        }).then((answer) => answer.json());
      try {
        // A's request ends 200 ms in, while B (from 100 ms) waits on an origin that never answers.
        const a = call("/slow");
        await sleep(100);
        const b = call("/hang");
        expect(await a).toMatchObject({ status: 200 });
        // Its first attempt times out at 400 ms; its second, at its 700 ms deadline.
        const ended = { error: "TimeoutError", scope: "deadline", attempts: 2 };
        expect(await b).toMatchObject(ended);
        // And a call alone, after both requests ended.
        expect(await call("/hang")).toMatchObject(ended);
      } finally {
        // workerd ends its requests before it exits: one hung on the server (the failure this is
        // about) would hold it open.
        await server.close();
        await worker.close();
      }
      expect(server.received.map((r) => r.url)).toEqual(["/slow", "/hang", "/hang", "/hang", "/hang"]);
    },
  );

  it("Node, through the ESM and the CommonJS entry points", async () => {
    const { result } = await probe(process.execPath, ["probe.mjs"]);
    expect(result).toEqual(expected("node", [true]));
    const required = execFileSync(
      process.execPath,
      ["-e", 'const c = require("@interlock/client"); console.log(typeof c.createClient, c.RETRYABLE_STATUSES.length)'],
      { cwd: workDir, encoding: "utf8" },
    );
    expect(required.trim()).toBe("function 7");
  });

  it("Node: one signal shared by a thousand calls gets one listener, and every response can be collected", async () => {
    const server = await serve([]);
    const { stdout, stderr } = await execFile(process.execPath, ["--expose-gc", "shared-signal.mjs", server.origin], {
      cwd: workDir,
      timeout: 60_000,
    });
    expect(JSON.parse(stdout)).toEqual({ most: 1, collected: 1000 });
    expect(stderr).toBe(""); // no MaxListenersExceededWarning
  });
});
