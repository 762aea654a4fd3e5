/**
 * A misspelt option is refused when the hook is made, with the name it most likely meant:
 * ignored, a `meterprovider` would send every metric to the global provider (often none).
 */
import { InterlockConfigError } from "@interlock/core";
import { MeterProvider } from "@opentelemetry/sdk-metrics";
import { TracerProvider } from "@opentelemetry/sdk-trace";
import { describe, expect, it } from "vitest";
import { type InterlockTelemetryOptions, interlockTelemetry } from "../src/index.js";

// Options of a shape TypeScript would refuse in a literal, as a config object built elsewhere passes them.
const loose = (options: Record<string, unknown>) => options as InterlockTelemetryOptions;

describe("interlockTelemetry", () => {
  it("refuses a misspelt option, naming the option meant", () => {
    const make = () => interlockTelemetry(loose({ meterprovider: new MeterProvider() }));
    expect(make).toThrow(InterlockConfigError);
    expect(make).toThrow('interlockTelemetry() has no option "meterprovider": did you mean "meterProvider"?');
    expect(() => interlockTelemetry(loose({ onEvents: () => {} }))).toThrow('did you mean "onEvent"?');
  });

  it("takes every option it has, and none", () => {
    const options: Required<InterlockTelemetryOptions> = {
      meterProvider: new MeterProvider(),
      tracerProvider: new TracerProvider(),
      onEvent: () => {},
    };
    expect(() => interlockTelemetry(options)).not.toThrow();
    expect(() => interlockTelemetry()).not.toThrow();
  });
});
