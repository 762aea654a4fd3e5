/** Shared pieces of the adapter-specific tests. */
import { Hono } from "hono";
import { afterEach } from "vitest";
import { type Fetcher, listen, type Served } from "./serve.js";

export { SUITE_SECRET as SECRET } from "@interlock/test-harness/secret";
export { bytesOf, chunked, delivery, leaveMidBody, problemOf, uniqueId } from "@interlock/test-harness/web-requests";

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

/**
 * A Hono app that notes the status of every answer, and every error that reached its `onError`
 * (which answers it 500), for tests that check nothing reaches Hono as an error.
 */
export function watchedApp(): { app: Hono; statuses: number[]; errors: unknown[] } {
  const statuses: number[] = [];
  const errors: unknown[] = [];
  const app = new Hono();
  app.use(async (c, next) => {
    await next();
    statuses.push(c.res.status);
  });
  app.onError((error, c) => {
    errors.push(error);
    return c.text("failed", 500);
  });
  return { app, statuses, errors };
}
