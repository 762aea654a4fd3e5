import type { VerifiedWebhook } from "@interlock/core";

declare global {
  namespace Express {
    interface Request {
      /** The verified delivery, set by `webhook()` before the route runs. */
      webhook?: VerifiedWebhook;
    }
  }
}
