/**
 * One statement at a time on a single connection. A `pg.Client`, or the client of a caller's
 * transaction, runs one query at a time: `pg` queues a second one itself, but deprecates that
 * (it is gone in pg 9), and says so on every process that does it. A store handed such a
 * connection queues its own statements here instead, so concurrent operations take turns.
 */

const tails = new WeakMap<object, Promise<void>>();
const settled = () => {};

/**
 * Runs `run` once every call queued before it on `connection` has settled, and settles as it
 * does. `run` is called only when its turn comes: a caller bounded by a deadline checks it
 * there, so a statement it already reported as failed is never sent late.
 */
export function inTurn<T>(connection: object, run: () => Promise<T>): Promise<T> {
  const turn = (tails.get(connection) ?? Promise.resolve()).then(run);
  const tail = turn.then(settled, settled);
  tails.set(connection, tail);
  tail.then(() => {
    if (tails.get(connection) === tail) tails.delete(connection);
  });
  return turn;
}
