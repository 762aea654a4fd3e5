/** core's web-standard body reader, on what only it decides (the adapters' tests cover the rest). */
import { describe, expect, it } from "vitest";
import { BodyError, declaredLength, pathAndQuery, readStreamUpTo, readyLength, recordBody } from "../src/index.js";

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

/** A stream of the chunks as UTF-8 bytes: Node `Buffer`s with `buffers` (as `Readable.toWeb` gives them). */
function streamOf(chunks: string[], { buffers = false } = {}): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(buffers ? Buffer.from(chunk) : new TextEncoder().encode(chunk));
      controller.close();
    },
  });
}

describe("readStreamUpTo", () => {
  // A tee's branches get the same chunk objects (the Streams spec; @interlock/web reads a
  // request's clone): what the other branch's reader does to its chunk must not reach the bytes.
  it.each([
    ["one chunk", ["hello"], false],
    ["several chunks", ["hel", "lo"], false],
    ["one Buffer chunk, whose slice() is a view", ["hello"], true],
  ])("gives bytes of its own, not a chunk another branch of a tee sees (%s)", async (_name, chunks, buffers) => {
    const [kept, other] = streamOf(chunks, { buffers }).tee();
    const read = await readStreamUpTo(kept, 64);
    const reader = other.getReader();
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) chunk.value.fill(0x58);
    expect(read).not.toBeInstanceOf(BodyError);
    expect(text(read as Uint8Array)).toBe("hello");
  });

  it("answers body_too_large past the limit, and body_incomplete for a stream that fails", async () => {
    expect(await readStreamUpTo(streamOf(["hello", "world"]), 8)).toMatchObject({ code: "body_too_large" });
    const failing = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.error(new Error("aborted"));
      },
    });
    expect(await readStreamUpTo(failing, 8)).toMatchObject({ code: "body_incomplete" });
  });

  it("reads exactly limit bytes; one more is body_too_large, and the rest is cancelled unread", async () => {
    expect(text((await readStreamUpTo(streamOf(["hello", "wor"]), 8)) as Uint8Array)).toBe("hellowor");
    let pulls = 0;
    let cancelled = false;
    const endless = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulls++;
        controller.enqueue(new TextEncoder().encode("hello"));
      },
      cancel() {
        cancelled = true;
      },
    });
    expect(await readStreamUpTo(endless, 9)).toMatchObject({ code: "body_too_large" });
    expect(cancelled).toBe(true);
    expect(pulls).toBeLessThanOrEqual(3);
  });
});

describe("recordBody", () => {
  /** What `settle` got, once the recording is over: the body as text (or undefined), and `tooLarge`. */
  function recording(stream: ReadableStream<Uint8Array>, limit: number) {
    let settled: (value: [string | undefined, boolean]) => void = () => {};
    const outcome = new Promise<[string | undefined, boolean]>((resolve) => {
      settled = resolve;
    });
    const recorded = recordBody(stream, limit, async (body, tooLarge) => {
      settled([body === undefined ? undefined : text(body), tooLarge]);
    });
    return { recorded, outcome };
  }

  /** The whole recorded stream, read as a client would. */
  const readAll = (stream: ReadableStream<Uint8Array>) => new Response(stream).text();

  it("settles the whole body within the limit, not too large", async () => {
    const { recorded, outcome } = recording(streamOf(["hel", "lo"]), 8);
    expect(await readAll(recorded.stream)).toBe("hello");
    expect(await outcome).toEqual(["hello", false]);
  });

  it("a chunk that is no Uint8Array fails the answer, as the platform fails it, and nothing is recorded", async () => {
    for (const chunk of [new Uint16Array([0x4141, 0x4242]), new DataView(new ArrayBuffer(4)), "text"]) {
      const stream = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(new TextEncoder().encode("ok"));
          controller.enqueue(chunk as unknown as Uint8Array);
          controller.close();
        },
      });
      const { recorded, outcome } = recording(stream, 64);
      await expect(readAll(recorded.stream)).rejects.toThrow(TypeError);
      expect(await outcome).toEqual([undefined, false]);
    }
  });

  it("past the limit, read by the client: every byte still goes out, and settles as too large", async () => {
    const { recorded, outcome } = recording(streamOf(["hello", "world"]), 8);
    expect(await readAll(recorded.stream)).toBe("helloworld");
    expect(await outcome).toEqual([undefined, true]);
  });

  it("past the limit, read ahead: settles as too large as soon as it passes, before the end", async () => {
    let more: ReadableStreamDefaultController<Uint8Array> | undefined;
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode("hello world"));
        more = controller; // never closed: the rest is still being written
      },
    });
    const { recorded, outcome } = recording(stream, 8);
    recorded.readAhead();
    expect(await outcome).toEqual([undefined, true]);
    more?.close();
    expect(await readAll(recorded.stream)).toBe("hello world");
  });

  it("a stream that fails, or that the client stops reading before its end, is not too large: cut off", async () => {
    const failing = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.error(new Error("aborted"));
      },
    });
    const failed = recording(failing, 8);
    await expect(readAll(failed.recorded.stream)).rejects.toThrow("aborted");
    expect(await failed.outcome).toEqual([undefined, false]);

    const endless = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode("tick"));
      },
    });
    const left = recording(endless, 8);
    const reader = left.recorded.stream.getReader();
    expect(text((await reader.read()).value as Uint8Array)).toBe("tick");
    await reader.cancel();
    expect(await left.outcome).toEqual([undefined, false]);
  });

  it("a client that stops reading a body already whole: what was ready is read on and settled whole, not cut off", async () => {
    // Chunks read on after the cancel are the rest of the answer: a record of only those sent would replay it cut short.
    const { recorded, outcome } = recording(streamOf(["hel", "lo", "!"]), 8);
    const reader = recorded.stream.getReader();
    expect(text((await reader.read()).value as Uint8Array)).toBe("hel");
    await reader.cancel();
    expect(await outcome).toEqual(["hello!", false]);
  });

  it("settles once, with the body, when read ahead and then read to its end by the client", async () => {
    const calls: Array<[string | undefined, boolean]> = [];
    const recorded = recordBody(streamOf(["hel", "lo"]), 8, async (body, tooLarge) => {
      calls.push([body === undefined ? undefined : text(body), tooLarge]);
    });
    recorded.readAhead();
    expect(await readAll(recorded.stream)).toBe("hello");
    await new Promise((resolve) => setTimeout(resolve, 10)); // a second settle would come after the end
    expect(calls).toEqual([["hello", false]]);
  });
});

