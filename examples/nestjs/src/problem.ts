// Every error as RFC 9457 problem+json, like Interlock's own answers: one exception filter for
// what the controllers throw, what Nest throws (a body its JSON parser refuses, an unknown
// route) and anything unexpected.
import { STATUS_CODES } from "node:http";
import { InterlockError } from "@interlock/core";
import { type ArgumentsHost, Catch, type ExceptionFilter, HttpException, Logger } from "@nestjs/common";
import type { Response } from "express";

/** An HttpException that says which problem it is: `throw new Problem(404, "not_found", "no such payment")`. */
export class Problem extends HttpException {
  constructor(
    status: number,
    readonly code: string,
    detail: string,
  ) {
    super(detail, status);
  }
}

export function sendProblem(res: Response, status: number, code: string, detail: string): void {
  const body = { type: `urn:example:problem:${code}`, title: code.replaceAll("_", " "), status, detail, code };
  res.status(status).type("application/problem+json").send(JSON.stringify(body));
}

/**
 * A global filter (`app.useGlobalFilters(new ProblemFilter())`). What it answers decides what
 * Interlock does, as any answer: a 2xx records a webhook delivery, anything else releases it; a
 * 5xx releases an idempotency key, so the retry runs again, while a 4xx is stored and replayed.
 */
@Catch()
export class ProblemFilter implements ExceptionFilter {
  private readonly logger = new Logger("ProblemFilter");

  catch(exception: unknown, host: ArgumentsHost): void {
    // Interlock's own 4xx a controller let through (a delivery's `payload` that is not JSON:
    // `WebhookPayloadError`, 400) is its problem as Interlock words it, as its middlewares answer.
    if (exception instanceof InterlockError && exception.status < 500) {
      const response = host.switchToHttp().getResponse<Response>();
      response.status(exception.status).type("application/problem+json").send(JSON.stringify(exception.toProblem()));
      return;
    }
    const { status, code, detail } = this.problemOf(exception);
    sendProblem(host.switchToHttp().getResponse<Response>(), status, code, detail);
  }

  /** A Problem as it says; Nest's own 4xx (a body its parser refused, no such route) by its status; anything else 500. */
  private problemOf(exception: unknown): { status: number; code: string; detail: string } {
    if (exception instanceof Problem) {
      return { status: exception.getStatus(), code: exception.code, detail: exception.message };
    }
    if (exception instanceof HttpException && exception.getStatus() < 500) {
      const status = exception.getStatus();
      const code = (STATUS_CODES[status] ?? "client error").toLowerCase().replaceAll(/\W+/g, "_");
      return { status, code, detail: exception.message };
    }
    this.logger.error(exception); // details in the log, not in the answer
    return { status: 500, code: "internal_error", detail: "" };
  }
}
