const A = (await import("/tmp/core-base/dist/index.js")).MemoryStore;
const B = (await import("@interlock/core")).MemoryStore;
const RESPONSE = { status: 201, headers: [["content-type", "application/json"]], body: new Uint8Array(64) };
const CLAIM = { fingerprint: "fp", lockTtlMs: 60_000 };
const COMPLETE = { ttlMs: 60_000 };
const LONG = process.env.LONG ? "idem:0123456789abcdef0123456789abcdef:" : "k";
async function cc(store, n, offset) { for (let i = 0; i < n; i++) { const key = LONG + (offset + i); const c = await store.claim(key, CLAIM); await store.complete(key, c.token, RESPONSE, COMPLETE); } }
const res = { A: [], B: [] };
for (let r = 0; r < 8; r++) for (const [name, S] of r % 2 ? [["A", A], ["B", B]] : [["B", B], ["A", A]]) {
  const s = new S(); await cc(s, 200_000, 0); const t = process.hrtime.bigint(); await cc(s, 500_000, 1e7 * (r + 1));
  res[name].push(500_000 / (Number(process.hrtime.bigint() - t) / 1e9));
}
const med = (a) => a.sort((x, y) => x - y)[a.length >> 1];
console.log("A(base)", Math.round(med(res.A)), "B(new)", Math.round(med(res.B)), "ratio", (med(res.B) / med(res.A)).toFixed(3));
