// An idempotent payments API. authenticate() and idempotency() run before this controller as
// Nest middleware (see AppModule): keys are scoped per account, so one client can never replay
// another's payment, and a retry gets the stored answer without reaching this code.
import {
  Body,
  Controller,
  createParamDecorator,
  type ExecutionContext,
  Get,
  Inject,
  Param,
  Post,
  type RawBodyRequest,
  Res,
} from "@nestjs/common";
import type { NextFunction, Request, Response } from "express";
import { bearerToken } from "../../shared/bearer.mjs";
import { Problem, sendProblem } from "./problem.js";
import { type Payment, SETTINGS, type Settings } from "./settings.js";

/**
 * Middleware: `Authorization: Bearer <api key>` (strictly: see bearerToken) → `res.locals.accountId`,
 * or 401. Middleware rather than a guard: Nest runs guards after every middleware, and
 * idempotency() needs the account as its principal.
 */
export function authenticate(apiKeys: Map<string, string>) {
  return (req: Request, res: Response, next: NextFunction) => {
    const accountId = apiKeys.get(bearerToken(req.get("authorization")) ?? "");
    if (accountId === undefined) {
      res.set("www-authenticate", "Bearer");
      return sendProblem(res, 401, "unauthenticated", "send Authorization: Bearer <api key>");
    }
    res.locals.accountId = accountId;
    next();
  };
}

/**
 * Middleware, before idempotency(): 400 for a POST whose body is no JSON object (none, another
 * Content-Type, JSON `null`, an array, a number), before a key is claimed, so the client's
 * corrected retry runs. (A 4xx the controller throws is an answer, stored under the key.) An
 * empty body is told by its raw bytes: Nest's parser makes `{}` of it, as of a `{}` sent, and
 * only the latter is a payment (sent empty: the controller's 400 `invalid_payment`). Nest's parser answers bad JSON 400 itself.
 */
export function jsonObjectBody(req: RawBodyRequest<Request>, res: Response, next: NextFunction) {
  const body: unknown = req.body;
  if (req.method !== "POST") return next();
  const sent = (req.rawBody?.length ?? 0) > 0;
  if (sent && typeof body === "object" && body !== null && !Array.isArray(body)) return next();
  sendProblem(res, 400, "bad_request", "send the payment as a JSON object, Content-Type: application/json");
}

/** The account authenticate() found, as a handler parameter: `@Account() account`. */
const Account = createParamDecorator(
  (_data: unknown, context: ExecutionContext): string =>
    context.switchToHttp().getResponse<Response>().locals.accountId,
);

@Controller("payments")
export class PaymentsController {
  constructor(@Inject(SETTINGS) private readonly settings: Settings) {}

  @Post() // 201, Nest's default for POST
  create(@Body() body: unknown, @Account() account: string, @Res({ passthrough: true }) res: Response): Payment {
    const { amount, currency = "usd" } = (body ?? {}) as { amount?: unknown; currency?: unknown };
    if (
      !Number.isSafeInteger(amount) ||
      (amount as number) <= 0 ||
      typeof currency !== "string" ||
      !/^[a-z]{3}$/.test(currency)
    ) {
      // Stored too (4xx are answers): the same request retried gets the same refusal.
      throw new Problem(400, "invalid_payment", "amount must be a positive integer (cents), currency 3 letters");
    }
    const payment = {
      id: `pay_${crypto.randomUUID().replaceAll("-", "")}`,
      amount: amount as number,
      currency,
      account,
      created: new Date().toISOString(),
    };
    this.settings.db.payments.set(payment.id, payment); // charge the card, write the row…
    res.location(`/payments/${payment.id}`);
    return payment;
  }

  @Get(":id")
  read(@Param("id") id: string, @Account() account: string): Payment {
    const payment = this.settings.db.payments.get(id);
    if (payment === undefined || payment.account !== account) throw new Problem(404, "not_found", "no such payment");
    return payment;
  }
}
