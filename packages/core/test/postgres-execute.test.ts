/**
 * `executePostgres` with a cancel: a statement on a pool connection still running when its time
 * at the server is up is cancelled, and its own answer is the outcome. On a stand-in pool whose
 * statement answers when told, so each side of the race with the cancel is played in turn (the
 * real server's side: packages/postgres/test/outage.test.ts).
 */
import { describe, expect, it } from "vitest";
import { executePostgres, PostgresDeadline, type PostgresResult } from "../src/index.js";

/** A pool of one connection whose statement settles only when the test says; records releases and queries. */
function standInPool() {
  const released: unknown[] = [];
  const queries: Array<{ query_timeout?: number }> = [];
  let answer: (result: PostgresResult) => void = () => {};
  let fail: (error: Error) => void = () => {};
  const connection = {
    query: (query: { query_timeout?: number }) => {
      queries.push(query);
      return new Promise<PostgresResult>((resolve, reject) => {
        answer = resolve;
        fail = reject;
      });
    },
    release: (destroy?: unknown) => void released.push(destroy),
    on: () => connection,
    removeListener: () => connection,
  };
  const pool = {
    waitingCount: 0,
    query: connection.query,
    connect: (callback: (error: Error | undefined, client: typeof connection) => void) =>
      callback(undefined, connection),
  };
  return {
    pool,
    connection,
    released,
    queries,
    answer: (result: PostgresResult) => answer(result),
    fail: (error: Error) => fail(error),
  };
}

const landed: PostgresResult = { rows: [{ state: "claimed" }], rowCount: 1 };
const queryCanceled = () => Object.assign(new Error("canceling statement due to user request"), { code: "57014" });

describe("executePostgres with a cancel", () => {
  it("a statement that committed before its cancel reached the server is reported as done, not as failed, and its connection is thrown away", async () => {
    const stand = standInPool();
    const cancelled: unknown[] = [];
    const started = performance.now();
    const result = executePostgres(stand.pool, { text: "claim" }, [], new PostgresDeadline(400), async (connection) => {
      cancelled.push(connection);
      stand.answer(landed); // the server finished the statement just as the cancel was sent
    });
    await expect(result).resolves.toEqual(landed);
    expect(cancelled).toEqual([stand.connection]);
    // Sent at its time at the server (300 ms of 400), not at the deadline.
    expect(performance.now() - started).toBeGreaterThanOrEqual(290);
    // A cancel reaching the server after the statement would stop the connection's next one.
    expect(stand.released).toEqual([true]);
    // pg's own timeout would drop the statement's answer.
    expect(stand.queries[0]).not.toHaveProperty("query_timeout");
  });

  it("a statement the cancel stopped fails with the server's error, and its connection is thrown away", async () => {
    const stand = standInPool();
    const result = executePostgres(stand.pool, { text: "claim" }, [], new PostgresDeadline(400), async () => {
      stand.fail(queryCanceled());
    });
    await expect(result).rejects.toMatchObject({ code: "57014" });
    expect(stand.released).toHaveLength(1);
    expect(stand.released[0]).toBeTruthy();
  });

  it("a statement that answers in time is not cancelled, and its connection is kept", async () => {
    const stand = standInPool();
    let cancels = 0;
    const result = executePostgres(stand.pool, { text: "claim" }, [], new PostgresDeadline(400), async () => {
      cancels++;
    });
    await expect.poll(() => stand.queries.length).toBe(1);
    stand.answer(landed);
    await expect(result).resolves.toEqual(landed);
    expect(cancels).toBe(0);
    expect(stand.released).toEqual([undefined]);
  });
});
