/**
 * Option names, checked at set-up. A misspelt option is otherwise silently ignored and its
 * default used, which in this library can be a hole rather than an inconvenience: `principl:`
 * for `principal:` scopes every user's keys together, `requred: true` lets keyless requests
 * through. TypeScript refuses such a name in an object literal, but not in a config object
 * built elsewhere, nor in JavaScript.
 */

import { InterlockConfigError } from "./errors.js";

/** Every key of any member of a union (`keyof` of a union keeps only the shared ones). */
type KeysOfUnion<T> = T extends unknown ? keyof T : never;

/**
 * Each option name of `T`, and no other, mapped to `true`: a name added to the options type
 * and not here (or misspelt here) fails to compile, so the list never falls behind the type.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export type OptionNameList<T> = { readonly [K in KeysOfUnion<T> & string]-?: true };

/**
 * The names of an options type, listed once as an `OptionNameList`.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export function optionNames<T>(names: OptionNameList<T>): readonly string[] {
  return Object.keys(names);
}

/**
 * Refuses an options object with a name none of `lists` knows, naming the closest known one
 * when the unknown name looks like a slip of it. `what` names the call in the message
 * (`"idempotency()"`). Nothing given (`undefined`) has nothing to check.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export function assertOptionNames(
  what: string,
  options: object | undefined,
  ...lists: ReadonlyArray<readonly string[]>
): void {
  if (options === undefined || options === null) return;
  if (typeof options !== "object")
    throw new InterlockConfigError(`${what} takes an options object, not a ${typeof options}`);
  for (const name of Object.keys(options)) {
    if (lists.some((list) => list.includes(name))) continue;
    const near = closest(name, lists.flat());
    const hint = near === undefined ? "" : `: did you mean "${near}"?`;
    throw new InterlockConfigError(`${what} has no option "${name}"${hint}`);
  }
}

/**
 * The known name that `name` most likely means: the same but for case, or at most two edits
 * away (one for a name under six letters, none under three: `ts` is not a slip of `id`), or
 * else the one known name that starts with it (`lengthened`).
 */
function closest(name: string, known: readonly string[]): string | undefined {
  const lower = name.toLowerCase();
  const sameLetters = known.find((k) => k.toLowerCase() === lower);
  if (sameLetters !== undefined) return sameLetters;
  return misspelt(lower, known) ?? lengthened(lower, known);
}

/** The known name within the allowed edits of `lower` (see `closest`), the nearest one. */
function misspelt(lower: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.min(2, Math.floor(lower.length / 3)) + 1;
  for (const candidate of known) {
    const distance = editDistance(lower, candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

/**
 * The one known name that starts with `lower`, when exactly one does: an option renamed to
 * carry its unit (`tolerance`, now `toleranceSeconds`) or its role (`header`, `headerName`) is
 * found by its old name. Several such names (`max`) would be a guess; under three letters, too.
 */
function lengthened(lower: string, known: readonly string[]): string | undefined {
  if (lower.length < 3) return undefined;
  const longer = new Set(known.filter((k) => k.toLowerCase().startsWith(lower)));
  return longer.size === 1 ? [...longer][0] : undefined;
}

/** Levenshtein distance: insertions, deletions and substitutions. Option names are short. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] as number) + 1, (current[j - 1] as number) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] as number;
}
