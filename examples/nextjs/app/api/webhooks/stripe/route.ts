// Stripe webhooks, verified on the raw bytes and processed once. A route handler gets the web's
// Request, and nothing has parsed its body yet: read it as bytes (request.json() or .text()
// would hand on something other than what Stripe signed), then let the receiver decide.
import { interlock, toResponse } from "../../../../lib/interlock";

export async function POST(request: Request): Promise<Response> {
  const { receiver, db } = interlock();
  const body = new Uint8Array(await request.arrayBuffer());
  const decision = await receiver.begin(request.headers, body);
  // A refusal (401 problem), a redelivery (200 {"duplicate":true}), one still being processed
  // elsewhere (409 with Retry-After) or the store down (503): answered without running the handler.
  if (decision.action === "respond") return toResponse(decision.response);

  const event = decision.event; // verified: id, payload (decoded on first use), body
  try {
    const { type } = event.payload as { type?: string };
    if (type === "checkout.session.completed") await db.fulfil(event.id as string);
  } catch (error) {
    await receiver.abort(decision.ticket); // released: Stripe's retry runs this again
    throw error; // Next answers 500
  }
  // Recorded before answering: a redelivery that arrives the moment Stripe reads this finds it done.
  await receiver.finish(decision.ticket, { status: 200 });
  return Response.json({ received: event.id });
}
