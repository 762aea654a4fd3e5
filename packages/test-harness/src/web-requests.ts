/**
 * What the web-standard adapters' tests (@interlock/hono, @interlock/web) send and read: signed
 * Standard Webhooks deliveries, chunked request bodies, answers as bytes or problem+json.
 */
import { signWebhook, standardWebhooks } from "@interlock/core";
import { SUITE_SECRET } from "./secret.js";

let sequence = 0;
/** An id no other test in this process uses. */
export const uniqueId = (label: string) => `${label}_${Date.now().toString(36)}_${++sequence}`;

/** A Standard Webhooks delivery of exactly these bytes, signed now with the suites' secret. */
export async function delivery(body: string | Uint8Array, id = uniqueId("msg")) {
  const signed = await signWebhook({ scheme: standardWebhooks, secret: SUITE_SECRET, body, id });
  return { headers: signed.headers, body: signed.body as Uint8Array<ArrayBuffer>, id };
}

/** A request body that arrives chunked, without Content-Length. */
export function chunked(bytes: Uint8Array, pieces = 3): { body: ReadableStream<Uint8Array>; duplex: "half" } {
  const size = Math.ceil(bytes.byteLength / pieces);
  let offset = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (offset >= bytes.byteLength) return controller.close();
      controller.enqueue(bytes.slice(offset, offset + size));
      offset += size;
    },
  });
  return { body, duplex: "half" };
}

/** The answer's body as bytes. */
export const bytesOf = async (response: Response) => new Uint8Array(await response.arrayBuffer());

/** The answer as an RFC 9457 problem; anything else fails the test with what came instead. */
export const problemOf = async (response: Response) => {
  if (!response.headers.get("content-type")?.startsWith("application/problem+json")) {
    throw new Error(`expected problem+json, got ${response.headers.get("content-type")}: ${await response.text()}`);
  }
  return (await response.json()) as { code: string; status: number; detail: string; scheme?: string };
};

/**
 * Sends a POST on a raw connection that declares `declared` bytes of body, sends `sent` of them,
 * then goes away: the client that leaves mid-upload. Resolves once the socket is gone.
 */
export async function leaveMidBody(
  url: string,
  path: string,
  headers: Record<string, string>,
  declared = 100,
  sent = 10,
) {
  const { connect } = await import("node:net");
  const socket = connect(Number(new URL(url).port), "127.0.0.1");
  await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
  const head = Object.entries({ host: "127.0.0.1", "content-length": String(declared), ...headers })
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join("");
  socket.write(`POST ${path} HTTP/1.1\r\n${head}\r\n${"{".padEnd(sent, " ")}`);
  await new Promise((resolve) => setTimeout(resolve, 50)); // the server has started reading
  socket.destroy();
}

/**
 * A response body that enqueues one `Uint8Array` ("first;"), changes it and enqueues it again
 * ("again;"), then clears it once it closes: a recorder that keeps or sends the chunk by
 * reference sends and stores its last state. Pulled one chunk at a time (no high-water mark).
 */
export function reusingStream(): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  const chunk = encoder.encode("first;");
  let pulls = 0;
  return new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        pulls++;
        if (pulls === 1) return controller.enqueue(chunk);
        if (pulls === 2) {
          chunk.set(encoder.encode("again;"));
          return controller.enqueue(chunk);
        }
        chunk.fill(0x78);
        controller.close();
      },
    },
    { highWaterMark: 0 },
  );
}
