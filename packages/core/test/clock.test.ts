/**
 * timerDelay: what every package hands the platform's timers; timerOutlivesRequests: whether one
 * timer may serve every request (not on Cloudflare Workers, however they are told); a `now`
 * option that is not a clock, refused, and its readings failing closed (checkedClock).
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  createWebhookReceiver,
  createWebhookVerifier,
  InterlockConfigError,
  MemoryStore,
  signWebhook,
  standardWebhooks,
  timerDelay,
  timerOutlivesRequests,
} from "../src/index.js";

describe("timerDelay", () => {
  it("rounds a delay up to whole milliseconds, so a timer never fires early", () => {
    expect(timerDelay(30)).toBe(30);
    expect(timerDelay(29.85)).toBe(30);
    expect(timerDelay(0.2)).toBe(1);
    expect(timerDelay(0)).toBe(0);
    expect(timerDelay(9_999.000_1)).toBe(10_000);
  });

  it("passes infinite and NaN delays on as they are, for each caller to decide", () => {
    expect(timerDelay(Number.POSITIVE_INFINITY)).toBe(Number.POSITIVE_INFINITY);
    expect(timerDelay(Number.NaN)).toBeNaN();
  });

  it("keeps the delay Node stores on its Timeout an integer (a fractional one would make it a boxed number on every timer)", () => {
    const timer = setTimeout(() => {}, timerDelay(1_000.37)); // a deadline's remainder, say
    const stored = (timer as unknown as { _idleTimeout: number })._idleTimeout; // read before clearTimeout sets it to -1
    clearTimeout(timer);
    expect(stored).toBe(1_001);
  });
});

describe("timerOutlivesRequests", () => {
  afterEach(() => {
    vi.unstubAllGlobals();
  });

  /** A handle of Node's shape, as Node, Bun and Workers with `nodejs_compat` return. */
  const nodeShaped = () => {
    const timer = setTimeout(() => {}, 1_000);
    clearTimeout(timer);
    return timer;
  };

  it("is true of a timer that can be unref'd, on Node (with or without its navigator)", () => {
    expect(timerOutlivesRequests(nodeShaped())).toBe(true);
    vi.stubGlobal("navigator", undefined);
    expect(timerOutlivesRequests(nodeShaped())).toBe(true);
  });

  it("is false of a timer that cannot be unref'd (a number: Deno's, a browser's, Workers' without nodejs_compat)", () => {
    expect(timerOutlivesRequests(1)).toBe(false);
    expect(timerOutlivesRequests(undefined)).toBe(false);
  });

  it("is false on Cloudflare Workers, told by navigator.userAgent, even of a timer of Node's shape", () => {
    vi.stubGlobal("navigator", { userAgent: "Cloudflare-Workers" });
    expect(timerOutlivesRequests(nodeShaped())).toBe(false);
  });

  it("is false on Cloudflare Workers with no_global_navigator (no navigator at all), told by WebSocketPair", () => {
    vi.stubGlobal("navigator", undefined);
    vi.stubGlobal("WebSocketPair", class WebSocketPair {});
    expect(timerOutlivesRequests(nodeShaped())).toBe(false);
  });
});

describe("a `now` option that is not a clock", () => {
  const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  const signedLongAgo = () =>
    signWebhook({ scheme: standardWebhooks, secret: SECRET, body: "{}", timestamp: 1_000_000_000 }); // 2001

  it("is refused where it is given, naming the option: the verifier, the receiver, the memory store", () => {
    for (const now of [5, "Date.now", {}, null]) {
      const bad = { now } as unknown as { now: () => number };
      expect(() => createWebhookVerifier({ scheme: standardWebhooks, secret: SECRET, ...bad })).toThrow(
        new InterlockConfigError("now must be a function returning the time in ms since the epoch"),
      );
      expect(() =>
        createWebhookReceiver({ scheme: standardWebhooks, secret: SECRET, store: new MemoryStore(), ...bad }),
      ).toThrow(InterlockConfigError);
      expect(() => new MemoryStore(bad)).toThrow(InterlockConfigError);
    }
  });

  it.each([
    ["undefined", () => undefined],
    ["NaN", () => Number.NaN],
    ["a string", () => "1700000000000"],
  ])("a reading of %s fails closed: a delivery signed in 2001 is refused, not accepted", async (_name, now) => {
    const verifier = createWebhookVerifier({ scheme: standardWebhooks, secret: SECRET, now: now as () => number });
    const signed = await signedLongAgo();
    await expect(verifier.verify(signed.headers, "{}")).rejects.toThrow(InterlockConfigError);
  });

  it("a reading of NaN in the memory store: no claim wins, where two would have", async () => {
    const store = new MemoryStore({ now: () => Number.NaN });
    const claim = () => store.claim("k", { lockTtlMs: 1_000, fingerprint: "f" });
    await expect(Promise.resolve().then(claim)).rejects.toThrow(/now\(\) returned NaN, not a finite number/);
    await expect(Promise.resolve().then(claim)).rejects.toThrow(InterlockConfigError);
  });
});
