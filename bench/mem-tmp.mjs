import { MemoryStore } from "@interlock/core";
const RESPONSE = { status: 201, headers: [["content-type", "application/json"]], body: new Uint8Array(64) };
const CLAIM = { fingerprint: "fp", lockTtlMs: 60_000 };
const COMPLETE = { ttlMs: 60_000 };
async function claimComplete(store, n, offset) {
  for (let i = 0; i < n; i++) {
    const key = `k${offset + i}`;
    const claim = await store.claim(key, CLAIM);
    await store.complete(key, claim.token, RESPONSE, COMPLETE);
  }
}
const N = 1_000_000;
for (let round = 0; round < 3; round++) {
  const store = new MemoryStore();
  await claimComplete(store, 200_000, 0);
  const t = process.hrtime.bigint();
  await claimComplete(store, N, 1e7 * (round + 1));
  console.log(Math.round(N / (Number(process.hrtime.bigint() - t) / 1e9)).toLocaleString(), "pairs/s");
}
// floor: the bench loop with a no-op store
const noop = { async claim() { return { state: "claimed", token: "t" }; }, async complete() { return true; } };
for (let r = 0; r < 3; r++) { const t = process.hrtime.bigint(); await claimComplete(noop, N, 0); console.log("noop floor", Math.round(N / (Number(process.hrtime.bigint() - t) / 1e9)).toLocaleString()); }
