/**
 * HTTP/2 clients that reset their stream (RST_STREAM), against an adapter's scenario app (the
 * contract of core's testing `describeAdapterScenarios`) served over h2c, `createApp` giving
 * the HTTP/2 `fetch` its rows use. The resets are written frame by frame (raw-http2.ts): a
 * browser that aborts an upload resets a stream whose body never ended, which node:http2's
 * own client cannot do.
 *
 * - Reset mid-body: Node's HTTP/2 compatibility API then ends the request stream as if the
 *   body were complete (after `aborted` and `close`), so an adapter that reads to `end` alone
 *   would take the bytes so far for the whole body. Nothing runs and nothing stays claimed: the
 *   full retry runs once.
 * - Reset while the handler runs: Node then reports the response as finished although it was
 *   never ended. The key stays claimed until the handler's own answer is stored (a copy is 409,
 *   the retry replays it); the delivery is settled by the handler's outcome (a failure releases
 *   it for the provider's retry).
 *
 * - A delivery its headers refuse, its stream left open: answered while the body is still
 *   being sent, never after a wait for an end the sender may not send.
 *
 * Nothing is left unhandled, in the server or in Interlock.
 */

import { connect } from "node:http2";
import { signWebhook, standardWebhooks } from "@interlock/core";
import type { CreateScenarioApp, ScenarioApp } from "@interlock/core/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RawHttp2Connection } from "./raw-http2.js";
import { SUITE_SECRET, settled, startSuiteApp, watchUnhandled } from "./suite-app.js";

/** Each wait is bounded (raw-http2.ts, `settled`); a row has a few. */
const ROW = { timeout: 10_000 } as const;

/** A handler held until the test lets it go: `started` once it runs, `release` to let it return. */
interface Hold {
  started: Promise<void>;
  release(): void;
}

