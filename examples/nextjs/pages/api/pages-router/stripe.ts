// The same Stripe endpoint as a Pages Router API route. Next parses the body of an API route
// (JSON, form, text) before the handler runs, and a parsed body cannot be checked against the
// signature: turn that off, and read the raw bytes from the request stream yourself. An API
// route gets Node's request and response, not the web's, so @interlock/web's wrappers do not
// apply: it drives the receiver itself (begin, then finish, or abort when it throws).
import type { NextApiRequest, NextApiResponse } from "next";
import { interlock, processStripeEvent } from "../../../lib/interlock";

export const config = { api: { bodyParser: false } };

export default async function handler(req: NextApiRequest, res: NextApiResponse): Promise<void> {
  if (req.method !== "POST") return void res.setHeader("allow", "POST").status(405).end();
  const { stripeReceiver, db } = interlock();
  const decision = await stripeReceiver.begin(req.headers, await rawBody(req));
  if (decision.action === "respond") {
    const { status, headers, body } = decision.response;
    for (const [name, value] of headers) res.appendHeader(name, value);
    return void res.status(status).end(body);
  }
  const event = decision.event;
  try {
    await processStripeEvent(event, db);
  } catch (error) {
    await stripeReceiver.abort(decision.ticket); // released: Stripe's retry runs this again
    throw error; // Next answers 500
  }
  await stripeReceiver.finish(decision.ticket, { status: 200 });
  res.status(200).json({ received: event.id });
}

async function rawBody(req: NextApiRequest): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
