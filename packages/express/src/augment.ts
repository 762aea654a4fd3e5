import type { VerifiedWebhook } from "@interlock/core";

/**
 * This declaration view's key in `InterlockVerifiedWebhookTypes`: the package ships its
 * declarations twice (index.d.ts, index.d.cts), and each view's `declare const` is a symbol of its own.
 */
declare const thisView: unique symbol;

/** The intersection of the union's members: a value of every one of them. */
type EveryOf<U> = (U extends unknown ? (member: U) => void : never) extends (all: infer I) => void ? I : never;

declare global {
  /**
   * Core's `VerifiedWebhook` as each declaration view of an adapter in the program names it. A
   * TypeScript program can see both the ESM and the CommonJS declarations of core and of an
   * adapter (`.mts` and `.cts` files in one project), and a class with private fields is then
   * two types. One global property naming either would be declared twice with two types (a
   * compile error), so each view adds its own key here, and `req.webhook` is a delivery of every
   * view's type: exactly core's `VerifiedWebhook` where there is one view, as in most programs.
   */
  interface InterlockVerifiedWebhookTypes {
    [thisView]: VerifiedWebhook;
  }

  namespace Express {
    interface Request {
      /** The verified delivery, set by `webhook()` before the route runs: core's `VerifiedWebhook`. */
      webhook?: EveryOf<InterlockVerifiedWebhookTypes[keyof InterlockVerifiedWebhookTypes]>;
    }
  }
}