describe("readyLength", () => {
  /** A stream that gives `ready` at once, then one chunk more after `laterMs` (never, without), noting a cancel. */
  function producing(ready: string[], laterMs?: number) {
    const noted = { cancelled: false };
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const chunk of ready) controller.enqueue(new TextEncoder().encode(chunk));
        if (laterMs === undefined) return;
        setTimeout(() => {
          if (!noted.cancelled) controller.enqueue(new TextEncoder().encode("late"));
        }, laterMs);
      },
      cancel() {
        noted.cancelled = true;
      },
    });
    return { stream, noted };
  }

  it("counts a body that ends with what it has ready", async () => {
    expect(await readyLength(streamOf(["hel", "lo", ""]), 8)).toBe(5);
    expect(await readyLength(streamOf([]), 8)).toBe(0);
  });

  it("past the limit: too_large, the rest cancelled unread", async () => {
    const { stream, noted } = producing(["hello", "world"]);
    expect(await readyLength(stream, 8)).toBe("too_large");
    expect(noted.cancelled).toBe(true);
  });

  it("a body still being produced is not waited for: streaming, and cancelled", async () => {
    const endless = producing(["data: 1\n\n"]);
    expect(await readyLength(endless.stream, 1_000)).toBe("streaming");
    expect(endless.noted.cancelled).toBe(true);
    const slow = producing([], 50);
    expect(await readyLength(slow.stream, 1_000)).toBe("streaming");
  });

  it("rejects with the body's own error when a read fails", async () => {
    const failing = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.error(new Error("the body failed"));
      },
    });
    await expect(readyLength(failing, 8)).rejects.toThrow("the body failed");
  });
});

describe("declaredLength and pathAndQuery", () => {
  it("a Content-Length frames the body only without Transfer-Encoding, and only as a whole number", () => {
    const length = (headers: Record<string, string>) => declaredLength(new Headers(headers));
    expect([length({ "content-length": "16" }), length({ "content-length": "0" }), length({})]).toEqual([
      16,
      0,
      undefined,
    ]);
    // A Request made in code keeps any header: a length beside Transfer-Encoding frames nothing (RFC 9112 §6.3).
    expect(length({ "content-length": "16", "transfer-encoding": "chunked" })).toBeUndefined();
    expect([
      length({ "content-length": "-1" }),
      length({ "content-length": "1.5" }),
      length({ "content-length": "x" }),
    ]).toEqual([undefined, undefined, undefined]);
  });

  it("takes the path and query from an absolute URL, a port and all, and / for none", () => {
    expect(pathAndQuery("http://127.0.0.1:8080/payments/1?x=1")).toBe("/payments/1?x=1");
    expect(pathAndQuery("https://api.example/")).toBe("/");
    expect(pathAndQuery("https://api.example")).toBe("/");
  });

  it("leaves a fragment out, which is no part of a request target (RFC 9112 §3.2)", () => {
    expect(pathAndQuery("http://127.0.0.1:8080/payments#retry")).toBe("/payments");
    expect(pathAndQuery("http://127.0.0.1:8080/payments?x=1#a/b?c")).toBe("/payments?x=1");
    expect(pathAndQuery("http://127.0.0.1:8080?x=1#top")).toBe("/?x=1");
    expect(pathAndQuery("http://127.0.0.1:8080#/payments")).toBe("/");
  });
});
