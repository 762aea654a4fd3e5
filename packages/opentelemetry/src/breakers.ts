/**
 * The `interlock.client.breakers` gauge, read from the clients' breaker registries when the
 * SDK collects, not kept from transition events. Why: a count kept from transitions drifts
 * whenever a breaker changes or goes away without one (the client drops its least recently
 * used origin past `maxOrigins`, and `breakers.restore()` can drop others to make room), and
 * a lost event would stay lost. Read at collection, the numbers are the registries' own.
 * Each client hands its registry over once, in its `client.created` event.
 */

import type { Attributes, Meter, ObservableResult, ObservableUpDownCounter } from "@opentelemetry/api";
import { ATTR_CLIENT_BREAKER_STATE, ATTR_CLIENT_ORIGIN } from "./attributes.js";
import type { BreakerStates } from "./outbound-events.js";

interface Point {
  attributes: Attributes;
  value: number;
}

/**
 * Weak references, for telemetry must not keep what the app has let go of alive: those let go
 * of are dropped as the set is read, and as it grows (it may never be read: with no metric
 * reader, tracing only or no SDK, nothing collects), once it has doubled since the last sweep.
 */
class WeakRefs<T extends object> implements Iterable<T> {
  readonly #refs = new Set<WeakRef<T>>();
  /** How many were left after the last sweep. */
  #swept = 0;

  add(value: T): void {
    this.#refs.add(new WeakRef(value));
    if (this.#refs.size > 2 * this.#swept + 64) this.#sweep();
  }

  *[Symbol.iterator](): Iterator<T> {
    for (const ref of this.#refs) {
      const value = ref.deref();
      if (value === undefined) this.#refs.delete(ref);
      else yield value;
    }
  }

  #sweep(): void {
    for (const _ of this);
    this.#swept = this.#refs.size;
  }
}

/** One hook's clients' breaker registries (one per client, one client per tenant, say). */
export class BreakerGauge {
  readonly #registries = new WeakRefs<BreakerStates>();

  watch(registry: BreakerStates): void {
    this.#registries.add(registry);
  }

  /** Adds the breakers not closed to `points`, by origin and state. */
  count(points: Map<string, Point>): void {
    for (const registry of this.#registries) {
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
  }
}

/**
 * The gauge's one callback on a meter, summing every hook's clients. Two hooks (one per module,
 * say) on one meter provider get the same instrument, and an observable's callbacks do not add
 * up: the last value observed for a point wins, and one hook's 0 for a breaker that closed
 * would hide the other's still open.
 */
class MeterBreakers {
  readonly #gauges = new WeakRefs<BreakerGauge>();
  /** The points of the last collection, by origin and state. */
  #reported = new Map<string, Attributes>();

  add(gauge: BreakerGauge): void {
    this.#gauges.add(gauge);
  }

  observe(result: ObservableResult): void {
    const points = new Map<string, Point>();
    for (const gauge of this.#gauges) gauge.count(points);
    // The SDK keeps exporting a point's last value when a callback stops observing it, so a
    // point that was reported and is gone (its breaker closed or dropped) is reported once as 0.
    for (const [key, attributes] of this.#reported) if (!points.has(key)) result.observe(0, attributes);
    for (const { attributes, value } of points.values()) result.observe(value, attributes);
    this.#reported = new Map([...points].map(([key, point]) => [key, point.attributes]));
  }
}

const byMeter = new WeakMap<Meter, MeterBreakers>();

/** Has the breakers gauge on `meter` read `gauge`'s clients too; `make` makes the gauge, once per meter. */
export function observeBreakers(meter: Meter, gauge: BreakerGauge, make: () => ObservableUpDownCounter): void {
  let shared = byMeter.get(meter);
  if (shared === undefined) {
    const made = new MeterBreakers();
    make().addCallback((result) => made.observe(result));
    byMeter.set(meter, made);
    shared = made;
  }
  shared.add(gauge);
}
