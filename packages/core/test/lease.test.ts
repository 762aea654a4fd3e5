/**
 * LeaseKeeper: the leases it holds, renewed until released or out of renewals: on one timer where
 * timers are the process's (Node here), on one per lease where they are the request's.
 */
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
    expect(vi.getTimerCount()).toBe(1); // one for all of them
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

describe("LeaseKeeper where timers are the request's", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.unstubAllGlobals();
    vi.restoreAllMocks();
    vi.useRealTimers();
  });

  it("on Cloudflare Workers (timers of Node's shape with nodejs_compat): each lease has its own timer, set when held and cleared when let go, so a lease held after an earlier request ended is renewed", async () => {
    vi.stubGlobal("navigator", { userAgent: "Cloudflare-Workers" });
    const { store, take } = extendsOf();
    const keeper = new LeaseKeeper(store, 300, 2); // every 100 ms, twice each
    const first = keeper.hold("first", "t1");
    expect(vi.getTimerCount()).toBe(1);
    keeper.release(first); // its request ended: its timer went with it
    expect(vi.getTimerCount()).toBe(0);
    const a = keeper.hold("a", "ta");
    const b = keeper.hold("b", "tb");
    expect(vi.getTimerCount()).toBe(2); // one each, set in the request that holds it
    await vi.advanceTimersByTimeAsync(100);
    expect(take()).toEqual(["a", "b"]);
    keeper.release(a);
    keeper.release(a); // twice: nothing more
    new LeaseKeeper(store, 300, 2).release(b); // another keeper's: left as it is
    expect(vi.getTimerCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(100);
    expect(take()).toEqual(["b"]); // its second: out of renewals, its timer cleared
    expect(vi.getTimerCount()).toBe(0);
    keeper.release(b);
  });

  it("on Cloudflare Workers without navigator (no_global_navigator): each lease still has its own timer", async () => {
    vi.stubGlobal("navigator", undefined);
    vi.stubGlobal("WebSocketPair", class WebSocketPair {}); // a global of Workers' alone
    const { store, take } = extendsOf();
    const keeper = new LeaseKeeper(store, 300, 2);
    keeper.release(keeper.hold("first", "t1")); // its request ended: its timer went with it
    expect(vi.getTimerCount()).toBe(0);
    const a = keeper.hold("a", "ta");
    expect(a?.timer).toBeDefined();
    expect(vi.getTimerCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(100);
    expect(take()).toEqual(["a"]);
    keeper.release(a);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("stops a lease's own timer when the store answers it lost", async () => {
    vi.stubGlobal("navigator", { userAgent: "Cloudflare-Workers" });
    const extended: string[] = [];
    const extend = async (key: string) => {
      extended.push(key);
      return key !== "lost";
    };
    const keeper = new LeaseKeeper({ extend } as unknown as InterlockStore, 300, 5);
    keeper.hold("lost", "tl");
    const kept = keeper.hold("kept", "tk");
    await vi.advanceTimersByTimeAsync(300);
    expect(extended.filter((key) => key === "lost")).toEqual(["lost"]); // once, not its 5 renewals
    expect(extended.filter((key) => key === "kept")).toHaveLength(3);
    expect(vi.getTimerCount()).toBe(1);
    keeper.release(kept);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("where a timer is a number (Deno, browsers): each lease has its own timer, unref'd on Deno", async () => {
    const fakeSetInterval = globalThis.setInterval;
    // A platform's timer id, a number: nothing to unref.
    vi.spyOn(globalThis, "setInterval").mockImplementation(((callback: () => void, ms: number) =>
      Number(fakeSetInterval(callback, ms))) as typeof setInterval);
    const unrefTimer = vi.fn();
    vi.stubGlobal("Deno", { unrefTimer });
    const { store, take } = extendsOf();
    const keeper = new LeaseKeeper(store, 300, 2);
    const a = keeper.hold("a", "ta");
    keeper.hold("b", "tb");
    expect(vi.getTimerCount()).toBe(2);
    expect(unrefTimer.mock.calls).toEqual([[a?.timer], [expect.any(Number)]]);
    expect(typeof a?.timer).toBe("number");
    await vi.advanceTimersByTimeAsync(100);
    expect(take()).toEqual(["a", "b"]);
    keeper.release(a);
    expect(vi.getTimerCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(100);
    expect(take()).toEqual(["b"]);
    expect(vi.getTimerCount()).toBe(0);
  });
});
