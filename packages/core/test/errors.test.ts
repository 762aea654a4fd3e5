/**
 * Core's errors: `untrustedCertificate`, the TLS mistakes in a caller's own settings found
 * through wrappers, and `instanceof` across two copies of the package.
 */

import tls from "node:tls";
import { inspect } from "node:util";
import { describe, expect, it } from "vitest";
import {
  brandErrorClass,
  driverErrorSummary,
  InterlockConfigError,
  InterlockError,
  StoreUnavailableError,
  untrustedCertificate,
  WebhookVerificationError,
} from "../src/index.js";

const coded = (code: string, cause?: unknown) => Object.assign(new Error(code), { code }, cause && { cause });

describe("untrustedCertificate", () => {
  it("is true for an untrusted or misnamed certificate, itself or as a wrapper's cause", () => {
    expect(untrustedCertificate(coded("DEPTH_ZERO_SELF_SIGNED_CERT"))).toBe(true);
    expect(untrustedCertificate(coded("ERR_TLS_CERT_ALTNAME_INVALID"))).toBe(true);
    // fetch's "fetch failed" TypeError carries the socket's error as its cause.
    const fetchFailed = new TypeError("fetch failed", { cause: coded("SELF_SIGNED_CERT_IN_CHAIN") });
    expect(untrustedCertificate(fetchFailed)).toBe(true);
  });

  it("is false for an outage, an expired certificate, anything else, and a cause cycle", () => {
    expect(untrustedCertificate(coded("ECONNREFUSED"))).toBe(false);
    expect(untrustedCertificate(coded("CERT_HAS_EXPIRED"))).toBe(false);
    for (const value of [undefined, null, "DEPTH_ZERO_SELF_SIGNED_CERT", 42, {}]) {
      expect(untrustedCertificate(value)).toBe(false);
    }
    const cycle: { cause?: unknown } = {};
    cycle.cause = cycle;
    expect(untrustedCertificate(cycle)).toBe(false);
  });

  it("knows the code of Node's own host-name check", () => {
    const error = tls.checkServerIdentity("db.example", {
      subject: { CN: "other.example" },
      subjectaltname: "",
    } as never);
    expect(untrustedCertificate(error)).toBe(true);
  });
});

/** The errors' source loaded as another module: a second copy of every class, as a second build is. */
const ANOTHER_COPY: string = "../src/errors.js?another-copy";

describe("a store error's cause keeps nothing of the driver's error but its name, message, code and stack", () => {
  // As ioredis attaches the failed command (its keys can hold a session id) and pg a row's values.
  const driverError = () =>
    Object.assign(new Error("OOM command not allowed when used memory > 'maxmemory'."), {
      name: "ReplyError",
      code: "OOM",
      command: { name: "evalsha", args: ["sha", "1", "oauth:session:SECRET-SESSION-ID"] },
      detail: "Key (key)=(SECRET-ROW-VALUE) already exists.",
      cause: Object.assign(new Error("socket hang up"), { code: "ECONNRESET", args: ["SECRET-NESTED"] }),
    });

  it("as a StoreUnavailableError's cause, and inspected the way a logger prints it", () => {
    const error = new StoreUnavailableError("redis", "claim failed", { cause: driverError() });
    const cause = error.cause as Error & { code?: unknown; command?: unknown };
    expect([cause.name, cause.message, cause.code, cause.command]).toEqual([
      "ReplyError",
      "OOM command not allowed when used memory > 'maxmemory'.",
      "OOM",
      undefined,
    ]);
    expect((cause.cause as { code?: unknown }).code).toBe("ECONNRESET");
    expect(inspect(error, { depth: 10 })).not.toMatch(/SECRET/);
  });

  it("keeps Interlock's own errors and non-errors as they are, and what untrustedCertificate looks for", () => {
    const own = new InterlockConfigError("table missing");
    expect(driverErrorSummary(own)).toBe(own);
    expect(driverErrorSummary("text")).toBe("text");
    const tlsFailure = new StoreUnavailableError("redis", "connect failed", {
      cause: coded("connect failed", coded("DEPTH_ZERO_SELF_SIGNED_CERT")),
    });
    expect(untrustedCertificate(tlsFailure)).toBe(true);
  });
});

describe("instanceof across two copies of core (its ESM and CommonJS builds both loaded)", () => {
  it("an error from the other copy is an instance of this copy's class and its bases, and of no other", async () => {
    const other = (await import(ANOTHER_COPY)) as typeof import("../src/errors.js");
    expect(other.InterlockConfigError).not.toBe(InterlockConfigError);
    const config = new other.InterlockConfigError("set up wrong");
    expect(config).toBeInstanceOf(InterlockConfigError);
    expect(config).toBeInstanceOf(InterlockError);
    expect(config).not.toBeInstanceOf(StoreUnavailableError);
    expect(new other.StoreUnavailableError("redis", "down")).toBeInstanceOf(StoreUnavailableError);
    expect(new other.WebhookVerificationError("missing_header", "no signature")).toBeInstanceOf(
      WebhookVerificationError,
    );
    // And the other way round.
    expect(new InterlockConfigError("x")).toBeInstanceOf(other.InterlockConfigError);
  });

  it("a subclass of another package keeps its own identity: only its bases match across copies", async () => {
    const other = (await import(ANOTHER_COPY)) as typeof import("../src/errors.js");
    class ClientTimeout extends other.InterlockConfigError {}
    class LocalTimeout extends InterlockConfigError {}
    const error = new ClientTimeout("late");
    expect(error).toBeInstanceOf(InterlockConfigError);
    expect(error).not.toBeInstanceOf(LocalTimeout);
    expect(new InterlockConfigError("x")).not.toBeInstanceOf(LocalTimeout);
    // Values that are no errors at all.
    for (const value of [null, undefined, "InterlockConfigError", { name: "InterlockConfigError" }, new Error("x")]) {
      expect(value instanceof InterlockConfigError).toBe(false);
    }
  });

  it("a value that is no Error is none of ours, whatever constructor its prototypes name", async () => {
    const other = (await import(ANOTHER_COPY)) as typeof import("../src/errors.js");
    // What every adapter asks of each request body (`body instanceof BodyError`), and a lookalike.
    expect(Buffer.from("{}") instanceof other.BodyError).toBe(false);
    const lookalike = Object.create({ constructor: other.InterlockConfigError });
    expect(lookalike instanceof InterlockConfigError).toBe(false);
    expect(lookalike instanceof other.InterlockConfigError).toBe(false);
  });
});

