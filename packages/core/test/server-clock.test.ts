import { describe, expect, it, vi } from "vitest";
import {
  DEADLINE_MARGIN_MS,
  deadlineStoreCall,
  InterlockConfigError,
  ServerClock,
  StoreUnavailableError,
} from "../src/index.js";

/** A clock whose local time the test sets. */
function clockAt(start = 1_000, refreshAfterMs = 15_000) {
  let local = start;
  const clock = new ServerClock({ now: () => local, refreshAfterMs });
  return {
    clock,
    set: (ms: number) => {
      local = ms;
    },
  };
}

describe("ServerClock", () => {
  it("has no bound and no deadline before its first sample", () => {
    const { clock } = clockAt();
    expect(clock.offsetBound()).toBeUndefined();
    expect(clock.deadline(1_000, 500)).toBeUndefined();
  });

  it("bounds server − local by server time minus sending time, and keeps the smallest", () => {
    const { clock, set } = clockAt(1_000);
    // Server 5,000 ms ahead; the first reply took 40 ms to be made, the second 3 ms.
    clock.observe(1_000, 6_040);
    expect(clock.offsetBound()).toBe(5_040);
    set(2_000);
    clock.observe(1_990, 6_993);
    expect(clock.offsetBound()).toBe(5_003);
    // A slower reply does not loosen it.
    clock.observe(1_995, 7_100);
    expect(clock.offsetBound()).toBe(5_003);
  });

  it("puts the deadline at sending time + timeout + bound, rounded up, plus the margin", () => {
    const { clock } = clockAt(1_000);
    clock.observe(1_000.4, 6_000);
    expect(clock.offsetBound()).toBeCloseTo(4_999.6, 9);
    // 2,000.25 + 500 + 4,999.6 = 7,499.85 -> 7,500.
    expect(clock.deadline(2_000.25, 500)).toBe(7_500 + DEADLINE_MARGIN_MS);
  });

  it("a server behind the local clock gives a negative bound", () => {
    const { clock } = clockAt(10_000);
    clock.observe(10_000, 7_001);
    expect(clock.offsetBound()).toBe(-2_999);
    expect(clock.deadline(10_000, 1_000)).toBe(8_001 + DEADLINE_MARGIN_MS);
  });

  it("takes any fresh sample once its bound is older than refreshAfterMs, even a looser one", () => {
    const { clock, set } = clockAt(0, 500);
    clock.observe(0, 100);
    set(500);
    clock.observe(500, 700); // looser, and the bound is only refreshAfterMs old: kept
    expect(clock.offsetBound()).toBe(100);
    set(501);
    clock.observe(501, 701); // looser, and the bound is older: replaced
    expect(clock.offsetBound()).toBe(200);
  });

  it("never lets its bound expire: a store called rarely still sends deadlines", () => {
    const { clock, set } = clockAt(0, 500);
    clock.observe(0, 100);
    set(3_600_000); // an hour without a reply
    expect(clock.offsetBound()).toBe(100);
    expect(clock.deadline(3_600_000, 100)).toBe(3_600_200 + DEADLINE_MARGIN_MS);
    clock.observe(3_600_000, 3_600_148); // the next reply refreshes it, looser as it is
    expect(clock.offsetBound()).toBe(148);
  });

  it("a sample as small as the bound keeps it from being replaced by a looser one", () => {
    const { clock, set } = clockAt(0, 500);
    clock.observe(0, 100);
    set(450);
    clock.observe(450, 550);
    set(900);
    clock.observe(900, 1_050); // looser, but the bound was confirmed at 450
    expect(clock.offsetBound()).toBe(100);
  });

  it("after a refusal that reached the caller, takes that reply's sample and holds it for refreshAfterMs", () => {
    const { clock, set } = clockAt(0, 500);
    clock.observe(0, 100);
    // A node 3 s ahead refused a write sent at 10: its reply came back in time.
    set(20);
    clock.refused(10, 3_115);
    expect(clock.offsetBound()).toBe(3_105);
    // Replies from the node that gave the old bound do not lower it while it is held ...
    set(400);
    clock.observe(400, 501);
    expect(clock.offsetBound()).toBe(3_105);
    // ... and past refreshAfterMs any fresh sample replaces it.
    set(521);
    clock.observe(521, 622);
    expect(clock.offsetBound()).toBe(101);
  });

  it("a refusal never lowers the bound", () => {
    const { clock } = clockAt(0);
    clock.observe(0, 500);
    clock.refused(0, 200);
    expect(clock.offsetBound()).toBe(500);
  });

  it("ignores a reply without a usable server time", () => {
    const { clock } = clockAt(0);
    clock.observe(0, Number.NaN);
    clock.refused(0, Number.POSITIVE_INFINITY);
    expect(clock.offsetBound()).toBeUndefined();
  });

  it("refuses a refreshAfterMs that is not a positive whole number of ms", () => {
    expect(() => new ServerClock({ refreshAfterMs: 0 })).toThrow(InterlockConfigError);
    expect(() => new ServerClock({ refreshAfterMs: 1.5 })).toThrow(InterlockConfigError);
  });

  it("measures local time on the epoch's scale, monotonically", () => {
    const clock = new ServerClock();
    const first = clock.now();
    expect(clock.now()).toBeGreaterThanOrEqual(first);
    expect(Math.abs(first - Date.now())).toBeLessThan(60 * 60 * 1_000);
  });
});

