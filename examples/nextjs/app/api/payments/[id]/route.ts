// Reads a payment back: the Location a created payment answers with.
import { interlock, problem, unauthenticated } from "../../../../lib/interlock";

export async function GET(request: Request, { params }: { params: Promise<{ id: string }> }): Promise<Response> {
  const { authenticate, db } = interlock();
  const account = authenticate(request);
  if (account === undefined) return unauthenticated();
  const payment = db.payments.get((await params).id);
  if (payment === undefined || payment.account !== account) return problem(404, "not_found", "no such payment");
  return Response.json(payment);
}