describe("brandErrorClass: another package's error classes, known across copies as core's are", () => {
  type Core = typeof import("../src/errors.js");

  /** What another package's errors module declares, once in each copy of that package (here, on each copy of core). */
  function paymentErrors(core: Core) {
    abstract class PaymentError extends core.InterlockError {
      static {
        core.brandErrorClass(PaymentError, "@acme/payments:PaymentError");
      }
      readonly status = 502;
      readonly title = "The payment failed";
    }
    class CardDeclinedError extends PaymentError {
      static {
        core.brandErrorClass(CardDeclinedError, "@acme/payments:CardDeclinedError");
      }
      readonly code = "card_declined";
    }
    class ProviderDownError extends PaymentError {
      static {
        core.brandErrorClass(ProviderDownError, "@acme/payments:ProviderDownError");
      }
      readonly code = "provider_down";
    }
    /** A subclass left without a name of its own: its errors are its parent's only, in another copy. */
    class UnnamedError extends PaymentError {
      readonly code = "unnamed";
    }
    return { PaymentError, CardDeclinedError, ProviderDownError, UnnamedError };
  }

  it("an error of one copy's class is an instance of the other copy's class and its bases, and of no sibling", async () => {
    const other = (await import(ANOTHER_COPY)) as Core;
    const here = paymentErrors(await import("../src/errors.js"));
    const there = paymentErrors(other);
    expect(there.CardDeclinedError).not.toBe(here.CardDeclinedError);
    for (const [made, asked, Base] of [
      [there, here, InterlockError],
      [here, there, other.InterlockError],
    ] as const) {
      const declined = new made.CardDeclinedError("declined");
      expect(declined).toBeInstanceOf(asked.CardDeclinedError);
      expect(declined).toBeInstanceOf(asked.PaymentError);
      expect(declined).toBeInstanceOf(Base);
      expect(declined).not.toBeInstanceOf(asked.ProviderDownError);
      expect(declined).not.toBeInstanceOf(asked.UnnamedError);
      expect(new made.ProviderDownError("down")).not.toBeInstanceOf(asked.CardDeclinedError);
      // Without a name of its own, a subclass's errors are their parent's in another copy, and its own in theirs.
      const unnamed = new made.UnnamedError("no name");
      expect(unnamed).toBeInstanceOf(asked.PaymentError);
      expect(unnamed).not.toBeInstanceOf(asked.UnnamedError);
      expect(unnamed).toBeInstanceOf(made.UnnamedError);
    }
  });

  it("leaves core's own classes as they are: another package's error is none of them", async () => {
    const other = (await import(ANOTHER_COPY)) as Core;
    const declined = new (paymentErrors(other).CardDeclinedError)("declined");
    expect(declined).not.toBeInstanceOf(InterlockConfigError);
    expect(declined).not.toBeInstanceOf(StoreUnavailableError);
    expect(new other.InterlockConfigError("x")).toBeInstanceOf(InterlockConfigError);
    expect(new other.InterlockConfigError("x")).not.toBeInstanceOf(paymentErrors(other).PaymentError);
  });

  it("refuses a name without its package, a class named already (core's included), and a class that is no InterlockError", () => {
    abstract class Base extends InterlockError {
      readonly code = "x";
      readonly status = 500;
      readonly title = "x";
    }
    for (const name of [
      "PaymentError",
      "",
      ":PaymentError",
      "@acme/payments:",
      "@acme/payments: PaymentError",
      "a:b:c",
    ]) {
      class Named extends Base {}
      expect(() => brandErrorClass(Named, name), JSON.stringify(name)).toThrow(TypeError);
    }
    class Twice extends Base {}
    brandErrorClass(Twice, "@acme/payments:Twice");
    expect(() => brandErrorClass(Twice, "@acme/payments:Again")).toThrow(/already/);
    expect(() => brandErrorClass(InterlockConfigError, "@acme/payments:InterlockConfigError")).toThrow(/already/);
    expect(() => brandErrorClass(InterlockError, "@acme/payments:InterlockError")).toThrow(/already/);
    class NotOurs extends Error {}
    expect(() => brandErrorClass(NotOurs as never, "@acme/payments:NotOurs")).toThrow(/InterlockError/);
  });
});
