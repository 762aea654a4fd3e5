/**
 * Redis keys for logical keys. Every logical key lives in exactly one Redis key,
 * `${prefix}{${escaped key}}`: the braces are a Redis Cluster hash tag, so the slot is chosen
 * by the whole logical key (keys spread evenly over the masters) and every operation touches
 * one slot.
 */

import { InterlockConfigError } from "@interlock/core";

/**
 * What is escaped in a logical key, so that the mapping never collides and the hash tag
 * always spans the whole key:
 * - `{` and `}`: Redis ends a hash tag at the first `}` (and `a}b` / `a}c` would share a
 *   slot chosen by `a` alone);
 * - `%`, the escape character itself, which keeps the mapping one-to-one.
 * (Lone UTF-16 surrogates, which have no UTF-8 form, never get here: core's `assertKey`
 * refuses them for every store.)
 */
const ESCAPED = /[%{}]/g;

const escapeChar = (char: string): string => `%${char.charCodeAt(0).toString(16).toUpperCase()}`;

/** The one Redis key that holds the lock and then the record of `key`. */
export function redisKey(prefix: string, key: string): string {
  return `${prefix}{${key.replace(ESCAPED, escapeChar)}}`;
}

/**
 * A prefix with a brace would either become the hash tag itself (every key in one slot) or
 * cut ours short, so it is refused rather than silently losing Cluster distribution.
 */
export function assertPrefix(prefix: string): string {
  if (typeof prefix !== "string" || /[{}]/.test(prefix)) {
    throw new InterlockConfigError("redis store prefix must be a string without `{` or `}`");
  }
  return prefix;
}
