/**
 * The client's and OAuth's events as this package declares them (src/outbound-events.ts, so its
 * published types import neither optional peer), checked against the packages' own (checked by
 * `tsc`; trivially true at run time). A field the mapping reads that a package renames, retypes
 * or drops, or an event type it adds or renames, fails the typecheck here.
 */
import type { BreakerRegistry, ClientEvent } from "@interlock/client";
import type { InterlockEvent } from "@interlock/core";
import type { LoginErrorCode, OAuthErrorCode, OAuthEvent, OAuthResponseErrorCode } from "@interlock/oauth";
import { describe, expectTypeOf, it } from "vitest";
import {
  interlockTelemetry,
  type TelemetryClientEvent,
  type TelemetryEvent,
  type TelemetryHook,
  type TelemetryOAuthEvent,
} from "../src/index.js";
import type { KNOWN_OAUTH_CODES } from "../src/mapping.js";
import type { BreakerStates } from "../src/outbound-events.js";

describe("the outbound events telemetry takes", () => {
  it("are the client's: every ClientEvent is one, and they name the same event types", () => {
    expectTypeOf<ClientEvent>().toExtend<TelemetryClientEvent>();
    expectTypeOf<TelemetryClientEvent["type"]>().toEqualTypeOf<ClientEvent["type"]>();
    expectTypeOf<BreakerRegistry>().toExtend<BreakerStates>();
  });

  it("have the client's fields an older client does not send: optional here, so checked one by one", () => {
    // `toExtend` above would not see the client drop or rename an optional field.
    type Retry<Event> = Extract<Event, { type: "client.retry" }>;
    expectTypeOf<Retry<ClientEvent>["staleConnection"]>().toEqualTypeOf<
      NonNullable<Retry<TelemetryClientEvent>["staleConnection"]>
    >();
  });

  it("are OAuth's: every OAuthEvent is one, and they name the same event types", () => {
    expectTypeOf<OAuthEvent>().toExtend<TelemetryOAuthEvent>();
    expectTypeOf<TelemetryOAuthEvent["type"]>().toEqualTypeOf<OAuthEvent["type"]>();
  });

  it("make the hook one the client, OAuth and core take", () => {
    expectTypeOf<ClientEvent | OAuthEvent | InterlockEvent>().toExtend<TelemetryEvent>();
    expectTypeOf<TelemetryHook>().toExtend<(event: ClientEvent) => void>();
    expectTypeOf<TelemetryHook>().toExtend<(event: OAuthEvent) => void>();
    expectTypeOf<TelemetryHook>().toExtend<(event: InterlockEvent) => void>();
  });

  it("give your own hook the packages' own types when it names them (the README's advice)", () => {
    const hook = interlockTelemetry<InterlockEvent | ClientEvent | OAuthEvent>({
      onEvent: (event) => {
        // A field telemetry does not read, so not in its shapes: there only with the client's own type.
        if (event.type === "client.retry") expectTypeOf(event.backoffMs).toEqualTypeOf<number>();
      },
    });
    expectTypeOf(hook).toExtend<(event: ClientEvent) => void>();
  });

  it("count every code OAuth types by its own name, and the one its revocation events name, and no other", () => {
    expectTypeOf<keyof typeof KNOWN_OAUTH_CODES>().toEqualTypeOf<
      LoginErrorCode | OAuthErrorCode | OAuthResponseErrorCode | "token_decryption_failed" | "invalid_token" | "error"
    >();
  });
});
