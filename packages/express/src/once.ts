/** One pass of each middleware per request, with Express's request made cheap to add to first. */

import type { IncomingMessage, ServerResponse } from "node:http";
import { passedBefore as passedBeforeOn } from "@interlock/core";
import { useDictionaryProperties } from "./dictionary-mode.js";

/**
 * Core's `passedBefore` on `req`, once `useDictionaryProperties` has made additions to `req` and
 * `res` cheap (see dictionary-mode.ts): the mark is the first of them.
 */
export function passedBefore(req: IncomingMessage, res: ServerResponse, passed: symbol): boolean {
  if ((req as IncomingMessage & Record<symbol, unknown>)[passed]) return true;
  useDictionaryProperties(req, res);
  return passedBeforeOn(req, passed);
}
