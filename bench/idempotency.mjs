// Idempotency engine overhead on the memory store, against calling the handler directly.
// Paths: first request (a unique key each time: claim + handler + complete) and replay
// (a known key: claim → stored response). 1 KiB JSON body, as an adapter would pass it.
// Prints ns per request and the overhead over the bare handler. Run: node bench/idempotency.mjs
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import { createIdempotency, MemoryStore } from "@interlock/core";

const BODY = new TextEncoder().encode(
  JSON.stringify({ amount: 1000, currency: "eur", note: "x".repeat(980) }).slice(0, 1024),
);
const RESPONSE_BODY = new TextEncoder().encode('{"id":"pay_1","status":"succeeded"}');
const HEADERS_OUT = { "content-type": "application/json", location: "/payments/pay_1" };

// The "handler": what a payments route does in-process, minus I/O.
async function handler() {
  return { status: 201, headers: HEADERS_OUT, body: RESPONSE_BODY };
}

async function measure(label, iterations, fn) {
  for (let i = 0; i < Math.min(20_000, iterations); i++) await fn(i); // warm-up
  const started = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) await fn(i);
  const ns = Number(process.hrtime.bigint() - started) / iterations;
  return { label, ns };
}

function engine() {
  // Large enough that the first-request run never evicts.
  return createIdempotency({
    store: new MemoryStore({ maxEntries: 2_000_000, maxBytes: 512 * 1024 * 1024 }),
    principal: false,
  });
}

async function viaEngine(idem, key) {
  const decision = await idem.begin({
    method: "POST",
    route: "/payments",
    path: "/payments",
    headers: { "idempotency-key": key, "content-type": "application/json" },
    body: BODY,
  });
  if (decision.action === "respond") return decision.response;
  const response = await handler();
  if (decision.action === "execute") await idem.finish(decision.ticket, response);
  return response;
}

const N = 200_000;
const rows = [];
for (let round = 0; round < 3; round++) {
  const bare = await measure("bare handler", N, () => handler());
  const first = engine();
  const firstRow = await measure("engine, first request (unique keys)", N, (i) => viaEngine(first, `k-${round}-${i}`));
  const replay = engine();
  await viaEngine(replay, "known");
  const replayRow = await measure("engine, replay (one known key)", N, () => viaEngine(replay, "known"));
  rows.push({ bare, firstRow, replayRow });
}
const best = (pick) => rows.map(pick).sort((a, b) => a.ns - b.ns)[0];
const bare = best((r) => r.bare);
const first = best((r) => r.firstRow);
const replay = best((r) => r.replayRow);

const lines = [
  `Idempotency engine on the memory store, 1 KiB body; Node ${process.version}, ${os.cpus()[0]?.model ?? "cpu"} × ${os.availableParallelism()}; best of 3 rounds of ${N} requests.`,
  "",
  "| path | ns / request | added over the bare handler |",
  "|---|---:|---:|",
  `| bare handler | ${bare.ns.toFixed(0)} | — |`,
  `| engine, first request (claim + handler + complete) | ${first.ns.toFixed(0)} | ${((first.ns - bare.ns) / 1000).toFixed(2)} µs |`,
  `| engine, replay (claim → stored response, handler not run) | ${replay.ns.toFixed(0)} | ${((replay.ns - bare.ns) / 1000).toFixed(2)} µs |`,
  "",
  `Targets: ≤ 10 µs added on the first request: ${(first.ns - bare.ns) / 1000 <= 10 ? "met" : "MISSED"}; a replay cheaper than running the handler path: ${replay.ns < first.ns ? "met" : "MISSED"}.`,
];
console.log(lines.join("\n"));
mkdirSync(new URL("./results/", import.meta.url), { recursive: true });
writeFileSync(new URL("./results/idempotency.md", import.meta.url), `${lines.join("\n")}\n`);
