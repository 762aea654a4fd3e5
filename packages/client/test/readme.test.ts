/** The README's examples, as written there. */
import { createServer, type Server } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { CircuitOpenError, ClientError, createClient } from "../src/index.js";
import { serve } from "./helpers/setup.js";

const bigServers: Server[] = [];
afterEach(async () => {
  for (const server of bigServers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

/**
 * A server answering 503 with a 256 KiB body, more than the socket buffers hold: a connection
 * whose body nobody reads or cancels stays open. Resolves `closed` when the first one closes.
 */
async function serveBig503(): Promise<{ url: string; closed: Promise<void> }> {
  const body = Buffer.alloc(256 * 1024, "x");
  let socketClosed: () => void = () => {};
  const closed = new Promise<void>((resolve) => {
    socketClosed = resolve;
  });
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => res.writeHead(503, { "content-type": "text/plain" }).end(body));
  });
  server.once("connection", (socket: Socket) => socket.once("close", () => socketClosed()));
  bigServers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/payments`, closed };
}

describe("README", () => {
  it("'Testing code that uses it': two waits of exactly 50 and 100 ms, then retry_limit", async () => {
    const slept: number[] = [];
    const client = createClient({
      fetch: async () => new Response(null, { status: 503 }),
      random: () => 0.5,
      sleep: async (ms) => void slept.push(ms),
      timeoutMs: false,
      deadlineMs: false,
    });
    expect(await client("https://api.example.com/").catch((error) => error.code)).toBe("retry_limit");
    expect(slept).toEqual([50, 100]);
  });

  it("'Use it': a payment through two failures, with the error handling shown", async () => {
    const server = await serve([{ status: 502 }, { reset: true }, { status: 201, body: '{"id":"pay_1"}' }]);
    const events: string[] = [];
    const api = createClient({ timeoutMs: 5_000, deadlineMs: 20_000, onEvent: (event) => events.push(event.type) });
    let outcome: unknown;
    try {
      const response = await api(`${server.origin}/v1/payments`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: "Bearer sk_test" },
        body: JSON.stringify({ amount: 1000, currency: "eur" }),
      });
      if (!response.ok) {
        await response.body?.cancel();
        throw new Error(`payment refused: ${response.status}`);
      }
      outcome = await response.json();
    } catch (error) {
      if (!(error instanceof ClientError)) throw error;
      await error.response?.body?.cancel();
      outcome = error instanceof CircuitOpenError ? "down" : error.code;
    }
    expect(outcome).toEqual({ id: "pay_1" });
    expect(new Set(server.received.map((r) => r.headers["idempotency-key"])).size).toBe(1);
    expect(events.filter((type) => type === "client.retry")).toHaveLength(2);
  });

  it("'Use it': the catch block releases the connection of the last answer the error carries", async () => {
    const server = await serveBig503();
    const api = createClient({ timeoutMs: 5_000, deadlineMs: 20_000, maxAttempts: 1 });
    let logged: unknown[] = [];
    try {
      const response = await api(server.url, { method: "POST", body: JSON.stringify({ amount: 1000 }) });
      await response.body?.cancel();
    } catch (error) {
      if (!(error instanceof ClientError)) throw error;
      await error.response?.body?.cancel();
      if (error instanceof CircuitOpenError) logged = ["down"];
      else logged = [error.code, error.attempts, error.response?.status];
    }
    expect(logged).toEqual(["retry_limit", 1, 503]);
    await server.closed; // never, had the body been left unread
  });
});
