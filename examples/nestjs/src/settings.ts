// What the app is configured with, provided to the module and controllers under one token.
import type { InterlockStore } from "@interlock/core";

/** The injection token of the app's settings (named explicitly: see tsconfig.json). */
export const SETTINGS = Symbol("settings");

export interface Payment {
  id: string;
  amount: number;
  currency: string;
  account: string;
  created: string;
}

/** Stands in for your database: what the handlers did, so you (and the test) can look. */
export function memoryDb() {
  return { fulfilled: [] as string[], payments: new Map<string, Payment>() };
}

export interface Settings {
  /** The endpoint's `whsec_…` signing secret (a list while rotating). */
  stripeSecret: string | string[];
  /** API key → account id, for `Authorization: Bearer <api key>`. */
  apiKeys: Map<string, string>;
  /** Memory by default: one process only. */
  store: InterlockStore;
  db: ReturnType<typeof memoryDb>;
}
