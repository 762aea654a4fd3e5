import { execFileSync } from "node:child_process";
import { ServerResponse } from "node:http";
import { fileURLToPath } from "node:url";
import { memoryStore } from "@interlock/core";
import express from "express";
import { describe, expect, it } from "vitest";
import { copiesHiddenClasses, useDictionaryProperties } from "../src/dictionary-mode.js";
import { idempotency } from "../src/index.js";
import { listen, send } from "./helpers.js";

const packageDir = fileURLToPath(new URL("..", import.meta.url));
const copies = copiesHiddenClasses(process.versions);

/** Runs an ES module in a child of this same Node with V8's natives syntax; its stdout as JSON. */
function probe(source: string): unknown {
  const out = execFileSync(process.execPath, ["--allow-natives-syntax", "--input-type=module", "-e", source], {
    cwd: packageDir,
    encoding: "utf8",
    timeout: 20_000,
  });
  return JSON.parse(out);
}

describe("copiesHiddenClasses", () => {
  it.each([
    ["Node 20", { node: "20.20.2", v8: "11.3.244.8-node.33" }, true],
    ["Node 22", { node: "22.23.5", v8: "12.4.254.21-node.33" }, true],
    ["Node 23", { node: "23.11.1", v8: "12.9.202.28-node.14" }, true],
    ["Node 24", { node: "24.22.3", v8: "13.6.233.17-node.40" }, false],
    ["a later V8", { v8: "14.1.146.11" }, false],
    ["Bun, which reports a V8 it does not run", { node: "24.3.0", v8: "12.4.254.14-node.12", bun: "1.4.2" }, false],
    ["no V8 named", { node: "20.0.0" }, false],
    ["no process", undefined, false],
  ])("%s", (_name, versions, expected) => {
    expect(copiesHiddenClasses(versions)).toBe(expected);
  });

  it("matches what this Node's V8 does: a property added after setPrototypeOf shares a hidden class only on V8 13+", () => {
    const shared = probe(`
      class Message { constructor() { this.a = 1; this.b = 2; } }
      const prototype = Object.create(Message.prototype);
      const make = () => { const o = new Message(); Object.setPrototypeOf(o, prototype); o.c = 3; return o; };
      console.log(JSON.stringify(%HaveSameMap(make(), make())));
    `);
    expect(shared).toBe(!copies);
  });
});

describe("useDictionaryProperties", () => {
  it("puts Express's req and res in dictionary mode only where adding properties copies hidden classes, and keeps them whole", () => {
    const seen = probe(`
      import express from "express";
      import { idempotency } from "@interlock/express";
      import { memoryStore } from "@interlock/core";
      const app = express();
      let probe;
      app.post("/pay", idempotency({ store: memoryStore(), principal: false }), (req, res) => {
        probe = { fastReq: %HasFastProperties(req), fastRes: %HasFastProperties(res), linked: req.res === res && res.req === req,
          enumerable: Object.keys(req).includes("res") && Object.keys(res).includes("req") };
        res.status(201).json({ ok: true });
      });
      const server = app.listen(0, "127.0.0.1", async () => {
        const response = await fetch("http://127.0.0.1:" + server.address().port + "/pay", {
          method: "POST", headers: { "content-type": "application/json", "idempotency-key": "k1" }, body: "{}" });
        probe.status = response.status;
        server.closeAllConnections(); server.close();
        console.log(JSON.stringify(probe));
      });
    `);
    expect(seen).toEqual({ fastReq: !copies, fastRes: !copies, linked: true, enumerable: true, status: 201 });
  });

  it("leaves accessors and fixed properties as they are", () => {
    let reads = 0;
    const req = {} as Record<string, unknown>;
    Object.defineProperty(req, "res", { get: () => ++reads, enumerable: true, configurable: true });
    const res = {} as Record<string, unknown>;
    Object.defineProperty(res, "req", { value: req, writable: false, enumerable: true, configurable: false });
    useDictionaryProperties(req as never, res as never);
    expect(reads).toBe(0);
    expect(Object.getOwnPropertyDescriptor(req, "res")?.get).toBeTypeOf("function");
    const fixed = Object.getOwnPropertyDescriptor(res, "req");
    expect(fixed?.value).toBe(req);
    expect([fixed?.writable, fixed?.configurable]).toEqual([false, false]);
  });

  it("keeps a plain property, its value and its enumerability", () => {
    const res = { statusCode: 200 } as Record<string, unknown>;
    const req = { res, url: "/" } as Record<string, unknown>;
    res.req = req;
    useDictionaryProperties(req as never, res as never);
    expect(req.res).toBe(res);
    expect(res.req).toBe(req);
    expect(Object.keys(req).sort()).toEqual(["res", "url"]);
  });
});

describe("the held response's methods", () => {
  it("are the same functions on every response, not a closure per response (V8 13+ charges ~15 µs a request for one)", async () => {
    const app = express();
    const seen: Array<{ end: unknown; write: unknown; writeHead: unknown }> = [];
    app.post("/pay", idempotency({ store: memoryStore(), principal: false }), (_req, res) => {
      seen.push({ end: res.end, write: res.write, writeHead: res.writeHead });
      res.status(201).json({ ok: true });
    });
    const running = await listen(app);
    try {
      for (const key of ["k1", "k2"]) {
        const response = await send(`${running.url}/pay`, {
          headers: { "content-type": "application/json", "idempotency-key": key },
          body: "{}",
        });
        expect(response.status).toBe(201);
      }
    } finally {
      await running.close();
    }
    const [first, second] = seen;
    expect(first?.end).not.toBe(ServerResponse.prototype.end); // held
    for (const method of ["end", "write", "writeHead"] as const) expect(second?.[method]).toBe(first?.[method]);
  });
});