export function describeHttp2Resets(framework: string, createApp: CreateScenarioApp): void {
  describe(`HTTP/2 streams reset by the client: ${framework}`, () => {
    let app: ScenarioApp;
    /** Amounts of the payments the handler ran, and ids of the deliveries it processed, in order. */
    const ran = { payments: [] as number[], webhooks: [] as string[] };
    /** Holds by name, each taken by the first run that names it: a second run is not held. */
    const holds = new Map<string, { started: () => void; released: Promise<void> }>();
    const failedOnce = new Set<string>();
    const unhandled = watchUnhandled();
    let sequence = 0;

    const hold = (name: string): Hold => {
      let started = () => {};
      let release = () => {};
      const held = {
        started: new Promise<void>((resolve) => {
          started = resolve;
        }),
        released: new Promise<void>((resolve) => {
          release = resolve;
        }),
      };
      holds.set(name, { started, released: held.released });
      return { started: held.started, release };
    };
    /** Waits while the run is held, if `name` names a hold no run has taken yet. */
    const heldAt = async (name: string | undefined) => {
      const found = name === undefined ? undefined : holds.get(name);
      if (found === undefined) return;
      holds.delete(name as string);
      found.started();
      await found.released;
    };

    beforeAll(async () => {
      unhandled.start();
      app = await startSuiteApp(createApp, {
        async webhook(event) {
          const { hold: name, fail } = event.payload as { hold?: string; fail?: boolean };
          await heldAt(name);
          if (fail && !failedOnce.has(event.id as string)) {
            failedOnce.add(event.id as string);
            throw new Error("the webhook handler failed once");
          }
          ran.webhooks.push(event.id as string);
        },
        async payment(body) {
          const { amount = 0, hold: name } = (body ?? {}) as { amount?: number; hold?: string };
          await heldAt(name);
          ran.payments.push(amount);
          return { status: 201, json: { id: `pay_${ran.payments.length}`, amount } };
        },
      });
      if (app.fetch === undefined)
        throw new Error("describeHttp2Resets needs an app served over HTTP/2 with its fetch");
    });
    afterAll(async () => {
      await app?.close();
      unhandled.stop();
      expect(unhandled.errors).toEqual([]);
    });

    const newKey = () => `"reset_${++sequence}_${Date.now().toString(36)}"`;
    const newAmount = () => 2_000 + ++sequence;
    const runsOf = (amount: number) => ran.payments.filter((ranAmount) => ranAmount === amount).length;
    const paymentHeaders = (key: string) => ({
      "content-type": "application/json",
      "x-api-key": "client-a",
      "idempotency-key": key,
    });
    const pay = (key: string, body: string) =>
      (app.fetch as typeof fetch)(`${app.url}/payments`, { method: "POST", headers: paymentHeaders(key), body });

    async function delivery(payload: object) {
      const body = JSON.stringify(payload);
      const id = `msg_reset_${++sequence}_${Date.now().toString(36)}`;
      const signed = await signWebhook({ scheme: standardWebhooks, secret: SUITE_SECRET, body, id });
      const headers = { ...(signed.headers as Record<string, string>), "content-type": "application/json" };
      const post = () => (app.fetch as typeof fetch)(`${app.url}/webhooks`, { method: "POST", headers, body });
      return { id, body, headers, post };
    }

    /** Sends the request on a raw connection and resets its stream: mid-body, or once `held` has started. */
    async function sendAndReset(
      path: string,
      headers: Record<string, string>,
      body: Buffer,
      after: { midBody: true } | { held: Hold },
    ): Promise<void> {
      const connection = await RawHttp2Connection.open(app.url);
      try {
        const stream = await connection.request({ method: "POST", path, headers }, body, {
          end: !("midBody" in after),
        });
        if ("held" in after) await after.held.started;
        await connection.reset(stream);
      } finally {
        await connection.close();
      }
    }

    it(
      "a keyed payment reset mid-body, its bytes so far valid JSON → the handler does not run; the full retry runs once",
      ROW,
      async () => {
        for (const framing of ["no content-length", "content-length"]) {
          const key = newKey();
          const amount = newAmount();
          // The first bytes parse on their own: only the missing end of the stream tells them from the whole body.
          const json = JSON.stringify({ amount });
          const body = `${json}${" ".repeat(64)}`;
          const headers = {
            ...paymentHeaders(key),
            ...(framing === "content-length" ? { "content-length": String(body.length) } : {}),
          };
          await sendAndReset("/payments", headers, Buffer.from(json), { midBody: true });
          expect(runsOf(amount), framing).toBe(0);
          const retry = await pay(key, body);
          expect([retry.status, retry.headers.get("idempotent-replayed"), await retry.json()], framing).toEqual([
            201,
            null,
            expect.objectContaining({ amount }),
          ]);
          expect(runsOf(amount), framing).toBe(1);
        }
      },
    );

    it(
      "a delivery its headers refuse (no signature; a stale timestamp) → answered while its body is still being sent",
      ROW,
      async () => {
        const stale = await signWebhook({
          scheme: standardWebhooks,
          secret: SUITE_SECRET,
          body: "{}",
          timestamp: Math.floor(Date.now() / 1000) - 600,
        });
        const refusals = [
          { headers: {}, status: 400, code: "missing_header" },
          { headers: stale.headers as Record<string, string>, status: 401, code: "timestamp_too_old" },
        ];
        const session = connect(app.url);
        try {
          for (const { headers, status, code } of refusals) {
            const stream = session.request(
              { ":method": "POST", ":path": "/webhooks", "content-type": "application/json", ...headers },
              { endStream: false },
            );
            stream.on("error", () => {}); // the server may reset the rest of the upload once it has answered
            stream.write(Buffer.alloc(16 * 1024, " ")); // part of a body whose end is never sent
            const answer = await new Promise<{ status: unknown; text: string }>((resolve, reject) => {
              const timer = setTimeout(() => reject(new Error("no answer while the body was still being sent")), 2_000);
              stream.on("response", (head) => {
                const chunks: Buffer[] = [];
                stream.on("data", (chunk: Buffer) => chunks.push(chunk));
                stream.on("end", () => {
                  clearTimeout(timer);
                  resolve({ status: head[":status"], text: Buffer.concat(chunks).toString("utf8") });
                });
              });
            });
            stream.close();
            expect([answer.status, JSON.parse(answer.text)], answer.text).toEqual([
              status,
              expect.objectContaining({ status, code }),
            ]);
          }
        } finally {
          session.destroy(); // closing would wait for a stream the server never answered
        }
      },
    );

    it("a delivery reset mid-body → not processed; the provider's retry is", ROW, async () => {
      const d = await delivery({ type: "invoice.paid", note: "x".repeat(64) });
      await sendAndReset("/webhooks", d.headers, Buffer.from(d.body.slice(0, 20)), { midBody: true });
      expect(ran.webhooks).not.toContain(d.id);
      const retry = await d.post();
      expect([retry.status, await retry.json()]).toEqual([200, { received: d.id }]);
    });

    it(
      "a keyed payment reset while its handler runs → a copy meanwhile is 409; the retry replays the handler's answer",
      ROW,
      async () => {
        const key = newKey();
        const amount = newAmount();
        const held = hold(`pay_${key}`);
        const body = JSON.stringify({ amount, hold: `pay_${key}` });
        await sendAndReset("/payments", paymentHeaders(key), Buffer.from(body), { held });
        const copy = await pay(key, body);
        expect([copy.status, runsOf(amount)], await copy.text()).toEqual([409, 0]);
        held.release();
        const retry = await settled(() => pay(key, body));
        expect([retry.status, retry.headers.get("idempotent-replayed"), await retry.json()]).toEqual([
          201,
          "true",
          expect.objectContaining({ amount }),
        ]);
        expect(runsOf(amount)).toBe(1);
      },
    );

    it(
      "a delivery reset while its handler runs → in flight until it ends: a failure releases it for the provider's retry",
      ROW,
      async () => {
        const name = `hook_${++sequence}`;
        const d = await delivery({ type: "invoice.paid", hold: name, fail: true });
        const held = hold(name);
        await sendAndReset("/webhooks", d.headers, Buffer.from(d.body), { held });
        const copy = await d.post();
        expect(copy.status, await copy.text()).toBe(409);
        held.release();
        const retry = await settled(d.post);
        expect([retry.status, await retry.json()]).toEqual([200, { received: d.id }]);
        expect(ran.webhooks.filter((id) => id === d.id)).toEqual([d.id]);
      },
    );

    it(
      "a delivery reset while its handler runs, which then succeeds → processed once: the retry is a duplicate",
      ROW,
      async () => {
        const name = `hook_${++sequence}`;
        const d = await delivery({ type: "invoice.paid", hold: name });
        const held = hold(name);
        await sendAndReset("/webhooks", d.headers, Buffer.from(d.body), { held });
        held.release();
        const retry = await settled(d.post);
        expect([retry.status, await retry.json()]).toEqual([200, { duplicate: true, id: d.id }]);
        expect(ran.webhooks.filter((id) => id === d.id)).toEqual([d.id]);
      },
    );
  });
}
