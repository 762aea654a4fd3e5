/**
 * The extra request parameters an app passes (`params`), checked against the ones a flow sets
 * itself. Given twice, such a parameter would either be sent twice or silently replaced, and a
 * second client authentication breaks RFC 6749 §2.3 (one authentication method per request) and
 * puts a secret where it does not belong. One check for every flow, with each flow's own list.
 */

import { InterlockConfigError } from "@interlock/core";

/** Parameter names a flow sets itself, each with what sets it: the option to use instead, or the flow. */
export type ReservedParams = ReadonlyMap<string, string>;

/**
 * What identifies and authenticates the client: the client's options, in the way its
 * `clientAuthentication` says, never a flow's `params`.
 */
export const CLIENT_PARAMS: ReadonlyArray<readonly [string, string]> = [
  ["client_id", "the client's clientId option"],
  ["client_secret", "the client's clientSecret and clientAuthentication options"],
  ["client_assertion", "the client's clientAuthentication option"],
  ["client_assertion_type", "the client's clientAuthentication option"],
];

/**
 * `params` as a list of name and value, refusing (`InterlockConfigError`, naming what to use
 * instead) a name in `reserved` or a value that is not a string. `where` names the option.
 */
export function extraParams(
  params: Record<string, string> | undefined,
  where: string,
  reserved: ReservedParams,
): Array<[string, string]> {
  if (params === undefined) return [];
  const entries = Object.entries(params);
  for (const [name, value] of entries) {
    const setBy = reserved.get(name);
    if (setBy !== undefined) throw new InterlockConfigError(`${where}: "${name}" is set by ${setBy}`);
    if (typeof value !== "string") throw new InterlockConfigError(`${where}: "${name}" must be a string`);
  }
  return entries;
}
