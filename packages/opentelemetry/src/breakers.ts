/**
 * The `interlock.client.breakers` gauge, read from the clients' breaker registries when the
 * SDK collects, not kept from transition events. Why: a count kept from transitions drifts
 * whenever a breaker changes or goes away without one (the client drops its least recently
 * used origin past `maxOrigins`, and `breakers.restore()` can drop others to make room), and
 * a lost event would stay lost. Read at collection, the numbers are the registries' own.
 * Each client hands its registry over once, in its `client.created` event.
 */

import type { Attributes, ObservableResult } from "@opentelemetry/api";
import { ATTR_CLIENT_BREAKER_STATE, ATTR_CLIENT_ORIGIN } from "./attributes.js";
import type { BreakerStates } from "./outbound-events.js";

interface Point {
  attributes: Attributes;
  value: number;
}

export class BreakerGauge {
  /** Weak: telemetry must not keep a client the app has let go of (one per tenant, say) alive. */
  readonly #registries = new Set<WeakRef<BreakerStates>>();
  /** The points of the last collection, by origin and state. */
  #reported = new Map<string, Attributes>();

  watch(registry: BreakerStates): void {
    this.#registries.add(new WeakRef(registry));
  }

  /** The observable's callback: breakers not closed, by origin and state, summed over the clients. */
  observe(result: ObservableResult): void {
    const points = this.#count();
    // The SDK keeps exporting a point's last value when a callback stops observing it, so a
    // point that was reported and is gone (its breaker closed or dropped) is reported once as 0.
    for (const [key, attributes] of this.#reported) if (!points.has(key)) result.observe(0, attributes);
    for (const { attributes, value } of points.values()) result.observe(value, attributes);
    this.#reported = new Map([...points].map(([key, point]) => [key, point.attributes]));
  }

  #count(): Map<string, Point> {
    const points = new Map<string, Point>();
    for (const ref of this.#registries) {
      const registry = ref.deref();
      if (registry === undefined) {
        this.#registries.delete(ref);
        continue;
      }
      for (const { origin, state } of registry) {
        if (state === "closed") continue;
        const key = `${state} ${origin}`;
        const point = points.get(key);
        if (point !== undefined) point.value++;
        else
          points.set(key, {
            attributes: { [ATTR_CLIENT_ORIGIN]: origin, [ATTR_CLIENT_BREAKER_STATE]: state },
            value: 1,
          });
      }
    }
    return points;
  }
}
