/**
 * The worker side of the multi-process idempotency tests (./idempotency-processes.ts), the same
 * for every store: what a test asks a worker process and what it answers, the request an
 * adapter would pass, the handler's response, and the commands themselves. A store's worker
 * supplies only its mechanics (its client, its store, a side effect every process sees) as a
 * `WorkerContext`, and its own way of talking to the test.
 *
 * Loaded inside the worker processes, outside vitest: nothing here imports vitest.
 */

import {
  createIdempotency,
  type IdempotencyEngine,
  type IdempotencyRequest,
  type InterlockStore,
  runIdempotent,
} from "@interlock/core";

/** What a worker process gives the commands: its store, its name, and a side effect every process sees. */
export interface WorkerContext {
  store: InterlockStore;
  /** Reported in every outcome, and part of the handler's response. */
  worker: string;
  /** Records one start of the handler (or of a run's work) for `key`; returns how many there are now. */
  sideEffect(key: string): Promise<number>;
}

export interface EngineArgs {
  key: string;
  /** Which of the test's requests this worker sends: request `i` starts `i × staggerMs` after the command. */
  indices: number[];
  staggerMs: number;
  /** How long the handler takes after its side effect. */
  handlerMs: number;
  lockTtlMs: number;
}

/** One request as its client saw it; bodies in base64 (IPC is JSON). */
export interface EngineOutcome {
  index: number;
  worker: string;
  /** The handler ran for this request (the response is what it produced, all headers). */
  ran: boolean;
  replayed: boolean;
  status: number;
  headers: Array<[string, string]>;
  body: string;
  error?: string;
}

export interface EngineReply {
  outcomes: EngineOutcome[];
  /** The type of every event the worker's engine emitted. */
  events: string[];
}

export interface HangArgs {
  key: string;
  lockTtlMs: number;
}

export interface HangReply {
  action: string;
}

export interface RunArgs {
  key: string;
  /** Calls this worker makes at once. */
  count: number;
  workMs: number;
  lockTtlMs: number;
  /** Wait this long for a run in progress elsewhere (runIdempotent's `wait`), instead of failing. */
  waitMs?: number;
}

export interface RunValue {
  by: string;
  /** Side effects recorded for the key after this run's own. */
  n: number;
  text: string;
}

export type RunOutcome = { worker: string; value: RunValue; replayed: boolean; recorded: boolean } | { error: string };

/** Each idempotency command's arguments and reply. */
export interface IdempotencyCommands {
  engine: [EngineArgs, EngineReply];
  hang: [HangArgs, HangReply];
  run: [RunArgs, RunOutcome[]];
}

/** The request every `engine` and `hang` command sends, as an adapter would translate it. */
export const PAYMENT_REQUEST = {
  method: "POST",
  route: "/payments",
  path: "/payments?currency=eur",
  body: '{"amount":100,"currency":"eur"}',
  apiKey: "tenant-a",
};

/** Every byte value, so a replay that went through a text encoding anywhere would differ. */
export const BINARY = Uint8Array.from({ length: 256 }, (_, i) => (i * 131 + 7) % 256);

/** The fingerprint of every `run` call: one input, so every call is the same run. */
export const RUN_FINGERPRINT = "invoice-42";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const base64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64");

function paymentRequest(key: string): IdempotencyRequest {
  const { apiKey, ...request } = PAYMENT_REQUEST;
  return { ...request, headers: { "idempotency-key": key, "x-api-key": apiKey, "content-type": "application/json" } };
}

/** The handler's response for its `n`th run: binary body, headers of which only some are replayable. */
function paymentResponse(worker: string, n: number) {
  const body = new Uint8Array([...BINARY, ...new TextEncoder().encode(`paid by ${worker}, run ${n}`)]);
  const headers: Array<[string, string]> = [
    ["Content-Type", "application/octet-stream"],
    ["Location", `/payments/pay_${worker}_${n}`],
    ["ETag", `"${worker}-${n}"`],
    ["Set-Cookie", `session=${worker}`],
    ["X-Worker", worker],
    ["Date", new Date().toUTCString()],
  ];
  return { status: 201, headers, body };
}

