import Fastify from "fastify";

const app = Fastify({ bodyLimit: 1024 });
app.post("/x", async () => ({ ok: 1 }));
await app.listen({ port: 0, host: "127.0.0.1" });
const url = `http://127.0.0.1:${app.server.address().port}/x`;
const r = await fetch(url, {
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify({ pad: "x".repeat(2 * 1024 * 1024) }),
});
console.log(r.status, r.headers.get("connection"), await r.text());
const t = Date.now();
await Promise.race([app.close(), new Promise((r) => setTimeout(r, 3000))]);
console.log("close took", Date.now() - t);
process.exit(0);
