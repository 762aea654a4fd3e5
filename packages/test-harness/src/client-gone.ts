/**
 * A client that goes away before its answer is sent, against an adapter's scenario app (the
 * contract of core's testing `describeAdapterScenarios`) on any runtime: the client aborts its
 * keyed payment (the connection closes) while the handler runs, then the handler finishes. The
 * server then has an answer for nobody: a runtime that cancels its body at once must not make
 * the key released, since the handler ran (core's `recordBody` still reads what is ready when
 * the body is cancelled). The retry replays the answer; the handler ran once.
 */

import type { CreateScenarioApp, ScenarioApp } from "@interlock/core/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { settled, startSuiteApp } from "./suite-app.js";

/** A payment handler held until the test lets it go. */
interface Hold {
  /** Resolves once the handler runs. */
  started: Promise<void>;
  /** Lets the handler return. */
  release(): void;
}

function newHold(): Hold & { reached(): void; released: Promise<void> } {
  let reached = () => {};
  let release = () => {};
  const started = new Promise<void>((resolve) => {
    reached = resolve;
  });
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  return { started, reached, release, released };
}

export function describeClientGoneAway(framework: string, createApp: CreateScenarioApp): void {
  describe(`a client that goes away before its answer: ${framework}`, () => {
    let app: ScenarioApp;
    /** Amounts of the payments the handler ran. */
    const ran: number[] = [];
    const holds = new Map<number, ReturnType<typeof newHold>>();

    beforeAll(async () => {
      app = await startSuiteApp(createApp, {
        webhook: async () => {},
        async payment(body) {
          const { amount = 0 } = (body ?? {}) as { amount?: number };
          const hold = holds.get(amount);
          if (hold) {
            holds.delete(amount);
            hold.reached();
            await hold.released;
          }
          ran.push(amount);
          return { status: 201, json: { id: `pay_${ran.length}`, amount, note: "x".repeat(256) } };
        },
      });
    }, 60_000);
    afterAll(async () => {
      await app?.close();
    });

    it("a keyed payment whose client goes away while its handler runs → the handler's answer is stored: the retry replays it, the handler ran once", {
      timeout: 15_000,
    }, async () => {
      const amount = 3_000 + Math.floor(Math.random() * 1_000);
      const hold = newHold();
      holds.set(amount, hold);
      const pay = (signal?: AbortSignal) =>
        fetch(`${app.url}/payments`, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            "x-api-key": "client-a",
            "idempotency-key": `"gone_${amount}"`,
          },
          body: JSON.stringify({ amount }),
          ...(signal && { signal }),
        });

      const client = new AbortController();
      const first = pay(client.signal).catch((error: unknown) => error);
      await hold.started;
      client.abort();
      expect(await first).toMatchObject({ name: "AbortError" });
      // Time for the server to see the connection close before the handler answers.
      await new Promise((resolve) => setTimeout(resolve, 100));
      hold.release();

      const retry = await settled(() => pay());
      expect([retry.status, retry.headers.get("idempotent-replayed"), await retry.json()]).toEqual([
        201,
        "true",
        expect.objectContaining({ amount }),
      ]);
      expect(ran.filter((ranAmount) => ranAmount === amount)).toEqual([amount]);
    });
  });
}
