/** Writing core's ready responses through Express, and letting the app take them over. */

import type { ServerResponse } from "node:http";
import { forEachHeader, type HttpResponse } from "@interlock/core";
import { responseStarted } from "./hold.js";

/**
 * Writes a response decided by core exactly as it is. Node's own `setHeader`/`end`, not
 * Express's `res.set`/`res.send`, which would add a charset or an ETag to a replayed response.
 */
export function send(res: ServerResponse, response: HttpResponse): void {
  res.statusCode = response.status;
  let ownLength = false;
  forEachHeader(response.headers, (name, value) => {
    res.setHeader(name, value);
    if (name === "content-length") ownLength = true;
  });
  const { body } = response;
  // Framed by its length, as Express's res.send frames its own: without one, Node closes an
  // HTTP/1.0 keep-alive connection to mark the end, and a request queued on it goes unanswered.
  // A replayed HEAD answer (stored without content) brings its own (the length of a GET's
  // content, never sent) or none, as the first answer did: its empty body is no GET's content.
  // A refusal to a HEAD is framed as the same refusal to a GET.
  const headReplay = res.req?.method === "HEAD" && body.byteLength === 0;
  if (hasContent(response.status) && !headReplay && !ownLength) {
    res.setHeader("content-length", body.byteLength);
  }
  res.end(Buffer.from(body.buffer, body.byteOffset, body.byteLength));
}

/** Whether a response of `status` has content to frame (RFC 9110 §6.4.1: not 1xx, 204, 304). */
const hasContent = (status: number): boolean => status >= 200 && status !== 204 && status !== 304;

/**
 * Gives the app's `onError` the first say; if it did not start a response, the default goes
 * out. An `onError` that throws hands its error to Express's error handling (the caller's `next`).
 */
export async function answer(
  res: ServerResponse,
  response: HttpResponse,
  takeOver: (() => void | Promise<void>) | undefined,
): Promise<void> {
  if (takeOver) {
    await takeOver();
    if (responseStarted(res)) return;
  }
  send(res, response);
}
