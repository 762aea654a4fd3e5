/**
 * A start-up check for receivers that share de-duplication keys by mistake. A delivery is
 * claimed under `wh:<scheme>:<id>`, with nothing of the secret in it (a redelivery signed with
 * a rotated secret must stay a duplicate), so two receivers of one scheme for two accounts,
 * tenants or providers on one store share one key space: a delivery of the second whose id the
 * first already processed is acknowledged as a duplicate and never processed. A delivery cannot
 * tell, but the receivers can as they are made: on one store object, in one key space, with
 * secrets that have no key in common. Those are reported once, naming the fix, `namespace`.
 * Receivers whose secrets share a key are one sender rotating its secret (`[old]`, then
 * `[old, new]`), or copies of one receiver: not reported.
 */

import { processWarning, SHARED_DELIVERY_KEYS_WARNING } from "../events.js";

/** What receivers of one key space on one store verified with, until a warning says the rest. */
interface KeySpace {
  /** Digests of every key those receivers verify with (`keyDigests`); undefined once reported. */
  digests: Set<string> | undefined;
}

/**
 * Key spaces by store object: weakly, so a store that is dropped takes them with it. Receivers
 * on two store objects over one Redis or table are not seen: a process-wide registry by
 * connection would be guesswork.
 */
const spacesByStore = new WeakMap<object, Map<string, KeySpace>>();

/** Digests kept per key space: copies of one receiver add none, so only a bug could reach it. */
const MAX_DIGESTS = 256;

/** The receivers still waiting for their digests, in the order they were made; undefined when none waits. */
let inOrder: Promise<void> | undefined;

/**
 * Notes a receiver made on `store` in the key `space` (`wh:<scheme>`, `wh@<namespace>:<scheme>`)
 * with keys of these `digests`, and warns once per space when they have none in common with
 * the receivers noted there before.
 */
export function noteKeySpace(
  store: object,
  space: string,
  digests: readonly string[] | Promise<readonly string[]>,
  scheme: string,
  namespace: string | undefined,
): void {
  if (!(digests instanceof Promise) && inOrder === undefined) {
    note(store, space, digests, scheme, namespace);
    return;
  }
  // Web Crypto hashes asynchronously, and its digests may come back in any order: noted in the
  // order the receivers were made, or a rotation made [old], [new, old], [new] would see [new]
  // before [new, old] and be reported. A rejection would be a bug of the port, not a warning.
  const noted: Promise<void> = (inOrder ?? Promise.resolve())
    .then(() => digests)
    .then((known) => note(store, space, known, scheme, namespace))
    .catch(() => {});
  inOrder = noted;
  void noted.then(() => {
    if (inOrder === noted) inOrder = undefined;
  });
}

/** `noteKeySpace` with the digests at hand, in the order the receivers were made. */
/** Settles once every receiver made so far has been noted (and any warning emitted is queued): for tests. */
export function keySpacesNoted(): Promise<void> {
  return inOrder ?? Promise.resolve();
}

function note(
  store: object,
  space: string,
  digests: readonly string[],
  scheme: string,
  namespace: string | undefined,
): void {
  if (digests.length === 0) return; // no key verifies: nothing to compare
  let spaces = spacesByStore.get(store);
  if (spaces === undefined) {
    spaces = new Map();
    spacesByStore.set(store, spaces);
  }
  const seen = spaces.get(space);
  if (seen === undefined) {
    spaces.set(space, { digests: new Set(digests) });
    return;
  }
  const known = seen.digests;
  if (known === undefined) return; // reported already
  if (digests.some((digest) => known.has(digest))) {
    for (const digest of digests) if (known.size < MAX_DIGESTS) known.add(digest);
    return;
  }
  seen.digests = undefined;
  processWarning(SHARED_DELIVERY_KEYS_WARNING, sharedKeysMessage(space, scheme, namespace));
}

function sharedKeysMessage(space: string, scheme: string, namespace: string | undefined): string {
  const where = namespace === undefined ? "and no namespace" : `and the same namespace ${JSON.stringify(namespace)}`;
  return (
    `two webhook receivers of scheme "${scheme}" on one store have different secrets ${where}: ` +
    `they share one de-duplication key space (${space}:<id>), so a delivery to one whose id the other ` +
    "already processed is answered as a duplicate and never processed. Give each receiver (each account, " +
    'tenant or provider) its own namespace: createWebhookReceiver({ ..., namespace: "tenant-a" }). ' +
    "Receivers that share a secret (one being rotated: [old], then [old, new]) are not reported."
  );
}
