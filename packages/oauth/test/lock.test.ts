/**
 * The cross-process lock a token request is made under (`exclusive`), driven directly against a
 * memory store: the steps a lost race between processes takes, which the flows' own tests reach
 * only by chance.
 */

import { describe, expect, it } from "vitest";
import { OAuthResponseError } from "../src/errors.js";
import { exclusive } from "../src/store/lock.js";
import { MemoryTokenStore } from "../src/store/memory.js";

describe("exclusive", () => {
  it("looks again once it holds the lock: a value another process stored meanwhile is taken, nothing produced", async () => {
    const store = new MemoryTokenStore();
    let looks = 0;
    let produced = 0;
    const value = await exclusive({
      store,
      lockKey: "lock:recheck",
      lockTtlMs: 1_000,
      // Nothing at the first look; another process's token is there by the time the lock is ours.
      ready: async () => (++looks === 1 ? undefined : "theirs"),
      produce: async () => `ours-${++produced}`,
    });
    expect(value).toBe("theirs");
    expect(produced).toBe(0);
    expect(await store.get("lock:recheck")).toBeUndefined(); // released
  });

  it("releases only its own lock: one whose lease ran out and was taken by another process stays", async () => {
    const store = new MemoryTokenStore();
    let theirs: string | undefined;
    await exclusive({
      store,
      lockKey: "lock:fenced",
      lockTtlMs: 20,
      ready: async () => undefined,
      produce: async () => {
        // The request outlasts the lease; another process takes the lock meanwhile.
        await new Promise((resolve) => setTimeout(resolve, 40));
        theirs = await store.set("lock:fenced", "locked", { ttlMs: 1_000, expect: null });
        return "value";
      },
    });
    expect(theirs).toBeTypeOf("string");
    expect((await store.get("lock:fenced"))?.version).toBe(theirs);
  });

  it("gives up with server_unavailable after two leases when the lock's holder never delivers", async () => {
    const store = new MemoryTokenStore();
    await store.set("lock:stuck", "locked", { ttlMs: 60_000, expect: null }); // a holder that keeps failing
    const started = performance.now();
    const error = await exclusive({
      store,
      lockKey: "lock:stuck",
      lockTtlMs: 40,
      ready: async () => undefined,
      produce: async () => "never",
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OAuthResponseError);
    expect(error).toMatchObject({ code: "server_unavailable" });
    expect(performance.now() - started).toBeGreaterThanOrEqual(80);
  }, 2_000);
});