describe("deadlineStoreCall", () => {
  const call = { store: "test", operation: "write", timeoutMs: 500 };
  /** A reply as the fake server makes it: its time and whether it refused. */
  const reply = (serverMs: number, late = false) => ({ serverMs, late });

  it("sends no deadline before the first reply, then one from that reply's sample", async () => {
    const { clock, set } = clockAt(1_000);
    const sent: Array<number | undefined> = [];
    const send = async (notAfter: number | undefined) => {
      sent.push(notAfter);
      return reply(9_000);
    };
    expect(await deadlineStoreCall(clock, call, send, (r) => r)).toEqual(reply(9_000));
    set(1_100);
    await deadlineStoreCall(clock, call, send, (r) => r);
    // Bound 9,000 − 1,000 = 8,000; sent at 1,100 with 500 ms to wait.
    expect(sent).toEqual([undefined, 1_100 + 500 + 8_000 + DEADLINE_MARGIN_MS]);
  });

  it("with a probe, never sends without a deadline: the probe first, then the command with one from its sample", async () => {
    const { clock, set } = clockAt(1_000);
    const sent: Array<number | undefined> = [];
    const send = async (notAfter: number | undefined) => {
      sent.push(notAfter);
      return reply(9_050);
    };
    let probes = 0;
    const probe = async () => {
      probes++;
      set(1_020); // the probe's round trip
      return { serverMs: 9_000 };
    };
    expect(await deadlineStoreCall(clock, call, send, (r) => r, probe)).toEqual(reply(9_050));
    // Bound 9,000 − 1,000 = 8,000; the deadline counts from before the probe (1,000).
    expect(sent).toEqual([1_000 + 500 + 8_000 + DEADLINE_MARGIN_MS]);
    await deadlineStoreCall(clock, call, send, (r) => r, probe);
    expect([probes, sent.length]).toEqual([1, 2]); // a sample known: no probe
  });

  it("a probe that tells no usable time sends nothing: the command never goes without a deadline", async () => {
    const { clock } = clockAt(1_000);
    const send = vi.fn(async () => reply(0));
    const probe = async () => ({ serverMs: Number.NaN });
    await expect(deadlineStoreCall(clock, call, send, (r) => r, probe)).rejects.toBeInstanceOf(StoreUnavailableError);
    expect(send).not.toHaveBeenCalled();
  });

  it("a probe's own answer settles the call: the command is not sent", async () => {
    const { clock } = clockAt(1_000);
    const send = vi.fn(async () => reply(0));
    const answer = { serverMs: 9_000, late: false, taken: true };
    const probe = async () => ({ serverMs: 9_000, answer });
    expect(await deadlineStoreCall(clock, call, send, (r) => r, probe)).toBe(answer);
    expect(send).not.toHaveBeenCalled();
    expect(clock.offsetBound()).toBe(8_000);
  });

  it("a probe answered after its caller gave up sends nothing, and teaches the clock nothing", async () => {
    const { clock } = clockAt(1_000);
    const send = vi.fn(async () => reply(0));
    let answerProbe: (value: { serverMs: number }) => void = () => {};
    const probe = () => new Promise<{ serverMs: number }>((resolve) => (answerProbe = resolve));
    const quick = { ...call, timeoutMs: 20 };
    await expect(deadlineStoreCall(clock, quick, send, (r) => r, probe)).rejects.toBeInstanceOf(StoreUnavailableError);
    answerProbe({ serverMs: 60_000 }); // the outage counted in: a loose sample
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(send).not.toHaveBeenCalled();
    expect(clock.offsetBound()).toBeUndefined();
  });

  it("turns a late refusal into StoreUnavailableError, and the refusing reply raises the bound", async () => {
    const { clock, set } = clockAt(1_000);
    await deadlineStoreCall(
      clock,
      call,
      async () => reply(1_000),
      (r) => r,
    );
    expect(clock.offsetBound()).toBe(0);
    set(2_000);
    const refused = deadlineStoreCall(
      clock,
      call,
      async () => reply(4_000, true),
      (r) => r,
    );
    await expect(refused).rejects.toBeInstanceOf(StoreUnavailableError);
    await expect(refused).rejects.toThrow("write reached the server after its 500 ms deadline");
    expect(clock.offsetBound()).toBe(2_000);
  });

  it("a reply it cannot read, a failed send and no answer in time are StoreUnavailableError", async () => {
    const { clock } = clockAt();
    const unreadable = deadlineStoreCall(
      clock,
      call,
      async () => "?",
      () => {
        throw new Error("unexpected reply");
      },
    );
    await expect(unreadable).rejects.toBeInstanceOf(StoreUnavailableError);
    const failed = deadlineStoreCall(
      clock,
      call,
      () => Promise.reject(new Error("closed")),
      () => reply(0),
    );
    await expect(failed).rejects.toBeInstanceOf(StoreUnavailableError);
    const silent = deadlineStoreCall(
      clock,
      { ...call, timeoutMs: 5 },
      () => new Promise(() => {}),
      () => reply(0),
    );
    await expect(silent).rejects.toThrow("write got no answer in 5 ms");
    expect(clock.offsetBound()).toBeUndefined();
  });
});