/** The worker's engine, keys scoped by the caller's API key as an app would. */
function engineFor({ store }: WorkerContext, lockTtlMs: number, events: string[]): IdempotencyEngine {
  return createIdempotency({
    store,
    lockTtlMs,
    principal: (request) => (request.headers as Record<string, string>)["x-api-key"],
    onEvent: (event) => events.push(event.type),
  });
}

/** One request, driven as an adapter drives the engine: `begin` → run the handler → `finish` (or `abort`), or take the response. */
async function drive(
  engine: IdempotencyEngine,
  key: string,
  base: { index: number; worker: string },
  handler: () => Promise<ReturnType<typeof paymentResponse>>,
): Promise<EngineOutcome> {
  try {
    const decision = await engine.begin(paymentRequest(key));
    if (decision.action === "pass") throw new Error("the engine passed a covered request through");
    if (decision.action === "respond") {
      const { status, headers, body } = decision.response;
      return { ...base, ran: false, replayed: decision.replayed, status, headers, body: base64(body) };
    }
    let response: ReturnType<typeof paymentResponse>;
    try {
      response = await handler();
    } catch (error) {
      await engine.abort(decision.ticket);
      throw error;
    }
    await engine.finish(decision.ticket, response);
    return { ...base, ran: true, replayed: false, ...response, body: base64(response.body) };
  } catch (error) {
    return { ...base, ran: false, replayed: false, status: 0, headers: [], body: "", error: String(error) };
  }
}

/** The commands a worker serves, each given the worker's context and the test's arguments. */
export const idempotencyCommands: {
  [C in keyof IdempotencyCommands]: (
    context: WorkerContext,
    args: IdempotencyCommands[C][0],
  ) => Promise<IdempotencyCommands[C][1]>;
} = {
  /**
   * Sends requests with one Idempotency-Key through this worker's engine: request `i` starts
   * `i × staggerMs` after the command. The handler's side effect comes first, then a pause of
   * `handlerMs`.
   */
  async engine(context, { key, indices, staggerMs, handlerMs, lockTtlMs }) {
    const events: string[] = [];
    const engine = engineFor(context, lockTtlMs, events);
    const handler = async () => {
      const n = await context.sideEffect(key);
      await sleep(handlerMs);
      return paymentResponse(context.worker, n);
    };
    const outcomes = await Promise.all(
      indices.map(async (index) => {
        await sleep(index * staggerMs);
        return drive(engine, key, { index, worker: context.worker }, handler);
      }),
    );
    return { outcomes, events };
  },

  /** `begin`s one request and starts its handler, which never returns: the test kills the worker mid-handler. */
  async hang(context, { key, lockTtlMs }) {
    const engine = engineFor(context, lockTtlMs, []);
    const decision = await engine.begin(paymentRequest(key));
    if (decision.action !== "execute") return { action: decision.action };
    // Mid-handler: the side effect is done, the response never comes.
    await context.sideEffect(key);
    return { action: "execute" };
  },

  /** `count` runIdempotent calls with one key at once; the work is the side effect, then a pause. */
  run(context, { key, count, workMs, lockTtlMs, waitMs }) {
    const work = async (): Promise<RunValue> => {
      const n = await context.sideEffect(key);
      await sleep(workMs);
      return { by: context.worker, n, text: "reçu 🔑" };
    };
    const wait = waitMs === undefined ? {} : { wait: { timeoutMs: waitMs, pollMs: 10 } };
    const options = { store: context.store, key, fingerprint: RUN_FINGERPRINT, lockTtlMs, ...wait };
    return Promise.all(
      Array.from({ length: count }, () =>
        runIdempotent(options, work).then(
          (run): RunOutcome => ({ worker: context.worker, ...run }),
          (error: { code?: string }): RunOutcome => ({ error: error.code ?? String(error) }),
        ),
      ),
    );
  },
};
