/**
 * Cheap property additions on Express's `req` and `res`, on the V8 versions that need it.
 *
 * Express gives every `req` and `res` its own prototype (`Object.setPrototypeOf`, per request).
 * V8 before 13 (Node 20, 22 and 23) caches no hidden-class transition from an object whose
 * prototype was set that way, so each property added afterwards, by Express, the app or
 * Interlock, builds a new hidden class and copies the object's whole descriptor array (about
 * fifty entries on a response), in old space, and every later read of such an object misses
 * V8's lookup caches (nodejs/node#37457). Measured on Node 20 with `bench/`, the half dozen
 * properties Interlock adds per request cost about 40 µs of CPU this way, as much as the rest of
 * its work.
 *
 * An object in dictionary mode keeps its properties in a hash table instead: an addition is an
 * insert, with no hidden class to build. So on those versions both objects are switched to it
 * once, the way V8 itself switches an object whose property is deleted: `req.res` and
 * `res.req` (which Express sets on every request) are deleted and set again, same value.
 * V8 13+ (Node 24) shares the hidden classes, where the switch would only slow lookups: there,
 * and on engines other than V8, nothing is done.
 */

import type { IncomingMessage, ServerResponse } from "node:http";

/** Whether this engine builds a hidden class per property added to an Express `req`/`res`. */
export function copiesHiddenClasses(versions: Record<string, string | undefined> | undefined): boolean {
  if (versions === undefined || versions.bun !== undefined) return false; // Bun reports a V8 it does not run
  const major = Number.parseInt(versions.v8 ?? "", 10);
  return major > 0 && major < 13;
}

const needed = copiesHiddenClasses(globalThis.process?.versions);

/** Switches `req` and `res` to dictionary mode where that makes adding properties cheap (see above). */
export function useDictionaryProperties(req: IncomingMessage, res: ServerResponse): void {
  if (!needed) return;
  reinsert(req, "res");
  reinsert(res, "req");
}

/** Deletes a plain own data property and sets it again, same value. Anything else is left as it is. */
function reinsert(target: object, key: string): void {
  const property = Object.getOwnPropertyDescriptor(target, key);
  if (!property?.writable || !property.enumerable || !property.configurable) return;
  // Deleting the newest property only steps back to the previous hidden class; any older one
  // (Express sets these before its router adds the rest) puts the object in dictionary mode.
  Reflect.deleteProperty(target, key);
  (target as Record<string, unknown>)[key] = property.value;
}
