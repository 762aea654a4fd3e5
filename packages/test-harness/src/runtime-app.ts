/**
 * The runtime half of runtime-server.ts: what a fixture served by Bun (`Bun.serve`) or Deno
 * (`Deno.serve`) imports to serve its app. It runs inside the packed app (see
 * `usePackedFixtures`), transpiled to JavaScript there, with the packed @interlock/core: web
 * standards and the two runtimes' globals only, never Node's modules.
 *
 * The scenario table's handlers live in the vitest process, which counts what they did, so the
 * app's handlers call them there over HTTP (`INTERLOCK_SCENARIO` says where, and how the row
 * configured the app). The exports handler's chunks come back as a streamed answer, each passed
 * on to the app's route as it arrives: the row paces the app's stream from the vitest process.
 */
import {
  cryptoRuntime,
  type InterlockStore,
  MemoryStore,
  type SchemeName,
  StoreUnavailableError,
  schemes,
} from "@interlock/core";
import type { ScenarioAppOptions, ScenarioHandlers } from "@interlock/core/testing";

/** How a row configured the app, passed as JSON in `INTERLOCK_SCENARIO` (see runtime-server.ts). */
export interface ScenarioServerConfig {
  /** The vitest process's handler endpoint. */
  handlers: string;
  /** A MemoryStore, or a store whose every call fails as an unreachable server's does. */
  store: "memory" | "unreachable";
  /** The webhook options the row set, its scheme by preset name. */
  webhook: { scheme: SchemeName; secret: string[]; lockTtlMs?: number };
  /** The idempotency options the row set. */
  idempotency: { lockTtlMs?: number; required?: boolean; methods?: string[] };
}

/** A fetch-style handler, as both runtimes serve it. */
export type Fetch = (request: Request) => Response | Promise<Response>;

declare const Bun: { serve(options: { hostname: string; port: number; fetch: Fetch }): { port: number } };
declare const Deno: {
  env: { get(name: string): string | undefined };
  serve(options: { hostname: string; port: number; onListen(address: { port: number }): void }, fetch: Fetch): void;
};

/** The runtime this runs on, as the vitest side expects to read it. */
const runtime = "Deno" in globalThis ? "deno" : "Bun" in globalThis ? "bun" : "unknown";

/** Serves `fetch` on a free port of 127.0.0.1. */
function listen(fetch: Fetch): Promise<number> {
  if (runtime === "deno") {
    return new Promise((resolve) =>
      Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: ({ port }) => resolve(port) }, fetch),
    );
  }
  return Promise.resolve(Bun.serve({ hostname: "127.0.0.1", port: 0, fetch }).port);
}

/**
 * Serves `fetch` and prints the line `startRuntimeServer` waits for: the URL, and what it really
 * runs on (the runtime, with core's crypto port), which the vitest side checks.
 */
export async function serveOnRuntime(fetch: Fetch): Promise<void> {
  const port = await listen(fetch);
  console.log(JSON.stringify({ url: `http://127.0.0.1:${port}`, runtime: { name: runtime, crypto: cryptoRuntime } }));
}

function scenarioConfig(): ScenarioServerConfig {
  const json = runtime === "deno" ? Deno.env.get("INTERLOCK_SCENARIO") : globalThis.process?.env.INTERLOCK_SCENARIO;
  if (!json || json === "null") throw new Error("INTERLOCK_SCENARIO is not set: start this with startRuntimeServer");
  return JSON.parse(json) as ScenarioServerConfig;
}

function unreachable(): InterlockStore {
  const fail = () => Promise.reject(new StoreUnavailableError("unreachable", "connection refused"));
  return { name: "unreachable", maxRecordBytes: 1024 * 1024, claim: fail, complete: fail, release: fail, extend: fail };
}

/** The table's handlers, each a call to the vitest process. */
function remoteHandlers(endpoint: string): ScenarioHandlers {
  const call = async (name: string, input: unknown): Promise<unknown> => {
    const response = await fetch(`${endpoint}/${name}`, { method: "POST", body: JSON.stringify(input) });
    if (!response.ok) throw new Error(`the ${name} handler failed`);
    return response.json();
  };
  return {
    webhook: async (event) => {
      await call("webhook", { id: event.id, payload: event.payload });
    },
    payment: (body) => call("payment", { body }) as ReturnType<ScenarioHandlers["payment"]>,
    exportRows: (body) => streamedCall(`${endpoint}/exportRows`, { body }),
  };
}

/** The text of the answer to a call at `url`, each part as it arrives (not the whole answer first). */
async function* streamedCall(url: string, input: unknown): AsyncGenerator<string> {
  const response = await fetch(url, { method: "POST", body: JSON.stringify(input) });
  if (!response.ok || response.body === null) throw new Error("the exportRows handler failed");
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let over = false;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const text = decoder.decode(value, { stream: true });
      if (text !== "") yield text;
    }
    over = true;
    const rest = decoder.decode();
    if (rest !== "") yield rest;
  } finally {
    // Its reader stopped early (the app's client left): the call is dropped too.
    if (!over) await reader.cancel().catch(() => {});
  }
}

/** The options the row configured, on one store, with the vitest process's handlers. */
export function scenarioOptions(): ScenarioAppOptions {
  const config = scenarioConfig();
  const store = config.store === "memory" ? new MemoryStore() : unreachable();
  return {
    webhook: { ...config.webhook, scheme: schemes[config.webhook.scheme], store },
    idempotency: { ...config.idempotency, store },
    handlers: remoteHandlers(config.handlers),
  };
}

/** Builds the package's scenario app with the row's options and serves it. */
export function serveScenarioApp(build: (options: ScenarioAppOptions) => Fetch): Promise<void> {
  return serveOnRuntime(build(scenarioOptions()));
}
