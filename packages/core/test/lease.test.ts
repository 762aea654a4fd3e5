/** LeaseKeeper: the leases it holds, renewed on one timer until released or out of renewals. */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { InterlockStore } from "../src/index.js";
import { LeaseKeeper } from "../src/store/lease.js";

/** A store that only records which keys were extended, tick by tick. */
function extendsOf() {
  const extended: string[] = [];
  const extend = async (key: string) => {
    extended.push(key);
    return true;
  };
  const store = { extend } as unknown as InterlockStore;
  return { store, take: () => extended.splice(0).sort() };
}

describe("LeaseKeeper", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("renews every lease still held, each for its own count; a released one (first, middle or last) is never renewed again", async () => {
    const { store, take } = extendsOf();
    const keeper = new LeaseKeeper(store, 300, 2); // every 100 ms, twice each
    const a = keeper.hold("a", "ta");
    const b = keeper.hold("b", "tb");
    const c = keeper.hold("c", "tc");
    const d = keeper.hold("d", "td");
    keeper.release(b);
    keeper.release(b); // twice: nothing more
    await vi.advanceTimersByTimeAsync(100);
    expect(take()).toEqual(["a", "c", "d"]);
    keeper.release(d); // the last one held
    const e = keeper.hold("e", "te");
    await vi.advanceTimersByTimeAsync(100);
    expect(take()).toEqual(["a", "c", "e"]); // a and c: out of renewals now
    await vi.advanceTimersByTimeAsync(100);
    expect(take()).toEqual(["e"]); // its second: out of renewals too
    expect(vi.getTimerCount()).toBe(0); // nothing held: the timer stopped
    keeper.release(a); // out of renewals already: nothing to unlink
    keeper.release(c);
    keeper.release(e);
    const f = keeper.hold("f", "tf");
    keeper.hold("g", "tg");
    keeper.release(f);
    await vi.advanceTimersByTimeAsync(100);
    expect(take()).toEqual(["g"]);
  });

  it("leaves a lease another keeper holds as it is: released through the wrong keeper, it is still its own keeper's to release", async () => {
    const { store, take } = extendsOf();
    const mine = new LeaseKeeper(store, 300, 2);
    const theirs = new LeaseKeeper(store, 300, 2);
    const a = mine.hold("a", "ta");
    mine.hold("b", "tb");
    new LeaseKeeper(store, 300, 2).release(a); // a keeper holding nothing
    theirs.hold("c", "tc");
    theirs.release(a); // a ticket settled by another engine
    await vi.advanceTimersByTimeAsync(100);
    expect(take()).toEqual(["a", "b", "c"]);
    mine.release(a);
    await vi.advanceTimersByTimeAsync(100);
    expect(take()).toEqual(["b", "c"]);
  });

  it("stops renewing a lease the store answered lost, and keeps renewing the others", async () => {
    const extended: string[] = [];
    const extend = async (key: string) => {
      extended.push(key);
      return key !== "lost";
    };
    const keeper = new LeaseKeeper({ extend } as unknown as InterlockStore, 300, 5);
    keeper.hold("lost", "tl");
    keeper.hold("kept", "tk");
    await vi.advanceTimersByTimeAsync(500);
    expect(extended.filter((key) => key === "lost")).toEqual(["lost"]); // once, not its 5 renewals
    expect(extended.filter((key) => key === "kept")).toHaveLength(5);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("renews on whole milliseconds: a third of a 1,000 ms lease is 334 ms", async () => {
    const { store, take } = extendsOf();
    const setInterval = vi.spyOn(globalThis, "setInterval");
    const keeper = new LeaseKeeper(store, 1_000, 1);
    keeper.hold("a", "ta");
    expect(setInterval).toHaveBeenCalledWith(expect.any(Function), 334);
    await vi.advanceTimersByTimeAsync(333);
    expect(take()).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(take()).toEqual(["a"]);
    setInterval.mockRestore();
  });

  it("renews nothing, and holds nothing, with no renewals", async () => {
    const { store, take } = extendsOf();
    const keeper = new LeaseKeeper(store, 300, 0);
    expect(keeper.hold("a", "ta")).toBeUndefined();
    await vi.advanceTimersByTimeAsync(500);
    expect(take()).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);
  });
});
