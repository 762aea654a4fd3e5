/**
 * What the harness's adapter suites (hostile clients, protocol edges, HTTP/2 resets) share: the
 * scenario app on one memory store, signed with one secret, and every unhandled error collected
 * while a suite runs, so a suite can end by checking there was none.
 */

import { MemoryStore, standardWebhooks } from "@interlock/core";
import type { CreateScenarioApp, ScenarioApp, ScenarioHandlers } from "@interlock/core/testing";
import { SUITE_SECRET } from "./secret.js";

export { SUITE_SECRET };

/** A suite's handlers: the exports route's only where the suite sends to it. */
export type SuiteHandlers = Omit<ScenarioHandlers, "exportRows"> & Partial<Pick<ScenarioHandlers, "exportRows">>;

/** The exports route's work in a suite that never sends to it: a request that does fails. */
async function* noExports(): AsyncGenerator<string> {
  yield* [];
  throw new Error("this suite sends no request to /exports: give startSuiteApp an exportRows handler");
}

/**
 * Starts `createApp` with `handlers` on a fresh memory store; `maxBodyBytes` bounds webhook
 * bodies. Without an `exportRows` handler, a request to the exports route fails.
 */
export function startSuiteApp(
  createApp: CreateScenarioApp,
  handlers: SuiteHandlers,
  { maxBodyBytes }: { maxBodyBytes?: number } = {},
): Promise<ScenarioApp> {
  const store = new MemoryStore();
  return createApp({
    webhook: {
      scheme: standardWebhooks,
      secret: SUITE_SECRET,
      store,
      lockTtlMs: 5_000,
      ...(maxBodyBytes !== undefined && { maxBodyBytes }),
    },
    idempotency: { store, lockTtlMs: 5_000, required: false },
    handlers: { exportRows: noExports, ...handlers },
  });
}

/** Unhandled rejections and uncaught exceptions, collected from `start()` to `stop()`. */
export interface UnhandledWatch {
  readonly errors: unknown[];
  /** Collects into `errors`: also a listener for an emitter's `error` event. */
  readonly collect: (error: unknown) => void;
  start(): void;
  stop(): void;
}

export function watchUnhandled(): UnhandledWatch {
  const errors: unknown[] = [];
  const collect = (error: unknown) => {
    errors.push(error);
  };
  return {
    errors,
    collect,
    start() {
      process.on("unhandledRejection", collect);
      process.on("uncaughtException", collect);
    },
    stop() {
      process.off("unhandledRejection", collect);
      process.off("uncaughtException", collect);
    },
  };
}

/** The answer to `send` once it is not a 409 (the first copy still settling), within a bound (about 2 s). */
export async function settled(send: () => Promise<Response>): Promise<Response> {
  for (let attempt = 0; ; attempt++) {
    const response = await send();
    if (response.status !== 409 || attempt === 40) return response;
    await response.arrayBuffer();
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
