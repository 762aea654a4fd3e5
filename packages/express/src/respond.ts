/** Writing core's ready responses through Express, and letting the app take them over. */

import type { ServerResponse } from "node:http";
import { type HttpResponse, sendOnNode } from "@interlock/core";
import { responseStarted } from "./hold.js";
import { asBuffer } from "./raw-body.js";

/**
 * Writes a response decided by core exactly as it is, framed by its length (core's `sendOnNode`):
 * Node's own `setHeader`/`end`, not Express's `res.set`/`res.send`, which would add a charset or
 * an ETag to a replayed response.
 */
export const send = (res: ServerResponse, response: HttpResponse): void => sendOnNode(res, response, asBuffer);

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
