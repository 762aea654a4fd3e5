/** Shared pieces of the adapter-specific tests. */
import { signWebhook, standardWebhooks } from "@interlock/core";
import { afterEach } from "vitest";
import { type Fetcher, listen, type Served } from "./serve.js";

export const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

const open: Served[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((served) => served.close()));
});

/** Serves `app` on 127.0.0.1 until the end of the test. */
export async function start(app: Fetcher): Promise<string> {
  const served = await listen(app);
  open.push(served);
  return served.url;
}

let sequence = 0;
export const uniqueId = (label: string) => `${label}_${Date.now().toString(36)}_${++sequence}`;

/** A Standard Webhooks delivery of exactly these bytes, signed now. */
export async function delivery(body: string | Uint8Array, id = uniqueId("msg")) {
  const signed = await signWebhook({ scheme: standardWebhooks, secret: SECRET, body, id });
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

export const bytesOf = async (response: Response) => new Uint8Array(await response.arrayBuffer());

export const problemOf = async (response: Response) => {
  if (!response.headers.get("content-type")?.startsWith("application/problem+json")) {
    throw new Error(`expected problem+json, got ${response.headers.get("content-type")}: ${await response.text()}`);
  }
  return (await response.json()) as { code: string; status: number; detail: string; scheme?: string };
};
