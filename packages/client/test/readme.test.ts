/** The README's examples, as written there. */
import { describe, expect, it } from "vitest";
import { CircuitOpenError, ClientError, createClient } from "../src/index.js";
import { serve } from "./helpers/setup.js";

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
      if (!response.ok) throw new Error(`payment refused: ${response.status}`);
      outcome = await response.json();
    } catch (error) {
      if (error instanceof CircuitOpenError || error instanceof ClientError) outcome = error.code;
      else throw error;
    }
    expect(outcome).toEqual({ id: "pay_1" });
    expect(new Set(server.received.map((r) => r.headers["idempotency-key"])).size).toBe(1);
    expect(events.filter((type) => type === "client.retry")).toHaveLength(2);
  });
});
