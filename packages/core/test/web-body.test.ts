/** core's web-standard body reader, on what only it decides (the adapters' tests cover the rest). */
import { describe, expect, it } from "vitest";
import { BodyError, readStreamUpTo } from "../src/index.js";

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

function streamOf(...chunks: string[]): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(new TextEncoder().encode(chunk));
      controller.close();
    },
  });
}

describe("readStreamUpTo", () => {
  // A tee's branches get the same chunk objects (the Streams spec; @interlock/web reads a
  // request's clone): what the other branch's reader does to its chunk must not reach the bytes.
  it.each([
    ["one chunk", ["hello"]],
    ["several chunks", ["hel", "lo"]],
  ])("gives bytes of its own, not a chunk another branch of a tee sees (%s)", async (_name, chunks) => {
    const [kept, other] = streamOf(...chunks).tee();
    const read = await readStreamUpTo(kept, 64);
    const reader = other.getReader();
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) chunk.value.fill(0x58);
    expect(read).not.toBeInstanceOf(BodyError);
    expect(text(read as Uint8Array)).toBe("hello");
  });

  it("answers body_too_large past the limit, and body_incomplete for a stream that fails", async () => {
    expect(await readStreamUpTo(streamOf("hello", "world"), 8)).toMatchObject({ code: "body_too_large" });
    const failing = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.error(new Error("aborted"));
      },
    });
    expect(await readStreamUpTo(failing, 8)).toMatchObject({ code: "body_incomplete" });
  });
});
