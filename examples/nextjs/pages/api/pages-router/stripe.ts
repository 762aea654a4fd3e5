// The same Stripe endpoint as a Pages Router API route. Next parses the body of an API route
// (JSON, form, text) before the handler runs, and a parsed body cannot be checked against the
// signature: turn that off, and read the raw bytes from the request stream yourself, up to a
// limit. An API route gets Node's request and response, not the web's, so @interlock/web's
// wrappers do not apply: it drives the receiver itself (begin, then finish, or abort when it throws).
import type { IncomingMessage } from "node:http";
import { BodyError, type HttpResponse } from "@interlock/core";
import type { NextApiRequest, NextApiResponse } from "next";
import { interlock, processStripeEvent } from "../../../lib/interlock";

export const config = { api: { bodyParser: false } };

export default async function handler(req: NextApiRequest, res: NextApiResponse): Promise<void> {
  if (req.method !== "POST") return void res.setHeader("allow", "POST").status(405).end();
  const { stripeReceiver, db } = interlock();
  // At most the receiver's own limit (maxBodyBytes, 25 MiB unless set), as withWebhook reads:
  // past it, the same 413 body_too_large problem as the App Router route, the rest unread.
  const body = await readBody(req, stripeReceiver.verifier.maxBodyBytes);
  const decision =
    body instanceof BodyError
      ? stripeReceiver.refuse(body.code, body.message, req.headers)
      : await stripeReceiver.begin(req.headers, body);
  if (decision.action === "respond") return send(res, decision.response);
  const event = decision.event;
  let refusal: Response | undefined;
  try {
    refusal = await processStripeEvent(event, db);
  } catch (error) {
    await stripeReceiver.abort(decision.ticket); // released: Stripe's retry runs this again
    throw error; // Next answers 500
  }
  if (refusal) {
    await stripeReceiver.finish(decision.ticket, { status: refusal.status }); // a 4xx: released
    const headers = [...refusal.headers];
    return send(res, { status: refusal.status, headers, body: new Uint8Array(await refusal.arrayBuffer()) });
  }
  await stripeReceiver.finish(decision.ticket, { status: 200 }); // recorded before the answer
  res.status(200).json({ received: event.id });
}

/** Sends core's response (a refusal, a duplicate…): headers one by one, Next's writeHead takes no flat list. */
function send(res: NextApiResponse, { status, headers, body }: HttpResponse): void {
  for (const [name, value] of headers) res.appendHeader(name, value);
  res.status(status).end(body);
}

/**
 * The request's raw bytes, read up to `limit` and never buffered past it: core's `BodyError`
 * 413 `body_too_large` past it (declared by Content-Length, at once; or found while reading),
 * 400 `body_incomplete` when the client goes away mid-body. Past the limit the rest is read into
 * nothing as it arrives, not destroyed: destroying the request closes the connection, and the
 * client would never get its 413.
 */
function readBody(req: IncomingMessage, limit: number): Promise<Uint8Array | BodyError> {
  if (Number(req.headers["content-length"]) > limit) return Promise.resolve(tooLarge(req, limit));
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const settle = (result: Uint8Array | BodyError) => {
      req.off("data", onData).off("end", onEnd).off("error", onGone).off("close", onGone);
      resolve(result);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.byteLength;
      if (size <= limit) chunks.push(chunk);
      else settle(tooLarge(req, limit));
    };
    const onEnd = () => settle(Buffer.concat(chunks, size));
    const onGone = () => settle(BodyError.incomplete());
    req.on("data", onData).on("end", onEnd).on("error", onGone).on("close", onGone);
  });
}

function tooLarge(req: IncomingMessage, limit: number): BodyError {
  req.resume(); // the rest, discarded as it comes
  return BodyError.tooLarge(limit);
}
